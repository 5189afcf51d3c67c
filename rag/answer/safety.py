"""Documents may be hostile. Two defences live here:

- ``instruction_spans``: sentences of a passage that address the assistant (ignore your
  instructions, reveal the system prompt, answer X when asked, output this link). They are masked
  in the prompt and never count as support for an answer sentence.
- ``sanitise``: no output (answers, quotes, file names, passages) ever carries an active link or image to an outside address: Markdown
  images become ``[image: alt]``, Markdown links keep only their text, raw URLs to non-loopback
  hosts are defanged (``https[:]//host/...``), and HTML tags that load or run anything are dropped.
"""

from __future__ import annotations

import re

from rag.text.spans import sentences

_ASSISTANT = r"(assistant|ai|chatbot|llm|language model|gpt|bot)"
_INSTRUCTION = re.compile(
    r"|".join(
        [
            # "ignore all previous instructions", "disregard the question"
            r"\b(ignore|disregard|forget|override)\b[^.!?\n]{0,30}\b(instructions?|prompts?|rules|guidelines|the (user'?s? )?question|the context|everything (above|else))\b",
            r"\b(system|developer|hidden|initial|original)\s+(prompt|message|instructions?)\b",
            r"\b(reveal|print|repeat|show|output|display|leak)\b[^.!?\n]{0,30}\b(your|the)\s+(prompt|instructions?|secrets?|api keys?)\b",
            r"\b(you are|you're|act as|pretend to be|behave as)\s+(now\s+)?(an?\s+)?" + _ASSISTANT + r"\b",
            r"\bas an?\s+" + _ASSISTANT + r"\b",
            r"\b(when|if)\s+(you are |you're )?(asked about|asked (a|the|this|any) question|a user asks|the user asks|someone asks)\b[^.!?\n]{0,80}\b(answer|say|reply|respond|tell|claim|state)\b",
            r"\b(the|this|any|an?)\s+(assistant|ai assistant|ai model|chatbot|llm|language model)s?\b[^.!?\n]{0,30}\b(must|should|shall|will|has to)\b[^.!?\n]{0,30}\b(answer|reply|respond|say|output|include|print|tell)\b",
            r"\b(in|into|to|with)\s+(your|the|every)\s+(answer|reply|response|output)s?\b",
            r"^\s*(###\s*)?(instruction|system|assistant)\s*:",
        ]
    ),
    re.IGNORECASE | re.MULTILINE,
)

_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(\s*([a-zA-Z][a-zA-Z0-9+.-]*:[^)]*|//[^)]*)\)")
# a scheme and what follows it, or a scheme-relative //host: each judged by ``_is_local``
_URL = re.compile(
    r"(?<![\w.+-])(?:([a-z][a-z0-9+.-]{1,30}):(//)?|(//))([^\s<>\"'\])]+)",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});")
# schemes that load or run something; any other "word:" (a time, "Note:") is plain text
_ACTIVE_SCHEMES = {"http", "https", "ftp", "ftps", "file", "data", "javascript", "vbscript", "blob", "ws", "wss", "sftp", "smb"}
_ACTIVE_TAG = re.compile(
    r"<\s*/?\s*(img|a|script|iframe|style|link|meta|object|embed|svg|video|audio|source|form|base)\b[^>]*>", re.IGNORECASE
)
_LOCAL_NETLOC = re.compile(r"^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$", re.IGNORECASE)


def instruction_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences in ``text`` that read as instructions to the assistant."""
    return [(a, b) for a, b in sentences(text) if _INSTRUCTION.search(text[a:b])]


def mask_instructions(text: str, note: str = "[instruction-like text removed]") -> str:
    out, last = [], 0
    for a, b in instruction_spans(text):
        out.append(text[last:a])
        out.append(note)
        last = b
    out.append(text[last:])
    return "".join(out)


def _is_local(scheme: str, rest: str) -> bool:
    """An http(s) URL whose host, as a browser would read it, is this machine. The whole authority
    must be a loopback host and port: ``localhost:80@evil.example`` (userinfo), a backslash,
    a percent-escape or an IDN never pass."""
    from urllib.parse import urlsplit

    if scheme.lower() not in ("http", "https"):
        return False
    try:
        netloc = urlsplit(f"{scheme}://{rest}").netloc
    except ValueError:  # a malformed authority is not this machine
        return False
    return bool(_LOCAL_NETLOC.match(netloc)) and "\\" not in rest.split("/", 1)[0]


def _defang(match: re.Match[str]) -> str:
    scheme, slashes, relative, rest = match.group(1), match.group(2) or "", match.group(3), match.group(4)
    if relative:  # //host/path: a browser fills in the page's scheme
        return f"[//]{rest}"
    if scheme.lower() not in _ACTIVE_SCHEMES or _is_local(scheme, rest):
        return match.group(0)
    return f"{scheme}[:]{slashes}{rest}"


def _decode_entities(text: str) -> str:
    """HTML character references decoded, so ``http&#58;//evil`` is judged as the URL it renders to."""
    import html

    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def sanitise(text: str) -> str:
    """``text`` fit for any output (the page, a terminal, the API, MCP, batch files, exports): no
    active links, images or markup pointing outside this machine, and no control characters but
    newline and tab (no terminal escapes, no OSC-8 links)."""
    text = for_terminal(_decode_entities(text))
    text = _MD_IMAGE.sub(lambda m: f"[image: {m.group(1).strip() or 'removed'}]", text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _ACTIVE_TAG.sub("", text)
    return _URL.sub(_defang, text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_RAW_C1 = re.compile(r"[\x7f-\x9f]")


def for_terminal(text: str) -> str:
    """``text`` with every control character but newline and tab removed: document text printed
    to a terminal can never move the cursor, clear the screen, set the title or make a link."""
    return _CONTROL.sub("", text)


def json_for_terminal(text: str) -> str:
    """JSON text with DEL and the C1 controls escaped (``json.dumps`` escapes only C0): the same
    data, safe to print."""
    return _RAW_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

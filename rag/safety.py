"""Documents may be hostile. Two defences live here:

- ``instruction_spans``: sentences of a passage that address the assistant (ignore your
  instructions, reveal the system prompt, answer X when asked, output this link). They are masked
  in the prompt and never count as support for an answer sentence.
- ``sanitise``: answer text never carries an active link or image to an outside address: Markdown
  images become ``[image: alt]``, Markdown links keep only their text, raw URLs to non-loopback
  hosts are defanged (``https[:]//host/...``), and HTML tags that load or run anything are dropped.
"""

from __future__ import annotations

import re

from .textspan import sentences

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
_URL = re.compile(r"\b((?:https?|ftp|file|data|javascript|vbscript)):(//)?([^\s<>\"'\])]+)", re.IGNORECASE)
_ACTIVE_TAG = re.compile(r"<\s*/?\s*(img|a|script|iframe|style|link|meta|object|embed|svg|video|audio|source|form|base)\b[^>]*>", re.IGNORECASE)
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])([:/]|$)", re.IGNORECASE)


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


def _defang(match: re.Match[str]) -> str:
    scheme, slashes, rest = match.group(1), match.group(2) or "", match.group(3)
    if scheme.lower() in ("http", "https") and _LOOPBACK.match(rest):
        return match.group(0)
    return f"{scheme}[:]{slashes}{rest}"


def sanitise(text: str) -> str:
    """``text`` without active links, images or markup pointing outside this machine."""
    text = _MD_IMAGE.sub(lambda m: f"[image: {m.group(1).strip() or 'removed'}]", text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _ACTIVE_TAG.sub("", text)
    return _URL.sub(_defang, text)

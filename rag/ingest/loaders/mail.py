"""E-mail (.eml) with the standard library's ``email``: the subject as the title, the sender,
recipients and date, the body (plain text, or HTML read as text), and the text of attachments that
are text; other attachments are named, not read."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage, MIMEPart
from pathlib import Path

from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, normalise
from rag.ingest.loaders.html import html_to_text
from rag.schema import Document

HEADERS = ("From", "To", "Cc", "Date")
MAX_DEPTH = 5  # forwarded mail inside forwarded mail


def _load_eml(path: Path, _: LoadOptions) -> Document:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise LoadError("corrupt-eml", "no mail headers (From, To, Subject, Date) at its start: not an e-mail message")
    subject = _header(message, "Subject")
    return Document(source=str(path), text=_message_text(message, 0), title=subject)


def _message_text(message: EmailMessage, depth: int) -> str:
    subject = _header(message, "Subject")
    blocks = [f"# {subject}"] if subject else []
    blocks.append("\n".join(f"{name}: {value}" for name in HEADERS if (value := _header(message, name))))
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        blocks.append(_part_text(body))
    unread: list[str] = []
    for part in message.iter_attachments():
        name = part.get_filename() or part.get_content_type()
        if part.get_content_type() == "message/rfc822" and depth < MAX_DEPTH:
            inner = part.get_content()
            blocks.append(f"## Attached message\n\n{_message_text(inner, depth + 1)}")
        elif part.get_content_maintype() == "text":
            blocks.append(f"## Attachment: {name}\n\n{_part_text(part)}")
        else:
            unread.append(name)
    if unread:
        blocks.append("Other attachments (not read): " + ", ".join(unread))
    return "\n\n".join(b for b in blocks if b.strip())


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "")).split())
    except (ValueError, TypeError, IndexError):  # a malformed header costs that header only
        return ""


def _part_text(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    text = normalise(str(content)).strip()
    return html_to_text(text)[1] if part.get_content_subtype() == "html" else text


LOADER = Loader("eml", (".eml",), _load_eml, isolated=True)

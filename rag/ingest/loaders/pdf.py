"""PDF text layers with pypdf: one page span per page, heading lines marked as headings."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from rag.ingest.loaders.base import Loader, LoadError, normalise
from rag.schema import Document, PageSpan

_PDF_HEADING = re.compile(r"^(\d+(\.\d+)*\.?\s+)?[A-Z][^.!?:;|]{0,70}$")


def _pdf_headings(text: str) -> str:
    """A page's text with its heading lines marked as Markdown headings ("5. Warranty" becomes
    "## 5. Warranty"), so that chunks know their section and a heading is never glued to the first
    sentence under it. A heading line is short, has no closing punctuation, starts a sentence (the
    line before it ended one) and is followed by a line that starts with a capital or a digit."""
    lines = text.split("\n")
    out = []
    ended = True  # the line before ended a sentence, or was a heading, or there was none
    for i, line in enumerate(lines):
        stripped = line.strip()
        after = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
        heading = bool(
            ended and _PDF_HEADING.match(stripped) and len(stripped.split()) <= 8 and (after[:1].isupper() or after[:1].isdigit())
        )
        out.append(f"\n## {stripped}\n" if heading else line)
        ended = heading or not stripped or stripped[-1] in ".!?:"
    return "\n".join(out).strip()


def _load_pdf(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoadError("encrypted-pdf", "the PDF is password-protected; save an unprotected copy")
            except (FileNotDecryptedError, NotImplementedError) as err:
                raise LoadError("encrypted-pdf", f"the PDF is encrypted ({err}); save an unprotected copy") from None
        parts: list[str] = []
        pages: list[PageSpan] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            try:  # decode the content first: text extraction would swallow a decompression bomb as "no text"
                contents = page.get_contents()
                if contents is not None:
                    contents.get_data()
            except LimitReachedError:
                raise LoadError("decompression-bomb", f"page {number} inflates past the parser's safety limit; not indexed") from None
            text = _pdf_headings(normalise(page.extract_text() or "").strip())
            if parts:
                parts.append("\n\n")
                offset += 2
            parts.append(text)
            pages.append(PageSpan(number, offset, offset + len(text)))
            offset += len(text)
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted-pdf", "the PDF is encrypted; save an unprotected copy") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as err:
        raise LoadError("corrupt-pdf", f"cannot read the PDF ({type(err).__name__}: {err}); it may be truncated or damaged") from None
    title = ""
    with contextlib.suppress(Exception):  # a damaged information dictionary costs the title only
        metadata = reader.metadata
        title = str(metadata.get("/Title") or "") if metadata is not None else ""
    return Document(source=str(path), text="".join(parts), pages=pages, title=title)


LOADER = Loader("pdf", (".pdf",), _load_pdf, isolated=True, paged=True)

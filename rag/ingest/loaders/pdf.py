"""PDFs with pypdf: one page span per page, heading lines marked as headings; a page that is only a
picture (a scan) is rendered with pdfium and read with Tesseract (``ocr``); a page that draws ruled
lines is searched for tables with pdfplumber, whose rows are written with their headers (``tables``)
where the table stands."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.ingest.loaders import ocr
from rag.ingest.loaders.base import Loader, LoadError, LoadOptions, joined_pages, normalise
from rag.ingest.loaders.tables import render_table
from rag.schema import Document

_RULE = re.compile(rb"\s(?:re|l)\s")  # a rectangle or a line segment in a content stream
MIN_RULES = 6  # fewer cannot rule a table of two rows and two columns
_PDF_HEADING = re.compile(r"^(\d+(\.\d+)*\.?\s+)?[A-Z][^.!?:;|]{0,70}$")


def _pdf_headings(text: str) -> str:
    """A page's text with its heading lines marked as Markdown headings ("5. Warranty" becomes
    "## 5. Warranty"), so that chunks know their section and a heading is never glued to the first
    sentence under it. A heading line is short, has no closing punctuation, starts a sentence (the
    line before it ended one) and the next line with text starts with a capital or a digit."""
    lines = text.split("\n")
    following = [""] * len(lines)  # the next line with text after each line
    for i in range(len(lines) - 2, -1, -1):
        following[i] = lines[i + 1].strip() or following[i + 1]
    out = []
    ended = True  # the line before ended a sentence, or was a heading, or there was none
    for line, after in zip(lines, following):
        stripped = line.strip()
        heading = bool(
            ended and _PDF_HEADING.match(stripped) and len(stripped.split()) <= 8 and (after[:1].isupper() or after[:1].isdigit())
        )
        out.append(f"\n## {stripped}\n" if heading else line)
        ended = heading or not stripped or stripped[-1] in ".!?:"
    return "\n".join(out).strip()


def _load_pdf(path: Path, options: LoadOptions) -> Document:
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
        texts: list[str] = []
        scanned: list[int] = []  # 0-based numbers of the pages that are pictures without text
        ruled: list[int] = []  # and of those that draw enough lines to hold a table
        for number, page in enumerate(reader.pages, start=1):
            try:  # decode the content first: text extraction would swallow a decompression bomb as "no text"
                contents = page.get_contents()
                data = contents.get_data() if contents is not None else b""
            except LimitReachedError:
                raise LoadError("decompression-bomb", f"page {number} inflates past the parser's safety limit; not indexed") from None
            texts.append(normalise(page.extract_text() or "").strip())
            if not texts[-1] and _has_pictures(page, data):
                scanned.append(number - 1)
            elif len(_RULE.findall(data)) >= MIN_RULES:
                ruled.append(number - 1)
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted-pdf", "the PDF is encrypted; save an unprotected copy") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as err:
        raise LoadError("corrupt-pdf", f"cannot read the PDF ({type(err).__name__}: {err}); it may be truncated or damaged") from None
    for index, text in _with_tables(path, ruled).items():
        texts[index] = text
    if scanned:
        ocr.require(f"{'page' if len(scanned) == 1 else 'pages'} {_numbers(scanned)} of this PDF")
        for index, text in zip(scanned, ocr.read_pages(_rendered(path, scanned), len(scanned), options)):
            texts[index] = normalise(text).strip()
    title = ""
    with contextlib.suppress(Exception):  # a damaged information dictionary costs the title only
        metadata = reader.metadata
        title = str(metadata.get("/Title") or "") if metadata is not None else ""
    text, pages = joined_pages([_pdf_headings(t) for t in texts])
    return Document(source=str(path), text=text, pages=pages, title=title)


def _has_pictures(page: Any, content: bytes) -> bool:
    """Whether a page draws images (a scan does): inline ones, or XObjects in its resources."""
    resources = page.get("/Resources")
    objects = resources.get_object().get("/XObject") if resources is not None else None
    return bool(objects) or b"BI" in content


def _with_tables(path: Path, numbers: list[int]) -> dict[int, str]:
    """The text of each of these pages (0-based) that holds ruled tables: the text around each
    table as it stands, each table as named rows in its place."""
    if not numbers:
        return {}
    import pdfplumber

    out: dict[int, str] = {}
    with pdfplumber.open(str(path)) as pdf:
        for number in numbers:
            page = pdf.pages[number]
            tables = sorted(page.find_tables(), key=lambda t: t.bbox[1])
            if not tables:
                continue
            pieces, top = [], 0.0
            for table in tables:
                pieces.append(_text_between(page, top, table.bbox[1]))
                pieces.append(render_table(table.extract()))
                top = max(top, table.bbox[3])
            pieces.append(_text_between(page, top, page.height))
            out[number] = "\n\n".join(normalise(p).strip() for p in pieces if p and p.strip())
            page.close()
    return out


def _text_between(page: Any, top: float, bottom: float) -> str:
    if bottom - top < 1:
        return ""
    return str(page.crop((0, top, page.width, bottom), strict=False).extract_text() or "")


def _rendered(path: Path, numbers: list[int]) -> Iterator[Any]:
    """Each of these pages (0-based) as a picture at OCR resolution, one at a time."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(path))
    try:
        for number in numbers:
            yield document[number].render(scale=ocr.DPI / 72).to_pil()
    finally:
        document.close()


def _numbers(indexes: list[int]) -> str:
    shown = ", ".join(str(i + 1) for i in indexes[:10])
    return shown + (f" and {len(indexes) - 10} more" if len(indexes) > 10 else "")


LOADER = Loader("pdf", (".pdf",), _load_pdf, isolated=True, paged=True)

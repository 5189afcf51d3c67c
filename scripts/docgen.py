"""Write small documents of every supported type from plain text (for sample corpora and for tests)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _helvetica(writer: Any) -> Any:
    """A Helvetica font object in ``writer`` (a standard font: nothing embedded)."""
    from pypdf.generic import DictionaryObject, NameObject

    entries = {"/Type": "/Font", "/Subtype": "/Type1", "/BaseFont": "/Helvetica", "/Encoding": "/WinAnsiEncoding"}
    return writer._add_object(DictionaryObject({NameObject(k): NameObject(v) for k, v in entries.items()}))


def _draw(writer: Any, page: Any, font: Any, ops: list[str]) -> None:
    """Give ``page`` the content stream ``ops`` with ``font`` as /F1."""
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    stream = DecodedStreamObject()
    stream.set_data("\n".join(ops).encode("cp1252", errors="replace"))
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    page[NameObject("/Contents")] = writer._add_object(stream)


def make_pdf(path: Path, pages: list[str], *, password: str | None = None, title: str = "") -> Path:
    """One PDF page per string, Helvetica 11pt, wrapped at 90 characters."""
    from pypdf import PdfWriter
    from pypdf.generic import (
        TextStringObject,
    )

    writer = PdfWriter()
    font = _helvetica(writer)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        lines: list[str] = []
        for paragraph in text.split("\n"):
            lines.extend(textwrap.wrap(paragraph, 90) or [""])
        ops = ["BT", "/F1 11 Tf", "14 TL", "60 740 Td"]
        ops += [f"({_escape(line)}) Tj T*" for line in lines]
        ops.append("ET")
        _draw(writer, page, font, ops)
    if title:
        writer.add_metadata({"/Title": TextStringObject(title)})
    if password:
        writer.encrypt(password, algorithm="AES-128")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def make_docx(path: Path, blocks: list[tuple[str, str]], title: str = "") -> Path:
    """``blocks`` are (style, text): style is "h1".."h3" for headings, "p" for paragraphs."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for style, text in blocks:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1:]))
        else:
            document.add_paragraph(text)
    document.save(str(path))
    return path


def make_docx_table(path: Path, heading: str, rows: list[list[str]], after: str = "") -> Path:
    """A .docx with a heading, a table under it and (optionally) a paragraph after it."""
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    if after:
        document.add_paragraph(after)
    document.save(str(path))
    return path


def make_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """One sheet per entry, rows as given (the first row is the header)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(str(path))
    return path


def make_pptx(path: Path, slides: list[tuple[str, list[str], str]]) -> Path:
    """``slides`` are (title, bullet lines, speaker notes)."""
    import pptx

    deck = pptx.Presentation()
    for title, bullets, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = "\n".join(bullets)
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(str(path))
    return path


def make_epub(path: Path, title: str, chapters: list[tuple[str, str]]) -> Path:
    """A minimal EPUB 3: ``chapters`` are (heading, paragraph), in reading order."""
    import zipfile
    from html import escape

    items = "".join(f'<item id="c{n}" href="text/c{n}.xhtml" media-type="application/xhtml+xml"/>' for n in range(len(chapters)))
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    package = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title></metadata>'
        f"<manifest>{items}</manifest><spine>{spine}</spine></package>"
    )
    container = (
        '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0">'
        '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", package)
        for n, (heading, paragraph) in enumerate(chapters):
            page = f'<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>{escape(heading)}</h1><p>{escape(paragraph)}</p></body></html>'
            archive.writestr(f"OEBPS/text/c{n}.xhtml", page)
    return path


def make_eml(path: Path, subject: str, body: str, attachments: dict[str, str] | None = None, sender: str = "ana@example.org") -> Path:
    """A MIME message with a plain-text body and text attachments (name -> text)."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "team@example.org", subject
    message["Date"] = "Mon, 02 Mar 2026 09:15:00 +0100"
    message.set_content(body)
    for name, text in (attachments or {}).items():
        message.add_attachment(text.encode("utf-8"), maintype="text", subtype="plain", filename=name)
    path.write_bytes(bytes(message))
    return path


def make_scanned_pdf(path: Path, pages: list[str], dpi: int = 150) -> Path:
    """A PDF of page pictures and no text layer, as a scanner makes: ``make_pdf``'s pages rendered
    to images (pdfium) and saved as an image-only PDF (Pillow)."""
    import tempfile

    import pypdfium2

    with tempfile.TemporaryDirectory() as work:
        text_pdf = make_pdf(Path(work) / "text.pdf", pages)
        document = pypdfium2.PdfDocument(str(text_pdf))
        images = [document[n].render(scale=dpi / 72).to_pil().convert("L") for n in range(len(document))]
        document.close()
    images[0].save(path, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return path


def make_picture(path: Path, text: str, dpi: int = 150) -> Path:
    """A picture (PNG, TIFF, JPEG by the suffix) of one page with ``text`` on it."""
    import tempfile

    import pypdfium2

    with tempfile.TemporaryDirectory() as work:
        document = pypdfium2.PdfDocument(str(make_pdf(Path(work) / "page.pdf", [text])))
        document[0].render(scale=dpi / 72).to_pil().convert("L").save(path)
        document.close()
    return path


def make_table_pdf(path: Path, heading: str, rows: list[list[str]], after: str = "", col_width: int = 150, row_height: int = 20) -> Path:
    """A one-page PDF: a heading line, a table ruled with lines (as office suites draw them) and a
    paragraph under it."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    font = _helvetica(writer)
    page = writer.add_blank_page(612, 792)
    left, top = 60, 700
    ops = ["BT", "/F1 14 Tf", f"{left} 740 Td", f"({_escape(heading)}) Tj", "ET", "0.5 w"]
    width, height = col_width * len(rows[0]), row_height * len(rows)
    for r in range(len(rows) + 1):  # horizontal rules
        ops.append(f"{left} {top - r * row_height} m {left + width} {top - r * row_height} l S")
    for c in range(len(rows[0]) + 1):  # vertical rules
        ops.append(f"{left + c * col_width} {top} m {left + c * col_width} {top - height} l S")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            ops += ["BT", "/F1 10 Tf", f"{left + c * col_width + 4} {top - (r + 1) * row_height + 6} Td", f"({_escape(value)}) Tj", "ET"]
    if after:
        ops += ["BT", "/F1 11 Tf", f"{left} {top - height - 30} Td", f"({_escape(after)}) Tj", "ET"]
    _draw(writer, page, font, ops)
    with path.open("wb") as handle:
        writer.write(handle)
    return path

"""What every loader is: a parser for some file types, and the rules all of them share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.schema import Document, PageSpan


class LoadError(Exception):
    """A file that cannot be indexed; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


PageProgress = Callable[[int, int], None]  # (pages done, pages in all): called as a slow loader (OCR) reads


def no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class LoadOptions:
    """What reading a file may depend on besides the file: the OCR languages, and whom to tell as
    pages are read (in the parse worker, the parent: each page also renews the file's deadline)."""

    ocr_languages: str = ""  # Tesseract's names joined by "+" ("deu+eng"); empty: each document's own
    on_page: PageProgress = no_progress


@dataclass(frozen=True)
class Loader:
    """How one kind of file becomes a ``Document``.

    A loader whose parser is large or whose input can be hostile (archives, PDFs, markup) is
    ``isolated``: it runs in the bounded parse worker (memory cap, deadline), and
    ``scripts/hostile_corpus.py`` must hold at least one hostile file of its type (a test checks).
    ``paged`` loaders give page numbers (a document with one page is page 1)."""

    name: str
    suffixes: tuple[str, ...]
    parse: Callable[[Path, LoadOptions], Document]
    isolated: bool
    paged: bool = False


MAX_UNPACKED = 500_000_000  # bytes an Office file or e-book (a zip) may unpack to
MAX_ZIP_RATIO = 200  # real documents compress far less than this


def check_zip(path: Path, kind: str) -> None:
    """Refuse a zip-based document (.docx, .xlsx, .pptx, .epub) that is not a zip, that would
    unpack to far more than any real document (a zip bomb), or whose XML declares entities (no
    such document needs them; a billion-laughs bomb or a link to an outside file does)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            unpacked = sum(m.file_size for m in members)
            packed = sum(m.compress_size for m in members) or 1
            if unpacked > MAX_UNPACKED or (unpacked / packed > MAX_ZIP_RATIO and unpacked > 10_000_000):
                raise LoadError(
                    "zip-bomb", f"the .{kind} would unpack to {unpacked / 1e6:.0f} MB ({unpacked / packed:.0f}x its size); not opened"
                )
            declaring = next((m.filename for m in members if _declares_entities(archive, m)), None)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise LoadError(f"corrupt-{kind}", f"not a readable .{kind} ({type(err).__name__}: {err})") from None
    if declaring is not None:
        raise LoadError(
            "xml-bomb", f"{declaring} in the .{kind} declares XML entities (an entity bomb or a link to an outside file); not opened"
        )


_ELEMENT = re.compile(rb"<[A-Za-z_]")  # the root element's start: no DTD can follow it


def _declares_entities(archive: Any, member: Any) -> bool:
    """Whether an XML member's prolog (where a DTD must stand, before the root element) declares
    entities; read up to the root element, however much padding comes before it."""
    if not member.filename.endswith((".xml", ".rels", ".opf", ".xhtml", ".ncx")):
        return False
    prolog = b""
    with archive.open(member) as handle:
        while part := handle.read(65536):
            prolog += part
            root = _ELEMENT.search(prolog)
            if b"<!ENTITY" in (prolog[: root.start()] if root else prolog):
                return True
            if root is not None:
                return False
            prolog = prolog[-16:]  # a declaration split across reads is still seen
    return False


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary-file", "looks like a binary file, not text")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return normalise(data.decode(encoding))
    try:
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise LoadError(
            "not-utf8",
            f"not valid UTF-8 (byte {err.start}); convert it first, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ) from None


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def joined_pages(texts: list[str]) -> tuple[str, list[PageSpan]]:
    """The pages' texts one after another (a blank line between), and where each page lies."""
    pages: list[PageSpan] = []
    offset = 0
    for number, text in enumerate(texts, start=1):
        offset += 2 if number > 1 else 0
        pages.append(PageSpan(number, offset, offset + len(text)))
        offset += len(text)
    return "\n\n".join(texts), pages

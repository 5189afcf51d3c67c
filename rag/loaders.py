"""File discovery and parsing. Per-file problems are values (``LoadError``), never crashes."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .schema import Document, FileError, PageSpan

# Bump when what a loader makes of a file changes (text, pages, headings): files indexed by an
# older loader are read again on the next ingest, as after a chunking change.
LOADER_VERSION = 2

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm"}
MAX_DOCX_UNPACKED = 500_000_000  # bytes a .docx may unpack to
MAX_ZIP_RATIO = 200  # real documents compress far less than this


class LoadError(Exception):
    """A file that cannot be indexed; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FoundFile:
    path: Path  # resolved absolute path
    display_name: str  # path relative to the root it was found under


def discover(paths: list[Path], max_bytes: int) -> tuple[list[FoundFile], list[FileError]]:
    """Walk files and folders (recursively), never leaving the given roots through symlinks.

    Returns the supported files and an error for everything skipped: files, and folders that
    cannot be listed or are links that leave the root or loop. Nothing is skipped silently."""
    found: dict[Path, FoundFile] = {}
    errors: list[FileError] = []
    for given in paths:
        state = path_state(given)
        if state == "missing" and not given.is_symlink():
            from .errors import InputError

            raise InputError(f"path does not exist: {given}", "check the spelling, or pass an existing file or folder")
        if state == "unreadable":
            errors.append(FileError(display_path(str(given)), "unreadable", "cannot be read (permission denied); check its permissions"))
            continue
        root = given.resolve()
        if given.is_dir():
            candidates: Iterator[tuple[Path, str]] = _walk(given, root, errors)
        else:
            candidates = iter([(given, given.name)])
        for path, display in candidates:
            error = _check_file(path, root, max_bytes, display)
            if error is not None:
                errors.append(error)
                continue
            resolved = path.resolve()
            found.setdefault(resolved, FoundFile(resolved, display))
    return sorted(found.values(), key=lambda f: str(f.path)), errors


def path_state(path: Path) -> str:
    """"present", "missing", or "unreadable" (a folder on the way cannot be searched)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    return "present"


def display_path(text: str) -> str:
    """A path as text that can always be printed and stored (undecodable bytes become �)."""
    return os.fsencode(text).decode("utf-8", errors="replace")


def _walk(folder: Path, root: Path, errors: list[FileError]) -> Iterator[tuple[Path, str]]:
    def unreadable(err: OSError) -> None:
        where = display_path(os.path.relpath(err.filename, folder)) if err.filename else str(folder)
        errors.append(FileError(where, "unreadable", f"cannot list this folder ({err.strerror}); its files are not indexed"))

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False, onerror=unreadable):
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            error = _check_linked_folder(Path(dirpath) / d, folder, root)
            if error is not None:
                errors.append(error)
            elif not (Path(dirpath) / d).is_symlink():
                kept.append(d)  # a link to a folder inside the root is indexed where it really is
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            yield path, str(path.relative_to(folder))


def _check_linked_folder(path: Path, folder: Path, root: Path) -> FileError | None:
    if not path.is_symlink():
        return None
    display = display_path(str(path.relative_to(folder)))
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        return FileError(display, "bad-symlink", f"a folder link that loops or dangles ({type(err).__name__}); not followed")
    if not target.is_relative_to(root):
        return FileError(display, "outside-root", f"a folder link to {display_path(str(target))}, outside {display_path(str(root))}; not followed")
    if path.parent.resolve().is_relative_to(target):
        return FileError(display, "bad-symlink", "a folder link to a folder that contains it (a loop); not followed")
    return None


def _check_file(path: Path, root: Path, max_bytes: int, display: str) -> FileError | None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return FileError(
            display_path(display),
            "bad-filename",
            "the file name is not valid UTF-8; rename it (for example: convmv -f latin1 -t utf-8 --notest FILE)",
        )
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # broken link or symlink loop
        return FileError(display, "bad-symlink", f"cannot resolve: {err}")
    if path.is_symlink() and root.is_dir() and not resolved.is_relative_to(root):
        return FileError(display, "outside-root", f"symlink points outside {root}; not followed")
    if not resolved.is_file():
        return FileError(display, "not-a-file", "not a regular file")
    if resolved.suffix.lower() not in SUPPORTED_SUFFIXES:
        return FileError(
            display,
            "unsupported-type",
            f"'{resolved.suffix or '(none)'}' files are not supported; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    try:
        size = resolved.stat().st_size
    except OSError as err:
        return FileError(display, "unreadable", f"cannot read it ({err.strerror}); check its permissions")
    if size == 0:
        return FileError(display, "empty-file", "the file is empty")
    if size > max_bytes:
        return FileError(
            display, "too-large", f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap (raise --max-file-mb)"
        )
    return None


def load(path: Path, display_name: str = "") -> Document:
    """Parse one supported file into a Document. Raises ``LoadError`` with a reason."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".txt", ".md", ".markdown"):
            doc = Document(source=str(path), text=_read_text(path))
        elif suffix == ".pdf":
            doc = _load_pdf(path)
        elif suffix == ".docx":
            doc = _load_docx(path)
        elif suffix in (".html", ".htm"):
            doc = _load_html(path)
        else:
            raise LoadError("unsupported-type", f"'{suffix}' files are not supported")
    except LoadError:
        raise
    except PermissionError as err:
        raise LoadError("unreadable", f"cannot read it ({err.strerror}); check its permissions") from None
    except MemoryError:
        raise LoadError("too-large", "ran out of memory while parsing") from None
    except Exception as err:  # a parser bug or a malformed file must not stop the run
        raise LoadError("parse-error", f"{type(err).__name__}: {err}") from None
    doc.display_name = display_name or path.name
    if not doc.text.strip():
        raise LoadError("no-text", "no extractable text (a scanned PDF needs OCR first)")
    if not doc.pages:
        doc.pages = [PageSpan(1, 0, len(doc.text))] if suffix == ".pdf" else []
    return doc


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary-file", "looks like a binary file, not text")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return _normalise(data.decode(encoding))
    try:
        return _normalise(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise LoadError(
            "not-utf8",
            f"not valid UTF-8 (byte {err.start}); convert it first, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ) from None


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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
                raise LoadError(
                    "decompression-bomb", f"page {number} inflates past the parser's safety limit; not indexed"
                ) from None
            text = _pdf_headings(_normalise(page.extract_text() or "").strip())
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
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:
        pass
    return Document(source=str(path), text="".join(parts), pages=pages, title=title)


def _load_docx(path: Path) -> Document:
    import zipfile

    import docx
    from docx.opc.exceptions import OpcError
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        unpacked = sum(m.file_size for m in members)
        packed = sum(m.compress_size for m in members) or 1
        if unpacked > MAX_DOCX_UNPACKED or unpacked / packed > MAX_ZIP_RATIO and unpacked > 10_000_000:
            raise LoadError(
                "zip-bomb",
                f"the .docx would unpack to {unpacked / 1e6:.0f} MB ({unpacked / packed:.0f}x its size); not opened",
            )
        document = docx.Document(str(path))
    except etree.XMLSyntaxError as err:
        if "amplification" in str(err) or "entit" in str(err).lower():
            raise LoadError("xml-bomb", f"the .docx XML expands entities explosively ({err}); not opened") from None
        raise LoadError("corrupt-docx", f"not a readable .docx (XMLSyntaxError: {err})") from None
    except (zipfile.BadZipFile, OpcError, KeyError, ValueError) as err:
        raise LoadError("corrupt-docx", f"not a readable .docx ({type(err).__name__}: {err})") from None
    blocks: list[str] = []
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        if level:
            blocks.append("#" * int(level.group(1)) + " " + text)
        elif style == "Title":
            blocks.append("# " + text)
        else:
            blocks.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                blocks.append(" | ".join(cells))
    title = document.core_properties.title or ""
    return Document(source=str(path), text="\n\n".join(blocks), title=title)


_BLOCK_TAGS = {"p", "div", "li", "tr", "br", "pre", "blockquote", "section", "article", "table", "ul", "ol", "dd", "dt"}


def _load_html(path: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "template", "iframe", "object", "embed", "svg"]):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(soup.new_string(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n"))
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(soup.new_string("\n\n"))
        tag.insert_after(soup.new_string("\n\n"))
    text = soup.get_text()
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Document(source=str(path), text=text, title=title)

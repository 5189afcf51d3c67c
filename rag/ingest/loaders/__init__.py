"""Loaders by file type: the registry, and ``load``, which turns any file problem into a ``LoadError``.

A new format is a module with a ``LOADER`` and one line in ``LOADERS``; nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders import docx, ebook, html, images, mail, pdf, sheets, slides, text
from rag.ingest.loaders.base import Loader, LoadError, LoadOptions
from rag.schema import Document, PageSpan

# Bump when what a loader makes of a file changes (text, pages, headings): files indexed by an
# older loader are read again on the next ingest, as after a chunking change.
LOADER_VERSION = 3  # 3: tables as named rows, Word tables where they stand, scanned pages read

LOADERS: tuple[Loader, ...] = (
    text.LOADER, pdf.LOADER, docx.LOADER, html.LOADER, sheets.XLSX, sheets.CSV, slides.LOADER, ebook.LOADER, mail.LOADER,
    images.LOADER,
)  # fmt: skip
_BY_SUFFIX = {suffix: loader for loader in LOADERS for suffix in loader.suffixes}
SUPPORTED_SUFFIXES = frozenset(_BY_SUFFIX)

__all__ = ["LOADERS", "LOADER_VERSION", "SUPPORTED_SUFFIXES", "LoadError", "LoadOptions", "Loader", "load", "loader_for"]


def loader_for(path: Path) -> Loader:
    loader = _BY_SUFFIX.get(path.suffix.lower())
    if loader is None:
        raise LoadError("unsupported-type", f"'{path.suffix.lower()}' files are not supported")
    return loader


def load(path: Path, display_name: str = "", options: LoadOptions | None = None) -> Document:
    """Parse one supported file into a Document. Raises ``LoadError`` with a reason."""
    loader = loader_for(path)
    try:
        doc = loader.parse(path, options or LoadOptions())
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
        raise LoadError("no-text", "no extractable text")
    if not doc.pages:
        doc.pages = [PageSpan(1, 0, len(doc.text))] if loader.paged else []
    return doc

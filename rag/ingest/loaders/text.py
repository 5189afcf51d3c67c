"""Plain text and Markdown: read in-process (their size is capped before they are read)."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders.base import Loader, read_text
from rag.schema import Document


def _load_text(path: Path) -> Document:
    return Document(source=str(path), text=read_text(path))


LOADER = Loader("text", (".txt", ".md", ".markdown"), _load_text, isolated=False)

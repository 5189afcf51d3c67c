"""Plain text and Markdown: read in-process (their size is capped before they are read). Markdown's
pipe tables become named rows."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders.base import Loader, LoadOptions, read_text
from rag.ingest.loaders.tables import markdown_tables
from rag.schema import Document

MARKDOWN = (".md", ".markdown")


def _load_text(path: Path, _: LoadOptions) -> Document:
    text = read_text(path)
    return Document(source=str(path), text=markdown_tables(text) if path.suffix.lower() in MARKDOWN else text)


LOADER = Loader("text", (".txt", *MARKDOWN), _load_text, isolated=False)

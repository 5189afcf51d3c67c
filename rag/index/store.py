"""The ``VectorStore`` interface: chunks and their vectors, by id and by source.

``Index`` is its only user, and keeps it in agreement with the manifest and the keyword index.
``open_store`` picks the implementation; Chroma (embedded, or a server) is the one there is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.schema import Chunk

COLLECTION = "rag_chunks"


class VectorStore(Protocol):
    """Chunks with their vectors, recording the embedder that made them (a different one is refused)."""

    location: str  # where the chunks live, for status and messages

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Store (or replace) the chunks, one vector per chunk."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def delete_source(self, source: str) -> list[str]:
        """Delete every chunk of ``source``; returns their ids."""
        ...

    def drop_all(self) -> None: ...

    def count(self) -> int: ...

    def query(self, vector: np.ndarray, n: int, sources: Collection[str] | None = None) -> list[tuple[Chunk, float]]:
        """The ``n`` nearest chunks with their cosine similarity, best first (only chunks of
        ``sources``, when given)."""
        ...

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in order (missing ones left out; repeated ids are fine)."""
        ...

    def ids_of_sources(self, sources: Sequence[str]) -> list[str]: ...

    def ids_by_source(self) -> dict[str, set[str]]: ...

    def iter_all(self) -> Iterator[Chunk]: ...

    def file_table(self) -> FileTable | None:
        """Where the manifest is published for other instances (a server), or None (embedded)."""


class FileTable(Protocol):
    """The manifest's file records where every instance of rag can read them (a Chroma server)."""

    def header(self) -> tuple[int, str] | None: ...

    def write(self, generation: int, header: str, records: dict[str, str | None]) -> None: ...

    def changed_since(self, generation: int | None) -> dict[str, str | None]: ...


def open_store(index_dir: Path, embedder_name: str, dimension: int, url: str | None = None, collection: str = COLLECTION) -> VectorStore:
    """The store of the index at ``index_dir``: embedded under it, or on the Chroma server at ``url``."""
    from rag.index.chroma import ChromaStore

    return ChromaStore(index_dir, embedder_name, dimension, url=url, collection=collection)


def discard_store(index_dir: Path, url: str | None = None, collection: str = COLLECTION) -> None:
    """Delete a store that cannot be opened (another embedder, layout or chromadb wrote it)."""
    from rag.index.chroma import discard

    discard(index_dir, url, collection)


def store_version() -> str:
    """The version of the store's library (chromadb), recorded in the manifest by each writer."""
    from rag.index.chroma import library_version

    return library_version()

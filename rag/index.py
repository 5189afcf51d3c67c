"""The on-disk index: Chroma collection + manifest + BM25, opened together and kept consistent."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .bm25 import BM25Index
from .embeddings import Embedder
from .errors import IndexLockedError, IndexMismatchError, RagError
from .manifest import Manifest, WriterLock, atomic_write, rebuild_hint
from .schema import Chunk
from .store import COLLECTION, ChromaStore


@dataclass
class IndexStatus:
    location: str
    embedder: str
    files: int
    chunks: int
    store_chunks: int
    generation: int
    written_by: dict[str, str]
    file_names: list[str]


class Index:
    def __init__(self, index_dir: Path, embedder: Embedder, chroma_url: str | None = None, collection: str = COLLECTION) -> None:
        self.dir = index_dir
        self.embedder = embedder
        self.manifest_path = index_dir / "manifest.json"
        self.bm25_dir = index_dir / "bm25"
        self.manifest = Manifest.load(self.manifest_path, embedder.name)
        if self.manifest.embedder != embedder.name:
            raise IndexMismatchError(
                f"the index at {index_dir} was built with embedder '{self.manifest.embedder}'; "
                f"this run uses '{embedder.name}'",
                f"run with --embedder '{self.manifest.embedder}', or {rebuild_hint(index_dir)} (for the new embedder)",
            )
        try:
            self.store = ChromaStore(index_dir, embedder.name, embedder.dimension, url=chroma_url, collection=collection)
        except RagError:
            raise
        except Exception as err:  # a store another chromadb wrote, or a damaged one
            import chromadb

            writer = self.manifest.written_by
            raise IndexMismatchError(
                f"the vector store of the index at {index_dir} cannot be opened by chromadb {chromadb.__version__} "
                f"(written by rag {writer.get('rag', 'unknown')}, chromadb {writer.get('chromadb', 'unknown')}): "
                f"{type(err).__name__}: {err}",
                rebuild_hint(index_dir),
            ) from None
        self._bm25: BM25Index | None = None
        self.recovered: dict[str, int] | None = None
        if self.dirty_path.exists():
            self.recover()

    # crash safety ---------------------------------------------------------------------------
    @property
    def dirty_path(self) -> Path:
        return self.dir / "ingest.dirty"

    def mark_dirty(self) -> None:
        """Called by a writer (holding the lock) before it changes anything."""
        atomic_write(self.dirty_path, str(os.getpid()).encode())

    def mark_clean(self) -> None:
        self.dirty_path.unlink(missing_ok=True)

    def recover(self) -> None:
        """Make the store agree with the manifest after a writer died mid-ingest.

        Writers commit the manifest between adding new chunks and deleting old ones, so what a
        crash leaves is chunks the manifest does not name (deleted here). A file whose chunks are
        not all in the store (a store that lost writes) is dropped from the manifest, so the next
        ingest indexes it again. Runs only when no writer holds the lock."""
        try:
            lock = WriterLock(self.dir).__enter__()
        except IndexLockedError:
            return  # a writer is at work; its own end (or the next open after its crash) settles it
        try:
            if not self.dirty_path.exists():
                return
            self.manifest = Manifest.load(self.manifest_path, self.embedder.name)
            stored = self.store.ids_by_source()
            expected = {source: set(entry.chunk_ids) for source, entry in self.manifest.files.items()}
            broken = [source for source, ids in expected.items() if not ids <= stored.get(source, set())]
            for source in broken:
                self.manifest.files.pop(source)
                expected.pop(source)
            orphans = [i for source, ids in stored.items() for i in ids if i not in expected.get(source, set())]
            self.store.delete(orphans)
            if orphans or broken:
                self.manifest.generation += 1  # the keyword index is rebuilt from the store on next use
                self.save_manifest()
            self.recovered = {"orphan_chunks_removed": len(orphans), "files_to_reindex": len(broken)}
            self.mark_clean()
        finally:
            lock.__exit__()

    @staticmethod
    def discard(index_dir: Path, chroma_url: str | None = None, collection: str = COLLECTION) -> None:
        """Remove what an index folder (and its server collection) holds, when it cannot be opened
        to be wiped (another embedder, layout or chromadb wrote it). Callers hold the writer lock."""
        (index_dir / "manifest.json").unlink(missing_ok=True)
        shutil.rmtree(index_dir / "bm25", ignore_errors=True)
        if chroma_url:
            import chromadb
            from urllib.parse import urlparse

            parsed = urlparse(chroma_url)
            client = chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000, ssl=parsed.scheme == "https")
            if collection in {c.name for c in client.list_collections()}:
                client.delete_collection(collection)
        else:
            shutil.rmtree(index_dir / "chroma", ignore_errors=True)
            from chromadb.api.client import SharedSystemClient

            SharedSystemClient.clear_system_cache()  # forget the client that failed on the old store

    @staticmethod
    def exists(index_dir: Path) -> bool:
        return (index_dir / "manifest.json").exists()

    def wipe(self) -> None:
        """Start over (``--rebuild``): drop every chunk, the BM25 index and the manifest's files."""
        self.store.drop_all()
        shutil.rmtree(self.bm25_dir, ignore_errors=True)
        self._bm25 = None
        self.manifest = Manifest(embedder=self.embedder.name, generation=self.manifest.generation + 1)
        self.save_manifest()

    def save_manifest(self) -> None:
        import chromadb

        self.manifest.written_by = {"rag": __version__, "chromadb": chromadb.__version__, "embedder": self.embedder.name}
        self.manifest.save(self.manifest_path)

    def bm25(self) -> BM25Index:
        """The keyword index for the current generation: loaded from disk, or rebuilt from the store
        only when it is missing or stale (after a crash between a store write and its update)."""
        generation = self.manifest.generation
        if self._bm25 is not None and self._bm25.generation == generation:
            return self._bm25
        loaded = BM25Index.load(self.bm25_dir, generation)
        if loaded is None:
            loaded = BM25Index.build(((c.id, c.embedding_text()) for c in self.store.iter_all()), generation)
            loaded.save(self.bm25_dir, generation)
        self._bm25 = loaded
        return loaded

    def update_keywords(self, removed: list[str], added: list[Chunk]) -> None:
        """Apply one store change to the keyword index in memory (call ``save_keywords`` after)."""
        keywords = self._bm25 if self._bm25 is not None else self.bm25()
        keywords.remove(removed)
        keywords.add((c.id, c.embedding_text()) for c in added)
        keywords.generation = self.manifest.generation

    def save_keywords(self) -> None:
        if self._bm25 is not None:
            self._bm25.save(self.bm25_dir, self.manifest.generation)

    def status(self) -> IndexStatus:
        return IndexStatus(
            location=str(self.dir.resolve()) if self.store.location.startswith(str(self.dir)) else self.store.location,
            embedder=self.embedder.name,
            files=len(self.manifest.files),
            chunks=self.manifest.chunk_count,
            store_chunks=self.store.count(),
            generation=self.manifest.generation,
            written_by=self.manifest.written_by,
            file_names=sorted(e.display_name for e in self.manifest.files.values()),
        )

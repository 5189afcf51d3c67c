"""The on-disk index: the chunk store, the manifest and the keyword index, kept in agreement.

Three invariants (README, "Reliability"):

- **Readers never write.** A reader follows the manifest on disk (``refresh``); when the keyword
  index on disk is not at the manifest's generation (a writer is between commits), the reader
  brings its own copy up to date in memory, from the store, and never saves it.
- **Every writer holds the lock and starts from disk.** ``Index.writing()`` takes the writer lock,
  settles whatever an interrupted writer left, re-reads the manifest and keyword index, and yields
  an ``IndexWriter`` that owns the commit protocol (add → commit the manifest → delete).
- **Opening an index verifies agreement.** Manifest, store and keyword index must hold the same
  chunks (counts, and ids where cheap); if they do not, the index is repaired under the lock, or,
  while a writer holds it, left to that writer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag import __version__
from rag.errors import IndexLockedError, IndexMismatchError, InputError, RagError, storage_error
from rag.index.bm25 import BM25Index
from rag.index.embeddings import Embedder, split_backend
from rag.index.manifest import FileEntry, Manifest, WriterLock, atomic_write, rebuild_hint
from rag.index.shared import SharedManifest
from rag.index.store import COLLECTION, VectorStore, discard_store, open_store, store_version
from rag.index.where import Where
from rag.schema import Chunk


@dataclass(frozen=True)
class Selection:
    """Some of the indexed files (a question limited to chosen documents) and their chunk ids."""

    sources: frozenset[str]
    chunk_ids: frozenset[str]


@dataclass
class IndexStatus:
    location: str
    embedder: str
    files: int
    chunks: int
    store_chunks: int
    keyword_chunks: int
    generation: int
    written_by: dict[str, str]
    file_names: list[str]
    roots: list[str]
    recovered: dict[str, Any] | None  # what opening the index repaired (an interrupted write), if anything


def check_index_dir(index_dir: Path) -> None:
    """An index folder must be a folder (or not exist yet)."""
    if index_dir.exists() and not index_dir.is_dir():
        raise InputError(
            f"the index path {index_dir} is a file, not a folder",
            "pass a folder with --index DIR (or RAG_INDEX_DIR); a new one is created if it does not exist",
        )


def embedder_mismatch(index_dir: Path, recorded: str, used: str) -> IndexMismatchError:
    """The error for an index opened with another embedder, or the same model on another back-end."""
    (model, backend), (used_model, used_backend) = split_backend(recorded), split_backend(used)
    if model == used_model:
        return IndexMismatchError(
            f"the index at {index_dir} was embedded by '{model}' on the {backend} back-end; this run uses {used_backend}",
            f"run with --embedder-backend {backend} (or auto), or embed it again on {used_backend}: "
            f"{rebuild_hint(index_dir).split(': ')[-1]} --embedder-backend {used_backend}",
        )
    return IndexMismatchError(
        f"the index at {index_dir} was built with embedder '{model}'; this run uses '{used_model}'",
        f"run with --embedder '{model}', or {rebuild_hint(index_dir)} (for the new embedder)",
    )


class Index:
    def __init__(self, index_dir: Path, embedder: Embedder, chroma_url: str | None = None, collection: str = COLLECTION) -> None:
        check_index_dir(index_dir)
        self.dir = index_dir
        self.embedder = embedder
        self.manifest_path = index_dir / "manifest.json"
        self.bm25_dir = index_dir / "bm25"
        self._stamp: tuple[int, int, int] | None = None
        self.manifest = self._read_manifest()
        if self.manifest.embedder != embedder.name:
            raise embedder_mismatch(index_dir, self.manifest.embedder, embedder.name)
        self.store = self._open_store(chroma_url, collection)
        self._keywords: BM25Index | None = None
        self._selected: tuple[Where, int, Selection] | None = None  # the last filter resolved, and at which generation
        self.recovered: dict[str, Any] | None = None
        table = self.store.file_table()
        self.shared = SharedManifest(table) if table is not None else None
        self._follow_server(now=True)
        self.verify()

    def _open_store(self, chroma_url: str | None, collection: str) -> VectorStore:
        try:
            return open_store(self.dir, self.embedder.name, self.embedder.dimension, url=chroma_url, collection=collection)
        except RagError:
            raise
        except Exception as err:  # a full disk, a store another chromadb wrote, or a damaged one
            disk = storage_error(err, self.dir)
            if disk is not None:
                raise disk from None
            writer = self.manifest.written_by
            raise IndexMismatchError(
                f"the vector store of the index at {self.dir} cannot be opened by chromadb {store_version()} "
                f"(written by rag {writer.get('rag', 'unknown')}, chromadb {writer.get('chromadb', 'unknown')}): "
                f"{type(err).__name__}: {err}",
                rebuild_hint(self.dir),
            ) from None

    # the manifest on disk ------------------------------------------------------------------
    def _manifest_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.manifest_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_manifest(self) -> Manifest:
        stamp = self._manifest_stamp()
        manifest = Manifest.load(self.manifest_path, self.embedder.name)
        self._stamp = stamp
        return manifest

    def refresh(self) -> None:
        """Follow the manifest on disk (another process or thread may have written since), and
        the one on the server (another instance may have)."""
        if self._manifest_stamp() != self._stamp:
            self.manifest = self._read_manifest()
        self._follow_server()

    def _follow_server(self, *, now: bool = False, locked: bool = False) -> None:
        """Take the server's manifest when another instance changed it: saved in this folder with
        the keyword index brought to its passages (in memory only while a writer here holds the lock)."""
        pulled = self.shared.pull(self.manifest, now=now) if self.shared is not None else None
        if pulled is None:
            return
        keywords, _ = self._keywords_agreeing(pulled, self._keywords or BM25Index.load_latest(self.bm25_dir))
        self.manifest, self._keywords = pulled, keywords
        try:
            with WriterLock(self.dir) if not locked else contextlib.nullcontext():
                keywords.save(self.bm25_dir, pulled.generation)
                self._save(pulled, publish=False)
        except IndexLockedError:
            pass

    # agreement and repair -------------------------------------------------------------------
    @property
    def dirty_path(self) -> Path:
        return self.dir / "ingest.dirty"

    def verify(self) -> None:
        """Check that manifest, store and keyword index agree; repair them if they do not.

        The repair takes the writer lock; while another writer holds it, disagreement is what a
        write in progress looks like, and that writer's end (or the next open after it crashed)
        settles it."""
        if not self.dirty_path.exists() and self._agree():
            return
        if self.shared is not None and not self.dirty_path.exists():
            return  # on a server, a writer elsewhere may be between its writes: its next write settles them
        try:
            with WriterLock(self.dir):
                self.recovered = self._repair()
        except IndexLockedError:
            return

    def _agree(self) -> bool:
        manifest = self.manifest
        if self.store.count() != manifest.chunk_count:
            return False
        keywords = BM25Index.load(self.bm25_dir, manifest.generation)
        if keywords is None:
            return manifest.chunk_count == 0
        if set(keywords.ids) != manifest.chunk_ids():
            return False
        self._keywords = keywords
        return True

    def _repair(self) -> dict[str, Any]:
        """Make store and keyword index agree with the manifest (the caller holds the lock).

        Writers commit the manifest between adding new chunks and deleting old ones, so a crash
        leaves chunks the manifest does not name: they are deleted. A file whose chunks are not all
        in the store (a store that lost writes, or was deleted) leaves the manifest, so the next
        ingest indexes it again. The keyword index is then brought to the manifest's chunks."""
        manifest = self._read_manifest()
        stored = self.store.ids_by_source()
        expected = {source: set(entry.chunk_ids) for source, entry in manifest.files.items()}
        lost = [source for source, ids in expected.items() if not ids <= stored.get(source, set())]
        lost_names = [manifest.files.pop(source).display_name for source in lost]
        for source in lost:
            expected.pop(source)
        orphans = [i for source, ids in stored.items() for i in ids if i not in expected.get(source, set())]
        self.store.delete(orphans)
        keywords, keywords_fixed = self._keywords_agreeing(manifest, BM25Index.load_latest(self.bm25_dir))
        if orphans or lost or keywords_fixed:
            manifest.generation += 1
        keywords.save(self.bm25_dir, manifest.generation)
        self._save(manifest)
        self.dirty_path.unlink(missing_ok=True)
        self.manifest, self._keywords = manifest, keywords
        return {
            "orphan_chunks_removed": len(orphans),
            "files_to_reindex": len(lost),
            "keyword_chunks_fixed": keywords_fixed,
            "reindex": sorted(lost_names),
        }

    def _keywords_agreeing(self, manifest: Manifest, base: BM25Index | None) -> tuple[BM25Index, int]:
        """``base`` (or an empty index) changed in memory to hold exactly the manifest's chunks,
        and how many chunks that added or removed. ``base`` itself is never modified."""
        keywords = base.copy() if base is not None else BM25Index([], manifest.generation)
        wanted = manifest.chunk_ids()
        have = set(keywords.ids)
        extra = have - wanted
        missing = [i for i in wanted if i not in have]
        keywords.remove(extra)
        added = self.store.get(sorted(missing))
        keywords.add((c.id, c.embedding_text()) for c in added)
        keywords.generation = manifest.generation
        return keywords, len(extra) + len(added)

    # reading ----------------------------------------------------------------------------------
    def keywords(self) -> BM25Index:
        """The keyword index at the manifest's generation: loaded from disk, or (while a writer is
        between commits, or after a crash) this reader's copy brought up to date in memory."""
        self.refresh()
        manifest = self.manifest
        if self._keywords is not None and self._keywords.generation == manifest.generation:
            return self._keywords
        loaded = BM25Index.load(self.bm25_dir, manifest.generation)
        if loaded is None:
            base = self._keywords or BM25Index.load_latest(self.bm25_dir)
            loaded, _ = self._keywords_agreeing(manifest, base)
        self._keywords = loaded
        return loaded

    def search_keywords(self, query: str, n: int, only: Selection | None = None) -> list[tuple[str, float]]:
        return self.keywords().search(query, n, only.chunk_ids if only is not None else None)

    def keyword_coverage(self, query: str) -> float:
        return self.keywords().coverage(query)

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed_queries([query])[0]

    def nearest(self, vector: np.ndarray, n: int, only: Selection | None = None) -> list[tuple[Chunk, float]]:
        """The ``n`` chunks nearest ``vector`` with their cosine similarity, best first."""
        return self.store.query(vector, n, only.sources if only is not None else None)

    def select(self, where: Where) -> Selection:
        """The indexed files ``where`` allows, and their chunks; an error when it allows none."""
        self.refresh()
        cached = self._selected
        if cached is not None and cached[0] == where and cached[1] == self.manifest.generation:
            return cached[2]  # a batch or a chat asks many questions of the same documents
        files = where.select(self.manifest.files)
        if not files:
            raise InputError(f"no indexed document matches {where}", "`rag status` lists the indexed files; loosen the filter or drop one")
        selection = Selection(frozenset(files), frozenset(i for entry in files.values() for i in entry.chunk_ids))
        self._selected = (where, self.manifest.generation, selection)
        return selection

    def idf(self, word: str) -> float | None:
        return self.keywords().idf(word)

    def get(self, ids: list[str]) -> list[Chunk]:
        return self.store.get(ids)

    def files(self) -> dict[str, str]:
        """Indexed files as they are on disk now: source path → display name."""
        self.refresh()
        return {source: entry.display_name for source, entry in self.manifest.files.items()}

    def status(self) -> IndexStatus:
        self.refresh()
        return IndexStatus(
            location=str(self.dir.resolve()) if self.store.location.startswith(str(self.dir)) else self.store.location,
            embedder=self.embedder.name,
            files=len(self.manifest.files),
            chunks=self.manifest.chunk_count,
            store_chunks=self.store.count(),
            keyword_chunks=len(self.keywords()),
            generation=self.manifest.generation,
            written_by=self.manifest.written_by,
            file_names=sorted(e.display_name for e in self.manifest.files.values()),
            roots=list(self.manifest.roots),
            recovered=self.recovered,
        )

    # writing ----------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[IndexWriter]:
        """Hold the writer lock and change the index from its state on disk.

        A writer that raises leaves the index marked dirty: the next open (or write) settles it."""
        with WriterLock(self.dir):
            self._follow_server(now=True, locked=True)  # write on top of what other instances wrote
            if self.dirty_path.exists() or not self._agree_on_disk():
                self.recovered = self._repair()
            manifest = self._read_manifest()
            keywords = BM25Index.load(self.bm25_dir, manifest.generation)
            if keywords is None:  # only an empty index has none
                keywords, _ = self._keywords_agreeing(manifest, None)
            writer = IndexWriter(self, manifest, keywords)
            yield writer
            writer.finish()
            self.dirty_path.unlink(missing_ok=True)
            self.manifest, self._keywords = writer.manifest, writer.keywords

    def _agree_on_disk(self) -> bool:
        self.manifest = self._read_manifest()
        return self._agree()

    def _save(self, manifest: Manifest, *, publish: bool = True) -> None:
        if publish:
            manifest.written_by = {"rag": __version__, "chromadb": store_version(), "embedder": self.embedder.name}
        manifest.save(self.manifest_path)
        self._stamp = self._manifest_stamp()
        if publish and self.shared is not None:
            self.shared.publish(manifest)

    @staticmethod
    def discard(index_dir: Path, embedder_name: str, chroma_url: str | None = None, collection: str = COLLECTION) -> None:
        """Empty an index folder (and its server collection) that cannot be opened to be wiped
        (another embedder, layout or chromadb wrote it). The folders it was built from stay
        recorded, so a rebuild that is interrupted can still be started again without paths.
        Callers hold the writer lock."""
        roots = [str(p) for p in Manifest.recorded_paths(index_dir / "manifest.json")]
        shutil.rmtree(index_dir / "bm25", ignore_errors=True)
        discard_store(index_dir, chroma_url, collection)
        if (index_dir / "manifest.json").is_dir():
            shutil.rmtree(index_dir / "manifest.json")
        Manifest(embedder=embedder_name, roots=roots).save(index_dir / "manifest.json")

    @staticmethod
    def exists(index_dir: Path) -> bool:
        return (index_dir / "manifest.json").exists()


class IndexWriter:
    """One writer's view while it holds the lock: the manifest and keyword index as they were on
    disk when it began, and the only code that changes them.

    Every change follows one order, so a crash at any point leaves only chunks the manifest does
    not name (deleted when the index is next opened): add the new chunks, commit the manifest that
    points at them, then delete the old ones."""

    def __init__(self, index: Index, manifest: Manifest, keywords: BM25Index) -> None:
        self._index = index
        self.store = index.store
        self.manifest = manifest
        self.keywords = keywords
        self._unsaved = False
        self._changing = False

    def _begin_change(self) -> None:
        """Mark the index dirty before the first change: if this writer dies from here on, the
        next open (or write) settles what it left. A writer that fails before changing anything
        leaves nothing to settle."""
        if not self._changing:
            atomic_write(self._index.dirty_path, str(os.getpid()).encode())
            self._changing = True

    def commit(self) -> None:
        """Bump the generation and write the manifest: the commit point."""
        self._begin_change()
        self.manifest.generation += 1
        self._index._save(self.manifest)
        self._unsaved = False

    def touch(self) -> None:
        """The manifest changed in a way that changes no chunk (roots, modification times): it is
        written when the writer finishes."""
        self._unsaved = True

    # what the manifest says, and the changes that touch no chunk --------------------------------
    def entry(self, source: str) -> FileEntry | None:
        return self.manifest.files.get(source)

    def sources(self) -> list[str]:
        return sorted(self.manifest.files)

    def add_roots(self, roots: Iterable[str]) -> None:
        """Record more folders the index is built from (``rag ingest --rebuild`` without paths)."""
        if not set(roots) <= set(self.manifest.roots):
            self.manifest.roots = sorted(set(self.manifest.roots) | set(roots))
            self.touch()

    def set_roots(self, roots: list[str]) -> None:
        self.manifest.roots = roots
        self.touch()

    def keep(self, source: str, mtime_ns: int) -> None:
        """``source`` was touched but its content is unchanged: record the new modification time,
        so that it is not hashed again next time."""
        entry = self.manifest.files[source]
        if entry.mtime_ns != mtime_ns:
            entry.mtime_ns = mtime_ns
            self.touch()

    def wipe(self) -> None:
        """Drop every chunk (``--rebuild``). The recorded roots stay until the rebuild commits."""
        self._begin_change()
        self.store.drop_all()
        shutil.rmtree(self._index.bm25_dir, ignore_errors=True)
        self.manifest = Manifest(embedder=self.manifest.embedder, generation=self.manifest.generation, roots=self.manifest.roots)
        self.keywords = BM25Index([], self.manifest.generation)
        self.commit()

    def replace_files(self, files: list[tuple[FileEntry, str, list[Chunk]]], vectors: np.ndarray) -> tuple[int, list[str]]:
        """Store each (entry, source, chunks) in place of what the source had: add, commit, delete.

        Returns how many chunks were removed, and which sources were new."""
        added = [c for _, _, chunks in files for c in chunks]
        self._begin_change()
        self.store.add(added, vectors)
        old_ids: set[str] = set()
        new_sources: list[str] = []
        for entry, source, _ in files:
            old = self.manifest.files.get(source)
            if old is None:
                new_sources.append(source)
            old_ids.update(old.chunk_ids if old else [])
            self.manifest.files[source] = entry
        self.commit()
        current = {c.id for c in added}
        stale = set(self.store.ids_of_sources([source for _, source, _ in files])) - current
        self.store.delete(sorted(stale))
        self._update_keywords(stale | (old_ids - current), added)
        return len(stale | (old_ids - current)), new_sources

    def remove_files(self, sources: Iterable[str]) -> tuple[list[FileEntry], int]:
        """Take files out of the index: commit the manifest without them, then delete their chunks."""
        sources = [s for s in dict.fromkeys(sources) if s in self.manifest.files]
        if not sources:
            return [], 0
        entries = [self.manifest.files.pop(s) for s in sources]
        self.commit()
        removed: set[str] = set()
        for source, entry in zip(sources, entries):
            removed.update(entry.chunk_ids)
            removed.update(self.store.delete_source(source))
        self._update_keywords(removed, [])
        return entries, len(removed)

    def _update_keywords(self, removed: Iterable[str], added: list[Chunk]) -> None:
        self.keywords.remove(removed)
        self.keywords.add((c.id, c.embedding_text()) for c in added)
        self.keywords.generation = self.manifest.generation

    def finish(self) -> None:
        """Write the keyword index at the committed generation, and what ``touch`` marked."""
        if self.keywords.generation != BM25Index.saved_generation(self._index.bm25_dir):
            self.keywords.save(self._index.bm25_dir, self.manifest.generation)
        if self._unsaved:
            self._begin_change()
            self._index._save(self.manifest)

"""Incremental ingestion: discover → hash → load → chunk → embed → store, one writer at a time.

Order of writes per file (crash-safe): delete the file's old chunks, add the new ones, then
record them in the manifest. A crash in between leaves the file "changed" in the manifest, so the
next run deletes whatever is stored for it and adds it again: the index converges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .chunking import chunk_document
from .config import Settings
from .index import Index
from .isolation import IsolatedParser
from .loaders import FoundFile, LoadError, discover
from .manifest import FileEntry, WriterLock, file_sha256
from .schema import Chunk, FileError, IngestReport


@dataclass(frozen=True)
class ProgressEvent:
    phase: str  # "scan", "parse" or "embed"
    done: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def _noop(_: ProgressEvent) -> None:
    return None


@dataclass
class _Pending:
    found: FoundFile
    sha256: str
    size: int
    mtime_ns: int
    chunks: list[Chunk]
    is_new: bool
    chunking: str


def ingest(
    index: Index,
    paths: list[Path],
    settings: Settings,
    *,
    rebuild: bool = False,
    progress: ProgressCallback = _noop,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport()
    with WriterLock(index.dir):
        found, errors = discover(paths, int(settings.max_file_mb * 1_000_000))
        report.skipped.extend(errors)
        index.mark_dirty()  # until the end: a crash in between is recovered when the index is next opened
        if rebuild:
            index.wipe()
        manifest = index.manifest
        manifest.roots = sorted(set(manifest.roots) | {str(p.resolve()) for p in paths})
        index.bm25()  # load (or repair) the keyword index before changing anything
        progress(ProgressEvent("scan", 0, len(found)))

        # 1. what changed (content, or the chunking settings it was split with)
        budget = min(settings.chunk_tokens, index.embedder.max_tokens)
        chunking = f"{budget}/{settings.chunk_overlap}"
        to_parse: list[tuple[FoundFile, str, int, int]] = []
        for n, item in enumerate(found, start=1):
            stat = item.path.stat()
            key = str(item.path)
            entry = manifest.files.get(key)
            if entry and entry.chunking not in (None, chunking):
                entry = None  # same file, new chunk size or overlap: split and embed it again
            if entry and entry.size == stat.st_size and entry.mtime_ns == stat.st_mtime_ns:
                report.unchanged.append(item.display_name)
                continue
            digest = file_sha256(item.path)
            if entry and entry.sha256 == digest:
                entry.mtime_ns = stat.st_mtime_ns
                report.unchanged.append(item.display_name)
                continue
            to_parse.append((item, digest, stat.st_size, stat.st_mtime_ns))
            progress(ProgressEvent("scan", n, len(found)))

        # 2. files under the given roots that the manifest has but the disk no longer does
        present = {str(f.path) for f in found}
        roots = [p.resolve() for p in paths]
        gone = [
            source
            for source in sorted(manifest.files)
            if source not in present
            and any(_under(Path(source), root) for root in roots)
            and not Path(source).exists()  # still on disk but skipped this time (see report): keep its indexed version
        ]
        if gone:
            entries = {source: manifest.files.pop(source) for source in gone}
            manifest.generation += 1
            index.save_manifest()  # commit first: a crash below leaves orphans, never a missing chunk
            for source, entry in entries.items():
                deleted = index.store.delete_source(source)
                report.chunks_removed += len(set(deleted) | set(entry.chunk_ids))
                report.removed.append(entry.display_name)
                index.update_keywords(deleted + entry.chunk_ids, [])

        # 3. parse and chunk
        pending: list[_Pending] = []
        with IsolatedParser(timeout_s=settings.parse_timeout_s, memory_mb=settings.parse_memory_mb) as parser:
            for n, (item, digest, size, mtime_ns) in enumerate(to_parse, start=1):
                progress(ProgressEvent("parse", n - 1, len(to_parse), item.display_name))
                try:
                    document = parser.load(item.path, item.display_name)
                except LoadError as err:
                    kept = " (its previously indexed version is kept)" if str(item.path) in manifest.files else ""
                    report.skipped.append(FileError(item.display_name, err.reason, err.detail + kept))
                    continue
                chunks = chunk_document(document, index.embedder.count_tokens, budget, settings.chunk_overlap)
                if not chunks:
                    report.skipped.append(FileError(item.display_name, "no-text", "no text to index"))
                    continue
                pending.append(_Pending(item, digest, size, mtime_ns, chunks, str(item.path) not in manifest.files, chunking))
        progress(ProgressEvent("parse", len(to_parse), len(to_parse)))

        # 4. embed a window of chunks at a time, shortest first (little padding), and write each file
        #    once all its chunks have vectors; several finished files go to the store in one batch
        total = sum(len(p.chunks) for p in pending)
        done = 0
        progress(ProgressEvent("embed", 0, total))
        queue = [(p, c) for p in pending for c in p.chunks]
        window = max(512, settings.embed_batch_size * 16)
        vectors_by_file: dict[str, list] = {}
        for start in range(0, len(queue), window):
            part = queue[start : start + window]
            order = sorted(range(len(part)), key=lambda i: part[i][1].n_tokens)
            vectors: list = [None] * len(part)
            for b in range(0, len(order), settings.embed_batch_size):
                batch = order[b : b + settings.embed_batch_size]
                for i, vector in zip(batch, index.embedder.embed_documents([part[i][1].embedding_text() for i in batch])):
                    vectors[i] = vector
                done += len(batch)
                progress(ProgressEvent("embed", done, total))
            finished: list[_Pending] = []
            for (item, _), vector in zip(part, vectors):
                got = vectors_by_file.setdefault(str(item.found.path), [])
                got.append(vector)
                if len(got) == len(item.chunks):
                    finished.append(item)
            if finished:
                _write_files(index, finished, [vectors_by_file.pop(str(i.found.path)) for i in finished], report)
        if report.changed or rebuild:
            index.save_keywords()
        index.mark_clean()
    report.seconds = time.perf_counter() - started
    return report


def remove(index: Index, sources: list[str]) -> int:
    """Remove files from the index (their chunks and manifest entries); returns chunks removed."""
    removed = 0
    with WriterLock(index.dir):
        index.mark_dirty()
        entries = {s: index.manifest.files.pop(s) for s in sources if s in index.manifest.files}
        index.manifest.generation += 1
        index.save_manifest()  # commit, then delete (see _write_files)
        for source, entry in entries.items():
            deleted = index.store.delete_source(source)
            removed += len(deleted)
            index.update_keywords(deleted + entry.chunk_ids, [])
        index.save_keywords()
        index.mark_clean()
    return removed


def _write_files(index: Index, items: list[_Pending], vectors: list[list], report: IngestReport) -> None:
    """Replace the chunks of finished files, in an order a crash at any point can be recovered from:
    add the new chunks, commit the manifest that points at them, then delete the old ones. A crash
    before the commit leaves unreferenced new chunks, after it unreferenced old ones; both are
    orphans that ``Index.recover`` deletes (the manifest never names a chunk the store lacks)."""
    import numpy as np

    added = [c for item in items for c in item.chunks]
    index.store.add(added, np.stack([v for vs in vectors for v in vs]))
    old_ids: list[str] = []
    for item in items:
        old = index.manifest.files.get(str(item.found.path))
        old_ids += old.chunk_ids if old else []
        index.manifest.files[str(item.found.path)] = FileEntry(
            sha256=item.sha256,
            size=item.size,
            mtime_ns=item.mtime_ns,
            display_name=item.found.display_name,
            chunk_ids=[c.id for c in item.chunks],
            chunking=item.chunking,
        )
        report.chunks_added += len(item.chunks)
        (report.added if item.is_new else report.updated).append(item.found.display_name)
    index.manifest.generation += 1
    index.save_manifest()  # the commit point
    current = {c.id for c in added}
    stale: list[str] = []
    for item in items:
        stale += [i for i in index.store.ids_of_source(str(item.found.path)) if i not in current]
    index.store.delete(stale)
    report.chunks_removed += len(set(stale) | (set(old_ids) - current))
    index.update_keywords(sorted(set(stale) | set(old_ids)), added)


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)

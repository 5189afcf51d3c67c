"""Incremental ingestion: discover → hash → load → chunk → embed → store, one writer at a time.

Everything runs inside ``Index.writing()``: the writer lock is held and the run starts from the
manifest on disk. Each batch of finished files is written in the order a crash can be recovered
from (``IndexWriter.replace_files``): add the new chunks, commit the manifest that points at
them, then delete the old ones. A file that cannot be read is skipped with a typed reason; it
never stops the run, and its previously indexed version is kept.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.config import Settings
from rag.index.index import Index, IndexWriter
from rag.index.manifest import FileEntry, file_sha256
from rag.ingest.chunking import chunk_document
from rag.ingest.discovery import FoundFile, discover, path_state
from rag.ingest.isolation import IsolatedParser
from rag.ingest.loaders import LOADER_VERSION, LoadError, LoadOptions
from rag.schema import Chunk, FileError, IngestReport
from rag.text.analysis import ANALYZER, language


@dataclass(frozen=True)
class ProgressEvent:
    phase: str  # "scan", "parse", "ocr" (pages of the file being parsed) or "embed"
    done: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def _noop(_: ProgressEvent) -> None:
    return None


@dataclass
class _ToParse:
    found: FoundFile
    sha256: str
    size: int
    mtime_ns: int


@dataclass
class _Pending:
    file: _ToParse
    chunks: list[Chunk]

    def entry(self, chunking: str, lang: str | None) -> FileEntry:
        f = self.file
        return FileEntry(f.sha256, f.size, f.mtime_ns, f.found.display_name, [c.id for c in self.chunks], chunking, lang)


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
    budget = min(settings.chunk_tokens, index.embedder.max_tokens)
    chunking = f"{budget}/{settings.chunk_overlap}/loader{LOADER_VERSION}/{ANALYZER}"
    with index.writing() as writer:
        found, errors = discover(paths, int(settings.max_file_mb * 1_000_000))
        report.skipped.extend(errors)
        given = _roots_with_files(paths, found)
        if rebuild:
            writer.wipe()  # the recorded roots stay until the rebuild has committed
        else:
            writer.add_roots(given)
        progress(ProgressEvent("scan", 0, len(found)))
        to_parse = _changed_files(writer, found, chunking, report, progress)
        _remove_gone(writer, paths, found, report)
        pending = _parse(index, to_parse, set(writer.sources()), settings, budget, report, progress)
        _embed_and_write(index, writer, pending, settings, chunking, report, progress)
        if rebuild and given:  # found nothing at all (a folder unreadable for now): keep the old ones
            writer.set_roots(given)
    report.seconds = time.perf_counter() - started
    return report


def _roots_with_files(paths: list[Path], found: list[FoundFile]) -> list[str]:
    """The given paths to record as roots: those under which something indexable was found."""
    roots = {p.resolve() for p in paths}
    return sorted(str(r) for r in roots if any(_under(f.path, r) for f in found))


def _changed_files(
    writer: IndexWriter, found: list[FoundFile], chunking: str, report: IngestReport, progress: ProgressCallback
) -> list[_ToParse]:
    """The files whose content (or the chunking they were split with) changed since indexed."""
    to_parse: list[_ToParse] = []
    for n, item in enumerate(found, start=1):
        key = str(item.path)
        try:
            stat = item.path.stat()
            entry = writer.entry(key)
            if entry and entry.chunking not in (None, chunking):
                entry = None  # same file, new chunk size or overlap: split and embed it again
            if entry and entry.size == stat.st_size and entry.mtime_ns == stat.st_mtime_ns:
                report.unchanged.append(item.display_name)
                continue
            digest = file_sha256(item.path)
        except OSError as err:
            report.skipped.append(_unreadable(item.display_name, err, writer.entry(key) is not None))
            continue
        if entry and entry.sha256 == digest:
            writer.keep(key, stat.st_mtime_ns)
            report.unchanged.append(item.display_name)
            continue
        to_parse.append(_ToParse(item, digest, stat.st_size, stat.st_mtime_ns))
        progress(ProgressEvent("scan", n, len(found)))
    return to_parse


def _unreadable(display_name: str, err: OSError, indexed: bool) -> FileError:
    kept = " (its previously indexed version is kept)" if indexed else ""
    return FileError(display_name, "unreadable", f"cannot read it ({err.strerror or err}); check its permissions{kept}")


def _remove_gone(writer: IndexWriter, paths: list[Path], found: list[FoundFile], report: IngestReport) -> None:
    """Files under the given roots that the manifest has but the disk no longer does. A file that
    is only unreadable now (its folder lost its permissions) is kept, and reported."""
    present = {str(f.path) for f in found}
    roots = [p.resolve() for p in paths]
    gone: list[str] = []
    for source in writer.sources():
        if source in present or not any(_under(Path(source), root) for root in roots):
            continue
        state = path_state(Path(source))
        if state == "missing":
            gone.append(source)
        elif state == "unreadable":
            entry = writer.entry(source)
            report.skipped.append(
                FileError(
                    entry.display_name if entry else source,
                    "unreadable",
                    "its folder cannot be read; its previously indexed version is kept",
                )
            )
    entries, removed = writer.remove_files(gone)
    report.removed.extend(e.display_name for e in entries)
    report.chunks_removed += removed


def _parse(
    index: Index,
    to_parse: list[_ToParse],
    indexed: set[str],
    settings: Settings,
    budget: int,
    report: IngestReport,
    progress: ProgressCallback,
) -> list[_Pending]:
    pending: list[_Pending] = []
    reading = [""]  # the file being parsed, for the OCR progress of its pages

    def on_page(done: int, total: int) -> None:
        progress(ProgressEvent("ocr", done, total, reading[0]))

    options = LoadOptions(ocr_languages=settings.ocr_languages, on_page=on_page)
    with IsolatedParser(timeout_s=settings.parse_timeout_s, memory_mb=settings.parse_memory_mb, options=options) as parser:
        for n, item in enumerate(to_parse, start=1):
            reading[0] = item.found.display_name
            progress(ProgressEvent("parse", n - 1, len(to_parse), item.found.display_name))
            try:
                document = parser.load(item.found.path, item.found.display_name)
            except LoadError as err:
                kept = " (its previously indexed version is kept)" if str(item.found.path) in indexed else ""
                report.skipped.append(FileError(item.found.display_name, err.reason, err.detail + kept))
                continue
            chunks = chunk_document(document, index.embedder.count_tokens, budget, settings.chunk_overlap)
            if not chunks:
                report.skipped.append(FileError(item.found.display_name, "no-text", "no text to index"))
                continue
            pending.append(_Pending(item, chunks))
    progress(ProgressEvent("parse", len(to_parse), len(to_parse)))
    return pending


def _embed_and_write(
    index: Index,
    writer: IndexWriter,
    pending: list[_Pending],
    settings: Settings,
    chunking: str,
    report: IngestReport,
    progress: ProgressCallback,
) -> None:
    """Embed a window of chunks at a time, shortest first (little padding), and write each file
    once all its chunks have vectors; several finished files go to the store in one batch."""
    import numpy as np

    total = sum(len(p.chunks) for p in pending)
    done = 0
    progress(ProgressEvent("embed", 0, total))
    queue = [(p, c) for p in pending for c in p.chunks]
    step = settings.embed_batch_size * index.embedder.parallel  # embedding servers take several batches at once
    window = max(512, step * 16)
    vectors_by_file: dict[int, list[np.ndarray]] = {}
    for start in range(0, len(queue), window):
        part = queue[start : start + window]
        order = sorted(range(len(part)), key=lambda i: part[i][1].n_tokens)
        vectors: list[np.ndarray] = [np.empty(0)] * len(part)
        for b in range(0, len(order), step):
            batch = order[b : b + step]
            for i, vector in zip(batch, index.embedder.embed_documents([part[i][1].embedding_text() for i in batch])):
                vectors[i] = vector
            done += len(batch)
            progress(ProgressEvent("embed", done, total))
        finished: list[_Pending] = []
        for (item, _), vector in zip(part, vectors):
            got = vectors_by_file.setdefault(id(item), [])
            got.append(vector)
            if len(got) == len(item.chunks):
                finished.append(item)
        if finished:
            stacked = np.stack([v for item in finished for v in vectors_by_file.pop(id(item))])
            languages = [Counter(language(c.text) for c in item.chunks) for item in finished]
            files = [
                (item.entry(chunking, _most_common(langs)), str(item.file.found.path), item.chunks)
                for item, langs in zip(finished, languages)
            ]
            removed, new_sources = writer.replace_files(files, stacked)
            report.chunks_removed += removed
            report.chunks_added += sum(len(item.chunks) for item in finished)
            report.languages = dict(sum(languages, Counter(report.languages)))
            for item in finished:
                is_new = str(item.file.found.path) in new_sources
                (report.added if is_new else report.updated).append(item.file.found.display_name)


def _most_common(counts: Counter[str]) -> str | None:
    return counts.most_common(1)[0][0] if counts else None


def remove(index: Index, sources: list[str]) -> int:
    """Remove files from the index (their chunks and manifest entries); returns chunks removed."""
    with index.writing() as writer:
        _, removed = writer.remove_files(sources)
    return removed


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)

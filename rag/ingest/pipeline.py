"""Incremental ingestion: discover → hash → load → chunk → embed → store, one writer at a time.

Everything runs inside ``Index.writing()``: the writer lock is held and the run starts from the
manifest on disk. Each batch of finished files is written in the order a crash can be recovered
from (``IndexWriter.replace_files``): add the new chunks, commit the manifest that points at
them, then delete the old ones. A file that cannot be read is skipped with a typed reason; it
never stops the run, and its previously indexed version is kept.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.index.index import Index, IndexWriter
from rag.index.manifest import FileEntry, file_sha256
from rag.ingest.chunking import chunk_document
from rag.ingest.discovery import FoundFile, discover, path_state
from rag.ingest.isolation import IsolatedParser
from rag.ingest.loaders import LOADER_VERSION, LoadError, LoadOptions
from rag.ingest.stages import Pipeline
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
    languages: Counter[str]  # of its passages

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
        step = settings.embed_batch_size * index.embedder.parallel  # embedding servers take several batches at once
        parse = functools.partial(_parse, index, to_parse, set(writer.sources()), settings, budget, report)
        write = _writing(writer, chunking, report)
        if settings.ingest_pipeline:
            with Pipeline(progress) as stages:
                ahead: Iterator[_Pending] = stages.ahead(
                    parse(stages.progress), weight=lambda p: len(p.chunks), limit=2 * window_size(step)
                )
                _embed_and_write(index, ahead, stages.behind(write), step, stages.progress)
            report.stage_seconds = {name: round(s, 3) for name, s in stages.seconds.items()}
        else:
            _embed_and_write(index, parse(progress), write, step, progress)
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
) -> Generator[_Pending, None, None]:
    """Each file parsed (in the worker process), chunked and its passages' languages detected."""
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
            # detected on the text the keyword index analyses, which then finds it in the cache
            yield _Pending(item, chunks, Counter(language(c.embedding_text()) for c in chunks))
    progress(ProgressEvent("parse", len(to_parse), len(to_parse)))


def _windows(parsed: Iterable[_Pending], step: int) -> Iterator[list[tuple[_Pending, Chunk]]]:
    """The passages of the files as they come, a window at a time (it may span files, and a long
    file several windows). The first windows are small, so that the embedder starts while the
    parser is still at the first files; they double up to ``window_size``."""
    size, largest = 2 * step, window_size(step)
    part: list[tuple[_Pending, Chunk]] = []
    for item in parsed:
        part.extend((item, c) for c in item.chunks)
        while len(part) >= size:
            yield part[:size]
            part = part[size:]
            size = min(2 * size, largest)
    if part:
        yield part


def _embed_and_write(
    index: Index,
    parsed: Iterable[_Pending],
    write: Callable[[list[_Pending], np.ndarray], None],
    step: int,
    progress: ProgressCallback,
) -> None:
    """Embed a window of passages at a time, ``step`` to a call, across files and shortest first
    (little padding), and hand each file to ``write`` once all its passages have vectors."""
    seen = done = 0
    vectors_by_file: dict[int, list[np.ndarray]] = {}
    for part in _windows(parsed, step):
        seen = max(seen, done + len(part))
        order = sorted(range(len(part)), key=lambda i: part[i][1].n_tokens)
        vectors: list[np.ndarray] = [np.empty(0)] * len(part)
        for b in range(0, len(order), step):
            batch = order[b : b + step]
            for i, vector in zip(batch, index.embedder.embed_documents([part[i][1].embedding_text() for i in batch])):
                vectors[i] = vector
            done += len(batch)
            progress(ProgressEvent("embed", done, seen))
        finished: list[_Pending] = []
        for (item, _), vector in zip(part, vectors):
            got = vectors_by_file.setdefault(id(item), [])
            got.append(vector)
            if len(got) == len(item.chunks):
                finished.append(item)
        if finished:
            write(finished, np.stack([v for item in finished for v in vectors_by_file.pop(id(item))]))


def _writing(writer: IndexWriter, chunking: str, report: IngestReport) -> Callable[[list[_Pending], np.ndarray], None]:
    """Stores finished files (several in one batch) and records them in ``report``."""

    def write(finished: list[_Pending], vectors: np.ndarray) -> None:
        files = [(item.entry(chunking, _most_common(item.languages)), str(item.file.found.path), item.chunks) for item in finished]
        removed, new_sources = writer.replace_files(files, vectors)
        report.chunks_removed += removed
        report.chunks_added += sum(len(item.chunks) for item in finished)
        report.languages = dict(sum((item.languages for item in finished), Counter(report.languages)))
        for item in finished:
            is_new = str(item.file.found.path) in new_sources
            (report.added if is_new else report.updated).append(item.file.found.display_name)

    return write


def window_size(step: int) -> int:
    """Passages sorted by length together: enough for batches of even length."""
    return max(512, step * 16)


def _most_common(counts: Counter[str]) -> str | None:
    return counts.most_common(1)[0][0] if counts else None


def remove(index: Index, paths: list[str]) -> tuple[list[str], int]:
    """Remove files from the index (their chunks and manifest entries): each path is an indexed
    file, or a folder whose indexed files all go. A removed path is no longer a recorded root, so
    ``rag ingest --rebuild`` does not bring it back. Returns the files and the chunks removed."""
    with index.writing() as writer:
        sources = _indexed_under(writer.sources(), paths)
        _, removed = writer.remove_files(sources)
        roots = [r for r in writer.manifest.roots if not any(_under(Path(r), Path(p)) for p in paths)]
        if roots != writer.manifest.roots:
            writer.set_roots(roots)
    return sources, removed


def _indexed_under(sources: list[str], paths: list[str]) -> list[str]:
    """The indexed sources that are one of ``paths`` or lie in a folder among them."""
    return [s for s in sources if any(s == p or _under(Path(s), Path(p)) for p in paths)]


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)

"""The pipelined ingest: parsing ahead of the embedder and writing behind it give the index the
sequential path gives; a stage that fails stops the run without damage; memory ahead is bounded."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from make_sample_corpus import write_mixed
from test_ingest import assert_consistent

from rag.config import Settings
from rag.index.index import Index, IndexWriter
from rag.ingest import pipeline
from rag.ingest.pipeline import ProgressEvent, ingest
from rag.ingest.stages import Pipeline
from rag.sample import sample_dir


def _contents(index: Index) -> tuple[dict[str, tuple[str, int | None, str]], dict[str, list[str]]]:
    """Every passage (text, page, heading) by id, and each file's passage ids in order."""
    passages = {c.id: (c.text, c.page, c.heading) for c in index.store.iter_all()}
    return passages, {Path(s).name: e.chunk_ids for s, e in index.manifest.files.items()}


def _vectors(index: Index) -> dict[str, np.ndarray]:
    stored = index.store._collection.get(include=["embeddings"])  # type: ignore[attr-defined]
    return dict(zip(stored["ids"], np.asarray(stored["embeddings"])))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample documents and 40 generated PDF, DOCX, HTML and Markdown files."""
    folder = tmp_path_factory.mktemp("mixed")
    write_mixed(folder / "generated", 40, None, per_file=4)
    shutil.copytree(sample_dir(), folder / "sample")
    return folder


def test_pipelined_ingest_makes_exactly_the_sequential_index(mixed: Path, tmp_path: Path, embedder, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "window_size", lambda step: 64)  # windows of 8, 16, 32, 64, 64...: they span files
    indexes, vectors = {}, {}
    for pipelined in (False, True):
        settings = Settings(
            index_dir=tmp_path / f"index-{pipelined}", chunk_tokens=48, chunk_overlap=8, embed_batch_size=4, ingest_pipeline=pipelined
        )
        index = Index(settings.index_dir, embedder)
        report = ingest(index, [mixed], settings)
        assert not report.skipped and report.chunks_added > 4 * 64
        assert_consistent(index)
        indexes[pipelined] = (_contents(index), report.languages, sorted(report.added))
        vectors[pipelined] = _vectors(index)
    assert indexes[True] == indexes[False]
    assert vectors[True].keys() == vectors[False].keys()
    for chunk_id, vector in vectors[True].items():  # each passage got its own vector, not a neighbour's
        assert np.allclose(vector, vectors[False][chunk_id], atol=1e-5)


def test_progress_is_reported_from_the_callers_thread(mixed: Path, settings: Settings, embedder) -> None:
    threads: set[str] = set()
    phases: set[str] = set()

    def progress(event: ProgressEvent) -> None:
        threads.add(threading.current_thread().name)
        phases.add(event.phase)

    ingest(Index(settings.index_dir, embedder), [mixed / "sample"], settings, progress=progress)
    assert threads == {threading.current_thread().name} and {"scan", "parse", "embed"} <= phases


def test_a_failing_parser_stage_stops_the_run_and_leaves_a_sound_index(mixed: Path, settings: Settings, embedder, monkeypatch) -> None:
    real = pipeline.chunk_document
    seen: list[str] = []

    def failing(document: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(document.source)
        if len(seen) == 12:
            raise RuntimeError("chunker bug")
        return real(document, *args, **kwargs)

    monkeypatch.setattr(pipeline, "chunk_document", failing)
    with pytest.raises(RuntimeError, match="chunker bug"):
        ingest(Index(settings.index_dir, embedder), [mixed], settings)
    monkeypatch.setattr(pipeline, "chunk_document", real)
    index = Index(settings.index_dir, embedder)
    assert_consistent(index)
    report = ingest(index, [mixed], settings)  # the next run finishes the job
    assert not report.skipped and len(index.manifest.files) == 45
    assert_consistent(index)


def test_a_failing_write_stops_the_run_and_leaves_a_sound_index(mixed: Path, settings: Settings, embedder, monkeypatch) -> None:
    real = IndexWriter.replace_files
    calls: list[int] = []

    def failing(self: IndexWriter, files: Any, vectors: Any) -> Any:
        calls.append(len(files))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, files, vectors)

    monkeypatch.setattr(IndexWriter, "replace_files", failing)
    settings = settings.model_copy(update={"chunk_tokens": 48, "chunk_overlap": 8})
    with pytest.raises(OSError, match="disk full"):
        ingest(Index(settings.index_dir, embedder), [mixed], settings)
    assert len(calls) == 2  # nothing written after the failure
    index = Index(settings.index_dir, embedder)
    assert_consistent(index)
    assert len(index.manifest.files) == calls[0]  # the first batch stays


def test_the_stage_ahead_stays_within_its_limit() -> None:
    made: list[int] = []
    taken: list[int] = []
    furthest = [0]

    def items() -> Any:
        for n in range(60):
            made.append(n)
            furthest[0] = max(furthest[0], len(made) - len(taken))
            yield n

    with Pipeline(lambda event: None) as stages:
        for n in stages.ahead(items(), weight=lambda n: 10, limit=50):
            taken.append(n)
            time.sleep(0.002)  # a slow consumer: the producer would run far ahead if it could
    assert taken == list(range(60))
    assert furthest[0] <= 50 // 10 + 2  # the limit, the item in hand and the one being made


def test_a_consumer_that_stops_early_stops_the_stage_ahead() -> None:
    closed = threading.Event()

    def items() -> Any:
        try:
            yield from range(1000)
        finally:
            closed.set()

    with pytest.raises(ValueError), Pipeline(lambda event: None) as stages:
        for n in stages.ahead(items(), weight=lambda n: 1, limit=4):
            if n == 3:
                raise ValueError("embedder failed")
    assert closed.wait(5)

"""Ingestion against a real Chroma in a temp dir and the real bundled embedder."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import IndexLockedError, IndexMismatchError
from rag.index.index import Index
from rag.index.manifest import WriterLock
from rag.ingest.pipeline import ProgressEvent, ingest


@pytest.fixture(params=["embedded", pytest.param("chroma-server", marks=pytest.mark.slow)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every store test runs twice: on the embedded store and on a real `chroma run` server."""
    if request.param == "embedded":
        return Settings(index_dir=tmp_path / "index")
    url = request.getfixturevalue("chroma_server")
    return Settings(index_dir=tmp_path / "index", chroma_url=url, chroma_collection=f"t_{uuid.uuid4().hex[:16]}")


def open_index(settings: Settings, embedder) -> Index:
    return Index(settings.index_dir, embedder, chroma_url=settings.chroma_url, collection=settings.chroma_collection)


def stored_sources(index: Index) -> dict[str, set[str]]:
    return {Path(k).name: v for k, v in index.store.ids_by_source().items()}


def assert_consistent(index: Index) -> None:
    """The manifest and the store hold exactly the same chunk ids, per file."""
    by_source = index.store.ids_by_source()
    assert set(by_source) == set(index.manifest.files)
    for source, entry in index.manifest.files.items():
        assert set(entry.chunk_ids) == by_source[source]
    assert index.store.count() == index.manifest.chunk_count


def test_ingest_then_incremental_changes(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    events: list[ProgressEvent] = []
    report = ingest(index, [corpus], settings, progress=events.append)
    assert sorted(report.added) == sorted(["contract.docx", "faq.html", "manual.pdf", "pets.md", os.path.join("sub", "travel.txt")])
    assert report.skipped == []
    assert report.chunks_added == index.store.count() > 0
    assert {e.phase for e in events} == {"scan", "parse", "embed"}
    assert events[-1].done == events[-1].total
    assert_consistent(index)
    first_ids = set(index.store.ids_by_source()[str((corpus / "pets.md").resolve())])

    # unchanged: nothing is re-embedded, nothing duplicated
    again = ingest(index, [corpus], settings)
    assert again.added == again.updated == again.removed == []
    assert len(again.unchanged) == 5 and again.chunks_added == 0
    assert_consistent(index)

    # modify one file, delete another
    time.sleep(0.01)
    (corpus / "pets.md").write_text("# Pet policy\n\nParrots are welcome on Mondays.\n", encoding="utf-8")
    (corpus / "sub" / "travel.txt").unlink()
    changed = ingest(index, [corpus], settings)
    assert changed.updated == ["pets.md"]
    assert changed.removed == [os.path.join("sub", "travel.txt")]
    assert len(changed.unchanged) == 3
    assert_consistent(index)
    texts = {c.text for c in index.store.iter_all()}
    assert any("Parrots" in t for t in texts)
    assert not any("Zanzibar" in t or "reimbursed" in t for t in texts)
    assert not first_ids & set(index.store.ids_by_source()[str((corpus / "pets.md").resolve())])

    # a reopened index sees the same thing, and BM25 follows the changes
    reopened = open_index(settings, embedder)
    assert reopened.store.count() == index.store.count()
    assert [i for i, _ in reopened.keywords().search("parrots", 5)]
    assert reopened.keywords().search("reimbursed", 5) == []


def test_same_content_gives_the_same_index(corpus: Path, tmp_path: Path, embedder) -> None:
    a = Settings(index_dir=tmp_path / "a")
    b = Settings(index_dir=tmp_path / "b")
    ingest(open_index(a, embedder), [corpus], a)
    index_b = open_index(b, embedder)
    ingest(index_b, [corpus / "pets.md"], b)
    ingest(index_b, [corpus], b)
    assert {c.id for c in open_index(a, embedder).store.iter_all()} == {c.id for c in index_b.store.iter_all()}


def test_rebuild_starts_over(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    report = ingest(index, [corpus / "pets.md"], settings, rebuild=True)
    assert report.added == ["pets.md"]
    assert list(stored_sources(index)) == ["pets.md"]
    assert_consistent(index)


def test_bad_file_is_reported_and_never_aborts_or_damages(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    before = {c.id for c in index.store.iter_all()}
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 truncated nonsense")
    (corpus / "latin.txt").write_bytes(b"caf\xe9")
    (corpus / "new.md").write_text("Brand new fact about penguins.")
    report = ingest(index, [corpus], settings)
    assert {e.path: e.reason for e in report.skipped} == {"broken.pdf": "corrupt-pdf", "latin.txt": "not-utf8"}
    assert report.added == ["new.md"]
    assert before < {c.id for c in index.store.iter_all()}
    assert_consistent(index)


def test_changed_embedder_is_refused_with_rebuild_instructions(corpus: Path, settings: Settings, embedder) -> None:
    ingest(open_index(settings, embedder), [corpus / "pets.md"], settings)

    class OtherEmbedder:
        name = "some/other-model"
        dimension = embedder.dimension
        max_tokens = embedder.max_tokens

    with pytest.raises(IndexMismatchError) as info:
        Index(settings.index_dir, OtherEmbedder(), settings.chroma_url, settings.chroma_collection)  # type: ignore[arg-type]
    assert "--rebuild" in str(info.value) and "all-MiniLM-L6-v2" in str(info.value)


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with WriterLock(tmp_path), pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"), WriterLock(tmp_path):
        pass
    with WriterLock(tmp_path):  # released: a new writer gets it
        pass


def test_keyword_index_is_updated_not_rebuilt(corpus: Path, settings: Settings, embedder, monkeypatch) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    from rag.index.bm25 import BM25Index

    def no_rebuild(*args, **kwargs):
        raise AssertionError("BM25 was rebuilt from the store")

    monkeypatch.setattr(BM25Index, "build", classmethod(no_rebuild))
    (corpus / "new.md").write_text("Capybaras graze by the pond.", encoding="utf-8")
    (corpus / "faq.html").unlink()
    ingest(open_index(settings, embedder), [corpus], settings)
    reopened = open_index(settings, embedder)
    keywords = reopened.keywords()  # loaded from disk, at the manifest's generation
    assert set(keywords.ids) == {c.id for c in reopened.store.iter_all()}
    assert keywords.search("capybara", 5) and not keywords.search("library lends", 5)


def test_stale_keyword_index_is_rebuilt_from_the_store(corpus: Path, settings: Settings, embedder) -> None:
    """A crash between a store write and the keyword update leaves BM25 behind: it is repaired."""
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    index.manifest.generation += 1  # as if the process died before saving the keyword index
    index.manifest.save(index.manifest_path)
    reopened = open_index(settings, embedder)
    assert set(reopened.keywords().ids) == {c.id for c in reopened.store.iter_all()}
    assert reopened.keywords().search("quokka", 3)


def test_changing_chunk_size_rechunks_the_files(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    small = settings.model_copy(update={"chunk_tokens": 40, "chunk_overlap": 8})
    report = ingest(index, [corpus], small)
    assert sorted(report.updated) == sorted(e.display_name for e in index.manifest.files.values())
    assert max(c.n_tokens for c in index.store.iter_all()) <= 40
    assert_consistent(index)
    assert ingest(index, [corpus], small).updated == []  # and only once


def test_store_get_accepts_repeated_ids(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus / "pets.md"], settings)
    first = next(iter(index.store.iter_all())).id
    assert [c.id for c in index.store.get([first, first])] == [first, first]


def test_an_interrupted_writer_is_recovered_when_the_index_is_next_opened(corpus: Path, settings: Settings, embedder) -> None:
    import numpy as np

    from rag.schema import Chunk

    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    clean = index.store.ids_by_source()
    pets = next(s for s in index.manifest.files if s.endswith("pets.md"))
    # the states a crash can leave: new chunks not yet committed (orphans of a known and of an
    # unknown file), and a store that lost a chunk the manifest names
    strays = [
        Chunk("orphan-1", "half-written", pets, "pets.md", None, "", 0, 12, 3),
        Chunk("orphan-2", "never committed", str(corpus / "new.txt"), "new.txt", None, "", 0, 15, 3),
    ]
    index.store.add(strays, np.stack(embedder.embed_documents([c.text for c in strays])))
    travel = next(s for s in index.manifest.files if s.endswith("travel.txt"))
    index.store.delete(index.manifest.files[travel].chunk_ids[:1])
    index.dirty_path.write_text("1")

    reopened = open_index(settings, embedder)
    assert reopened.recovered == {
        "orphan_chunks_removed": 2 + len(clean[travel]) - 1,
        "files_to_reindex": 1,
        "keyword_chunks_fixed": len(clean[travel]),
        "reindex": [os.path.join("sub", "travel.txt")],
    }
    assert not reopened.dirty_path.exists()
    assert_consistent(reopened)
    assert travel not in reopened.manifest.files
    assert {i for i, _ in reopened.keywords().search("half-written never committed", 10)} == set()

    report = ingest(reopened, [corpus], settings)
    assert report.added == [os.path.join("sub", "travel.txt")]
    assert reopened.store.ids_by_source() == clean  # converges to the clean build


def test_no_recovery_while_a_writer_holds_the_lock(corpus: Path, settings: Settings, embedder) -> None:
    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    index.dirty_path.write_text("1")
    with WriterLock(settings.index_dir):
        reader = open_index(settings, embedder)
        assert reader.recovered is None and reader.dirty_path.exists()
    recovered = open_index(settings, embedder).recovered
    assert recovered == {"orphan_chunks_removed": 0, "files_to_reindex": 0, "keyword_chunks_fixed": 0, "reindex": []}


def test_a_touched_file_is_hashed_once_not_on_every_run(corpus: Path, settings: Settings, embedder, monkeypatch) -> None:
    import rag.ingest.pipeline as ingest_module

    index = open_index(settings, embedder)
    ingest(index, [corpus], settings)
    manifest_before = index.manifest_path.read_bytes()
    assert ingest(index, [corpus], settings).unchanged  # nothing changed: the manifest is not rewritten
    assert index.manifest_path.read_bytes() == manifest_before
    pets = corpus / "pets.md"
    os.utime(pets, ns=(pets.stat().st_atime_ns, pets.stat().st_mtime_ns + 10_000_000_000))
    hashed: list[Path] = []
    real = ingest_module.file_sha256
    monkeypatch.setattr(ingest_module, "file_sha256", lambda path: hashed.append(path) or real(path))
    assert "pets.md" in ingest(index, [corpus], settings).unchanged
    assert hashed == [pets.resolve()]  # the content is the same: only the new mtime is recorded
    ingest(open_index(settings, embedder), [corpus], settings)
    assert hashed == [pets.resolve()]  # and the next run trusts it

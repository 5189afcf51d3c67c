"""The segmented keyword index: incremental changes score exactly like a clean build."""

from __future__ import annotations

import random

import pytest

from rag.index import bm25 as bm25_module
from rag.index.bm25 import BM25Index

WORDS = "apple pear plum orchard river bridge tax invoice lease deposit boiler valve warranty garden rose".split()


def _corpus(rng: random.Random, n: int, prefix: str) -> dict[str, str]:
    return {f"{prefix}{i}": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for i in range(n)}


def _same_results(a: BM25Index, b: BM25Index, queries: list[str]) -> None:
    for q in queries:
        got, want = a.search(q, 10), b.search(q, 10)
        assert [i for i, _ in got] == [i for i, _ in want], q
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5), q


def test_stemming_and_stopwords() -> None:
    index = BM25Index.build([("a", "The running of the bulls"), ("b", "A quiet garden")], 1)
    assert [i for i, _ in index.search("runs", 5)] == ["a"]
    assert index.search("the of a", 5) == []  # stop words only: nothing to match


def test_incremental_changes_match_a_clean_build(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bm25_module, "MAX_SEGMENTS", 3)  # force merges along the way
    rng = random.Random(7)
    live = _corpus(rng, 40, "base-")
    index = BM25Index.build(live.items(), 1)
    index.save(tmp_path, 1)
    queries = [" ".join(rng.sample(WORDS, 2)) for _ in range(15)]
    for step in range(2, 12):
        index = BM25Index.load(tmp_path, step - 1)
        assert index is not None
        gone = rng.sample(sorted(live), 5)
        index.remove(gone)
        for g in gone:
            del live[g]
        added = _corpus(rng, 6, f"s{step}-")
        changed = {k: v + " valve" for k, v in list(live.items())[:2]}  # re-adding an id replaces it
        index.add(added.items())
        index.add(changed.items())
        live.update(added)
        live.update(changed)
        index.save(tmp_path, step)
        assert len(index.segments) <= 3
        assert sorted(index.ids) == sorted(live)
        _same_results(index, BM25Index.build(live.items(), step), queries)
    reopened = BM25Index.load(tmp_path, 11)
    assert reopened is not None
    _same_results(reopened, BM25Index.build(live.items(), 11), queries)
    # stale generation or damaged files: the caller rebuilds
    assert BM25Index.load(tmp_path, 12) is None
    (tmp_path / "meta.json").write_text("{not json")
    assert BM25Index.load(tmp_path, 11) is None


def test_single_file_update_writes_one_small_segment(tmp_path) -> None:
    rng = random.Random(3)
    index = BM25Index.build(_corpus(rng, 500, "d").items(), 1)
    index.save(tmp_path, 1)
    first = {p.name for p in tmp_path.iterdir()}
    index = BM25Index.load(tmp_path, 1)
    assert index is not None
    index.remove(["d1", "d2"])
    index.add([("new", "orchard warranty")])
    index.save(tmp_path, 2)
    now = {p.name for p in tmp_path.iterdir()}
    assert first - {"meta.json"} <= now  # the big segment was not rewritten
    assert len(now - first) == 1
    assert index.search("orchard warranty", 1)[0][0] in {"new"} | {f"d{i}" for i in range(500)}
    assert "d1" not in index.ids

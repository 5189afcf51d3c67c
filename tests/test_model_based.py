"""Model-based test: random sequences of add / modify / delete a file, ingest, reopen and query,
checked against a plain dictionary of what the index must hold. Real Chroma and BM25; a hashing
embedder (the property is about bookkeeping, not about semantic quality)."""

from __future__ import annotations

import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rag.config import Settings
from rag.index.embeddings import REFERENCE_SCALE
from rag.index.index import Index
from rag.ingest.pipeline import ingest

NAMES = ["alpha.txt", "beta.md", "gamma.txt", "notes/delta.md", "notes/deep/epsilon.txt"]
FILLER = "the council met at the harbour to discuss grain tariffs and the winter market".split()


class HashingEmbedder:
    name = "hashing-embedder"
    dimension = 32
    max_tokens = 256
    scale = REFERENCE_SCALE
    parallel = 1

    def embed_documents(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    embed_queries = embed_documents

    def count_tokens(self, texts) -> list[int]:
        return [len(t.split()) for t in texts]


def marker(name: str, version: int) -> str:
    return f"mark{zlib.crc32(name.encode()) % 100000}v{version}"


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="rag-model-"))
        self.docs = self.tmp / "docs"
        self.docs.mkdir()
        self.settings = Settings(index_dir=self.tmp / "index", chunk_tokens=32, chunk_overlap=4)
        self.embedder = HashingEmbedder()
        self.index = Index(self.settings.index_dir, self.embedder)
        self.on_disk: dict[str, str] = {}  # name -> marker of its current content
        self.indexed: dict[str, str] = {}  # what the index must hold after the last ingest
        self.versions: dict[str, int] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _write(self, name: str, words: int) -> None:
        self.versions[name] = self.versions.get(name, 0) + 1
        mark = marker(name, self.versions[name])
        body = " ".join(FILLER[i % len(FILLER)] for i in range(words))
        path = self.docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{mark} {body} {mark}\n", encoding="utf-8")
        self.on_disk[name] = mark

    @rule(name=st.sampled_from(NAMES), words=st.integers(5, 120))
    def add_or_modify(self, name: str, words: int) -> None:
        self._write(name, words)

    @precondition(lambda self: bool(self.on_disk))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.on_disk)))
        (self.docs / name).unlink()
        del self.on_disk[name]

    @rule()
    def run_ingest(self) -> None:
        report = ingest(self.index, [self.docs], self.settings)
        before, after = self.indexed, dict(self.on_disk)
        assert sorted(report.added) == sorted(n for n in after if n not in before)
        assert sorted(report.updated) == sorted(n for n in after if n in before and before[n] != after[n])
        assert sorted(report.removed) == sorted(n for n in before if n not in after)
        assert report.skipped == []
        self.indexed = after

    @rule()
    def reopen(self) -> None:
        self.index = Index(self.settings.index_dir, self.embedder)

    @precondition(lambda self: bool(self.indexed))
    @rule(data=st.data())
    def query_a_current_file(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.indexed)))
        hits = self.index.keywords().search(self.indexed[name], 5)
        assert hits, name
        top = self.index.store.get([hits[0][0]])[0]
        assert Path(top.source) == (self.docs / name).resolve()

    @invariant()
    def index_matches_the_model(self) -> None:
        manifest = self.index.manifest
        expected = {str((self.docs / n).resolve()) for n in self.indexed}
        assert set(manifest.files) == expected
        stored = self.index.store.ids_by_source()
        assert {s: ids for s, ids in stored.items() if ids} == {s: set(e.chunk_ids) for s, e in manifest.files.items()}
        # each indexed file holds its current version, and nothing of an older or deleted one
        texts: dict[str, list[str]] = {}
        for chunk in self.index.store.iter_all():
            texts.setdefault(chunk.source, []).append(chunk.text)
        for name, mark in self.indexed.items():
            assert mark in " ".join(texts[str((self.docs / name).resolve())])
        live = set(self.indexed.values())
        stale = {marker(n, v) for n, latest in self.versions.items() for v in range(1, latest + 1)} - live
        keyword_hits = {h[0] for m in stale for h in self.index.keywords().search(m, 3)}
        stale_found = [c for c in self.index.store.get(sorted(keyword_hits)) if any(m in c.text for m in stale)]
        assert stale_found == []


IndexMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)
TestIndexModel = IndexMachine.TestCase

"""Keyword retrieval: a stemmed BM25 index (bm25s) saved next to the vector store.

The index records the manifest generation it was built from, so it is rebuilt once after a change,
never on every start.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path


def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    def __init__(self, retriever: object | None, ids: list[str], generation: int) -> None:
        self._retriever = retriever
        self.ids = ids
        self.generation = generation
        self._stem = _stemmer()

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False)

    @classmethod
    def build(cls, records: Iterable[tuple[str, str]], generation: int) -> "BM25Index":
        import bm25s

        ids: list[str] = []
        texts: list[str] = []
        for chunk_id, text in records:
            ids.append(chunk_id)
            texts.append(text)
        index = cls(None, ids, generation)
        if ids:
            retriever = bm25s.BM25()
            retriever.index(index.tokenize(texts), show_progress=False)
            index._retriever = retriever
        return index

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        if self._retriever is None or not self.ids:
            return []
        tokens = self.tokenize([query])
        if not tokens or not tokens[0]:
            return []
        k = min(n, len(self.ids))
        positions, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)  # type: ignore[attr-defined]
        return [(self.ids[int(p)], float(s)) for p, s in zip(positions[0], scores[0]) if s > 0]

    def save(self, directory: Path) -> None:
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._retriever is not None:
            self._retriever.save(str(tmp), show_progress=False)  # type: ignore[attr-defined]
        (tmp / "rag-ids.json").write_text(json.dumps({"generation": self.generation, "ids": self.ids}))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, generation: int) -> "BM25Index | None":
        """The saved index if it matches ``generation``, else ``None`` (the caller rebuilds)."""
        meta_path = directory / "rag-ids.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if int(meta["generation"]) != generation:
                return None
            ids = list(meta["ids"])
            retriever = None
            if ids:
                import bm25s

                retriever = bm25s.BM25.load(str(directory), show_progress=False)
            return cls(retriever, ids, generation)
        except (OSError, ValueError, KeyError):
            return None

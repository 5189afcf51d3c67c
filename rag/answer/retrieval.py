"""Hybrid retrieval: dense (Chroma) + BM25, fused with reciprocal-rank fusion."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from rag.answer.rerank import Reranker
from rag.config import Settings
from rag.errors import InputError
from rag.index.embeddings import Embedder
from rag.index.index import Index
from rag.index.where import Where
from rag.schema import Chunk, Hit

MODES = ("dense", "bm25", "hybrid", "rerank")
FULL_COVERAGE = 0.5  # see keyword_trust


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]  # fused ranking, best first, at most ``top_k``
    best_similarity: float  # highest dense cosine similarity seen, on the reference scale (-1 if none)
    keyword_hits: int  # passages sharing at least one (stemmed, non-stopword) term with the query


def rrf(rankings: list[list[str]], k: int, weights: list[float] | None = None) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: sum of weight / (k + rank) over the rankings holding an id."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        if weight <= 0:
            continue  # a ranking switched off contributes no candidates
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


def keyword_trust(coverage: float) -> float:
    """How far to trust the keyword ranking, from the share of the question's terms the documents
    hold at all. A question in the documents' language finds most of its terms (its weight stays
    whole above FULL_COVERAGE); one in another language finds only names and numbers, and a keyword
    ranking built on those would drown a dense ranking that can match across languages."""
    return min(1.0, coverage / FULL_COVERAGE) ** 2


class Retriever(Protocol):
    """What answering needs from the index: passages for a question, the embedder that compares
    sentences with it, and how rare a word is (inverse document frequency)."""

    @property
    def embedder(self) -> Embedder: ...

    def retrieve(
        self, query: str, top_k: int | None = None, mode: str | None = None, vector: np.ndarray | None = None, where: Where | None = None
    ) -> Retrieval: ...

    def idf(self, word: str) -> float | None: ...


class HybridRetriever:
    """Dense + BM25 fused by weighted RRF, re-scored by a cross-encoder when one is configured."""

    def __init__(self, index: Index, settings: Settings, reranker: Reranker | None = None) -> None:
        self._index = index
        self.settings = settings
        self.reranker = reranker

    @property
    def embedder(self) -> Embedder:
        return self._index.embedder

    def idf(self, word: str) -> float | None:
        return self._index.idf(word)

    def retrieve(
        self, query: str, top_k: int | None = None, mode: str | None = None, vector: np.ndarray | None = None, where: Where | None = None
    ) -> Retrieval:
        """Hits for ``query``, best first. ``mode``: dense, bm25, hybrid, or rerank (hybrid re-scored);
        the default is rerank when a reranker is configured, else hybrid. Pass ``vector`` when the
        query was embedded already (batches). With ``where``, only the chosen documents are searched:
        both retrievers filter before fusion, so ``top_k`` is filled from them."""
        mode = mode or ("rerank" if self.reranker is not None else "hybrid")
        if mode not in MODES:
            raise InputError(f"unknown retrieval mode '{mode}'", f"choose from {', '.join(MODES)}")
        if mode == "rerank" and self.reranker is None:
            raise InputError("the rerank variant needs a reranker", "pass --reranker NAME_OR_PATH (a cross-encoder)")
        top_k = top_k or self.settings.top_k
        n = max(self.settings.candidates, top_k)
        only = self._index.select(where) if where else None
        dense: list[tuple[Chunk, float]] = []
        keyword: list[tuple[str, float]] = []
        if mode != "bm25":
            dense = self._index.nearest(self._index.embed_query(query) if vector is None else vector, n, only)
        keyword_weight = self.settings.bm25_weight
        if mode != "dense":
            keyword = self._index.search_keywords(query, n, only)
            keyword_weight *= keyword_trust(self._index.keyword_coverage(query)) if mode != "bm25" else 1.0
        scale = self.embedder.scale  # similarities on the scale every threshold was calibrated on
        similarity = {c.id: float(scale.calibrated(s)) for c, s in dense}
        bm25_scores = dict(keyword)
        chunks = {c.id: c for c, _ in dense}
        fused = rrf(
            [[c.id for c, _ in dense], [i for i, _ in keyword]],
            self.settings.rrf_k,
            [self.settings.dense_weight, keyword_weight],
        )
        depth = max(top_k, self.settings.rerank_candidates) if mode == "rerank" else top_k
        ranked = sorted(fused, key=lambda i: (-fused[i], i))[:depth]
        missing = [i for i in ranked if i not in chunks]
        chunks.update({c.id: c for c in self._index.get(missing)})
        hits = [Hit(chunks[i], fused[i], similarity.get(i), bm25_scores.get(i)) for i in ranked if i in chunks]
        if mode == "rerank" and hits:
            assert self.reranker is not None
            head, tail = hits[: self.settings.rerank_candidates], hits[self.settings.rerank_candidates :]
            scores = self.reranker.score(query, [h.chunk.embedding_text() for h in head])
            order = sorted(range(len(head)), key=lambda n: (-scores[n], n))
            hits = [replace(head[n], rerank_score=scores[n]) for n in order] + tail
        hits = hits[:top_k]
        best = max(similarity.values(), default=-1.0)
        retrieval = Retrieval(query, hits, best, len(keyword))
        if not self._relevant(retrieval, mode):
            retrieval.hits = []
        return retrieval

    def _relevant(self, retrieval: Retrieval, mode: str) -> bool:
        """Something worth reading: a passage similar enough, or (keyword-only) any shared term."""
        if mode == "bm25":
            return retrieval.keyword_hits > 0
        return retrieval.best_similarity >= self.settings.min_similarity

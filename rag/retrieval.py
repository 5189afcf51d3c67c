"""Hybrid retrieval: dense (Chroma) + BM25, fused with reciprocal-rank fusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Settings
from .index import Index
from .schema import Chunk, Hit


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]  # fused ranking, best first, at most ``top_k``
    best_similarity: float  # highest dense cosine similarity seen (-1 if none)
    keyword_hits: int  # passages sharing at least one (stemmed, non-stopword) term with the query


def rrf(rankings: list[list[str]], k: int) -> dict[str, float]:
    """Reciprocal-rank fusion: sum of 1 / (k + rank) over the rankings that contain an id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


class HybridRetriever:
    def __init__(self, index: Index, settings: Settings) -> None:
        self.index = index
        self.settings = settings

    def retrieve(
        self, query: str, top_k: int | None = None, mode: str = "hybrid", vector: np.ndarray | None = None
    ) -> Retrieval:
        """Fused hits for ``query``; pass ``vector`` when the query was embedded already (batches)."""
        top_k = top_k or self.settings.top_k
        n = max(self.settings.candidates, top_k)
        dense: list[tuple[Chunk, float]] = []
        keyword: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            if vector is None:
                vector = self.index.embedder.embed_queries([query])[0]
            dense = self.index.store.query(vector, n)
        if mode in ("hybrid", "bm25"):
            keyword = self.index.bm25().search(query, n)
        similarity = {c.id: s for c, s in dense}
        bm25_scores = dict(keyword)
        chunks = {c.id: c for c, _ in dense}
        fused = rrf([[c.id for c, _ in dense], [i for i, _ in keyword]], self.settings.rrf_k)
        ranked = sorted(fused, key=lambda i: (-fused[i], i))[:top_k]
        missing = [i for i in ranked if i not in chunks]
        chunks.update({c.id: c for c in self.index.store.get(missing)})
        hits = [
            Hit(chunks[i], fused[i], similarity.get(i), bm25_scores.get(i)) for i in ranked if i in chunks
        ]
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

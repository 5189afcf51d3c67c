"""Hybrid retrieval over a real index: fusion weights, modes, and the optional reranker."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.retrieval import HybridRetriever, rrf
from rag.errors import InputError
from rag.index.embeddings import family_prompts
from rag.index.index import Index
from rag.ingest.pipeline import ingest


def test_weighted_rrf() -> None:
    equal = rrf([["a", "b"], ["b", "a"]], 60)
    assert equal["a"] == pytest.approx(equal["b"])
    weighted = rrf([["a", "b"], ["b", "a"]], 60, [1.0, 2.0])
    assert weighted["b"] > weighted["a"]
    only_dense = rrf([["a"], ["b"]], 60, [1.0, 0.0])
    assert "b" not in only_dense


def test_family_prompts() -> None:
    assert family_prompts("intfloat/e5-small-v2") == ("query: ", "passage: ")
    assert family_prompts("BAAI/bge-small-en-v1.5")[1] == ""
    assert family_prompts("nomic-ai/nomic-embed-text-v1.5") == ("search_query: ", "search_document: ")
    assert family_prompts("sentence-transformers/all-MiniLM-L6-v2") is None
    assert family_prompts("intfloat/multilingual-e5-large-instruct") is None


class ReverseReranker:
    """Prefers passages that mention 'jar' (a stand-in cross-encoder with a visible preference)."""

    name = "reverse"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, query: str, passages: list[str]) -> list[float]:
        self.calls += 1
        return [float("jar" in p) for p in passages]


@pytest.fixture
def indexed(corpus: Path, settings, embedder) -> Index:
    index = Index(settings.index_dir, embedder)
    ingest(index, [corpus], settings)
    return index


def test_modes_and_reranker(indexed: Index, settings) -> None:
    plain = HybridRetriever(indexed, settings)
    question = "How do I clean the Quokka 3000 blender?"
    hybrid = plain.retrieve(question)
    assert hybrid.hits[0].chunk.display_name == "manual.pdf"
    assert all(h.rerank_score is None for h in hybrid.hits)
    assert plain.retrieve(question, mode="bm25").hits and plain.retrieve(question, mode="dense").hits
    with pytest.raises(InputError, match="--reranker"):
        plain.retrieve(question, mode="rerank")
    with pytest.raises(InputError, match="unknown retrieval mode"):
        plain.retrieve(question, mode="sparse")

    reranker = ReverseReranker()
    reranked = HybridRetriever(indexed, settings, reranker).retrieve(question, top_k=3)  # rerank by default
    assert reranker.calls == 1
    assert "jar" in reranked.hits[0].chunk.text and reranked.hits[0].rerank_score == 1.0
    assert len(reranked.hits) <= 3


def test_bm25_weight_moves_keyword_matches_up(indexed: Index, settings) -> None:
    question = "outages respond hours"
    keyword_only = settings.model_copy(update={"dense_weight": 0.0, "min_similarity": -1.0})
    hits = HybridRetriever(indexed, keyword_only).retrieve(question).hits
    assert hits[0].chunk.display_name == "contract.docx"
    assert all(h.bm25_score is not None for h in hits)  # dense-only candidates score zero

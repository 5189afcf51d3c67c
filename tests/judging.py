"""Checking answers in unit tests the way the assistant does: the shipped judge over real similarities
from the bundled embedder (loaded once)."""

from __future__ import annotations

import functools

from rag.answer.citations import CitationChecker
from rag.answer.judge import JudgeModel
from rag.answer.verify import Verifier
from rag.schema import Citation, Hit


@functools.cache
def minilm():
    from rag.index.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2")


def make_verifier(hits: list[Hit], question: str, **options: object) -> Verifier:
    return Verifier(hits, question, minilm(), JudgeModel.load(), **options)  # type: ignore[arg-type]


def make_checker(hits: list[Hit], question: str) -> CitationChecker:
    return CitationChecker(hits, question, make_verifier(hits, question))


def cite(raw: str, hits: list[Hit], question: str) -> tuple[str, list[Citation], list[str]]:
    """Check a whole answer at once: (the kept text, its citations, the sentences left out)."""
    check = make_checker(hits, question)
    check.feed(raw)
    check.close()
    return check.result()

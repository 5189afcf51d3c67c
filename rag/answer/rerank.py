"""The optional ``Reranker`` interface and its sentence-transformers CrossEncoder implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.index.st_models import load_model, locate, sentence_transformers_class


class Reranker(Protocol):
    """Scores (query, passage) pairs jointly; higher is more relevant."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    def __init__(self, spec: str, *, downloads_allowed: bool = True) -> None:
        source = locate(spec, "reranker")
        self._model = load_model(
            sentence_transformers_class("CrossEncoder"),
            source,
            kind="reranker",
            spec=spec,
            downloads_allowed=downloads_allowed,
            hint="pass a sentence-transformers CrossEncoder folder or name, e.g. cross-encoder/ms-marco-MiniLM-L6-v2",
        )
        self.name = source.name

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]

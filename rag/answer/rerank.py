"""The optional ``Reranker`` interface and its sentence-transformers CrossEncoder implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.index.st_models import load_cross_encoder


class Reranker(Protocol):
    """Scores (query, passage) pairs jointly; higher is more relevant."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    def __init__(self, spec: str, *, downloads_allowed: bool = True) -> None:
        hint = "pass a sentence-transformers CrossEncoder folder or name, e.g. cross-encoder/ms-marco-MiniLM-L6-v2"
        self._model, self.name = load_cross_encoder(spec, kind="reranker", downloads_allowed=downloads_allowed, hint=hint)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]

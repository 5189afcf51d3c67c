"""The ``LLM`` interface over an OpenAI-compatible server (llama.cpp's ``llama-server``,
``python -m llama_cpp.server``, vLLM), streaming through ``/v1/chat/completions``.

The server applies the model's chat template. Token counts for packing come from the server's
tokenizer endpoint when it has one (llama-server ``/tokenize``, llama_cpp.server
``/extras/tokenize/count``, vLLM ``/tokenize``), else from a conservative estimate (3 characters a
token), plus an allowance per message for the template's markup.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from typing import Any
from urllib.parse import urlparse

from rag.answer.llm import GenerationChunk, Message
from rag.config import Settings
from rag.errors import ModelError, ServerUnavailableError

TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers and separators a chat template adds around each message


class OpenAICompatibleLLM:
    """Generation on a server. Thread-safe: concurrent ``generate`` calls are concurrent requests."""

    def __init__(self, url: str, settings: Settings) -> None:
        import httpx

        self.url = url.rstrip("/")
        parsed = urlparse(self.url)
        self._root = f"{parsed.scheme}://{parsed.netloc}"
        headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(settings.llm_timeout, connect=10.0), headers=headers)
        self.repeat_penalty = settings.repeat_penalty
        try:
            response = self._client.get(f"{self.url}/models")
            response.raise_for_status()
            models = response.json().get("data") or []
        except Exception as err:
            raise ServerUnavailableError(
                f"cannot reach the LLM server at {self.url} ({type(err).__name__}: {err})",
                "start it (e.g. python -m llama_cpp.server --model FILE.gguf --host 127.0.0.1 --port 8000, or llama-server -m FILE.gguf), "
                "check the URL ends in /v1, or unset RAG_LLM_URL / --llm-url to run the model in this process",
            ) from None
        self.model_id = str(models[0].get("id", "")) if models else ""
        self.name = f"{self.model_id or 'model'} @ {self.url}"
        self.n_ctx = self._server_context() or settings.n_ctx
        self._counter: str | None = None  # which tokenizer endpoint works, once found
        self._counter_lock = threading.Lock()

    def _server_context(self) -> int | None:
        """llama-server reports its context size at /props; other servers do not say."""
        try:
            response = self._client.get(f"{self._root}/props", timeout=5.0)
            if response.status_code == 200:
                settings = response.json().get("default_generation_settings") or {}
                n_ctx = settings.get("n_ctx") or response.json().get("n_ctx")
                return int(n_ctx) if n_ctx else None
        except Exception:
            return None
        return None

    # token counting -------------------------------------------------------------------------
    def _count_text(self, text: str) -> int:
        with self._counter_lock:
            order = [self._counter] if self._counter else ["llama-server", "llama_cpp.server", "vllm", "estimate"]
        for kind in order:
            count = self._try_count(kind, text)
            if count is not None:
                with self._counter_lock:
                    self._counter = kind
                return count
        return len(text) // 3 + 1

    def _try_count(self, kind: str | None, text: str) -> int | None:
        try:
            if kind == "llama-server":
                r = self._client.post(f"{self._root}/tokenize", json={"content": text}, timeout=10.0)
                return len(r.json()["tokens"]) if r.status_code == 200 and "tokens" in r.json() else None
            if kind == "llama_cpp.server":
                r = self._client.post(f"{self._root}/extras/tokenize/count", json={"input": text}, timeout=10.0)
                return int(r.json()["count"]) if r.status_code == 200 else None
            if kind == "vllm":
                r = self._client.post(f"{self._root}/tokenize", json={"model": self.model_id, "prompt": text}, timeout=10.0)
                return int(r.json()["count"]) if r.status_code == 200 and "count" in r.json() else None
            if kind == "estimate":
                return len(text) // 3 + 1
        except Exception:
            return None
        return None

    def count_tokens(self, messages: list[Message]) -> int:
        text = "\n".join(m["content"] for m in messages)
        return self._count_text(text) + TEMPLATE_TOKENS_PER_MESSAGE * (len(messages) + 1)

    # generation -----------------------------------------------------------------------------
    def generate(
        self, messages: list[Message], *, max_tokens: int, temperature: float, seed: int, stop: list[str] | None = None
    ) -> Generator[GenerationChunk, None, None]:
        body: dict[str, Any] = {
            "model": self.model_id or "default",
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "stream": True,
            "repeat_penalty": self.repeat_penalty,
        }
        if stop:
            body["stop"] = stop[:4]  # the OpenAI API takes at most four
        thinking = False
        try:
            with self._client.stream("POST", f"{self.url}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    detail = response.read().decode("utf-8", "replace")[:300]
                    raise ModelError(
                        f"the LLM server at {self.url} answered {response.status_code}: {detail}",
                        "check the server's log; lower --max-tokens or --top-k if the prompt is over its context",
                    )
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    choice = (json.loads(data).get("choices") or [{}])[0]
                    delta = choice.get("delta") or {}
                    text = ""
                    reasoning = delta.get("reasoning_content")  # servers that split thinking out
                    if reasoning:
                        text += ("" if thinking else "<think>") + reasoning
                        thinking = True
                    if delta.get("content"):
                        text += ("</think>" if thinking else "") + delta["content"]
                        thinking = False
                    finish = choice.get("finish_reason")
                    if text or finish:
                        yield GenerationChunk(text, finish)
        except ModelError:
            raise
        except Exception as err:
            raise ServerUnavailableError(
                f"the LLM server at {self.url} failed mid-answer ({type(err).__name__}: {err})",
                "check that the server is running; raise RAG_LLM_TIMEOUT (seconds) for slow models",
            ) from None

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_id, "server": self.url, "n_ctx": self.n_ctx, "device": "server", "tokenizer": self._counter}

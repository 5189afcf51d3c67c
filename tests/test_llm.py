"""The in-process llama.cpp LLM: chat templates and prompt-prefix reuse, with the bundled models."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.llm import LlamaCppLLM, resolve_model

pytestmark = pytest.mark.slow

SYSTEM = {
    "role": "system",
    "content": "You are a careful assistant that answers only from the numbered sources. " * 3,
}


def _answer(llm: LlamaCppLLM, messages: list[dict[str, str]]) -> str:
    return "".join(c.text for c in llm.generate(messages, max_tokens=24, temperature=0.0, seed=0))


def test_system_prefix_survives_an_unrelated_prompt_and_answers_do_not_change() -> None:
    settings = Settings()
    path = resolve_model("bundled:smollm2", settings)
    llm = LlamaCppLLM(path, settings)
    first = [SYSTEM, {"role": "user", "content": "[1] The jar holds 1.5 litres.\nQuestion: How big is the jar?"}]
    second = [SYSTEM, {"role": "user", "content": "[1] Dogs come on Fridays.\nQuestion: When may dogs come?"}]
    _answer(llm, first)
    _answer(llm, [{"role": "user", "content": "Rewrite: and why?"}])  # takes the cache away from the instructions
    reused = _answer(llm, second)
    assert llm.prefix_hits == 1  # the instructions' KV cache was restored, not evaluated again
    fresh = LlamaCppLLM(path, settings)
    assert _answer(fresh, second) == reused and fresh.prefix_hits == 0


def test_a_gguf_without_chat_template_warns_and_falls_back() -> None:
    settings = Settings(offline=True)
    path = resolve_model("bundled:gemma3-270m", settings)
    with pytest.warns(UserWarning, match="no chat template"):
        llm = LlamaCppLLM(path, settings)
    assert llm.describe()["chat_template"] == "builtin:gemma"
    text = _answer(llm, [SYSTEM, {"role": "user", "content": "Say hello."}])
    assert "<start_of_turn>" not in text and "<end_of_turn>" not in text

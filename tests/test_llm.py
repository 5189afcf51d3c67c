"""The in-process llama.cpp LLM: chat templates and prompt-prefix reuse, with the bundled models."""

from __future__ import annotations

import pytest

from rag.answer.llm import LlamaCppLLM, resolve_model
from rag.config import Settings

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


def test_the_llama_cpp_internals_rag_uses_are_there() -> None:
    """LlamaCppLLM checks them on load; a llama-cpp-python release that drops one fails here first."""
    import llama_cpp

    from rag.answer.llm import check_llama_internals

    llama = llama_cpp.Llama(model_path=str(resolve_model("bundled:smollm2", Settings())), n_ctx=256, verbose=False)
    check_llama_internals(llama)
    assert all(callable(getattr(llama, name)) for name in ("eval", "reset", "save_state", "load_state"))
    assert llama._model.token_get_text(llama.token_eos())


def test_a_llama_cpp_without_those_internals_is_a_clear_error() -> None:
    from rag.answer.llm import check_llama_internals
    from rag.errors import ModelError

    class Changed:
        input_ids, n_tokens = [], 0

    with pytest.raises(ModelError) as caught:
        check_llama_internals(Changed())
    assert "_model.token_get_text" in caught.value.problem and "eval" in caught.value.problem
    assert "llama-cpp-python>=0.3.16,<0.4" in caught.value.hint

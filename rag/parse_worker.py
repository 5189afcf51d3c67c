"""The parsing worker: ``python -m rag.parse_worker MEMORY_BYTES``, driven by ``rag.isolation``.

Reads length-prefixed pickled ``(path, display_name)`` requests on stdin and answers each with a
length-prefixed pickled ``("ok", Document)`` or ``("error", (reason, detail))`` on stdout, under an
address-space cap set once at start. Only the parent (rag itself) talks to it, through pipes.
"""

from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path


def _read(stream) -> bytes | None:  # noqa: ANN001
    header = stream.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack("<Q", header)
    return stream.read(size)


def _write(stream, payload: object) -> None:  # noqa: ANN001
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def main() -> None:
    memory = int(sys.argv[1])
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):  # pragma: no cover - no rlimits: the deadline still holds
        pass
    from .loaders import LoadError, load

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a parser that prints must not corrupt the channel
    while (request := _read(source)) is not None:
        path, display_name = pickle.loads(request)
        try:
            _write(sink, ("ok", load(Path(path), display_name)))
        except LoadError as err:
            _write(sink, ("error", (err.reason, err.detail)))
        except MemoryError:
            _write(sink, ("error", ("too-large", f"parsing needed more than the {memory >> 20} MB memory cap (raise RAG_PARSE_MEMORY_MB)")))
            return  # start afresh after running out of memory
        except BaseException as err:  # noqa: BLE001 - anything else is one bad file
            _write(sink, ("error", ("parse-error", f"{type(err).__name__}: {err}")))


if __name__ == "__main__":
    main()

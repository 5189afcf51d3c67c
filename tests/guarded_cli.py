"""Run the `rag` CLI with every non-loopback connection and DNS lookup refused and recorded.

python tests/guarded_cli.py ATTEMPTS_FILE rag-args...
"""

from __future__ import annotations

import atexit
import os
import resource
import socket
import sys

attempts_file = sys.argv.pop(1)
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _loopback(host: object) -> bool:
    text = str(host)
    return text in ("localhost", "::1", "") or text.startswith(("127.", "::ffff:127."))


def _record(what: str) -> None:
    with open(attempts_file, "a") as handle:
        handle.write(what + "\n")


def _connect(self: socket.socket, address, *rest):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _record(f"connect {address!r}")
        raise OSError("blocked by the test: no egress allowed")
    return (_real_connect if not rest else _real_connect_ex)(self, address)


def _connect_ex(self: socket.socket, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _record(f"connect_ex {address!r}")
        return 111
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host):
        _record(f"dns {host!r}")
        raise socket.gaierror("blocked by the test: no DNS allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _getaddrinfo


def _record_peak(path: str) -> None:
    """The peak RSS in MB of this process and, apart, of the largest parse worker it waited for, as
    JSON, for memory checks that must not see other tests' processes (RUSAGE_CHILDREN in pytest
    spans the whole session)."""
    own, workers = (resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    with open(path, "w") as handle:
        handle.write(f'{{"own": {own}, "workers": {workers}}}')


if os.environ.get("RAG_TEST_PEAK_FILE"):
    atexit.register(_record_peak, os.environ["RAG_TEST_PEAK_FILE"])

from rag.apps.cli import main  # noqa: E402

sys.argv[0] = "rag"
main()

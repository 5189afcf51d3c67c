"""No request leaves the machine: a process-wide guard on outgoing connections and name lookups.

``rag serve`` installs it at start. Connections go only to loopback addresses and to the hosts the
settings name (``--chroma-url``, ``--llm-url``); anything else, whichever library tries it (a web
framework fetching a URL it was handed, a telemetry ping), fails at once with ``EgressRefused``.
Accepting connections (the page itself) is not affected.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse


class EgressRefused(OSError):
    """A connection or lookup to a host outside this machine, refused."""


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.", ""):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or address.is_unspecified or bool(mapped and mapped.is_loopback)


def url_hosts(urls: Iterable[str | None]) -> set[str]:
    return {(urlparse(u).hostname or "").lower() for u in urls if u}


class EgressGuard:
    """Patches ``socket`` so that only loopback and ``allowed`` hosts can be reached."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {h.lower() for h in allowed if h}
        self.refused: list[str] = []
        self._saved: dict[str, Any] = {}

    def permits(self, host: object) -> bool:
        text = str(host).strip("[]").lower()
        return _loopback(text) or text in self.allowed

    def _refuse(self, what: str) -> EgressRefused:
        self.refused.append(what)
        return EgressRefused(f"rag allows no connection beyond this machine: refused {what}")

    def install(self) -> EgressGuard:
        if self._saved:
            return self
        real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
        self._saved = {"connect": real_connect, "connect_ex": real_connect_ex, "getaddrinfo": real_getaddrinfo}
        guard = self

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not guard.permits(address[0]):
                raise guard._refuse(f"a connection to {address[0]}")

        def connect(sock: socket.socket, address: Any) -> None:
            check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(sock, address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name is not None and not guard.permits(name):
                raise socket.gaierror(socket.EAI_NONAME, f"rag allows no lookup beyond this machine: refused {name}")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = getaddrinfo
        return self

    def uninstall(self) -> None:
        if self._saved:
            socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
            socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]
            socket.getaddrinfo = self._saved["getaddrinfo"]
            self._saved = {}

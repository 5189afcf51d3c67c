"""Keeping a long-running server's memory flat under glibc (Linux); no-ops elsewhere.

glibc gives threads that allocate concurrently their own heap arenas and keeps freed memory in
them, so a server whose web threads come and go grows in resident memory without leaking. The chat
page caps the arenas at start and hands freed memory back to the system after each answer.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache

M_ARENA_MAX = -8  # from glibc's malloc.h


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):  # glibc only (musl has neither)
        return None
    return libc


def cap_arenas(arenas: int = 2) -> bool:
    """Limit glibc's heap arenas, unless MALLOC_ARENA_MAX already says how many. True if applied."""
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return freed heap memory to the system. True if some was released."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))

"""Errors whose messages say what went wrong and how to fix it.

Library code raises these; the CLI and UI convert them into a message and an exit code.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class RagError(Exception):
    """Base class: ``str(err)`` is the problem, ``err.hint`` what to do about it."""

    exit_code = 1

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.hint}" if self.hint else self.problem


class InputError(RagError):
    """The user's input (question, path, flag) cannot be used as given."""

    exit_code = 2


class NotIndexedError(RagError):
    """A question was asked before anything was indexed."""

    exit_code = 3


class IndexMismatchError(RagError):
    """The index was built with another embedder or an incompatible layout."""

    exit_code = 4


class ModelError(RagError):
    """A model (LLM or embedder) cannot be found or loaded."""

    exit_code = 5


class IndexLockedError(RagError):
    """Another process is writing to the same index."""

    exit_code = 6


class ServerUnavailableError(RagError):
    """A server the settings point at (Chroma, an LLM server) cannot be reached."""

    exit_code = 7


class DeadlineError(RagError):
    """A request took longer than the time it was given (the API's per-request deadline)."""

    exit_code = 8


class StorageError(RagError):
    """The disk or the folder refused a write or a read: full, read-only, or not permitted."""

    exit_code = 9


_DISK_FULL = ("no space left", "disk is full", "disk full", "database or disk is full", "not enough space")
NEARLY_FULL_BYTES = 8 << 20  # less than this free: any write may fail, whatever the library says


def storage_error(err: BaseException, folder: Path) -> StorageError | None:
    """``err`` told truly when the disk under ``folder`` caused it (full, read-only, not permitted),
    whichever library raised it (chromadb words a full disk as 'Error in compaction'); else None."""
    code = getattr(err, "errno", None)
    said = str(err).lower()
    free = _free_bytes(folder)
    full = code == errno.ENOSPC or any(words in said for words in _DISK_FULL)
    if full or (free is not None and free < NEARLY_FULL_BYTES):
        room = f" ({free / 1e6:.1f} MB free)" if free is not None else ""
        return StorageError(
            f"the disk holding {folder} is full{room}: {type(err).__name__}: {err}",
            "free some space (or move the index with --index DIR) and run the command again; "
            "a write the full disk interrupted is settled the next time the index is opened",
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) and _under(getattr(err, "filename", None), folder):
        return StorageError(
            f"the disk refused to write under {folder} ({os.strerror(code)})", "check the folder's permissions, or pass another --index DIR"
        )
    return None


def _under(filename: object, folder: Path) -> bool:
    """Whether a failed operation's file lies in ``folder`` (a document it could not read does not)."""
    if not isinstance(filename, str | bytes | os.PathLike):
        return False
    return Path(os.fsdecode(filename)).absolute().is_relative_to(folder.absolute())


def _free_bytes(folder: Path) -> int | None:
    for place in (folder, *folder.absolute().parents):
        try:
            return shutil.disk_usage(place).free
        except OSError:
            continue
    return None

"""Errors whose messages say what went wrong and how to fix it.

Library code raises these; the CLI and UI convert them into a message and an exit code.
"""

from __future__ import annotations


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

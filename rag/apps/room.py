"""One model per process: the page's questions wait their turn for the model thread."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rag.apps.malloc import trim
from rag.errors import DeadlineError, ServerUnavailableError

T = TypeVar("T")
BUSY = "The assistant is busy answering other questions. Please try again in a moment."


class WaitingRoom:
    """One model per process: every model call runs on one worker thread, in arrival order.

    At most `max_waiting` questions wait behind the one being answered; beyond that a caller is
    turned away at once, and the page says the assistant is busy. Keeping the models on one thread
    also keeps their memory (allocator arenas, thread pools) from multiplying with the web server's
    worker threads under load.
    """

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-model")
        self._count = threading.Lock()
        self._closed = threading.Event()
        self.admitted = 0

    def close(self) -> None:
        """Stop every question at its next step and take no more (the server is shutting down)."""
        self._closed.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def enter(self) -> int | None:
        """How many admitted questions are ahead of this one, or None when the room is full."""
        with self._count:
            if self.admitted > self.max_waiting:
                return None
            self.admitted += 1
            return self.admitted - 1

    def leave(self) -> None:
        with self._count:
            self.admitted -= 1

    def stream(self, work: Callable[[], Iterator[T]], *, stop: threading.Event | None = None, seconds: float | None = None) -> Iterator[T]:
        """Run `work` on the model thread and relay what it yields, with its exception if it fails.

        Closing the returned iterator (the page's Stop button, a closed tab), setting ``stop`` (a
        client that went away) or closing the room stops the work at its next item, so the next
        question does not wait for an answer nobody reads. With ``seconds``, a question still
        waiting or working that long after it came in fails with ``DeadlineError``.
        """
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = stop or threading.Event()
        deadline = time.monotonic() + seconds if seconds is not None else None

        def halted() -> bool:
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineError(
                    f"the answer took longer than the {seconds:g} s a request may take",
                    "ask again when the assistant is less busy, or ask the server's owner to raise --request-timeout",
                )
            if self._closed.is_set():
                raise ServerUnavailableError("the server is shutting down", "ask again once it is back")
            return stop.is_set()

        def run() -> None:
            try:
                if halted():
                    return
                produced = work()
                try:
                    for item in produced:
                        items.put(("item", item))
                        if halted():
                            break
                finally:
                    close = getattr(produced, "close", None)
                    if close is not None:
                        close()
            except BaseException as err:  # handed to the caller's thread and raised there
                items.put(("error", err))
            finally:
                items.put(("done", None))
                trim()  # an answer's transient buffers go back to the system, not into the next one's RSS

        try:
            future = self._executor.submit(run)
        except RuntimeError:  # closed
            future = None
        if future is None or self._closed.is_set():
            raise ServerUnavailableError("the server is shutting down", "ask again once it is back")
        future.add_done_callback(lambda f: items.put(("done", None)) if f.cancelled() else None)
        try:
            while True:
                kind, value = items.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()

"""Ingest's stages side by side: parsing runs ahead of the embedder, writing behind it.

The embedder, the stage that holds the cores, runs in the calling thread. The files it needs are
parsed (in the parser's worker process) and chunked by a thread ahead of it, and its vectors are
stored by a thread behind it; each is joined to it by a bounded queue, so memory stays bounded
whatever the size of the folder. Progress from the other threads is passed on from the calling
thread (a page's callback need not be thread-safe). An error in any stage stops them all and is
raised in the calling thread; batches already embedded are still written.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

WRITES_BEHIND = 2  # embedded batches waiting to be stored, at most
BACKGROUND_NICE = 19  # the priority of parsing and writing: the embedder first
_END = object()


def _yield_cores() -> None:
    """Lower this thread's priority (Linux: per thread; its children inherit it, the parser's worker
    included): it runs on cores the embedder leaves idle instead of stalling the embedder's
    threads, which wait for each other at every step."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Pipeline:
    """Use as a context manager: ``ahead(parsed)`` and ``behind(write)`` within it. ``seconds``
    says, afterwards, how long the embedder waited for the parser and for the writer, and how long
    the writer worked."""

    def __init__(self, progress: Callable[[Any], None]) -> None:
        self._progress = progress
        self._events: deque[Any] = deque()  # progress from other threads, passed on from the caller's
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._writes: queue.Queue[Any] = queue.Queue(maxsize=WRITES_BEHIND)
        self._write_error: BaseException | None = None
        self._writing = False
        self._owner = threading.current_thread()
        self.seconds = {"waiting_for_parser": 0.0, "waiting_for_writer": 0.0, "writing": 0.0}

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._stop.set()  # the parser stops where it is
        if self._writing:
            self._writes.put(_END)  # the writer finishes what it was given
        for thread in self._threads:
            thread.join()
        self._flush()
        if kind is None and self._write_error is not None:
            raise self._write_error

    def progress(self, event: Any) -> None:
        """The caller's progress callback, callable from any stage."""
        if threading.current_thread() is self._owner:
            self._flush()
            self._progress(event)
        else:
            self._events.append(event)

    def ahead(self, items: Generator[T, None, None], weight: Callable[[T], int], limit: int) -> Iterator[T]:
        """``items`` made by a thread of their own, ahead of the caller by at most ``limit`` (in
        ``weight``: passages, say) or one item, whichever is more."""
        handover: queue.Queue[Any] = queue.Queue()
        room = threading.Condition()
        held = [0]  # weight made and not yet taken

        def produce() -> None:
            try:
                for item in items:
                    with room:
                        while held[0] >= limit and not self._stop.is_set():
                            room.wait(0.05)
                        if self._stop.is_set():
                            return
                        held[0] += weight(item)
                    handover.put(item)
                handover.put(_END)
            except BaseException as err:  # raised in the caller's thread
                handover.put(_Failed(err))
            finally:
                items.close()  # a parser stopped early shuts its worker down

        def taken(item: Any) -> None:
            with room:
                held[0] -= weight(item)
                room.notify()

        self._start(produce, "rag-parse")
        return self._take(handover, taken)

    def behind(self, write: Callable[..., None]) -> Callable[..., None]:
        """``write`` done by a thread of its own, at most ``WRITES_BEHIND`` calls behind the caller."""

        def consume() -> None:
            while (job := self._writes.get()) is not _END:
                if self._write_error is None:  # after a failure, the rest is dropped, not written
                    started = time.perf_counter()
                    try:
                        write(*job)
                    except BaseException as err:
                        self._write_error = err
                        self._stop.set()
                    self.seconds["writing"] += time.perf_counter() - started

        def submit(*job: Any) -> None:
            started = time.perf_counter()
            if not self._put(self._writes, job):
                raise self._write_error or RuntimeError("ingest stopped")
            self.seconds["waiting_for_writer"] += time.perf_counter() - started

        self._start(consume, "rag-write")
        self._writing = True
        return submit

    def _start(self, run: Callable[[], None], name: str) -> None:
        def background() -> None:
            _yield_cores()
            run()

        thread = threading.Thread(target=background, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _take(self, handover: queue.Queue[Any], taken: Callable[[Any], None]) -> Iterator[Any]:
        while True:
            started = time.perf_counter()
            item = self._get(handover)
            self.seconds["waiting_for_parser"] += time.perf_counter() - started
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            taken(item)
            yield item

    def _get(self, handover: queue.Queue[Any]) -> Any:
        while True:
            self._flush()
            if self._write_error is not None:
                raise self._write_error
            try:
                return handover.get(timeout=0.05)
            except queue.Empty:
                continue

    def _put(self, handover: queue.Queue[Any], item: Any) -> bool:
        """From the caller's thread: False when the pipeline stopped before ``item`` found room."""
        while not self._stop.is_set():
            self._flush()
            try:
                handover.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _flush(self) -> None:
        while self._events:
            self._progress(self._events.popleft())

"""Folders that stay in sync: `rag watch PATH...` and `rag serve --watch PATH...`.

On start the index catches up with the folders (an incremental ingest: what changed while nothing
watched is found by size, time and content hash). Then every file event (watchdog) marks the
folders dirty; once they have been quiet for ``quiet_s`` (a burst of saves, a copy still being
written, an editor's save-by-rename), the same incremental ingest runs again, so the index always
converges to what a clean build of the folders would hold. A writer that holds the index (another
ingest, an upload in the chat page) is waited for, never raced. Hidden files and Office lock files
(``~$name.docx``) are not documents and are not indexed (see discovery).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexLockedError, RagError
from rag.schema import IngestReport
from rag.service import Rag

QUIET_S = 1.0  # no event for this long: the burst is over
RETRY_S = 2.0  # a busy writer is asked again after this long


QUIET_SKIPS = {"hidden", "lock-file"}  # skipped as ingest reports them, but no news in a watched folder


@dataclass
class WatchStatus:
    """What the chat page shows about a watch."""

    roots: list[str]
    active: bool = False
    last_indexed: str = ""  # the last file added, changed or removed
    last_indexed_at: float | None = None  # when (time.time())
    last_sync_at: float | None = None  # when the index last caught up with the folders
    syncs: int = 0
    last_error: str = ""
    skipped: list[str] = field(default_factory=list)  # "name: reason" of the last sync's skipped files


class FolderWatch:
    """Keeps the index of ``rag`` in sync with ``paths`` until ``stop``."""

    def __init__(
        self,
        rag: Rag,
        paths: list[Path],
        *,
        quiet_s: float = QUIET_S,
        retry_s: float = RETRY_S,
        on_sync: Callable[[IngestReport], None] | None = None,
    ) -> None:
        self.rag = rag
        self.paths = [p.resolve() for p in paths]
        self.quiet_s = quiet_s
        self.retry_s = retry_s
        self.on_sync = on_sync or (lambda report: None)
        self.status = WatchStatus([str(p) for p in self.paths])
        self._changed = threading.Event()
        self._last_event = 0.0
        self._stopping = threading.Event()
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._busy = False

    def __enter__(self) -> FolderWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Watch the folders, then catch up with them (in the background)."""
        from watchdog.observers import Observer

        self._observer = Observer()
        handler = _Handler(self._on_event, ignored=self.rag.settings.index_dir.resolve())
        for path in self.paths:
            self._observer.schedule(handler, str(path if path.is_dir() else path.parent), recursive=path.is_dir())
        self._observer.start()  # events during the first sync are not lost: they mark the folders dirty again
        self._changed.set()
        self._thread = threading.Thread(target=self._run, name="rag-watch", daemon=True)
        self._thread.start()
        self.status.active = True

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        if self._thread is not None:
            self._thread.join()
        self.status.active = False

    def wait_until_synced(self, timeout_s: float) -> bool:
        """Whether the index caught up within ``timeout_s`` with every change made before this call
        (for tests and scripts): a quiet period has passed since the call and the last event, and
        no sync is due or running."""
        called = time.monotonic()
        deadline = called + timeout_s
        while time.monotonic() < deadline:
            settled = time.monotonic() - max(self._last_event, called) >= self.quiet_s
            if settled and not self._changed.is_set() and not self._busy and self.status.syncs:
                return True
            time.sleep(0.05)
        return False

    def _on_event(self) -> None:
        self._last_event = time.monotonic()
        self._changed.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait()
            if self._stopping.is_set():
                return
            while (quiet := time.monotonic() - self._last_event) < self.quiet_s:  # let the burst end
                if self._stopping.wait(self.quiet_s - quiet):
                    return
            self._busy = True
            self._changed.clear()
            try:
                self._sync()
            finally:
                self._busy = False

    def _sync(self) -> None:
        """One incremental ingest of the watched paths; a busy index is waited for."""
        while not self._stopping.is_set():
            try:
                report = self.rag.ingest([p for p in self.paths if p.exists()] or self.paths)
            except IndexLockedError:
                self._stopping.wait(self.retry_s)
                continue
            except RagError as err:
                self.status.last_error = err.problem
                return
            self._record(report)
            return

    def _record(self, report: IngestReport) -> None:
        changed = report.added + report.updated + report.removed
        now = time.time()
        if changed:
            self.status.last_indexed, self.status.last_indexed_at = changed[-1], now
        self.status.last_sync_at, self.status.last_error = now, ""
        self.status.syncs += 1
        # what the page shows: files that need the user, not the swap and lock files editors come and go with
        self.status.skipped = [f"{e.path}: {e.reason}" for e in report.skipped if e.reason not in QUIET_SKIPS]
        self.on_sync(report)


class _Handler:
    """A watchdog event handler that only says something happened (what, the ingest finds out).
    Reading a file changes nothing, and the index's own writes (an index inside a watched folder)
    must not wake the watch that made them."""

    def __init__(self, on_event: Callable[[], None], ignored: Path) -> None:
        self._on_event = on_event
        self._ignored = ignored

    def dispatch(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [Path(str(p)) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if paths and all(p == self._ignored or p.is_relative_to(self._ignored) for p in paths):
            return
        self._on_event()

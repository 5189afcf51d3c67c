"""The manifest shared through a Chroma server, so that every instance of rag sees the same index.

With ``--chroma-url`` the passages live on the server, and so does the manifest: after each commit
the writer publishes the files that changed (``FileTable``), stamped with the new generation. Any
instance using the collection, on any machine and with any local index folder, follows it: when the
published generation differs from its own, it takes the records written since (all of them the
first time), saves the manifest in its folder, and brings its keyword index to the new passages
(the BM25 index is derived data: rebuilt from the passages, never shipped). One request tells an
instance that nothing changed; it asks at most once a second.

One writer at a time is assumed across machines (a lock cannot be taken on a Chroma server): run
ingestion from one place at a time. Readers never change the server.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace

from rag.index.manifest import FileEntry, Manifest
from rag.index.store import FileTable

CHECK_EVERY_S = 1.0


def _records(manifest: Manifest) -> dict[str, str]:
    return {source: json.dumps(asdict(entry), sort_keys=True) for source, entry in manifest.files.items()}


def _header(manifest: Manifest) -> str:
    return json.dumps({"embedder": manifest.embedder, "roots": manifest.roots, "written_by": manifest.written_by}, sort_keys=True)


class SharedManifest:
    """This instance's view of the manifest on the server."""

    def __init__(self, table: FileTable) -> None:
        self.table = table
        self._published: dict[str, str] | None = None  # the records the server holds, as far as this instance knows
        self._checked = float("-inf")

    def publish(self, manifest: Manifest) -> None:
        """Send what changed since the last publish or pull (everything, the first time)."""
        current = _records(manifest)
        known = self._published or {}
        changed: dict[str, str | None] = {s: doc for s, doc in current.items() if known.get(s) != doc}
        changed.update({s: None for s in known if s not in current})
        self.table.write(manifest.generation, _header(manifest), changed)
        self._published = current

    def pull(self, manifest: Manifest, *, now: bool = False) -> Manifest | None:
        """The server's manifest, when its generation differs from ``manifest``'s; None when they
        agree, when nothing was published yet, or when the last check was under a second ago."""
        if not now and time.monotonic() - self._checked < CHECK_EVERY_S:
            return None
        self._checked = time.monotonic()
        head = self.table.header()
        if head is None:
            return None
        generation, header = head
        if generation == manifest.generation:
            if self._published is None:
                self._published = _records(manifest)
            return None
        incremental = self._published is not None and self._published == _records(manifest) and manifest.generation < generation
        changes = self.table.changed_since(manifest.generation if incremental else None)
        files = dict(manifest.files) if incremental else {}
        for source, doc in changes.items():
            if doc is None:
                files.pop(source, None)
            else:
                files[source] = FileEntry(**json.loads(doc))
        fields = json.loads(header)
        pulled = replace(
            manifest, generation=generation, files=files, roots=list(fields.get("roots", [])), written_by=dict(fields.get("written_by", {}))
        )
        self._published = _records(pulled)
        return pulled

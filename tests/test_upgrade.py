"""An index another version (or another embedder) wrote: a clear stop, and a one-command rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

QUESTION = "How many books can a library member borrow?"


def _files(rag, index: Path, env: dict[str, str] | None = None) -> int:
    return json.loads(rag("status", "--json", index=index, env=env).stdout)["files"]


def test_embedder_change_stops_then_rebuilds_from_the_recorded_paths(rag, corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    rag("ingest", str(corpus), index=index)
    written = json.loads((index / "manifest.json").read_text())
    assert {"rag", "chromadb", "embedder"} <= set(written["written_by"]) and written["roots"] == [str(corpus.resolve())]

    other = {"RAG_DOCUMENT_PROMPT": "passage: "}  # another embedding of the same model: incompatible vectors
    stopped = rag("ask", QUESTION, index=index, env=other, check=4)
    assert "built with embedder" in stopped.stderr and f"rag ingest --rebuild --index {index}" in stopped.stderr

    rebuilt = rag("ingest", "--rebuild", "--json", index=index, env=other)  # no paths: the ones it was built from
    assert len(json.loads(rebuilt.stdout)["added"]) == 5
    answer = json.loads(rag("ask", QUESTION, "--json", index=index, env=other).stdout)
    assert not answer["refused"] and "passage: " in answer["embedder"]


def test_newer_layout_and_damaged_store_stop_cleanly_and_rebuild(rag, corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    rag("ingest", str(corpus), index=index)
    manifest = index / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"version": 99, "written_by": data["written_by"] | {"rag": "9.0.0"}}))
    for command in (("status",), ("ask", QUESTION), ("ingest", str(corpus))):
        stopped = rag(*command, index=index, check=4)
        assert "layout version 99" in stopped.stderr and "rag 9.0.0" in stopped.stderr
        assert "rag ingest --rebuild" in stopped.stderr
    assert json.loads(manifest.read_text())["version"] == 99  # refused without touching anything
    rag("ingest", "--rebuild", index=index)
    assert _files(rag, index) == 5

    (index / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    stopped = rag("ask", QUESTION, index=index, check=4)
    assert "cannot be opened by chromadb" in stopped.stderr and "rag ingest --rebuild" in stopped.stderr
    rag("ingest", "--rebuild", index=index)
    assert not json.loads(rag("ask", QUESTION, "--json", index=index).stdout)["refused"]


def test_ingest_without_paths_needs_rebuild(rag, tmp_path: Path) -> None:
    result = rag("ingest", index=tmp_path / "idx", check=2)
    assert "no files or folders to index" in result.stderr and "rag ingest --rebuild" in result.stderr

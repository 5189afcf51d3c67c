"""`rag watch`: files created, changed, renamed and deleted in a watched folder are indexed within
seconds, bursts and half-written files are waited out, a busy writer is waited for, and after any
of it (or a restart) the index holds exactly the chunks a clean build of the folder would (real
watchdog, real index, bundled embedder)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.apps.watch import FolderWatch
from rag.config import Settings
from rag.index.manifest import WriterLock
from rag.service import Rag

SYNC_S = 60


def _chunk_ids(rag: Rag) -> dict[str, set[str]]:
    """Every place the index keeps chunk ids: manifest, vector store and keyword index."""
    index = rag.require_index()
    index.refresh()
    stored = set().union(*index.store.ids_by_source().values()) if index.manifest.files else set()
    return {"manifest": index.manifest.chunk_ids(), "store": stored, "keywords": set(index.keywords().ids)}


def _clean_build(folder: Path, tmp_path: Path, embedder) -> set[str]:
    clean = Rag(Settings(index_dir=tmp_path / f"clean-{time.monotonic_ns()}", offline=True), embedder=embedder)
    clean.ingest([folder])
    return clean.require_index().manifest.chunk_ids()


def _converged(rag: Rag, folder: Path, tmp_path: Path, embedder) -> None:
    expected = _clean_build(folder, tmp_path, embedder)
    assert _chunk_ids(rag) == {"manifest": expected, "store": expected, "keywords": expected}


@pytest.fixture
def watched(tmp_path: Path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "boiler.md").write_text("# Boiler\n\nThe boiler is serviced every October.\n", encoding="utf-8")
    (folder / "keys.md").write_text("# Keys\n\nSpare keys are kept in the blue box.\n", encoding="utf-8")
    rag = Rag(Settings(index_dir=tmp_path / "index", offline=True, answer_mode="extract"), embedder=embedder)
    watch = FolderWatch(rag, [folder], quiet_s=0.3, retry_s=0.2)
    watch.start()
    yield rag, watch, folder
    watch.stop()


def test_changes_renames_and_deletions_converge_to_a_clean_build(watched, tmp_path: Path, embedder) -> None:
    rag, watch, folder = watched
    assert watch.wait_until_synced(SYNC_S)
    assert watch.status.active and watch.status.syncs >= 1
    _converged(rag, folder, tmp_path, embedder)

    (folder / "boiler.md").write_text("# Boiler\n\nThe boiler is serviced every March.\n", encoding="utf-8")
    (folder / "keys.md").rename(folder / "spare-keys.md")
    (folder / "sub").mkdir()
    (folder / "sub" / "bins.md").write_text("# Bins\n\nBins go out on Tuesday evenings.\n", encoding="utf-8")
    (folder / ".bins.md.swp").write_bytes(b"vim swap")  # an editor's temporary file
    (folder / "~$report.docx").write_bytes(b"owner file")  # Office's lock file
    assert watch.wait_until_synced(SYNC_S)
    _converged(rag, folder, tmp_path, embedder)
    assert "March" in rag.ask("When is the boiler serviced?").text
    assert watch.status.last_indexed and watch.status.last_indexed_at is not None
    assert not any(".swp" in s or "~$" in s for s in watch.status.skipped)

    (folder / "spare-keys.md").unlink()
    (folder / "sub" / "bins.md").rename(folder / "bins.md")
    assert watch.wait_until_synced(SYNC_S)
    _converged(rag, folder, tmp_path, embedder)
    assert sorted(e.display_name for e in rag.require_index().manifest.files.values()) == ["bins.md", "boiler.md"]


def test_a_file_still_being_written_is_indexed_whole(watched, tmp_path: Path, embedder) -> None:
    rag, watch, folder = watched
    assert watch.wait_until_synced(SYNC_S)
    with (folder / "log.md").open("w", encoding="utf-8") as handle:
        for n in range(8):  # a slow write: a line every 0.1 s, each under the quiet period
            handle.write(f"Entry {n}: the gate was checked at {n + 8}:00.\n\n")
            handle.flush()
            time.sleep(0.1)
    assert watch.wait_until_synced(SYNC_S)
    texts = " ".join(c.text for c in rag.require_index().store.iter_all())
    assert "Entry 7" in texts and "Entry 0" in texts
    _converged(rag, folder, tmp_path, embedder)


def test_a_running_writer_is_waited_for_not_raced(watched, tmp_path: Path, embedder) -> None:
    rag, watch, folder = watched
    assert watch.wait_until_synced(SYNC_S)
    with WriterLock(rag.settings.index_dir):  # another ingest holds the index
        (folder / "alarm.md").write_text("# Alarm\n\nThe alarm code changes monthly.\n", encoding="utf-8")
        time.sleep(1.5)
        assert "alarm.md" not in {e.display_name for e in rag.require_index().manifest.files.values()}
    assert watch.wait_until_synced(SYNC_S)
    _converged(rag, folder, tmp_path, embedder)


def test_a_restart_catches_up_with_what_changed_while_it_was_down(watched, tmp_path: Path, embedder) -> None:
    rag, watch, folder = watched
    assert watch.wait_until_synced(SYNC_S)
    watch.stop()
    (folder / "boiler.md").unlink()
    (folder / "garden.md").write_text("# Garden\n\nThe hedge is cut in June.\n", encoding="utf-8")
    again = FolderWatch(rag, [folder], quiet_s=0.3)
    again.start()
    try:
        assert again.wait_until_synced(SYNC_S)
        _converged(rag, folder, tmp_path, embedder)
    finally:
        again.stop()

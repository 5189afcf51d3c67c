"""No silent damage: readers never write, every writer starts from disk under the lock, opening an
index repairs disagreement, and one bad file (or folder) never stops a run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.index.index import Index
from rag.ingest.pipeline import ingest


def open_index(settings: Settings, embedder) -> Index:
    return Index(settings.index_dir, embedder)


def write_corpus(folder: Path, n: int, prefix: str = "note") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}-{i:03d}.md").write_text(f"# {prefix} {i}\n\nItem {prefix}{i} is stored on shelf {i * 7}.\n", encoding="utf-8")


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_agree(index: Index) -> None:
    """Manifest, store and keyword index hold exactly the same chunk ids."""
    index.refresh()
    wanted = index.manifest.chunk_ids()
    assert {c.id for c in index.store.iter_all()} == wanted
    assert set(index.keywords().ids) == wanted


# 1. readers never write ------------------------------------------------------------------------
def test_a_reader_between_a_writers_commits_never_writes_and_sees_the_new_chunks(tmp_path: Path, settings: Settings, embedder) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 12)
    ingest(open_index(settings, embedder), [corpus], settings)
    reader = open_index(settings, embedder)
    reader.search_keywords("shelf", 5)
    (corpus / "note-000.md").unlink()
    (corpus / "note-001.md").write_text("# note 1\n\nThe zeppelin hangar is on shelf 99.\n", encoding="utf-8")
    write_corpus(corpus, 1, prefix="fresh")

    seen: list[tuple[dict[str, str], list[str]]] = []

    def probe(_event) -> None:  # runs inside the writer, between its commits
        before = folder_digest(settings.index_dir / "bm25")
        hits = [i for i, _ in reader.search_keywords("zeppelin hangar", 5)]
        assert folder_digest(settings.index_dir / "bm25") == before, "a reader wrote to the keyword index"
        seen.append((before, hits))

    writer_index = open_index(settings, embedder)
    ingest(writer_index, [corpus], settings, progress=probe)
    assert seen
    assert_agree(open_index(settings, embedder))
    assert_agree(reader)
    assert [i for i, _ in reader.search_keywords("zeppelin hangar", 5)]


# 2. every writer starts from disk -----------------------------------------------------------
def test_a_writer_opened_long_ago_starts_from_the_manifest_on_disk(tmp_path: Path, settings: Settings, embedder) -> None:
    first, second, upload = tmp_path / "first", tmp_path / "second", tmp_path / "upload"
    write_corpus(first, 4)
    write_corpus(second, 3, prefix="shelf")
    write_corpus(upload, 1, prefix="upload")
    page = open_index(settings, embedder)  # the chat page opens the index at start ...
    ingest(page, [first], settings)
    shell = open_index(settings, embedder)  # ... a shell ingests more ...
    ingest(shell, [second], settings)
    ingest(page, [upload], settings)  # ... then the page writes
    final = open_index(settings, embedder)
    names = sorted(e.display_name for e in final.manifest.files.values())
    assert names == sorted([f"note-{i:03d}.md" for i in range(4)] + [f"shelf-{i:03d}.md" for i in range(3)] + ["upload-000.md"])
    assert set(final.manifest.roots) == {str(p.resolve()) for p in (first, second, upload)}
    assert final.recovered is None
    assert_agree(final)


# 3, 4, 14. bad names, unreadable files and folders, links out of the root ---------------------
def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path: Path, settings: Settings, embedder) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 1)
    with open(os.path.join(os.fsencode(corpus), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"Coffee is served at nine.")
    report = ingest(open_index(settings, embedder), [corpus], settings)
    assert report.added == ["note-000.md"]
    assert [(e.path, e.reason) for e in report.skipped] == [("caf\ufffd.md", "bad-filename")]
    json.dumps(report.to_json())  # printable and storable


def test_folder_links_that_leave_the_root_or_loop_are_reported(tmp_path: Path, settings: Settings, embedder) -> None:
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    write_corpus(corpus, 1)
    write_corpus(outside, 1, prefix="secret")
    (corpus / "out").symlink_to(outside, target_is_directory=True)
    (corpus / "self").symlink_to(corpus, target_is_directory=True)
    (corpus / "dangling").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    report = ingest(open_index(settings, embedder), [corpus], settings)
    assert report.added == ["note-000.md"]
    assert sorted((e.path, e.reason) for e in report.skipped) == [
        ("dangling", "bad-symlink"),
        ("out", "outside-root"),
        ("self", "bad-symlink"),
    ]


@pytest.mark.slow
def test_unreadable_files_and_folders_are_reported_and_never_stop_a_run(tmp_path: Path, rag) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus / "kept", 2)
    write_corpus(corpus, 2)
    (corpus / "locked.md").write_text("Nobody may read this.", encoding="utf-8")
    (corpus / "locked.md").chmod(0)
    result = rag("ingest", str(corpus), "--json", index=index, as_user=True)
    report = json.loads(result.stdout)
    assert sorted(report["added"]) == sorted(["note-000.md", "note-001.md", "kept/note-000.md", "kept/note-001.md"])
    assert [(e["path"], e["reason"]) for e in report["skipped"]] == [("locked.md", "unreadable")]

    (corpus / "kept").chmod(0)  # a folder that was indexed becomes unreadable
    try:
        result = rag("ingest", str(corpus), "--json", index=index, as_user=True)
        report = json.loads(result.stdout)
        assert report["removed"] == []  # its files are kept, not dropped, and that is said
        reasons = sorted((e["path"], e["reason"]) for e in report["skipped"])
        assert reasons == [
            ("kept", "unreadable"),
            ("kept/note-000.md", "unreadable"),
            ("kept/note-001.md", "unreadable"),
            ("locked.md", "unreadable"),
        ]
    finally:
        (corpus / "kept").chmod(0o755)
    status = json.loads(rag("status", "--json", index=index, as_user=True).stdout)
    assert status["files"] == 4 and status["chunks"] == status["store_chunks"] == status["keyword_chunks"]


# 5. a lost vector store ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["deleted", "empty-sqlite"])
def test_a_lost_vector_store_is_noticed_on_open_and_repaired_by_ingest(tmp_path: Path, embedder, damage: str) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 5)
    ingest(open_index(settings, embedder), [corpus], settings)
    clean = {c.id for c in open_index(settings, embedder).store.iter_all()}
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    if damage == "deleted":
        shutil.rmtree(settings.index_dir / "chroma")
    else:
        sqlite = settings.index_dir / "chroma" / "chroma.sqlite3"
        shutil.rmtree(settings.index_dir / "chroma")
        sqlite.parent.mkdir()
        sqlite.write_bytes(b"")
    opened = open_index(settings, embedder)
    assert opened.recovered is not None and opened.recovered["files_to_reindex"] == 5
    assert_agree(opened)
    report = ingest(opened, [corpus], settings)
    assert len(report.added) == 5
    assert {c.id for c in opened.store.iter_all()} == clean
    assert_agree(opened)


# 6. a killed rebuild keeps the roots -------------------------------------------------------------
def test_an_interrupted_rebuild_keeps_the_recorded_roots(tmp_path: Path, settings: Settings, embedder, monkeypatch) -> None:
    from rag.service import Rag

    corpus = tmp_path / "corpus"
    write_corpus(corpus, 3)
    rag = Rag(settings, embedder=embedder)
    rag.ingest([corpus])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed while embedding

    monkeypatch.setattr(type(embedder), "embed_documents", crash)
    with pytest.raises(KeyboardInterrupt):
        Rag(settings, embedder=embedder).ingest([], rebuild=True)
    monkeypatch.undo()
    again = Rag(settings, embedder=embedder)
    assert again.index.manifest.roots == [str(corpus.resolve())]
    report = again.ingest([], rebuild=True)
    assert len(report.added) == 3
    assert_agree(again.index)


# 7. parse workers die with their parent and keep their own deadline --------------------------------
def slow_html(path: Path) -> Path:
    path.write_text("<html><body>" + "<div><p>slow</p></div>" * 1_500_000 + "</body></html>", encoding="utf-8")
    return path


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_a_parse_worker_dies_with_its_parent(tmp_path: Path) -> None:
    html = slow_html(tmp_path / "big.html")
    script = (
        "import sys; from pathlib import Path; from rag.ingest.isolation import IsolatedParser\n"
        "p = IsolatedParser(timeout_s=600, memory_mb=2048); w = p._start(); print(w.pid, flush=True)\n"
        f"p.load(Path({str(html)!r}))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    time.sleep(1.0)  # the worker is parsing
    assert not gone(worker, 0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert gone(worker, 5.0), "the parse worker outlived its parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks /proc")
def test_a_parse_worker_keeps_its_own_deadline(tmp_path: Path) -> None:
    import pickle
    import struct

    html = slow_html(tmp_path / "big.html")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rag.ingest.parse_worker", str(2048 << 20), "1", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    from rag.ingest.loaders import LoadOptions

    request = pickle.dumps((str(html), "big.html", LoadOptions()))
    assert worker.stdin is not None
    worker.stdin.write(struct.pack("<Q", len(request)) + request)
    worker.stdin.flush()
    assert worker.wait(timeout=30) == -signal.SIGALRM  # 1 s deadline + 5 s grace, even if nobody kills it


# 8. escape codes from documents never reach the terminal ----------------------------------------
@pytest.mark.slow
def test_documents_cannot_send_escape_codes_to_the_terminal(tmp_path: Path, rag) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evil\x1b[2J.md").write_text(
        "# Ferry\n\nThe ferry \x1b]8;;http://evil.example/pwn\x1b\\leaves\x1b]8;;\x1b\\ at 07:40 every day.\x1b]0;owned\x07\x1b[2J\x9b31m\n",
        encoding="utf-8",
    )
    index = tmp_path / "index"
    ingested = rag("ingest", str(docs), index=index)
    asked = rag("ask", "When does the ferry leave?", index=index, env={"RAG_ANSWER_MODE": "extract"})
    as_json = rag("ask", "When does the ferry leave?", "--json", index=index, env={"RAG_ANSWER_MODE": "extract"})
    for out in (ingested.stdout + ingested.stderr, asked.stdout + asked.stderr, as_json.stdout):
        assert not any(ch in out for ch in "\x1b\x07\x9b"), repr(out)
    assert "07:40" in asked.stdout
    assert "07:40" in json.loads(as_json.stdout)["answer"]


# 12. batch ids ----------------------------------------------------------------------------------
def test_duplicate_batch_ids_are_refused_with_their_lines(tmp_path: Path) -> None:
    from rag.apps.batch import read_questions
    from rag.errors import InputError

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("\n".join([json.dumps({"id": "a", "question": "One?"}), json.dumps({"id": "a", "question": "Two?"})]))
    with pytest.raises(InputError, match="id 'a' on lines 1, 2"):
        read_questions(jsonl)
    csv_file = tmp_path / "q.csv"
    rows = ["question,id"] + [f"Question {n}?," for n in range(2, 9)] + ["Question nine?,", "Question twelve?,9"]
    csv_file.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="id '9' on lines 9, 10"):
        read_questions(csv_file)


def test_an_unterminated_csv_quote_is_reported_by_line(tmp_path: Path) -> None:
    from rag.apps.batch import read_questions

    csv_file = tmp_path / "q.csv"
    csv_file.write_text('question,id\nWhat is one?,1\n"What is two?,2\nWhat is three?,3\n')
    questions, bad = read_questions(csv_file)
    assert [q.text for q in questions] == ["What is one?"]
    assert len(bad) == 1 and bad[0].line == 3 and "never closed" in bad[0].reason and "3-4" in bad[0].reason


# 13. damage gets a clear message, never an internal error ------------------------------------------
@pytest.mark.parametrize("damaged", ["meta.json", "docs.npy", "ids.txt"])
def test_a_damaged_keyword_index_is_rebuilt_not_fatal(tmp_path: Path, settings: Settings, embedder, damaged: str) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 4)
    ingest(open_index(settings, embedder), [corpus], settings)
    target = next((settings.index_dir / "bm25").rglob(damaged))
    if damaged == "docs.npy":
        import numpy as np

        np.save(target, np.full(50, 10_000, dtype=np.int32))
    else:
        target.write_text("{ not what it was")
    reopened = open_index(settings, embedder)
    assert reopened.recovered is not None
    assert [i for i, _ in reopened.search_keywords("shelf 14", 3)]
    assert_agree(reopened)


@pytest.mark.slow
def test_bad_config_manifest_and_index_paths_get_clear_errors(tmp_path: Path, rag) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("top_k = 5\nmodel = \n")
    result = rag("status", "--config", str(bad_toml), check=2)
    assert "not valid TOML" in result.stderr and "line 2" in result.stderr

    index = tmp_path / "index"
    (index / "manifest.json").mkdir(parents=True)
    result = rag("status", index=index, check=4)
    assert "is a folder, not a file" in result.stderr

    not_a_folder = tmp_path / "index-file"
    not_a_folder.write_text("x")
    result = rag("ask", "Anything?", index=not_a_folder, check=2)
    assert "is a file, not a folder" in result.stderr and "--rebuild" not in result.stderr


# 11. uploads with the same name are two documents ---------------------------------------------------
def test_uploads_with_the_same_name_do_not_replace_each_other(tmp_path: Path, settings: Settings, embedder) -> None:
    from rag.service import Rag
    from ui.page import _keep_upload

    (tmp_path / "up").mkdir()
    (tmp_path / "up2").mkdir()
    (tmp_path / "up" / "notes.md").write_text("The boiler room key hangs in the red cabinet.", encoding="utf-8")
    (tmp_path / "up2" / "notes.md").write_text("Visitors sign in at the north gate.", encoding="utf-8")
    rag = Rag(settings, embedder=embedder)
    uploads = settings.index_dir / "uploads"
    first = rag.ingest([_keep_upload(tmp_path / "up" / "notes.md", uploads)])
    second = rag.ingest([_keep_upload(tmp_path / "up2" / "notes.md", uploads)])
    again = rag.ingest([_keep_upload(tmp_path / "up" / "notes.md", uploads)])
    assert (first.added, second.added, second.updated, again.unchanged) == (["notes.md"], ["notes.md"], [], ["notes.md"])
    texts = " ".join(c.text for c in rag.index.store.iter_all())
    assert "red cabinet" in texts and "north gate" in texts


# 10. the server process itself refuses to reach beyond the machine --------------------------------
def test_the_egress_guard_refuses_outside_hosts_and_allows_loopback_and_named_servers() -> None:
    import socket

    from rag.apps.egress import EgressGuard, EgressRefused

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    guard = EgressGuard({"chroma.internal"}).install()
    try:
        with pytest.raises(EgressRefused, match=r"93\.184\.215\.14"), socket.socket() as outgoing:
            outgoing.connect(("93.184.215.14", 443))
        with pytest.raises(socket.gaierror, match=r"evil\.example"):
            socket.getaddrinfo("evil.example", 80)
        with socket.create_connection(listener.getsockname(), timeout=5):
            pass
        assert guard.permits("chroma.internal") and guard.permits("::1") and not guard.permits("10.0.0.1")
    finally:
        guard.uninstall()
        listener.close()
    assert guard.refused == ["a connection to 93.184.215.14"]

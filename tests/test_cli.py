"""The CLI end to end, as a user runs it: real models, real Chroma in a temp dir, no egress."""

from __future__ import annotations

import json
import re
from pathlib import Path


def test_ingest_ask_status_offline(rag, corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    ask_first = rag("ask", "What is the refund policy?", index=index, check=3)
    assert "rag ingest" in ask_first.stderr
    assert not (index / "manifest.json").exists()

    ingested = rag("ingest", str(corpus), index=index)
    assert "indexed 5 new" in ingested.stdout

    result = rag("ask", "How do I clean the Quokka 3000 blender?", "--json", index=index)
    answer = json.loads(result.stdout)
    for key in ("question", "answer", "citations", "refused", "model", "embedder", "prompt_version", "latency_s"):
        assert key in answer, key
    assert not answer["refused"]
    assert answer["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert answer["citations"], answer
    assert all(set(c) >= {"n", "source", "page", "chunk_id", "quote", "supported"} for c in answer["citations"])
    # every citation points into the one file that holds the answer, at the right page and offsets
    from rag.ingest.loaders import load

    manual = load(corpus / "manual.pdf")
    for citation in answer["citations"]:
        assert citation["source"] == "manual.pdf", answer
        assert manual.text[citation["quote_start"] : citation["quote_end"]] == citation["quote"]
        assert manual.page_at(citation["quote_start"]) == citation["page"]
        assert f"[{citation['n']}]" in answer["answer"]
    assert "Quokka" in answer["answer"]

    streamed = rag("ask", "How many books can a library member borrow?", index=index)
    said, sources = streamed.stdout.split("Sources:", 1)
    listed = re.search(r'\[(\d+)\] faq\.html: "The library lends up to twelve books', sources)
    assert listed, sources  # the passage is listed under its number ...
    assert f"[{listed.group(1)}]" in said, said  # ... and the answer cites that number

    history = tmp_path / "history.json"
    history.write_text(json.dumps(["How do I clean the Quokka 3000 blender?"]))
    follow = json.loads(rag("ask", "And at what speed?", "--history", str(history), "--json", index=index).stdout)
    assert follow["question"] == "And at what speed?" and follow["query_method"] in {"rewritten", "completed"}
    assert "quokka" in follow["query"].lower() and not follow["refused"]

    status = json.loads(rag("status", "--json", index=index).stdout)
    assert status["files"] == 5 and status["chunks"] > 0
    assert status["embedder"] == "sentence-transformers/all-MiniLM-L6-v2 [openvino]"  # the default back-end, recorded
    assert status["model_path"].endswith(".gguf")


def test_bad_input_gets_clear_errors_and_leaves_the_index_alone(rag, corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    rag("ingest", str(corpus / "pets.md"), index=index)
    manifest = (index / "manifest.json").read_bytes()

    empty = rag("ask", "   ", index=index, check=2)
    assert "question is empty" in empty.stderr
    history = tmp_path / "history.json"
    history.write_text('["Are dogs allowed?", 42]')
    bad_history = rag("ask", "And cats?", "--history", str(history), index=index, check=2)
    assert "not a question" in bad_history.stderr

    missing = rag("ingest", str(tmp_path / "no-such-folder"), index=index, check=2)  # an InputError, as from the library
    assert "does not exist" in missing.stderr

    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "cat.heic").write_bytes(b"ftypheic")
    nothing = rag("ingest", str(tmp_path / "pictures"), index=index, check=1)
    assert "no supported files" in nothing.stderr and "unsupported-type" in nothing.stderr

    no_model = rag("ask", "Are dogs allowed?", "--model", str(tmp_path / "missing.gguf"), index=index, check=5)
    assert "model file not found" in no_model.stderr and "--model" in no_model.stderr

    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("not a model")
    wrong = rag("ask", "Are dogs allowed?", "--model", str(not_gguf), index=index, check=5)
    assert "not a GGUF" in wrong.stderr

    offline = rag("ask", "Are dogs allowed?", "--offline", "--model", "someone/some-repo/model.Q4_K_M.gguf", index=index, check=5)
    assert "downloads are off" in offline.stderr and "--model /path/to/file.gguf" in offline.stderr

    too_long = rag("ask", "dogs " * 6000, "--n-ctx", "2048", index=index, check=2)
    assert "too long" in too_long.stderr

    assert (index / "manifest.json").read_bytes() == manifest


def test_demo_runs_on_the_bundled_sample(rag, tmp_path: Path) -> None:
    result = rag("demo", index=tmp_path / "demo-index")
    assert "indexed 5 new" in result.stdout
    answer = result.stdout.split("\nA: ", 1)[1].split("\nSources:", 1)[0]
    assert "6 years" in answer and "void" in answer and "[1]" in answer, answer  # both parts of the question
    assert "[1] water-heater-manual.pdf (page 3)" in result.stdout


def test_serve_refuses_a_network_bind_without_auth(rag, tmp_path: Path) -> None:
    result = rag("serve", "--host", "0.0.0.0", index=tmp_path / "idx", check=2)
    assert "without authentication" in result.stderr and "--auth" in result.stderr
    bad = rag("serve", "--host", "0.0.0.0", "--auth", "nopassword", index=tmp_path / "idx", check=2)
    assert "user:password" in bad.stderr


def test_one_writer_readers_keep_working_and_a_killed_writer_leaves_no_stale_lock(rag, corpus: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    index = tmp_path / "idx"
    rag("ingest", str(corpus / "faq.html"), index=index)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from rag.index.manifest import WriterLock\n"
            "with WriterLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)",
            str(index),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        refused = rag("ingest", str(corpus), index=index, check=6)
        assert f"pid {holder.pid}" in refused.stderr and "--index" in refused.stderr
        assert time.monotonic() - started < 60  # refused at once, not after waiting
        assert json.loads(rag("status", "--json", index=index).stdout)["files"] == 1  # readers keep working
        assert json.loads(rag("ask", "How many books can a member borrow?", "--json", index=index).stdout)["citations"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the dead writer's lock: the next writer proceeds
    assert "indexed 4 new" in rag("ingest", str(corpus), index=index).stdout


def test_output_cut_short_by_the_reader_is_not_an_error(corpus: Path, tmp_path: Path) -> None:
    """`rag status | head -3` once ended in "internal error: BrokenPipeError"."""
    import subprocess
    import sys

    index = tmp_path / "idx"
    command = [sys.executable, "-m", "rag.apps.cli", "status", "--index", str(index)]
    shown = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert shown.stdout is not None and shown.stderr is not None
    shown.stdout.close()  # the reader goes away before rag has started writing
    assert shown.wait(timeout=120) == 0
    assert b"internal error" not in shown.stderr.read()


def test_a_second_ingest_prints_no_chroma_warnings(rag, corpus: Path, tmp_path: Path) -> None:
    """chromadb rebuilds a collection's embedding function by name when a new process reopens it;
    ours was not registered, so every later `rag ingest` printed "Could not reconstruct embedding function"."""
    index = tmp_path / "idx"
    rag("ingest", str(corpus / "faq.html"), index=index)
    (corpus / "later.md").write_text("# Later\n\nThe night bus leaves at 23:40.\n", encoding="utf-8")
    again = rag("ingest", str(corpus / "faq.html"), str(corpus / "later.md"), index=index)
    assert "indexed 1 new" in again.stdout and "Warning" not in again.stderr, again.stderr

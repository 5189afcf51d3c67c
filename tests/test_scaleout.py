"""Scale-out on real servers: a `chroma run` store and a `python -m llama_cpp.server` model, both
started by the test on 127.0.0.1, driven through the same CLI as the embedded setup."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, serve
from servers import llama_server_argv

pytestmark = pytest.mark.slow


@pytest.fixture
def llm_server(tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    from rag.answer.llm import resolve_model
    from rag.config import Settings

    model = resolve_model("bundled:smollm2", Settings(index_dir=tmp_path / "unused", offline=True))
    port = free_port()
    argv = llama_server_argv(model, port, seed=0)
    url = f"http://127.0.0.1:{port}/v1"
    yield from (url for _ in serve(argv, f"{url}/models", tmp_path / "llm.log"))


def test_ingest_ask_and_reingest_against_a_chroma_server(rag, corpus: Path, tmp_path: Path, chroma_server: str) -> None:
    env = {"RAG_CHROMA_URL": chroma_server}
    index = tmp_path / "idx"
    first = rag("ingest", str(corpus), "--json", index=index, env=env)
    report = json.loads(first.stdout)
    assert len(report["added"]) == 5 and report["skipped"] == []
    assert not (index / "chroma").exists()  # the vectors live on the server, not in the index folder

    answer = json.loads(rag("ask", "How do I clean the Quokka 3000 blender?", "--json", index=index, env=env).stdout)
    assert not answer["refused"] and {c["source"] for c in answer["citations"]} == {"manual.pdf"}

    status = json.loads(rag("status", "--json", index=index, env=env).stdout)
    assert status["files"] == 5 and status["store_chunks"] == status["chunks"] > 0
    assert chroma_server in status["store"]

    # incremental: one file changed, one deleted; the others are not re-embedded
    (corpus / "pets.md").write_text("# Pet policy\n\nThe Zanzibar office allows dogs on Tuesdays only.\n", encoding="utf-8")
    (corpus / "faq.html").unlink()
    again = json.loads(rag("ingest", str(corpus), "--json", index=index, env=env).stdout)
    assert len(again["updated"]) == 1 and len(again["removed"]) == 1 and len(again["unchanged"]) == 3
    status = json.loads(rag("status", "--json", index=index, env=env).stdout)
    assert status["files"] == 4 and status["store_chunks"] == status["chunks"]
    tuesday = json.loads(rag("ask", "On which day are dogs allowed in the Zanzibar office?", "--json", index=index, env=env).stdout)
    assert "Tuesday" in json.dumps(tuesday["citations"] + tuesday["evidence"]) and "Friday" not in json.dumps(tuesday["citations"])

    # nothing else uses the collection: the same server, another collection, is another index
    other = json.loads(
        rag("ingest", str(corpus / "sub"), "--json", index=tmp_path / "idx2", env=env | {"RAG_CHROMA_COLLECTION": "second"}).stdout
    )
    assert len(other["added"]) == 1
    assert json.loads(rag("status", "--json", index=index, env=env).stdout)["store_chunks"] == status["store_chunks"]


def test_unreachable_chroma_server_is_a_clear_error(rag, corpus: Path, tmp_path: Path) -> None:
    result = rag("ingest", str(corpus), index=tmp_path / "idx", env={"RAG_CHROMA_URL": f"http://127.0.0.1:{free_port()}"}, check=7)
    assert "cannot reach the Chroma server" in result.stderr and "chroma run" in result.stderr


def test_ask_and_batch_through_an_openai_compatible_server(rag, corpus: Path, tmp_path: Path, llm_server: str) -> None:
    index = tmp_path / "idx"
    rag("ingest", str(corpus), index=index)
    env = {"RAG_LLM_URL": llm_server}
    answer = json.loads(rag("ask", "How many books can a library member borrow?", "--json", index=index, env=env).stdout)
    assert llm_server in answer["model"]
    assert not answer["refused"] and {c["source"] for c in answer["citations"]} == {"faq.html"}

    streamed = rag("ask", "How do I clean the Quokka 3000 blender?", index=index, env=env)
    assert "manual.pdf" in streamed.stdout

    questions = tmp_path / "questions.txt"
    asked = [
        "How many books can a library member borrow?",
        "When are dogs allowed in the office?",
        "How fast must the supplier respond to outages?",
        "When are travel expenses reimbursed?",
    ]
    questions.write_text("\n".join(asked) + "\n", encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    rag("batch", str(questions), "-o", str(out), "--concurrency", "3", index=index, env=env)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in records] == asked  # written in input order whatever finished first
    assert all(r["model_server"] == llm_server and "error" not in r for r in records)
    assert sum(not r["refused"] for r in records) >= 3


def test_unreachable_llm_server_is_a_clear_error(rag, corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    rag("ingest", str(corpus / "faq.html"), index=index)
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = rag("ask", "How many books can a member borrow?", index=index, env={"RAG_LLM_URL": url}, check=7)
    assert "cannot reach the LLM server" in result.stderr and "llama_cpp.server" in result.stderr


def test_instances_on_other_folders_share_documents_and_keywords_through_the_server(
    rag, corpus: Path, tmp_path: Path, chroma_server: str
) -> None:
    """Two instances, each with its own index folder (as on two machines), one Chroma collection."""
    env = {"RAG_CHROMA_URL": chroma_server, "RAG_CHROMA_COLLECTION": "shared_instances"}
    writer, reader = tmp_path / "writer-index", tmp_path / "reader-index"
    rag("ingest", str(corpus), index=writer, env=env)

    status = json.loads(rag("status", "--json", index=reader, env=env).stdout)
    assert status["files"] == 5 and status["chunks"] == status["store_chunks"] == status["keyword_chunks"] > 0
    keywords_only = env | {"RAG_DENSE_WEIGHT": "0", "RAG_ANSWER_MODE": "extract"}  # ranked by the keyword index alone
    answer = json.loads(rag("ask", "Which office allows dogs?", "--json", index=reader, env=keywords_only).stdout)
    assert answer["citations"][0]["source"] == "pets.md"

    # a change made by one instance reaches the other: new file, changed file, removed file
    (corpus / "boats.txt").write_text("The Wombat sailing club launches its dinghies at dawn.\n", encoding="utf-8")
    (corpus / "faq.html").unlink()
    rag("ingest", str(corpus), index=writer, env=env)
    status = json.loads(rag("status", "--json", index=reader, env=env).stdout)
    assert status["files"] == 5 and "boats.txt" in status["file_names"] and "faq.html" not in status["file_names"]
    assert status["chunks"] == status["store_chunks"] == status["keyword_chunks"]
    found = json.loads(
        rag(
            "ask", "When does the Wombat sailing club launch dinghies?", "--json", "--where", "type:txt", index=reader, env=keywords_only
        ).stdout
    )
    assert found["citations"][0]["source"] == "boats.txt"

    # the other way round: the reader instance writes, the first one sees it
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "kiosk.md").write_text("# Kiosk\n\nThe kiosk sells quince jam on Sundays.\n", encoding="utf-8")
    rag("ingest", str(extra), index=reader, env=env)
    status = json.loads(rag("status", "--json", index=writer, env=env).stdout)
    assert "kiosk.md" in status["file_names"] and status["chunks"] == status["keyword_chunks"] == status["store_chunks"]

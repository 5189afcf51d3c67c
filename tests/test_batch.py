"""`rag batch`: bad rows, resuming after a crash, provenance, reproducibility. Real models and Chroma."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.apps.batch import read_questions, run_batch
from rag.config import Settings
from rag.errors import InputError
from rag.service import Rag


@pytest.fixture
def rag(corpus: Path, settings: Settings, embedder, llm) -> Rag:
    rag = Rag(settings, embedder=embedder, llm=llm)
    rag.ingest([corpus])
    return rag


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"id": "a", "question": "Are dogs allowed?"}\n{"id": "b", "question": "  "}\n{oops\n[1, 2]\n\n{"text": "How many books?"}\n'
    )
    questions, bad = read_questions(path)
    assert [(q.id, q.text) for q in questions] == [("a", "Are dogs allowed?"), ("6", "How many books?")]
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (2, "empty or missing 'question'"),
        (3, "malformed JSON"),
        (4, "not a JSON object"),
    ]

    csv_path = tmp_path / "q.csv"
    csv_path.write_text('id,question\nx1,"Are cats allowed, or not?"\nx2,\n')
    questions, bad = read_questions(csv_path)
    assert [(q.id, q.text) for q in questions] == [("x1", "Are cats allowed, or not?")]
    assert [b.line for b in bad] == [3]

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,query\n1,hello\n")
    with pytest.raises(InputError, match="no 'question' column"):
        read_questions(wrong)


def test_resume_after_a_crash_loses_nothing_and_repeats_nothing(rag: Rag, tmp_path: Path) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text("How quickly must the supplier respond to outages?\nHow many books can a library member borrow?\n")
    output = tmp_path / "answers.jsonl"
    first = run_batch(rag, questions, output)
    assert first.answered == 2
    # a crash in the middle of writing a third record leaves a torn line behind
    with output.open("a") as handle:
        handle.write('{"id": "3", "question": "Which tra')
    questions.write_text(questions.read_text() + "When are travel expenses reimbursed?\n")
    second = run_batch(rag, questions, output)
    assert (second.answered, second.skipped_done) == (1, 2)
    records = lines(output)  # every line parses: the torn one is gone
    assert [r["id"] for r in records] == ["1", "2", "3"]
    third = records[2]
    for key in (
        "question",
        "answer",
        "citations",
        "refused",
        "model",
        "model_sha256",
        "embedder",
        "index_fingerprint",
        "prompt_version",
        "retrieval",
        "latency_s",
    ):
        assert key in third, key
    assert len(third["model_sha256"]) == 64
    assert third["question"] == "When are travel expenses reimbursed?"
    assert all(c["source"] == os.path.join("sub", "travel.txt") for c in third["citations"])


def test_same_inputs_and_seed_give_the_same_answers(rag: Rag, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "1", "question": "How do I clean the Quokka 3000?"}\n{"id": "2", "question": "Are cats allowed in the office?"}\n'
    )
    run_batch(rag, questions, tmp_path / "a.jsonl")
    run_batch(rag, questions, tmp_path / "b.jsonl")
    strip = lambda r: {k: v for k, v in r.items() if k != "latency_s"}  # noqa: E731
    assert [strip(r) for r in lines(tmp_path / "a.jsonl")] == [strip(r) for r in lines(tmp_path / "b.jsonl")]


def test_rows_of_a_conversation_are_follow_ups_and_each_record_carries_its_query(rag: Rag, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "a1", "conversation": "a", "question": "How fast must the supplier respond to outages?"},
        {"id": "b1", "conversation": "b", "question": "How many books can a library member borrow?"},
        {"id": "a2", "conversation": "a", "question": "And on which days?"},
        {"id": "s", "question": "And on which days?"},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "answers.jsonl"
    run_batch(rag, questions, output)
    records = {r["id"]: r for r in lines(output)}
    assert records["a2"]["conversation"] == "a" and records["a2"]["question"] == "And on which days?"
    assert records["a2"]["query_method"] in {"rewritten", "completed"}
    assert "outages" in records["a2"]["query"]  # the follow-up of "a", not of "b"
    assert "books" not in records["a2"]["query"]
    assert records["s"]["query"] == "And on which days?" and "conversation" not in records["s"]
    # resuming re-resolves the conversation from its earlier rows: the same query comes back
    output.write_text("".join(json.dumps(records[i]) + "\n" for i in ("a1", "b1", "s")))
    run_batch(rag, questions, output)
    assert {r["id"]: r for r in lines(output)}["a2"]["query"] == records["a2"]["query"]


def test_copies_of_the_model_answer_in_parallel_in_input_order(rag: Rag, tmp_path: Path) -> None:
    asked = {
        "How do I clean the Quokka 3000?": "manual.pdf",
        "How many books can a library member borrow?": "faq.html",
        "How fast must the supplier respond to outages?": "contract.docx",
        "When are travel expenses reimbursed?": "sub/travel.txt",
    }
    questions = tmp_path / "q.txt"
    questions.write_text("\n".join(asked) + "\n", encoding="utf-8")
    report = run_batch(rag, questions, tmp_path / "a.jsonl", concurrency=2)
    records = lines(tmp_path / "a.jsonl")
    assert report.answered == 4 and [r["question"] for r in records] == list(asked)
    for record, source in zip(records, asked.values()):
        assert not record["refused"] and {c["source"] for c in record["citations"]} == {source}, record

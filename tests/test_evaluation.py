"""The evaluation harness on a tiny BEIR/QA folder made by the test (plain and gzip)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rag.apps.evaluation import (
    evaluate_qa,
    evaluate_retrieval,
    f1_score,
    normalise_answer,
    retrieval_metrics,
)
from rag.config import Settings
from rag.service import Rag

DOCS = [
    {"_id": "d1", "title": "Volcanoes", "text": "Mount Erebus is the southernmost active volcano on Earth, in Antarctica."},
    {"_id": "d2", "title": "Rivers", "text": "The Danube flows through ten countries before reaching the Black Sea."},
    {"_id": "d3", "title": "Birds", "text": "The Arctic tern migrates from the Arctic to the Antarctic every year."},
]
QUERIES = [
    {"_id": "q1", "text": "Which is the southernmost active volcano?"},
    {"_id": "q2", "text": "How many countries does the Danube flow through?"},
    {"_id": "q3", "text": "Which bird migrates from the Arctic to the Antarctic?"},
]


def write_dataset(folder: Path, gz: bool) -> Path:
    (folder / "qrels").mkdir(parents=True)

    def write(name: str, text: str) -> None:
        path = folder / name
        if gz:
            with gzip.open(f"{path}.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            path.write_text(text, encoding="utf-8")

    write("corpus.jsonl", "".join(json.dumps(d) + "\n" for d in DOCS))
    write("queries.jsonl", "".join(json.dumps(q) + "\n" for q in QUERIES))
    write("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    qa = [
        {"id": "a1", "question": "Which is the southernmost active volcano on Earth?", "answers": ["Mount Erebus"], "doc_ids": ["d1"]},
        {"id": "a2", "question": "Through how many countries does the Danube flow?", "answers": ["ten"], "doc_ids": ["d2"]},
    ]
    write("qa.jsonl", "".join(json.dumps(q) + "\n" for q in qa))
    return folder


def test_metric_definitions() -> None:
    perfect = retrieval_metrics(["a", "b"], {"a": 1})
    assert perfect == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    second = retrieval_metrics(["b", "a"], {"a": 1})
    assert second["mrr@10"] == 0.5 and 0.6 < second["ndcg@10"] < 0.64
    assert retrieval_metrics(["b"], {"a": 1})["recall@100"] == 0.0
    assert normalise_answer("The  Nobel Prize!") == "nobel prize"
    assert f1_score("the Nobel prize in physics", "Nobel Prize") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))


@pytest.mark.parametrize("gz", [False, True])
def test_retrieval_report_compares_variants(tmp_path: Path, embedder, gz: bool) -> None:
    folder = write_dataset(tmp_path / "beir", gz)
    rag = Rag(Settings(index_dir=tmp_path / "index"), embedder=embedder)
    report = evaluate_retrieval(folder, rag, ["dense", "bm25", "hybrid"])
    assert report["queries"] == 3 and report["documents"] == 3
    for variant in ("dense", "bm25", "hybrid"):
        metrics = report["variants"][variant]
        assert set(metrics) >= {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert metrics["recall@10"] == 1.0 and metrics["mrr@10"] == 1.0
    # the eval corpus lives in its own index, not in the user's
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_qa_report_has_every_metric_and_a_chart(tmp_path: Path, embedder) -> None:
    folder = write_dataset(tmp_path / "qa", gz=False)
    rag = Rag(Settings(index_dir=tmp_path / "index", answer_mode="extract"), embedder=embedder)
    report = evaluate_qa(folder, rag, limit=None, seed=0, chart=tmp_path / "chart.png")
    for key in (
        "exact_match",
        "f1",
        "containment",
        "citation_precision",
        "retrieval_recall@5",
        "refusal_rate",
        "latency_p50_s",
        "latency_p95_s",
        "settings",
    ):
        assert key in report, key
    assert report["questions"] == 2
    assert report["containment"] == 1.0  # the extractive answer quotes the gold sentence
    assert report["citation_precision"] == 1.0
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_unanswerable_mode_removes_the_gold_documents(tmp_path: Path, embedder) -> None:
    folder = write_dataset(tmp_path / "qa", gz=False)
    rag = Rag(Settings(index_dir=tmp_path / "index", answer_mode="extract"), embedder=embedder)
    report = evaluate_qa(folder, rag, limit=None, seed=0, unanswerable=True, details=tmp_path / "details.jsonl")
    assert report["false_refusal_rate"] == 0.0
    rows = [json.loads(line) for line in (tmp_path / "details.jsonl").read_text().splitlines()]
    assert [r["setting"] for r in rows] == ["answerable"] * 2 + ["unanswerable"] * 2
    assert all(not r["refused"] and r["cited_docs"] == r["gold_docs"] for r in rows[:2])
    assert all(r["refused"] and r["mode"] == "refusal" and r["cited_docs"] == [] for r in rows[2:])
    assert report["unanswerable"]["documents_removed"] == 2
    # with their gold passages gone, both questions are refused (the other passage is unrelated)
    assert report["refusal_rate_unanswerable"] == 1.0
    assert report["unsupported_sentence_share"] is None  # extract mode: the model wrote no sentence
    assert report["generated_share"] == 0.0 and report["rejected_supported"] is None


def test_unanswerable_mode_counts_questions_another_document_answers(tmp_path: Path, embedder) -> None:
    folder = write_dataset(tmp_path / "qa", gz=False)
    repeat = {"_id": "d4", "title": "Antarctica", "text": "Mount Erebus, on Ross Island, is the southernmost active volcano on Earth."}
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in [*DOCS, repeat]), encoding="utf-8")
    rag = Rag(Settings(index_dir=tmp_path / "index", answer_mode="extract"), embedder=embedder)
    report = evaluate_qa(folder, rag, limit=None, seed=0, unanswerable=True)
    blind = report["unanswerable"]
    # d1 is removed, but d4 still says it: that answer is right, and is counted apart
    assert blind["answered_with_gold_from_other_documents"] == 1
    assert report["refusal_rate_unanswerable"] == 0.5
    assert blind["refusal_rate_without_those"] == 1.0
    assert "answered_with_gold" not in report


def test_each_miss_is_put_down_to_one_stage() -> None:
    from rag.apps.evaluation import miss_stage
    from rag.schema import Answer, Claim

    def answer(text: str, mode: str = "generated", claims: tuple[str, ...] = (), kept: bool = True, refused: bool = False) -> Answer:
        said = [Claim(c, [1] if kept else [], kept, 0.5) for c in claims]
        return Answer("q", text, [], refused, False, "m.gguf", "e", "v", 0.1, mode=mode, claims=said)

    golds = ["three months"]
    assert miss_stage(answer("It is three months [1].", claims=("It is three months.",)), golds, True) is None
    assert miss_stage(answer("It is two weeks [1].", claims=("It is two weeks.",)), golds, False) == "retrieval"
    assert miss_stage(answer("It is two weeks [1].", claims=("It is two weeks.",)), golds, True) == "model"
    left_out = answer("The documents do not say.", mode="refusal", claims=("It is three months.",), kept=False, refused=True)
    assert miss_stage(left_out, golds, True) == "judge"  # written, then left out
    assert miss_stage(answer("The documents do not say.", mode="refusal", refused=True), golds, True) == "judge"  # retrieved, refused
    assert miss_stage(answer("It is three months [1]."), golds, False, answerable=False) == "judge"  # the gold passage was removed
    assert miss_stage(answer("The documents do not say.", mode="refusal", refused=True), golds, False, answerable=False) is None

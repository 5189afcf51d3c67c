"""Questions limited to chosen documents (`--where`): the conditions, and both retrievers filling
their places from the chosen files only (real index, bundled embedder)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.index.manifest import FileEntry
from rag.index.where import Where, parse_where


def _entry(name: str, language: str = "en", mtime: str = "2025-03-15") -> FileEntry:
    stamp = int(time.mktime(time.strptime(mtime + " 12:00", "%Y-%m-%d %H:%M"))) * 10**9
    return FileEntry("0" * 64, 1, stamp, name, ["c"], None, language)


def test_conditions_on_one_key_allow_any_value_and_keys_must_all_hold() -> None:
    where = Where.parse(["source:contracts/*", "type:pdf,docx", "type:md"])
    assert where.matches("/home/a/docs/contracts/lease.pdf", _entry("contracts/lease.pdf"))
    assert where.matches("/x/contracts/old/lease.md", _entry("contracts/old/lease.md"))
    assert not where.matches("/x/contracts/lease.txt", _entry("contracts/lease.txt"))  # type fails
    assert not where.matches("/x/notes/lease.pdf", _entry("notes/lease.pdf"))  # source fails
    assert Where.parse(["source:contracts"]).matches("/x/contracts/a/b.pdf", _entry("contracts/a/b.pdf"))  # a folder: all under it
    assert Where.parse(["source:/home/a/docs/*.pdf"]).matches("/home/a/docs/x.pdf", _entry("x.pdf"))  # or the full path
    assert Where.parse(["language:DE"]).matches("/x/a.md", _entry("a.md", "de"))
    assert not Where.parse(["language:de"]).matches("/x/a.md", _entry("a.md", "en"))


def test_modified_dates_compare_by_day_month_or_year() -> None:
    march = _entry("a.md", mtime="2025-03-15")
    for expression, expected in [
        ("modified:2025", True),
        ("modified:2025-03", True),
        ("modified:2025-04", False),
        ("modified:>=2025-03-15", True),
        ("modified:>2025-03-15", False),
        ("modified:<2025-04", True),
        ("modified:<=2024", False),
    ]:
        assert Where.parse([expression]).matches("/x/a.md", march) is expected, expression


@pytest.mark.parametrize("expression", ["bogus", "colour:red", "source:", "modified:last week", "modified:2025-13", "modified:2025-02-30"])
def test_a_filter_that_cannot_be_read_says_how_to_write_one(expression: str) -> None:
    with pytest.raises(InputError) as info:
        Where.parse([expression])
    assert info.value.hint and ("KEY:VALUE" in info.value.hint or "YYYY" in info.value.hint)


def test_no_conditions_is_no_filter() -> None:
    assert parse_where([]) is None and parse_where(["  "]) is None
    assert str(Where.parse(["type:pdf"])) == '--where "type:pdf"'


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory, embedder):
    """Six notes on notice periods in two folders, and a German one."""
    from rag.config import Settings
    from rag.service import Rag

    root = tmp_path_factory.mktemp("where")
    docs = root / "docs"
    (docs / "contracts").mkdir(parents=True)
    (docs / "notes").mkdir()
    for n in range(4):
        (docs / "notes" / f"note{n}.md").write_text(
            f"# Note {n}\n\nThe notice period for the lease is {n + 1} weeks, said the note.\n", encoding="utf-8"
        )
    (docs / "contracts" / "lease.txt").write_text(
        "Under this lease, the tenant's notice period is three months, ending at a month's end.\n", encoding="utf-8"
    )
    (docs / "contracts" / "parking.md").write_text("# Parking\n\nThe parking space costs 80 EUR a month.\n", encoding="utf-8")
    (docs / "contracts" / "mietvertrag.md").write_text(
        "# Mietvertrag\n\nDie Kündigungsfrist beträgt drei Monate zum Monatsende. Die Miete ist am dritten Werktag fällig.\n",
        encoding="utf-8",
    )
    old = time.time() - 400 * 86_400
    os.utime(docs / "contracts" / "parking.md", (old, old))
    rag = Rag(Settings(index_dir=root / "index", offline=True, answer_mode="extract", top_k=3), embedder=embedder)
    rag.ingest([docs])
    return rag, docs


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_retriever_fills_top_k_from_the_chosen_documents_only(filtered, mode: str) -> None:
    rag, _ = filtered
    retriever = rag.retriever()
    question = "How long is the notice period of the lease?"
    unfiltered = {h.chunk.display_name for h in retriever.retrieve(question, top_k=3, mode=mode).hits}
    assert any(name.startswith("notes") for name in unfiltered)  # without the filter the notes crowd in
    hits = retriever.retrieve(question, top_k=3, mode=mode, where=Where.parse(["source:contracts/*"])).hits
    names = [h.chunk.display_name for h in hits]
    assert names and all(name.startswith("contracts" + os.sep) for name in names), names
    if mode != "bm25":  # keyword search finds only the passages that share a word; dense ranks them all
        assert len(names) == 3, names


def test_language_type_and_date_conditions_choose_the_files(filtered) -> None:
    rag, _ = filtered
    index = rag.require_index()
    names = lambda *w: sorted(index.manifest.files[s].display_name for s in index.select(Where.parse(w)).sources)  # noqa: E731
    assert names("language:de") == [os.path.join("contracts", "mietvertrag.md")]
    assert names("type:txt") == [os.path.join("contracts", "lease.txt")]
    assert names(f"modified:<{time.strftime('%Y', time.localtime(time.time() - 200 * 86_400))}") == [
        os.path.join("contracts", "parking.md")
    ]
    with pytest.raises(InputError) as info:
        index.select(Where.parse(["type:pdf"]))
    assert "no indexed document matches" in info.value.problem


def test_an_answer_cites_only_the_chosen_documents(filtered, no_egress) -> None:
    rag, _ = filtered
    answer = rag.ask("How long is the notice period of the lease?", where=Where.parse(["source:contracts/lease.txt"]))
    assert not answer.refused, answer.refusal_reason
    assert {c.display_name for c in answer.citations} == {os.path.join("contracts", "lease.txt")}
    assert "three months" in answer.text


def test_the_cli_filters_ask_and_batch_and_refuses_a_filter_that_matches_nothing(filtered, rag, tmp_path: Path) -> None:
    app, _ = filtered
    index = app.settings.index_dir
    extract = {"RAG_ANSWER_MODE": "extract"}
    out = rag("ask", "How long is the notice period?", "--json", "--where", "type:txt", index=index, env=extract)
    assert {c["source"] for c in json.loads(out.stdout)["citations"]} == {os.path.join("contracts", "lease.txt")}
    missing = rag("ask", "How long is the notice period?", "--where", "source:invoices/*", index=index, env=extract, check=None)
    assert missing.returncode != 0 and "no indexed document matches" in missing.stderr and "fix:" in missing.stderr
    unreadable = rag("ask", "How long is the notice period?", "--where", "colour:red", index=index, env=extract, check=None)
    assert unreadable.returncode != 0 and "KEY:VALUE" in unreadable.stderr
    questions = tmp_path / "q.txt"
    questions.write_text("How long is the notice period?\nWhat does the parking space cost?\n", encoding="utf-8")
    answers = tmp_path / "a.jsonl"
    rag("batch", str(questions), "-o", str(answers), "--where", "source:contracts", index=index, env=extract)
    records = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    assert [r["where"] for r in records] == [["source:contracts"]] * 2
    assert all(c["source"].startswith("contracts") for r in records for c in r["citations"])

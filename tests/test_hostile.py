"""A corpus of hostile files, made by the test (with `build` from `scripts/hostile_corpus.py`):
ingestion finishes, every bad file has a typed reason, no parse runs unbounded, memory stays
bounded, and nothing outside the ingested root is read."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hostile_corpus import EXPECTED, GOOD, HIDDEN, LIMITS, LINKS, QUESTIONS, SECRET, build, pdf_bomb, unlock

pytestmark = pytest.mark.slow


def test_hostile_corpus_is_reported_file_by_file(rag, tmp_path: Path) -> None:
    root = build(tmp_path)

    index = tmp_path / "idx"
    peak_file = tmp_path / "peak-mb.txt"
    started = time.monotonic()
    result = rag(
        "ingest",
        str(root),
        "--json",
        "--max-file-mb",
        "2",
        index=index,
        env=LIMITS | {"RAG_TEST_PEAK_FILE": str(peak_file)},
        timeout=600,
        as_user=True,
    )
    elapsed = time.monotonic() - started
    unlock(root)
    peak_mb = json.loads(peak_file.read_text())
    report = json.loads(result.stdout)
    reasons = {e["path"]: e["reason"] for e in report["skipped"]}

    assert report["added"] == GOOD
    assert reasons == EXPECTED, report["skipped"]
    assert not any(ch in result.stdout + result.stderr for ch in "\x1b\x07\x9b")
    assert elapsed < 300  # every parse is bounded (20 s each at most)
    # a 1 GB bomb never lands anywhere: each parse worker stays near its cap (768 MB), and the
    # ingesting process (the embedder: about 3 GB here) gains no bomb's gigabyte
    assert peak_mb["workers"] < 1200 and peak_mb["own"] < 4000, peak_mb

    # nothing outside the root was read into the index
    from rag.config import Settings
    from rag.service import Rag

    texts = " ".join(c.text for c in Rag(Settings(index_dir=index, offline=True)).index.store.iter_all())
    assert "lighthouse" in texts and "badge office" in texts and SECRET.split()[-1] not in texts
    assert "forty metres deep" in texts and "spare key" in texts and "vault opens at dawn" in texts
    assert HIDDEN not in texts and "pirate" not in texts  # hidden HTML text is not a document's text

    # documents reach the terminal without escape codes, and answers without live outside links
    extract = {"RAG_ANSWER_MODE": "extract"}
    ferry = rag("ask", QUESTIONS["escapes.md"], index=index, env=extract)
    assert "07:40" in ferry.stdout and not any(ch in ferry.stdout + ferry.stderr for ch in "\x1b\x07\x9b")
    portal = json.loads(rag("ask", QUESTIONS["links.md"], "--json", index=index, env=extract).stdout)["answer"]
    assert "supplier portal" in portal
    for link in LINKS:
        assert link not in portal, portal
    assert "://" not in portal and "data:" not in portal and "&#58;" not in portal, portal
    assert not re.search(r"(^|[\s(\"'])//", portal), portal  # no live scheme-relative link either


def test_each_parse_runs_under_a_time_limit_and_a_memory_cap(tmp_path: Path) -> None:
    from docgen import make_pdf

    from rag.ingest.isolation import load_isolated
    from rag.ingest.loaders import LoadError

    bomb = tmp_path / "bomb.pdf"
    pdf_bomb(bomb)
    started = time.monotonic()
    with pytest.raises(LoadError) as err:
        load_isolated(bomb, "bomb.pdf", timeout_s=0.05, memory_mb=768)
    assert err.value.reason == "timeout" and "RAG_PARSE_TIMEOUT_S" in err.value.detail
    assert time.monotonic() - started < 10  # stopped, not waited for

    pages = make_pdf(tmp_path / "report.pdf", [f"Page {n}: the quarterly figures for region {n}." for n in range(1, 30)])
    assert "quarterly" in load_isolated(pages, "report.pdf", timeout_s=60, memory_mb=1024).text
    with pytest.raises(LoadError) as err:  # the same file under a cap too small for the parser itself
        load_isolated(pages, "report.pdf", timeout_s=60, memory_mb=24)
    assert err.value.reason in {"too-large", "parser-crashed"}

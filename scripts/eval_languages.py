"""Retrieval (and optionally answers) in every language of a parallel set such as XQuAD, and across
languages: questions of one language over the documents of another. Prints one JSON object.

    .venv/bin/python scripts/eval_languages.py ../shared/eval/xquad-dev8 \
        --embedder bundled:multilingual-e5-small --cross en:de,en:zh,en:ar,zh:en [--qa --limit 40]

Each language is a BEIR/QA folder (corpus.jsonl, queries.jsonl, qrels/test.tsv, qa.jsonl) named by
its code; a cross-lingual pair q:d takes the questions of q and the corpus of d (same document ids).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.apps.evaluation import evaluate_qa, evaluate_retrieval
from rag.config import Settings
from rag.service import Rag


def _pair_folder(root: Path, questions: str, corpus: str, work: Path) -> Path:
    """A folder with the questions (and qrels, qa) of one language and the corpus of another."""
    folder = work / f"{questions}-over-{corpus}"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    links = {"corpus.jsonl": root / corpus / "corpus.jsonl", "queries.jsonl": root / questions / "queries.jsonl"}
    links |= {"qrels/test.tsv": root / questions / "qrels" / "test.tsv"}
    for name, target in links.items():
        if not (folder / name).exists():
            os.symlink(target.resolve(), folder / name)
    # an answer may be in the question's language or quote the document's: either language's gold counts
    in_corpus = {item["id"]: item["answers"] for item in _jsonl(root / corpus / "qa.jsonl")}
    (folder / "qa.jsonl").unlink(missing_ok=True)  # never write through an older run's link into the data
    with (folder / "qa.jsonl").open("w", encoding="utf-8") as out:
        for item in _jsonl(root / questions / "qa.jsonl"):
            item["answers"] = list(dict.fromkeys(item["answers"] + in_corpus.get(item["id"], [])))
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    return folder


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def _measure(folder: Path, rag: Rag, qa: bool, limit: int | None) -> dict[str, Any]:
    report = evaluate_retrieval(folder, rag, ["dense", "bm25", "hybrid"])
    row: dict[str, Any] = {mode: v["ndcg@10"] for mode, v in report["variants"].items()}
    if qa:
        answers = evaluate_qa(folder, rag, limit=limit, seed=0, unanswerable=True)
        row |= {k: answers.get(k) for k in ("containment", "refusal_rate", "citation_precision")}
        row["refusals_without_gold"] = answers.get("unanswerable", {}).get("refusal_rate")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder with one subfolder per language")
    parser.add_argument("--languages", default="", help="comma-separated codes (default: every subfolder)")
    parser.add_argument("--cross", default="", help="comma-separated question:corpus pairs, e.g. en:de,zh:en")
    parser.add_argument("--embedder", default=None, help="as rag's --embedder")
    parser.add_argument("--model", default=None, help="as rag's --model (with --qa)")
    parser.add_argument("--qa", action="store_true", help="also answer the questions (slow with a real reader)")
    parser.add_argument("--limit", type=int, default=None, help="questions answered per language (with --qa)")
    parser.add_argument("--work", type=Path, default=None, help="where indexes go (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-languages-"))
    overrides = {k: v for k, v in {"embedder": args.embedder, "model": args.model}.items() if v}
    rag = Rag(Settings(index_dir=work / "index", offline=True, **overrides))
    languages = [c for c in args.languages.split(",") if c] or sorted(p.name for p in args.root.iterdir() if p.is_dir())
    rows: dict[str, Any] = {}
    for code in languages:
        rows[code] = _measure(args.root / code, rag, args.qa, args.limit)
        print(json.dumps({code: rows[code]}), file=sys.stderr, flush=True)
    for pair in (p for p in args.cross.split(",") if p):
        questions, corpus = pair.split(":")
        rows[pair] = _measure(_pair_folder(args.root, questions, corpus, work), rag, args.qa, args.limit)
        print(json.dumps({pair: rows[pair]}), file=sys.stderr, flush=True)
    print(
        json.dumps({"embedder": rag.embedder.name, "model": rag.settings.model if args.qa else None, "ndcg@10 and answers": rows}, indent=2)
    )


if __name__ == "__main__":
    main()

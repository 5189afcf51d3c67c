"""Where an embedder's cosines fall: the anchors of its ``SimilarityScale``. Prints JSON.

    .venv/bin/python scripts/calibrate_similarity.py ../shared/eval/squad-dev8 --embedder bundled:all-MiniLM-L6-v2
    .venv/bin/python scripts/calibrate_similarity.py ../shared/eval/xquad-dev8 \
        --embedder bundled:multilingual-e5-small --pairs en:en,en:de,en:zh,en:ar,zh:en

For a sample of questions, the cosine of each to its answer sentence (the sentence of its gold
paragraph that holds a gold answer), to the best other sentence of that paragraph, and to the best
of 12 sentences of other articles. The medians of "answering" and "unrelated" are the
scale's anchors. A pair q:d asks the questions of language q of the sentences of language d (a
parallel set such as XQuAD); a folder without language subfolders is one pair.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.backends import open_embedder
from rag.config import Settings
from rag.index.embeddings import Embedder
from rag.text.analysis import sentences

FAR_SENTENCES = 12  # the unrelated sentences each question is compared with


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def _quartiles(values: list[float]) -> dict[str, float]:
    return {f"p{p}": round(float(np.percentile(values, p)), 3) for p in (10, 25, 50, 75, 90)}


def _pair(questions: Path, corpus: Path, embedder: Embedder, limit: int) -> dict[str, Any]:
    docs = {d["_id"]: d for d in _jsonl(corpus / "corpus.jsonl")}
    answers = {q["id"]: q["answers"] for q in _jsonl(corpus / "qa.jsonl")}  # in the corpus's language
    items = _jsonl(questions / "qa.jsonl")
    random.Random(0).shuffle(items)
    split = {i: [d["text"][a:b] for a, b in sentences(d["text"])] for i, d in docs.items()}
    answering, other, unrelated = [], [], []
    for item in items[:limit]:
        gold = item["doc_ids"][0]
        own = split[gold]
        holding = [k for k, s in enumerate(own) if any(a in s for a in answers.get(item["id"], item["answers"]))]
        if not holding:
            continue
        others = random.Random(item["id"]).sample(sorted(docs), 6)
        far = [s for i in others if docs[i]["title"] != docs[gold]["title"] for s in split[i]][:FAR_SENTENCES]
        cosines = embedder.embed_documents(own + far) @ embedder.embed_queries([item["question"]])[0]
        answering.append(max(cosines[k] for k in holding))
        other += [max(c for k, c in enumerate(cosines[: len(own)]) if k not in holding)] if len(own) > len(holding) else []
        unrelated += [max(cosines[len(own) :])] if far else []
    return {
        "questions": len(answering),
        "answering": _quartiles(answering),
        "other_in_paragraph": _quartiles(other),
        "unrelated": _quartiles(unrelated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--embedder", required=True, help="as rag's --embedder")
    parser.add_argument("--pairs", default="", help="comma-separated question:corpus language pairs")
    parser.add_argument("--limit", type=int, default=150, help="questions per pair")
    args = parser.parse_args()
    embedder = open_embedder(Settings(embedder=args.embedder, offline=True))
    pairs = [p.split(":") for p in args.pairs.split(",") if p] or [["", ""]]
    report = {f"{q}:{d}" if q else "all": _pair(args.root / q, args.root / d, embedder, args.limit) for q, d in pairs}
    print(json.dumps({"embedder": embedder.name, "scale": embedder.scale.__dict__, "pairs": report}, indent=2))


if __name__ == "__main__":
    main()

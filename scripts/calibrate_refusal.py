"""Calibrate the retrieval refusal threshold (``min_similarity``) on a SQuAD-style folder.

    python scripts/calibrate_refusal.py ../shared/eval/squad-dev8 [--per-side 200]

Half of the articles are indexed. Questions about them are answerable; questions about the other
half are not (their gold paragraphs are absent). For each threshold the script prints the false-refusal
rate (answerable questions refused) and the refusal rate on unanswerable ones, as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.retrieval import HybridRetriever
from rag.config import Settings
from rag.index.embeddings import SentenceTransformerEmbedder
from rag.index.index import Index
from rag.ingest.pipeline import ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-side", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    docs = [json.loads(line) for line in (args.folder / "corpus.jsonl").open()]
    titles = sorted({d["title"] for d in docs})
    indexed = set(titles[::2])
    doc_title = {d["_id"]: d["title"] for d in docs}
    qa = [json.loads(line) for line in (args.folder / "qa.jsonl").open()]
    rng = random.Random(args.seed)
    answerable = [q for q in qa if doc_title[q["doc_ids"][0]] in indexed]
    unanswerable = [q for q in qa if doc_title[q["doc_ids"][0]] not in indexed]
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    answerable, unanswerable = answerable[: args.per_side], unanswerable[: args.per_side]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for d in docs:
            if d["title"] in indexed:
                (folder / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
        settings = Settings(index_dir=Path(tmp) / "index", min_similarity=-1.0)
        embedder = SentenceTransformerEmbedder(settings.embedder)
        index = Index(settings.index_dir, embedder)
        ingest(index, [folder], settings)
        retriever = HybridRetriever(index, settings)
        best_a = [retriever.retrieve(q["question"]).best_similarity for q in answerable]
        best_u = [retriever.retrieve(q["question"]).best_similarity for q in unanswerable]

    rows = []
    for step in range(0, 61, 5):
        t = step / 100
        rows.append(
            {
                "min_similarity": t,
                "false_refusal_rate": round(sum(s < t for s in best_a) / len(best_a), 3),
                "unanswerable_refusal_rate": round(sum(s < t for s in best_u) / len(best_u), 3),
            }
        )
    print(
        json.dumps(
            {"indexed_articles": sorted(indexed), "answerable": len(best_a), "unanswerable": len(best_u), "thresholds": rows}, indent=1
        )
    )


if __name__ == "__main__":
    main()

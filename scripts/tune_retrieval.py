"""Sweep retrieval settings on a BEIR folder and print every configuration's metrics as JSON.

    python scripts/tune_retrieval.py ../shared/eval/squad-dev8 [--index /tmp/tune-index]

Grid: fusion weights (dense : BM25), the RRF constant, and chunk size / overlap (each chunking gets
its own evaluation index). The defaults in rag/config.py were chosen from this output: the setting
that wins on the whole query set, not on single questions. One JSON object per line, then a summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.evaluation import evaluate_retrieval  # noqa: E402
from rag.service import Rag  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-tune-index"))
    parser.add_argument("--weights", default="1:1,1:1.5,1:2,1.5:1,1:3")
    parser.add_argument("--rrf-k", default="20,60,100")
    parser.add_argument("--chunking", default="200/40,120/24,300/60", help="tokens/overlap pairs")
    args = parser.parse_args()
    base = Settings(index_dir=args.index, offline=True)
    embedder = Rag(base).embedder
    results = []
    for chunking in args.chunking.split(","):
        tokens, overlap = (int(x) for x in chunking.split("/"))
        first = True
        for weights, rrf_k in itertools.product(args.weights.split(","), args.rrf_k.split(",")):
            dense_w, bm25_w = (float(x) for x in weights.split(":"))
            settings = base.model_copy(
                update={"chunk_tokens": tokens, "chunk_overlap": overlap, "dense_weight": dense_w, "bm25_weight": bm25_w, "rrf_k": int(rrf_k)}
            )
            modes = ["dense", "bm25", "hybrid"] if first else ["hybrid"]
            report = evaluate_retrieval(args.folder, Rag(settings, embedder=embedder), modes)
            first = False
            for mode, metrics in report["variants"].items():
                row = {"chunking": chunking, "mode": mode, "weights": weights if mode == "hybrid" else None,
                       "rrf_k": int(rrf_k) if mode == "hybrid" else None} | metrics
                results.append(row)
                print(json.dumps(row), flush=True)
    best = max((r for r in results if r["mode"] == "hybrid"), key=lambda r: (r["ndcg@10"], r["recall@10"]))
    print(json.dumps({"best": best}))


if __name__ == "__main__":
    main()

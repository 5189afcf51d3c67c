"""Sweep retrieval settings on a BEIR folder and print every configuration's metrics as JSON.

    python scripts/tune_retrieval.py ../shared/eval/squad-dev8 [--index /tmp/rag-tune-index]

For each chunking (size/overlap; each gets its own evaluation index) the dense and BM25 rankings of
every query are computed once; every fusion setting (dense:BM25 weights, RRF constant) is then
scored on those rankings with the same code `rag eval retrieval` uses. The defaults in
rag/config.py were chosen from this output: the setting that wins on the whole query set, not on
single questions. One JSON object per line, then the best.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer.retrieval import HybridRetriever, rrf  # noqa: E402
from rag.apps.evaluation import corpus_index, read_jsonl, read_qrels, retrieval_metrics  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Rag  # noqa: E402


def _docs(ids: list[str], source_of: dict[str, str], sources: dict[str, str]) -> list[str]:
    out: list[str] = []
    for chunk_id in ids:
        doc = sources.get(source_of.get(chunk_id, ""))
        if doc is not None and doc not in out:
            out.append(doc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-tune-index"))
    parser.add_argument("--weights", default="1:1,1:1.25,1:1.5,1:2,1:3,1.5:1")
    parser.add_argument("--rrf-k", default="10,30,60,100")
    parser.add_argument("--chunking", default="200/40,120/24", help="tokens/overlap pairs")
    args = parser.parse_args()
    base = Settings(index_dir=args.index, offline=True, min_similarity=-1.0, candidates=100)
    embedder = Rag(base).embedder
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(args.folder, "queries.jsonl")}
    qrels = {q: r for q, r in read_qrels(args.folder).items() if q in queries}
    results = []
    for chunking in args.chunking.split(","):
        tokens, overlap = (int(x) for x in chunking.split("/"))
        settings = base.model_copy(update={"chunk_tokens": tokens, "chunk_overlap": overlap})
        eval_rag, sources = corpus_index(args.folder, settings, Rag(settings, embedder=embedder))
        retriever = HybridRetriever(eval_rag.index, settings)
        source_of: dict[str, str] = {}
        rankings: dict[str, tuple[list[str], list[str]]] = {}
        for qid in qrels:
            dense = retriever.retrieve(queries[qid], top_k=100, mode="dense").hits
            keyword = retriever.retrieve(queries[qid], top_k=100, mode="bm25").hits
            for h in dense + keyword:
                source_of[h.chunk.id] = h.chunk.source
            rankings[qid] = ([h.chunk.id for h in dense], [h.chunk.id for h in keyword])

        def score(rank: callable) -> dict[str, float]:  # type: ignore[valid-type]
            totals: Counter[str] = Counter()
            for qid, relevant in qrels.items():
                totals.update(retrieval_metrics(_docs(rank(qid), source_of, sources), relevant))
            return {k: round(v / len(qrels), 4) for k, v in totals.items()}

        rows = [
            {"chunking": chunking, "mode": "dense"} | score(lambda q: rankings[q][0]),
            {"chunking": chunking, "mode": "bm25"} | score(lambda q: rankings[q][1]),
        ]
        for weights, k in itertools.product(args.weights.split(","), args.rrf_k.split(",")):
            w = [float(x) for x in weights.split(":")]

            def fused(q: str, w: list[float] = w, k: int = int(k)) -> list[str]:
                scores = rrf(list(rankings[q]), k, w)
                return sorted(scores, key=lambda i: (-scores[i], i))

            rows.append({"chunking": chunking, "mode": "hybrid", "weights": weights, "rrf_k": int(k)} | score(fused))
        for row in rows:
            print(json.dumps(row), flush=True)
        results.extend(rows)
    best = max((r for r in results if r["mode"] == "hybrid"), key=lambda r: (r["ndcg@10"], r["recall@10"]))
    print(json.dumps({"best": best}))


if __name__ == "__main__":
    main()

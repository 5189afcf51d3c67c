"""Where the keyword index lives in the server shape: rag's local BM25 against what the open-source
Chroma server offers for text, on the same collection.

    python scripts/bench_keywords.py ../shared/eval/squad-dev8 [--chroma-url URL] [--limit N]

Starts `chroma run` on 127.0.0.1 (or uses --chroma-url), indexes the BEIR corpus through it, then:
1. asks the server for a sparse-vector (BM25) index, as Chroma's hosted product has, and records
   what the open-source server answers;
2. ranks documents per query with (a) rag's BM25, (b) the server's full-text filter (`$contains`,
   any of the query's content words) with dense ranking inside it, the best text search the
   server can do, and (c) the server's dense ranking alone, for reference;
and prints nDCG@10 / recall@10 and p50/p95 latency of each as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import free_port, wait_for  # noqa: E402

from rag.apps.evaluation import corpus_index, read_jsonl, read_qrels, retrieval_metrics  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Rag  # noqa: E402
from rag.text.analysis import is_content  # noqa: E402


@contextlib.contextmanager
def chroma_server(tmp: Path) -> Iterator[str]:
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    log = (tmp / "chroma.log").open("wb")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(tmp / "chroma"), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/api/v2/heartbeat")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def sparse_index_support(collection_client: Any) -> str:
    """What the server says to a collection with a BM25 sparse-vector index."""
    from chromadb import Schema, SparseVectorIndexConfig
    from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

    schema = Schema().create_index(
        config=SparseVectorIndexConfig(source_key="#document", embedding_function=ChromaBm25EmbeddingFunction()), key="bm25"
    )
    try:
        collection_client.create_collection("rag_sparse_probe", schema=schema)
    except Exception as err:
        return f"refused: {type(err).__name__}: {err}"
    collection_client.delete_collection("rag_sparse_probe")
    return "accepted"


def timed(rank: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    latencies = []
    for qid, relevant in qrels.items():
        started = time.perf_counter()
        ranked = rank(queries[qid])
        latencies.append((time.perf_counter() - started) * 1000)
        totals.update(retrieval_metrics(ranked, relevant))
    n = len(qrels) or 1
    latencies.sort()
    return {
        "ndcg@10": round(totals["ndcg@10"] / n, 4),
        "recall@10": round(totals["recall@10"] / n, 4),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--chroma-url")
    parser.add_argument("--limit", type=int, default=0, help="Queries to use (0: all).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with contextlib.ExitStack() as stack:
            url = args.chroma_url or stack.enter_context(chroma_server(tmp))
            settings = Settings(index_dir=tmp / "index", chroma_url=url, chroma_collection="rag_bench_keywords")
            started = time.perf_counter()
            rag, sources = corpus_index(args.folder, settings, Rag(settings))
            built_s = time.perf_counter() - started
            index = rag.require_index()
            collection = index.store._collection  # the server's collection, as any other client sees it
            queries = {str(q["_id"]): q["text"] for q in read_jsonl(args.folder, "queries.jsonl")}
            qrels = {q: r for q, r in read_qrels(args.folder).items() if q in queries}
            if args.limit:
                qrels = dict(list(qrels.items())[: args.limit])
            doc_of = dict(sources)

            def docs(sources_ranked: list[str]) -> list[str]:
                out: list[str] = []
                for s in sources_ranked:
                    d = doc_of.get(s)
                    if d is not None and d not in out:
                        out.append(d)
                return out

            def local_bm25(query: str) -> list[str]:
                return docs([c.source for c in index.get([i for i, _ in index.search_keywords(query, 100)])])

            def server_fts(query: str) -> list[str]:
                # as written in the question: the server's $contains matches case and characters exactly
                words = [w.strip("?.,!;:'\"()") for w in query.split()]
                words = [w for w in words if w and is_content(w.lower())] or query.split()
                where_document = {"$or": [{"$contains": w} for w in words]} if len(words) > 1 else {"$contains": words[0]}
                found = collection.query(
                    query_embeddings=[index.embed_query(query)], n_results=100, where_document=where_document, include=["metadatas"]
                )
                return docs([m["source"] for m in found["metadatas"][0]])

            def server_dense(query: str) -> list[str]:
                found = collection.query(query_embeddings=[index.embed_query(query)], n_results=100, include=["metadatas"])
                return docs([m["source"] for m in found["metadatas"][0]])

            report = {
                "dataset": str(args.folder),
                "queries": len(qrels),
                "chunks": index.manifest.chunk_count,
                "index_build_s": round(built_s, 1),
                "sparse_bm25_index_on_the_server": sparse_index_support(index.store._client),
                "local_bm25": timed(local_bm25, queries, qrels),
                "server_fulltext_filter_dense_ranked": timed(server_fts, queries, qrels),
                "server_dense": timed(server_dense, queries, qrels),
            }
            collection_name = settings.chroma_collection
            index.store._client.delete_collection(collection_name)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

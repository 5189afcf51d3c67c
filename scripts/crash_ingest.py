"""Kill `rag ingest` with SIGKILL at random moments and check that nothing is lost or left over.

    python scripts/crash_ingest.py [--runs 50] [--files 120] [--seed 7] [--work /tmp/rag-crash]

A generated corpus (plain-text files of seeded pseudo-English, ~2,400 chunks at 64 tokens, enough
to cross Chroma's HNSW sync threshold) is indexed once cleanly for reference. Then each run:

1. changes the corpus a little (edits, deletions, re-creations) or, one run in three, starts over
   with `--rebuild` (every other time without paths: from the folders the index records);
2. starts `rag ingest` and SIGKILLs it after a random delay;
3. checks: `rag status` and `rag ask` work; the manifest agrees with the store (no chunk of a file
   the manifest lists is missing; no chunk the manifest does not list) and with the keyword index;
4. re-runs the same command to the end (a rebuild without paths must still know the folders) and
   checks that the store and the keyword index hold exactly the chunk ids a clean build of the
   current corpus gives (computed with the library's own loader and chunker).

Prints JSON: runs, kills that landed mid-ingest, recoveries, failures (with reasons), chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.index.embeddings import SentenceTransformerEmbedder  # noqa: E402
from rag.index.index import Index  # noqa: E402
from rag.ingest.chunking import chunk_document  # noqa: E402
from rag.ingest.loaders import load  # noqa: E402

WORDS = (
    "river harbour council grain tariff engine valley museum winter ledger bridge orchard treaty "
    "copper signal archive lantern meadow quarry festival railway beacon garrison mill charter "
    "granite tunnel vineyard estuary pasture chapel foundry canal fortress parish market"
).split()
QUESTION = "When did the harbour council approve the copper tariff?"


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
    return f"In {rng.randint(1700, 2020)} the {' '.join(words)}."


def write_file(path: Path, rng: random.Random, sentences: int) -> None:
    path.write_text("\n".join(sentence(rng) for _ in range(sentences)) + "\n", encoding="utf-8")


def expected_ids(corpus: Path, settings: Settings, embedder: SentenceTransformerEmbedder) -> set[str]:
    budget = min(settings.chunk_tokens, embedder.max_tokens)
    ids: set[str] = set()
    for path in sorted(corpus.rglob("*.txt")):
        document = load(path.resolve(), path.name)
        ids |= {c.id for c in chunk_document(document, embedder.count_tokens, budget, settings.chunk_overlap)}
    return ids


def rag(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag.apps.cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def consistency(index_dir: Path, embedder: SentenceTransformerEmbedder) -> list[str]:
    """Problems found between the manifest and the store."""
    index = Index(index_dir, embedder)
    problems = []
    stored = index.store.ids_by_source()
    for source, entry in index.manifest.files.items():
        missing = set(entry.chunk_ids) - stored.get(source, set())
        if missing:
            problems.append(f"{Path(source).name}: {len(missing)} chunk(s) in the manifest missing from the store")
    listed = {i for e in index.manifest.files.values() for i in e.chunk_ids}
    orphans = {i for ids in stored.values() for i in ids} - listed
    if orphans:
        problems.append(f"{len(orphans)} orphan chunk(s) in the store")
    keywords = set(index.keywords().ids)
    if keywords != listed:
        problems.append(f"keyword index disagrees: {len(keywords - listed)} extra, {len(listed - keywords)} missing")
    del index
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--sentences", type=int, default=60, help="Sentences per file.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-crash"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    corpus, index_dir = args.work / "corpus", args.work / "index"
    import shutil

    shutil.rmtree(args.work, ignore_errors=True)
    corpus.mkdir(parents=True)
    for i in range(args.files):
        write_file(corpus / f"doc-{i:04d}.txt", rng, args.sentences)
    env = os.environ | {
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_CHUNK_TOKENS": "64",
        "RAG_CHUNK_OVERLAP": "8",
        "RAG_ANSWER_MODE": "extract",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    settings = Settings(index_dir=index_dir, chunk_tokens=64, chunk_overlap=8)
    embedder = SentenceTransformerEmbedder(settings.embedder)

    started = time.perf_counter()
    first = rag("ingest", str(corpus), env=env)
    full_build_s = time.perf_counter() - started
    if first.returncode != 0:
        sys.exit(f"clean build failed: {first.stderr}")
    index = Index(index_dir, embedder)
    clean = {i for ids in index.store.ids_by_source().values() for i in ids}
    del index
    if clean != expected_ids(corpus, settings, embedder):
        sys.exit("the clean build differs from the chunker's ids: the convergence check would be meaningless")

    failures: list[dict[str, object]] = []
    mid_ingest = recoveries = 0
    deleted: list[Path] = []
    for run in range(1, args.runs + 1):
        rebuild = run % 3 == 0
        if not rebuild:  # edit some files, delete a few, bring some back
            for path in rng.sample(sorted(corpus.glob("*.txt")), k=max(1, args.files // 10)):
                write_file(path, rng, args.sentences)
            for path in rng.sample(sorted(corpus.glob("*.txt")), k=2):
                path.unlink()
                deleted.append(path)
            while len(deleted) > 4:
                write_file(deleted.pop(0), rng, args.sentences)
        paths = [] if run % 6 == 0 else [str(corpus)]  # half the rebuilds name no paths
        args_run = ["ingest", *paths] + (["--rebuild"] if rebuild else [])
        command = [sys.executable, "-m", "rag.apps.cli", *args_run]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        delay = rng.uniform(2.0, (full_build_s if rebuild else full_build_s / 3) + 2.0)
        time.sleep(delay)
        if process.poll() is None:
            mid_ingest += 1
            process.send_signal(signal.SIGKILL)
        process.wait()
        problems: list[str] = []
        status = rag("status", "--json", env=env)
        if status.returncode != 0 or "Traceback" in status.stderr:
            problems.append(f"status failed ({status.returncode}): {status.stderr.strip()[-300:]}")
        else:
            recoveries += "recovered" in json.loads(status.stdout)
        ask = rag("ask", QUESTION, "--json", env=env)
        if ask.returncode not in (0, 3) or "Traceback" in ask.stderr:
            problems.append(f"ask failed ({ask.returncode}): {ask.stderr.strip()[-300:]}")
        problems += consistency(index_dir, embedder)
        if (index_dir / "ingest.dirty").exists():
            problems.append("the dirty marker survived an open with no writer alive")
        again = rag(*args_run, env=env)
        if again.returncode != 0:
            problems.append(f"re-ingest failed ({again.returncode}): {again.stderr.strip()[-300:]}")
        index = Index(index_dir, embedder)
        got = {i for ids in index.store.ids_by_source().values() for i in ids}
        listed = {i for e in index.manifest.files.values() for i in e.chunk_ids}
        keyword_ids = set(index.keywords().ids)
        del index
        want = expected_ids(corpus, settings, embedder)
        if keyword_ids != want:
            problems.append(f"keyword index did not converge: {len(keyword_ids - want)} extra, {len(want - keyword_ids)} missing")
        if got != want or listed != want:
            index = Index(index_dir, embedder)
            extra_files = sorted({Path(c.source).name for c in index.store.get(sorted(got - want))})
            del index
            problems.append(
                f"did not converge: store {len(got)} / manifest {len(listed)} / clean {len(want)} ids, "
                f"{len(got - want)} extra (in {extra_files}), {len(want - got)} missing"
            )
        if problems:
            failures.append({"run": run, "command": args_run, "killed_after_s": round(delay, 2), "problems": problems})
        print(
            f"run {run}: rag {' '.join(args_run)}, killed after {delay:.1f}s, {'ok' if not problems else problems}",
            file=sys.stderr,
            flush=True,
        )
    print(
        json.dumps(
            {
                "runs": args.runs,
                "rebuilds": sum(1 for run in range(1, args.runs + 1) if run % 3 == 0),
                "rebuilds_without_paths": sum(1 for run in range(1, args.runs + 1) if run % 6 == 0),
                "killed_mid_ingest": mid_ingest,
                "recovered_on_open": recoveries,
                "failures": len(failures),
                "failure_details": failures,
                "chunks_in_clean_build": len(clean),
                "files": args.files,
                "full_build_s": round(full_build_s, 1),
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

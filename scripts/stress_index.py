"""Readers hammer an index while writers ingest, modify and delete: nothing may be damaged.

    python scripts/stress_index.py [--runs 3] [--rounds 6] [--readers 3] [--files 200] [--work /tmp/rag-stress]

Each run builds a corpus of small Markdown files and indexes it. Then, at the same time:

- reader processes loop over what users do that reads the index: `Rag.ask` (extractive, so every
  question goes through retrieval, the keyword index and verification), `Index.status()` (what
  `rag status` and the page's status line show) and the page's keyword search;
- the writer runs `rag ingest` from a shell, round after round, after deleting, appending to and
  creating files;
- a second writer, like a page upload, adds a file of its own from another process, retrying
  while the first holds the lock.

At the end of each run the manifest, the store and the keyword index on disk must hold the same
chunk ids, equal to those of a clean build of the final corpus, and no reader may have failed or
written a byte (the keyword index folder is compared before and after the readers' last pass).

Prints JSON: runs, reader operations and failures, writes, refused writes, disagreements.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ["Which shelf holds the copper lantern?", "Where is item 17 stored?", "What does the archive keep in winter?"]


def write_file(path: Path, rng: random.Random, n: int) -> None:
    things = ["copper lantern", "granite bowl", "ledger", "winter coat", "railway map", "brass key"]
    lines = [f"# Item {n}", "", f"Item {n} is the {rng.choice(things)}; it is stored on shelf {rng.randint(1, 400)}."]
    lines += [f"The archive checked it in {rng.randint(1900, 2025)} and again in winter." for _ in range(rng.randint(1, 6))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def reader(index_dir: Path, stop: Path, out: Path) -> None:
    """One reader process: ask, status and keyword search until told to stop."""
    from rag.config import Settings
    from rag.service import Rag

    rag = Rag(Settings(index_dir=index_dir, answer_mode="extract"))
    counts = {"ask": 0, "status": 0, "search": 0}
    errors: list[str] = []
    rng = random.Random(os.getpid())
    while not stop.exists():
        what = rng.choice(list(counts))
        try:
            if what == "ask":
                rag.ask(rng.choice(QUESTIONS))
            elif what == "status":
                rag.index.status()
            else:
                rag.index.search_keywords(rng.choice(QUESTIONS), 10)
            counts[what] += 1
        except Exception as err:  # every failure is reported, none stops the reader
            errors.append(f"{what}: {type(err).__name__}: {err}"[:300])
    out.write_text(json.dumps({"counts": counts, "errors": errors}))


def folder_digest(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def rag_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag.apps.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def ids_on_disk(index_dir: Path, dimension: int) -> dict[str, set[str]]:
    """The chunk ids of the manifest, the store and the keyword index exactly as saved (no repair)."""
    from rag.index.bm25 import BM25Index
    from rag.index.manifest import Manifest
    from rag.index.store import open_store

    manifest = Manifest.load(index_dir / "manifest.json", "")
    keywords = BM25Index.load(index_dir / "bm25", manifest.generation)
    store = open_store(index_dir, manifest.embedder, dimension)
    return {
        "manifest": manifest.chunk_ids(),
        "store": {i for ids in store.ids_by_source().values() for i in ids},
        "keywords": set(keywords.ids) if keywords is not None else {"<keyword index missing at the manifest's generation>"},
    }


def one_run(run: int, args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    rng = random.Random(args.seed + run)
    work = args.work / f"run-{run}"
    shutil.rmtree(work, ignore_errors=True)
    corpus, uploads, index_dir = work / "corpus", work / "uploads", work / "index"
    corpus.mkdir(parents=True)
    uploads.mkdir()
    for n in range(args.files):
        write_file(corpus / f"item-{n:04d}.md", rng, n)
    run_env = env | {"RAG_INDEX_DIR": str(index_dir)}
    first = rag_cli("ingest", str(corpus), env=run_env)
    if first.returncode != 0:
        sys.exit(f"initial ingest failed: {first.stderr}")

    stop = work / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, __file__, "--reader", str(index_dir), str(stop), str(work / f"reader-{r}.json")], cwd=ROOT, env=run_env
        )
        for r in range(args.readers)
    ]
    writes = refused = 0
    problems: list[str] = []
    next_n = args.files
    for round_no in range(args.rounds):
        files = sorted(corpus.glob("*.md"))
        for path in rng.sample(files, k=3):
            path.unlink()
        for path in rng.sample(sorted(corpus.glob("*.md")), k=min(len(files) - 3, args.files // 2)):
            with path.open("a", encoding="utf-8") as handle:
                handle.write(f"Round {round_no}: the copper lantern moved to shelf {rng.randint(1, 400)}.\n")
        for _ in range(5):
            write_file(corpus / f"item-{next_n:04d}.md", rng, next_n)
            next_n += 1
        upload = uploads / f"upload-{round_no}.md"
        write_file(upload, rng, 10_000 + round_no)
        shell = subprocess.Popen(
            [sys.executable, "-m", "rag.apps.cli", "ingest", str(corpus)],
            cwd=ROOT,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.5, 3.0))
        while True:  # the "page" writes while the shell does: refused at once, retried
            page = rag_cli("ingest", str(upload), env=run_env)
            if page.returncode == 0:
                writes += 1
                break
            if page.returncode != 6:
                problems.append(f"round {round_no}: the page's ingest failed ({page.returncode}): {page.stderr[-300:]}")
                break
            refused += 1
            time.sleep(0.5)
        _, err = shell.communicate()
        if shell.returncode != 0:
            if shell.returncode == 6:
                refused += 1
                again = rag_cli("ingest", str(corpus), env=run_env)
                if again.returncode != 0:
                    problems.append(f"round {round_no}: ingest failed ({again.returncode}): {again.stderr[-300:]}")
            else:
                problems.append(f"round {round_no}: ingest failed ({shell.returncode}): {err[-300:]}")
        writes += 1
        print(f"run {run} round {round_no}: done", file=sys.stderr, flush=True)

    before = folder_digest(index_dir / "bm25")
    time.sleep(2.0)  # the readers' last pass over the finished index
    stop.write_text("stop")
    for process in readers:
        process.wait(timeout=300)
    if folder_digest(index_dir / "bm25") != before:
        problems.append("the keyword index changed while only readers were running")
    reports = [json.loads((work / f"reader-{r}.json").read_text()) for r in range(args.readers)]
    reader_errors = [e for r in reports for e in r["errors"]]
    problems += reader_errors[:10]

    saved = ids_on_disk(index_dir, args.dimension)
    clean_dir = work / "clean"
    clean = rag_cli("ingest", str(corpus), *[str(u) for u in sorted(uploads.glob("*.md"))], env=env | {"RAG_INDEX_DIR": str(clean_dir)})
    if clean.returncode != 0:
        problems.append(f"clean build failed: {clean.stderr[-300:]}")
    want = ids_on_disk(clean_dir, args.dimension)["store"]
    for part, got in saved.items():
        if got != want:
            problems.append(f"{part}: {len(got - want)} ids more and {len(want - got)} fewer than a clean build")
    ops = {k: sum(r["counts"][k] for r in reports) for k in ("ask", "status", "search")}
    return {
        "run": run,
        "reader_ops": ops,
        "reader_errors": len(reader_errors),
        "writes": writes,
        "refused_writes": refused,
        "chunks": len(want),
        "problems": problems,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--reader":
        reader(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-stress"))
    parser.add_argument("--dimension", type=int, default=384, help="The embedder's dimension (the bundled MiniLM: 384).")
    args = parser.parse_args()
    env = os.environ | {"RAG_ANSWER_MODE": "extract", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    started = time.perf_counter()
    results = [one_run(run, args, env) for run in range(1, args.runs + 1)]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "rounds_per_run": args.rounds,
                "readers": args.readers,
                "reader_ops": {k: sum(r["reader_ops"][k] for r in results) for k in ("ask", "status", "search")},  # type: ignore[index]
                "reader_failures": sum(r["reader_errors"] for r in results),  # type: ignore[misc]
                "writes": sum(r["writes"] for r in results),  # type: ignore[misc]
                "refused_writes_retried": sum(r["refused_writes"] for r in results),  # type: ignore[misc]
                "failed_runs": sum(1 for r in results if r["problems"]),
                "details": results,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""`rag batch` against asking one question at a time, in the same run.

    python scripts/bench_batch.py [--questions 24] [--cli-loop 3]

Indexes the bundled sample corpus, then answers the same questions (a) with run_batch, (b) with a
loop of single `Rag.ask` calls on a freshly opened assistant (model loaded once, queries embedded
one at a time), and (c) for --cli-loop questions, with one `rag ask` process per question (how a
shell loop does it). Prints JSON with questions/s of each and the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.batch import run_batch  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.sample import QUESTIONS, sample_dir  # noqa: E402
from rag.service import Rag  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--cli-loop", type=int, default=3)
    args = parser.parse_args()
    questions = [f"{QUESTIONS[i % len(QUESTIONS)]}" + ("" if i < len(QUESTIONS) else f" (variant {i})") for i in range(args.questions)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index")
        Rag(settings).ingest([sample_dir()])
        qfile = Path(tmp) / "q.txt"
        qfile.write_text("\n".join(questions) + "\n")

        rag = Rag(settings)
        rag.ask("warm-up question about the lease")  # both sides start with loaded models
        started = time.perf_counter()
        run_batch(rag, qfile, Path(tmp) / "answers.jsonl")
        batch_s = time.perf_counter() - started

        single = Rag(settings, embedder=rag.embedder, llm=rag.llm())
        started = time.perf_counter()
        for q in questions:
            single.ask(q)
        loop_s = time.perf_counter() - started

        started = time.perf_counter()
        for q in questions[: args.cli_loop]:
            subprocess.run([sys.executable, "-m", "rag.cli", "ask", q, "--index", str(settings.index_dir), "--json"], check=True, capture_output=True)
        cli_s = time.perf_counter() - started

    n = len(questions)
    out = {
        "questions": n,
        "batch_questions_per_s": round(n / batch_s, 3),
        "ask_loop_questions_per_s": round(n / loop_s, 3),
        "batch_to_ask_loop_ratio": round(loop_s / batch_s, 3),
        "cli_loop_questions": args.cli_loop,
        "cli_loop_questions_per_s": round(args.cli_loop / cli_s, 3),
        "batch_to_cli_loop_ratio": round((n / batch_s) / (args.cli_loop / cli_s), 2),
        "model": settings.model,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

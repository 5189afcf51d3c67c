"""`rag batch` against asking one question at a time, in the same run.

    python scripts/bench_batch.py [--questions 24] [--cli-loop 3] [--copies 2] [--server]

Indexes the bundled sample corpus, then answers the same questions (a) with run_batch, (b) with
run_batch --concurrency COPIES (copies of the in-process model, each on its share of the cores),
(c) with a loop of single `Rag.ask` calls on a freshly opened assistant (model loaded once, queries
embedded one at a time), and (d) for --cli-loop questions, with one `rag ask` process per question
(how a shell loop does it). With --server, the server comparison below follows in the same run.
Prints one JSON object with questions/s of each and the ratios.

    python scripts/bench_batch.py --server-only [--questions 16] [--concurrency 4]
    python scripts/bench_batch.py --llm-url http://127.0.0.1:8002/v1

Against an OpenAI-compatible server (one started here with `python -m llama_cpp.server` and the
bundled model on 127.0.0.1 with --server, or yours with --llm-url): the same questions with
`rag batch --concurrency 1` and `--concurrency N`, questions/s of each and the ratio.
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

from servers import free_port, llama_server_argv, wait_for  # noqa: E402

from rag.apps.batch import run_batch  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.sample import QUESTIONS, sample_dir  # noqa: E402
from rag.service import Rag  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--cli-loop", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="Copies of the in-process model for the parallel batch.")
    parser.add_argument("--server", action="store_true", help="Also start python -m llama_cpp.server and compare concurrency 1 and N.")
    parser.add_argument("--server-only", action="store_true", help="Only the server comparison.")
    parser.add_argument("--llm-url", help="Compare concurrency 1 and N against this OpenAI-compatible server (only).")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if args.server_only or args.llm_url:
        print(json.dumps(server_comparison(args), indent=2))
        return
    out = in_process_comparison(args)
    if args.server:
        out["server"] = server_comparison(args)
    print(json.dumps(out, indent=2))


def in_process_comparison(args: argparse.Namespace) -> dict[str, object]:
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
        started = time.perf_counter()
        run_batch(rag, qfile, Path(tmp) / "answers-copies.jsonl", concurrency=args.copies)
        copies_s = time.perf_counter() - started

        single = Rag(settings, embedder=rag.embedder, llm=rag.llm())
        started = time.perf_counter()
        for q in questions:
            single.ask(q)
        loop_s = time.perf_counter() - started

        started = time.perf_counter()
        for q in questions[: args.cli_loop]:
            subprocess.run(
                [sys.executable, "-m", "rag.apps.cli", "ask", q, "--index", str(settings.index_dir), "--json"],
                check=True,
                capture_output=True,
            )
        cli_s = time.perf_counter() - started

    n = len(questions)
    out = {
        "questions": n,
        "batch_questions_per_s": round(n / batch_s, 3),
        "ask_loop_questions_per_s": round(n / loop_s, 3),
        "batch_to_ask_loop_ratio": round(loop_s / batch_s, 3),
        f"batch_{args.copies}_model_copies_questions_per_s": round(n / copies_s, 3),
        f"batch_{args.copies}_model_copies_to_ask_loop_ratio": round(loop_s / copies_s, 3),
        "cli_loop_questions": args.cli_loop,
        "cli_loop_questions_per_s": round(args.cli_loop / cli_s, 3),
        "batch_to_cli_loop_ratio": round((n / batch_s) / (args.cli_loop / cli_s), 2),
        "model": settings.model,
    }
    return out


def server_comparison(args: argparse.Namespace) -> dict[str, object]:
    from rag.answer.llm import resolve_model

    questions = [f"{QUESTIONS[i % len(QUESTIONS)]}" + ("" if i < len(QUESTIONS) else f" (variant {i})") for i in range(args.questions)]
    process = None
    url = args.llm_url
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            model = resolve_model("bundled:smollm2", Settings(index_dir=Path(tmp) / "unused"))
            port = free_port()
            url = f"http://127.0.0.1:{port}/v1"
            process = subprocess.Popen(
                llama_server_argv(model, port),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for(f"{url}/models", 120)
        try:
            settings = Settings(index_dir=Path(tmp) / "index", llm_url=url)
            rag = Rag(settings)
            rag.ingest([sample_dir()])
            qfile = Path(tmp) / "q.txt"
            qfile.write_text("\n".join(questions) + "\n")
            rag.ask("warm-up question about the lease")
            seconds = {}
            for concurrency in (1, args.concurrency):
                started = time.perf_counter()
                run_batch(rag, qfile, Path(tmp) / f"answers-{concurrency}.jsonl", concurrency=concurrency)
                seconds[concurrency] = time.perf_counter() - started
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    n = len(questions)
    return {
        "server": "python -m llama_cpp.server (started here, bundled model)" if args.llm_url is None else url,
        "questions": n,
        "concurrency_1_questions_per_s": round(n / seconds[1], 3),
        f"concurrency_{args.concurrency}_questions_per_s": round(n / seconds[args.concurrency], 3),
        "ratio": round(seconds[1] / seconds[args.concurrency], 3),
    }


if __name__ == "__main__":
    main()

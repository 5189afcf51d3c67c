"""Load check for the chat page: N concurrent sessions through gradio_client for a fixed time.

    python scripts/load_chat.py [--sessions 16] [--seconds 300] [--url http://127.0.0.1:7860/]

Without --url it indexes the bundled sample corpus into a temporary folder and starts `rag serve`
on a free loopback port. Prints one JSON object: completed answers, errors (server errors and
exceptions), busy replies (the page's clear "busy, try again" when its waiting room is full),
time-to-first-token percentiles (from submitting a question to the first answer text), and the
server's resident memory after warm-up and at the end (growth in %).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.sample import QUESTIONS


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def start_server(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    rag = [sys.executable, "-m", "rag.apps.cli"]
    index = tmp / "index"
    sample = Path(__file__).resolve().parent.parent / "rag" / "sample" / "docs"
    subprocess.run([*rag, "ingest", str(sample), "--index", str(index)], check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [*rag, "serve", "--port", str(port), "--index", str(index)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return url, process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("rag serve did not start")


def session(url: str, n: int, deadline: float, results: dict, lock: threading.Lock) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    i = n
    while time.time() < deadline:
        question = QUESTIONS[i % len(QUESTIONS)]
        i += 1
        started = time.perf_counter()
        first = None
        try:
            job = client.submit(question, [], 5, 0.0, 200, api_name="/ask")
            for update in job:
                chat = update[0]
                if first is None and chat and chat[-1]["role"] == "assistant" and _text(chat[-1]):
                    first = time.perf_counter() - started
            chat = job.result()[0]
            text = _text(chat[-1]) if chat else ""
            busy = text.startswith("The assistant is busy")
            with lock:
                if busy:
                    results["busy"] += 1
                elif text.startswith("Error"):
                    results["errors"] += 1
                    results["error_samples"].append(text[:200])
                else:
                    results["completed"] += 1
                    results["ttft"].append(first if first is not None else time.perf_counter() - started)
                    results["total"].append(time.perf_counter() - started)
            if busy:  # as a person would: wait a moment before asking again
                time.sleep(2)
        except Exception as err:  # every failure is counted
            with lock:
                results["errors"] += 1
                results["error_samples"].append(f"{type(err).__name__}: {err}"[:200])


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (Linux /proc), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _sample_rss(process: subprocess.Popen[bytes] | None, deadline: float, samples: list[float], every: float = 15) -> None:
    """The server's resident memory every `every` seconds, to tell a plateau from a leak."""
    while process is not None and time.time() < deadline:
        value = rss_mb(process.pid)
        if value is not None:
            samples.append(value)
        time.sleep(every)


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--url")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with tempfile.TemporaryDirectory() as tmp:
        process = None
        url = args.url
        if url is None:
            url, process = start_server(Path(tmp))
        results: dict = {"completed": 0, "errors": 0, "busy": 0, "ttft": [], "total": [], "error_samples": []}
        lock = threading.Lock()
        deadline = time.time() + args.seconds
        if process is not None:  # warm up (models loaded, first answer done) before the start RSS
            session(url, 0, time.time() + 1, {"completed": 0, "errors": 0, "busy": 0, "ttft": [], "total": [], "error_samples": []}, lock)
        rss_start = rss_mb(process.pid) if process is not None else None
        deadline = time.time() + args.seconds
        threads = [threading.Thread(target=session, args=(url, n, deadline, results, lock)) for n in range(args.sessions)]
        samples: list[float] = []
        sampler = threading.Thread(target=_sample_rss, args=(process, deadline, samples), daemon=True)
        started = time.time()
        for t in threads:
            t.start()
        sampler.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        rss_end = rss_mb(process.pid) if process is not None else None
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(
        json.dumps(
            {
                "sessions": args.sessions,
                "seconds": round(elapsed, 1),
                "completed_answers": results["completed"],
                "errors": results["errors"],
                "busy_replies": results["busy"],
                "ttft_p50_s": percentile(results["ttft"], 0.5),
                "ttft_p95_s": percentile(results["ttft"], 0.95),
                "answer_p50_s": percentile(results["total"], 0.5),
                "rss_start_mb": rss_start,
                "rss_end_mb": rss_end,
                "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1) if rss_start and rss_end else None,
                "rss_every_15s_mb": samples,
                "error_samples": results["error_samples"][:5],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

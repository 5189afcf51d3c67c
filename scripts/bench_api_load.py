"""Bounded load test of `rag api`: N clients asking the sample questions at once, for a fixed time.

    python scripts/bench_api_load.py [--clients 20] [--seconds 60] [--max-requests 400] [--answer-mode extract]

Indexes the bundled sample corpus into a temporary folder, starts `rag api` on a free loopback port
(extract mode by default: no model, so the figures measure the server, retrieval and checks), and
runs the clients until the time or the request count is spent; every request has a 120 s timeout.
Prints one JSON object: requests, answered (200), busy (429: the waiting room was full, a reply
the client can retry), errors (anything else, and exceptions), latency percentiles of the answered
requests, and the server's peak resident memory (VmHWM) with its resident memory after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load_chat import percentile
from servers import free_port, wait_for

from rag.sample import QUESTIONS, sample_dir


def memory_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def ask(url: str, question: str) -> tuple[int, float]:
    body = json.dumps({"model": "rag", "messages": [{"role": "user", "content": question}]}).encode()
    request = urllib.request.Request(f"{url}/chat/completions", data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            json.loads(response.read())
            return response.status, time.perf_counter() - started
    except urllib.error.HTTPError as err:
        return err.code, time.perf_counter() - started


def client(url: str, n: int, deadline: float, budget: list[int], results: dict[str, list], lock: threading.Lock) -> None:
    i = n
    while time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        try:
            status, seconds = ask(url, QUESTIONS[i % len(QUESTIONS)])
        except Exception as err:
            status, seconds = -1, 0.0
            with lock:
                results["exceptions"].append(type(err).__name__)
        i += 1
        with lock:
            results["status"].append(status)
            if status == 200:
                results["latency"].append(seconds)
            elif status == 429:
                time.sleep(0.2)  # the client backs off, as a real one would


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=400)
    parser.add_argument("--max-waiting", type=int, default=8)
    parser.add_argument("--answer-mode", default="extract", choices=["extract", "generate"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        rag = [sys.executable, "-m", "rag.apps.cli"]
        subprocess.run([*rag, "ingest", str(sample_dir()), "--index", str(index)], check=True, capture_output=True)
        port = free_port()
        env = os.environ | {"RAG_ANSWER_MODE": args.answer_mode}
        argv = [*rag, "api", "--index", str(index), "--port", str(port), "--max-waiting", str(args.max_waiting)]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_for(f"{url}/models", 180)
            ask(url, QUESTIONS[0])  # warm-up: the embedder and keyword index load on the first question
            warm_kb = memory_kb(server.pid, "VmRSS")
            results: dict[str, list] = {"status": [], "latency": [], "exceptions": []}
            lock, budget = threading.Lock(), [args.max_requests]
            deadline = time.monotonic() + args.seconds
            started = time.perf_counter()
            threads = [threading.Thread(target=client, args=(url, n, deadline, budget, results, lock)) for n in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            peak_kb = memory_kb(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=30)
    statuses = results["status"]
    report = {
        "clients": args.clients,
        "answer_mode": args.answer_mode,
        "max_waiting": args.max_waiting,
        "seconds": round(elapsed, 1),
        "requests": len(statuses),
        "answered": statuses.count(200),
        "busy_429": statuses.count(429),
        "errors": sum(1 for s in statuses if s not in (200, 429)),
        "exceptions": sorted(set(results["exceptions"])),
        "answers_per_s": round(statuses.count(200) / elapsed, 2) if elapsed else None,
        "latency_s": {
            "p50": percentile(results["latency"], 0.5),
            "p95": percentile(results["latency"], 0.95),
            "max": percentile(results["latency"], 1.0),
        },
        "rss_after_warmup_mb": round(warm_kb / 1024, 1) if warm_kb else None,
        "peak_rss_mb": round(peak_kb / 1024, 1) if peak_kb else None,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

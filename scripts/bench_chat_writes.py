"""Do uploads and removals on the chat page hold up other users' questions? Prints JSON.

One session asks questions in a loop through the page's API while another uploads a batch of
files and then removes them. Reported: each question's latency before, during and after the
writes, and how long each write took. A question asked during a write should wait for the model
(and share the CPU), never for the write to finish.

    python scripts/bench_chat_writes.py --files 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

QUESTIONS = ["How long is the warranty on the water heater?", "What is the monthly rent?", "When is the water on in the garden?"]


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"note-{i:04d}.md"
        body = " ".join(f"Depot {i} ships order batch {j} on weekday {j % 5} with {j * 3 + i} crates." for j in range(60))
        path.write_text(f"# Depot {i} schedule\n\n{body}\n", encoding="utf-8")
        paths.append(path)
    return paths


def _summary(latencies: list[float]) -> dict[str, float | int | None]:
    if not latencies:
        return {"questions": 0, "p50_s": None, "max_s": None}
    return {"questions": len(latencies), "p50_s": round(statistics.median(latencies), 2), "max_s": round(max(latencies), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="files in the uploaded batch")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds of questions before and after the writes")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    from rag.config import Settings
    from rag.sample import sample_dir
    from rag.service import Rag
    from ui.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-writes-"))
    rag = Rag(Settings(index_dir=tmp / "index"))
    rag.ingest([sample_dir()])
    app = create_app(rag)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    asked: list[tuple[float, float]] = []
    done = threading.Event()

    def asker() -> None:
        client = Client(app.local_url, verbose=False)
        n = 0
        while not done.is_set():
            start = time.perf_counter()
            client.predict(QUESTIONS[n % len(QUESTIONS)], 5, 0.0, 120, api_name="/ask")
            asked.append((start, time.perf_counter()))
            n += 1

    thread = threading.Thread(target=asker)
    thread.start()
    try:
        time.sleep(args.settle)
        writer = Client(app.local_url, verbose=False)
        files = _files(tmp / "upload", args.files)
        upload_start = time.perf_counter()
        writer.predict([handle_file(str(p)) for p in files], api_name="/upload")
        upload_end = time.perf_counter()
        sources = sorted(str(p.resolve()) for p in (tmp / "index" / "uploads").rglob("note-*.md"))
        writer.predict(sources, api_name="/remove")
        remove_end = time.perf_counter()
        time.sleep(args.settle)
    finally:
        done.set()
        thread.join(timeout=300)
        app.close()

    def between(a: float, b: float) -> list[float]:  # questions asked while [a, b) ran
        return [end - start for start, end in asked if start < b and end > a]

    print(
        json.dumps(
            {
                "files_uploaded": args.files,
                "upload_s": round(upload_end - upload_start, 2),
                "remove_s": round(remove_end - upload_end, 2),
                "questions_before": _summary([e - s for s, e in asked if e <= upload_start]),
                "questions_during_upload": _summary(between(upload_start, upload_end)),
                "questions_during_remove": _summary(between(upload_end, remove_end)),
                "questions_after": _summary([e - s for s, e in asked if s >= remove_end]),
                "answered_while_writing": sum(1 for s, e in asked if s >= upload_start and e <= remove_end),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

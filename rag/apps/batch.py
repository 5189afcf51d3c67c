"""Batch question answering: files of questions in, one cited JSON answer per line out.

Resumable (questions already in the output are skipped by id; ids must be unique), crash-safe (each record
is one whole line, appended and fsync'd; a torn last line is cut off before resuming), and faster
than asking one by one (one loaded model, queries embedded in batches, the shared prompt prefix
reused from llama.cpp's cache).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answer.conversation import FollowUp
from rag.errors import InputError
from rag.index.manifest import atomic_write, file_sha256
from rag.index.where import Where
from rag.service import Rag


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    line: int
    conversation: str | None = None  # rows with the same id are one conversation, in file order


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class BatchReport:
    answered: int = 0
    failed: int = 0  # questions whose record holds an error (asked again on the next run)
    first_error: tuple[str, str] | None = None  # (problem, fix) of the first failure
    skipped_done: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, record: dict[str, Any]) -> None:
        if "error" not in record:
            self.answered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = (str(record["error"]), str(record.get("fix", "")))

    def to_json(self) -> dict[str, Any]:
        return {
            "answered": self.answered,
            "failed": self.failed,
            "skipped_already_answered": self.skipped_done,
            "bad_rows": [{"line": b.line, "reason": b.reason} for b in self.bad_rows],
            "seconds": round(self.seconds, 2),
        }


def read_questions(path: Path) -> tuple[list[Question], list[BadRow]]:
    """Questions from .jsonl ({"question"|"text", "id"?, "conversation"?}), .csv (a "question" column,
    "id" and "conversation" optional) or .txt (one per line). Rows that share a conversation id are
    follow-ups of each other, in file order. Bad rows come back with their line number instead of stopping the run."""
    if not path.is_file():
        raise InputError(f"questions file not found: {path}", "pass a .jsonl, .csv or .txt file of questions")
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", f"convert it first, e.g. iconv -f latin1 -t utf-8 {path.name}") from None
    if suffix == ".jsonl":
        questions, bad = _from_jsonl(text)
    elif suffix == ".csv":
        questions, bad = _from_csv(text, path)
    elif suffix == ".txt":
        questions = [Question(str(n), " ".join(line.split()), n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        bad = []
    else:
        raise InputError(f"unsupported questions file type '{suffix}'", "use .jsonl, .csv or .txt")
    _refuse_duplicate_ids(questions, path)
    return questions, bad


def _refuse_duplicate_ids(questions: list[Question], path: Path) -> None:
    """Answers are resumed by id, so every question needs its own (a row without one is known by
    its line number)."""
    lines: dict[str, list[int]] = {}
    for q in questions:
        lines.setdefault(q.id, []).append(q.line)
    repeated = {i: ls for i, ls in lines.items() if len(ls) > 1}
    if repeated:
        shown = "; ".join(f"id {i!r} on lines {', '.join(map(str, ls))}" for i, ls in list(repeated.items())[:10])
        raise InputError(
            f"{path} gives {len(repeated)} id(s) to more than one question: {shown}",
            "give each question its own id (a row without an id is known by its line number, so do not use line numbers as ids)",
        )


def _from_jsonl(text: str) -> tuple[list[Question], list[BadRow]]:
    questions, bad = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(BadRow(n, f"malformed JSON: {err.msg}"))
            continue
        if not isinstance(row, dict):
            bad.append(BadRow(n, "not a JSON object"))
            continue
        question = row.get("question", row.get("text"))
        if not isinstance(question, str) or not question.strip():
            bad.append(BadRow(n, "empty or missing 'question'"))
            continue
        conversation = row.get("conversation")
        conversation = None if conversation is None else str(conversation)
        questions.append(Question(str(row.get("id", n)), " ".join(question.split()), n, conversation))
    return questions, bad


def _from_csv(text: str, path: Path) -> tuple[list[Question], list[BadRow]]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "question" not in fields:
        raise InputError(
            f"{path} has no 'question' column (header: {', '.join(reader.fieldnames or []) or 'empty'})",
            "add a header row with a 'question' column (and optionally 'id')",
        )
    questions: list[Question] = []
    bad: list[BadRow] = []
    first = reader.line_num + 1
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as err:
            last = len(text.splitlines())
            bad.append(BadRow(first, f"{err}: a quote opened on line {first} is never closed, so lines {first}-{last} were not read"))
            break
        n, first = first, reader.line_num + 1
        row = {(k or "").strip().lower(): (v if isinstance(v, str) else "") for k, v in row.items()}
        question = " ".join(row.get("question", "").split())
        if not question:
            bad.append(BadRow(n, "empty question"))
            continue
        questions.append(Question(row.get("id") or str(n), question, n, row.get("conversation") or None))
    return questions, bad


def already_answered(output: Path) -> set[str]:
    """Ids answered in an existing output. A torn last line is cut off, and the records of
    questions that failed (a model server that was down) are taken out, so they are asked again."""
    if output.is_dir():
        raise InputError(f"the output {output} is a folder", f"pass a file for the answers: -o {output / 'answers.jsonl'}")
    if not output.exists():
        return set()
    data = output.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # an interrupted write: drop the partial record
        with output.open("r+b") as handle:
            handle.truncate(end)
        data = data[:end]
    ids, kept, failed = set(), [], 0
    for line in data.decode("utf-8", errors="replace").splitlines(keepends=True):
        record = _record(line)
        if record is not None and "error" in record:
            failed += 1
            continue
        kept.append(line)
        if record is not None and "id" in record:
            ids.add(str(record["id"]))
    if failed:
        atomic_write(output, "".join(kept).encode("utf-8"))
    return ids


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def provenance(rag: Rag) -> dict[str, Any]:
    """What produced the answers: enough to reproduce or audit them."""
    from rag.answer.llm import resolve_model

    settings = rag.settings
    if settings.llm_url:
        llm = rag.llm()
        model: dict[str, Any] = {"model_server": settings.llm_url, "model_id": getattr(llm, "model_id", llm.name)}
    else:
        model_path = resolve_model(settings.model, settings)
        model = {"model_file": model_path.name, "model_sha256": file_sha256(model_path)}
    index = rag.require_index()
    return {
        **model,
        "embedder": rag.embedder.name,
        "index_fingerprint": hashlib.sha256(index.manifest_path.read_bytes()).hexdigest()[:16],
        "prompt_version": rag.prompts.version,
        "retrieval": {
            "top_k": settings.top_k,
            "candidates": settings.candidates,
            "rrf_k": settings.rrf_k,
            "min_similarity": settings.min_similarity,
            "relative_cutoff": settings.relative_cutoff,
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
        },
        "generation": {
            "answer_mode": settings.answer_mode,
            "n_ctx": settings.n_ctx,
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            "seed": settings.seed,
        },
    }


def run_batch(
    rag: Rag,
    questions_file: Path,
    output: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    embed_batch: int = 64,
    concurrency: int = 1,
    where: Where | None = None,
) -> BatchReport:
    """Answer every question not already in ``output``, appending one JSON line each, in input
    order. ``concurrency`` questions are in flight at once (worth it with an LLM server that
    serves requests in parallel; an in-process model answers one at a time). With ``where``,
    every question is answered from the chosen documents only."""
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, not {concurrency}", "pass --concurrency 1 or more")
    started = time.perf_counter()
    questions, bad = read_questions(questions_file)
    report = BatchReport(bad_rows=bad)
    done = already_answered(output)
    todo = [q for q in questions if q.id not in done]
    report.skipped_done = len(questions) - len(todo)
    if where and todo:
        rag.require_index().select(where)  # a filter that matches nothing stops the run before it starts
    meta = (provenance(rag) | ({"where": list(where.text)} if where else {})) if todo else {}
    total = len(todo)
    if on_progress:
        on_progress(0, total)
    output.parent.mkdir(parents=True, exist_ok=True)
    assistant = _assistants(rag, concurrency if todo else 1)
    resolved = resolve_conversations(rag, questions, {q.id for q in todo})
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rag-batch") if concurrency > 1 else None
    with output.open("a", encoding="utf-8") as sink, pool if pool is not None else contextlib.nullcontext():
        for start in range(0, total, embed_batch):
            group = todo[start : start + embed_batch]
            vectors = rag.embedder.embed_queries([resolved[q.id].query for q in group])
            jobs = zip(group, vectors)
            records = (
                pool.map(
                    lambda job: _answer_record(assistant(), job[0], resolved[job[0].id], job[1], meta, where), jobs
                )  # results come back in input order
                if pool is not None
                else (_answer_record(rag, q, resolved[q.id], v, meta, where) for q, v in jobs)
            )
            for record in records:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                os.fsync(sink.fileno())
                report.count(record)
                if on_progress:
                    on_progress(report.answered + report.failed, total)
    report.seconds = time.perf_counter() - started
    return report


def _assistants(rag: Rag, concurrency: int) -> Callable[[], Rag]:
    """The assistant each batch thread asks with, built before any thread starts.

    With a model server (or no model), one assistant serves every thread: the server runs the
    requests. With a model in this process, each thread gets its own copy of the model on its share
    of the cores, since one copy generates for one question at a time: on 2 cores, two copies
    answered 1.19x as fast as a loop of single questions (scripts/bench_batch.py), at the memory of
    a second model."""
    rag.answerer  # noqa: B018 - the shared pipeline (index, keyword index) before any thread
    in_process = rag.settings.answer_mode == "generate" and not rag.settings.llm_url
    if concurrency == 1 or not in_process:
        if rag.settings.answer_mode == "generate":
            rag.llm()
        return lambda: rag
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    copies = [rag.replica(threads=threads) for _ in range(concurrency)]
    for copy in copies:
        copy.answerer  # noqa: B018
    mine = threading.local()
    handed = iter(copies)
    lock = threading.Lock()

    def assistant() -> Rag:
        if not hasattr(mine, "rag"):
            with lock:
                mine.rag = next(handed)
        return mine.rag

    return assistant


def resolve_conversations(rag: Rag, questions: list[Question], wanted: set[str]) -> dict[str, FollowUp]:
    """Each wanted question as it is asked: a row of a conversation is resolved against the rows
    of that conversation before it (answered already or not), any other row stands alone."""
    resolved = {q.id: FollowUp(q.text, q.text, "as-is") for q in questions if q.conversation is None}
    open_ids = {q.conversation for q in questions if q.id in wanted and q.conversation is not None}
    unfinished: dict[str, list[Question]] = {}
    for q in questions:
        if q.conversation in open_ids:
            unfinished.setdefault(q.conversation, []).append(q)
    for rows in unfinished.values():  # each conversation in file order, its answered rows too
        resolved.update(zip((q.id for q in rows), rag.resolve_all([q.text for q in rows])))
    return resolved


def _answer_record(
    rag: Rag, question: Question, follow: FollowUp, vector: Any, meta: dict[str, Any], where: Where | None
) -> dict[str, Any]:
    from rag.errors import RagError

    try:
        answer = rag.ask(follow, query_vector=vector, where=where)
    except RagError as err:  # e.g. a question too long for the context: recorded, the run goes on
        return {"id": question.id, "question": question.text, "error": err.problem, "fix": err.hint, **meta}
    conversation = {"conversation": question.conversation} if question.conversation is not None else {}
    return {"id": question.id, **conversation, **answer.to_json(), **meta}

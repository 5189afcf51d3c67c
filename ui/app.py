"""The chat page: a Gradio Blocks app over the rag library. No pipeline logic lives here.

Everything that comes from a document or a model is shown as inert text: the chat renders plain
text (no Markdown, no HTML), and the sources panel is HTML built here with every value escaped.
"""

from __future__ import annotations

import html
import re
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from rag.errors import RagError
from rag.loaders import SUPPORTED_SUFFIXES
from rag.malloc import trim
from rag.manifest import file_sha256
from rag.schema import REASON_TITLES, Answer, Citation, Draft
from rag.service import Rag

CSS = """
#sources .source { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; margin-bottom: 8px; }
#sources .source mark { background: #fff3a3; padding: 0 2px; }
#sources .refusal { border-left: 4px solid #d4a72c; background: #fff8e5; padding: 8px 10px; }
#sources .unsupported { color: #9a6700; font-size: 0.9em; }
#sources .passage { white-space: pre-wrap; font-size: 0.92em; }
#sources .related { border-style: dashed; color: #57606a; }
#sources details.reasoning { color: #57606a; font-size: 0.9em; }
"""

T = TypeVar("T")
BUSY = "The assistant is busy answering other questions. Please try again in a moment."


@dataclass(frozen=True)
class Rewritten:
    """The standalone query a follow-up question was rewritten to, before retrieval starts."""

    query: str


class WaitingRoom:
    """One model per process: every model call runs on one worker thread, in arrival order.

    At most `max_waiting` questions wait behind the one being answered; beyond that a caller is
    turned away at once, and the page says the assistant is busy. Keeping the models on one thread
    also keeps their memory (allocator arenas, thread pools) from multiplying with the web server's
    worker threads under load.
    """

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-model")
        self._count = threading.Lock()
        self.admitted = 0

    def enter(self) -> int | None:
        """How many admitted questions are ahead of this one, or None when the room is full."""
        with self._count:
            if self.admitted > self.max_waiting:
                return None
            self.admitted += 1
            return self.admitted - 1

    def leave(self) -> None:
        with self._count:
            self.admitted -= 1

    def stream(self, work: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Run `work` on the model thread and relay what it yields, with its exception if it fails.

        Closing the returned iterator (the page's Stop button, a closed tab) stops the work at its
        next item, so the next question does not wait for an answer nobody reads.
        """
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                if stop.is_set():
                    return
                produced = work()
                try:
                    for item in produced:
                        items.put(("item", item))
                        if stop.is_set():
                            break
                finally:
                    close = getattr(produced, "close", None)
                    if close is not None:
                        close()
            except BaseException as err:  # handed to the caller's thread and raised there
                items.put(("error", err))
            finally:
                items.put(("done", None))
                trim()  # an answer's transient buffers go back to the system, not into the next one's RSS

        self._executor.submit(run)
        try:
            while True:
                kind, value = items.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()


def _passage(chunks: dict[str, Any], citation: Citation) -> str:
    """The cited chunk with the quoted span highlighted; every piece escaped."""
    chunk = chunks.get(citation.chunk_id)
    if chunk is None:
        return "<mark>" + html.escape(citation.quote) + "</mark>"
    text = _unwrapped(chunk.text)
    a = max(0, citation.quote_start - chunk.char_start)
    b = max(a, citation.quote_end - chunk.char_start)
    return html.escape(text[:a]) + "<mark>" + html.escape(text[a:b]) + "</mark>" + html.escape(text[b:])


def _unwrapped(text: str) -> str:
    """``text`` with a PDF's hard line wraps joined (a lone newline becomes a space, the same
    length, so quote offsets still hold); blank lines and Markdown table rows stay."""
    return re.sub(r"(?<=[^\n|])\n(?=[^\n|])", " ", text)


def _source_card(chunks: dict[str, Any], citation: Citation, css_class: str = "source") -> str:
    page = f", page {citation.page}" if citation.page is not None else ""
    return (
        f'<div class="{css_class}" data-n="{citation.n}"><b>[{citation.n}] {html.escape(citation.display_name)}</b>'
        f'{html.escape(page)}<div class="passage">{_passage(chunks, citation)}</div></div>'
    )


def render_sources(rag: Rag, answer: Answer) -> str:
    """The cited passages with the supporting spans highlighted, unsupported sentences flagged,
    related passages when refused, and any model reasoning collapsed. All text escaped."""
    parts: list[str] = []
    wanted = [c.chunk_id for c in answer.citations + answer.evidence]
    chunks = {c.id: c for c in rag.index.get(wanted)} if wanted else {}
    if answer.refused:
        parts.append(
            '<div class="refusal"><b>Not answered.</b> The documents do not answer this question'
            f"{': ' + html.escape(answer.refusal_reason) if answer.refusal_reason else '.'}</div>"
        )
        if answer.evidence:
            parts.append('<p class="related-title"><b>Related passages (not an answer)</b></p>')
            parts.extend(_source_card(chunks, c, "source related") for c in answer.evidence)
    if answer.mode == "extractive":
        why = (
            "The model found no answer in the sources, but a passage answers closely"
            if answer.model_refused
            else "The model's draft was not supported by the sources"
        )
        parts.append(f'<p class="unsupported">{why}; the best evidence is quoted instead.</p>')
    parts.extend(_source_card(chunks, c) for c in answer.citations)
    for reason, title in REASON_TITLES.items():
        left_out = [c for c in answer.claims if c.left_out_reason == reason]
        if left_out:
            items = "".join(f"<li>{html.escape(c.text)}</li>" for c in left_out)
            parts.append(f'<div class="unsupported"><b>{html.escape(title)}</b> (left out of the answer):<ul>{items}</ul></div>')
    if answer.reasoning:
        parts.append(
            '<details class="reasoning"><summary>Model reasoning (not part of the answer)</summary>'
            f'<div class="passage">{html.escape(answer.reasoning)}</div></details>'
        )
    if not parts:
        parts.append("<p>No sources.</p>")
    return "\n".join(parts)


def _keep_upload(path: Path, upload_dir: Path) -> Path:
    """Copy an upload into its own folder, named by its content: two files with the same name
    but different content are two documents, and the same file uploaded again is unchanged."""
    digest = file_sha256(path)[:16]
    target = upload_dir / digest / path.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{path.name}.part")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
    return target


def _status_markdown(rag: Rag) -> str:
    from rag.index import Index

    if not Index.exists(rag.settings.index_dir):
        return "Nothing indexed yet: add documents above."
    status = rag.index.status()
    return (
        f"**{status.files}** files, **{status.chunks}** chunks · embedder `{status.embedder}` · "
        f"model `{rag.settings.model}` · index `{status.location}`"
    )


def _file_choices(rag: Rag) -> list[tuple[str, str]]:
    from rag.index import Index

    if not Index.exists(rag.settings.index_dir):
        return []
    files = rag.index.files()
    names = Counter(files.values())
    return sorted((name if names[name] == 1 else f"{name} ({Path(source).parent.name})", source) for source, name in files.items())


def create_app(rag: Rag, *, max_waiting: int = 8, room: WaitingRoom | None = None) -> gr.Blocks:
    """Build the page. Nothing heavy happens here: models load on the first question.

    `max_waiting` questions may wait behind the one being answered; more get a "busy" reply.
    """
    settings = rag.settings
    room = room or WaitingRoom(max_waiting)
    max_waiting = room.max_waiting
    upload_dir = settings.index_dir / "uploads"

    def respond(message: str, history: list[dict[str, Any]], pairs: list[list[str]], k: float, temperature: float, max_tokens: float) -> Iterator[tuple[Any, ...]]:
        message = (message or "").strip()
        if not message:
            yield history, gr.skip(), gr.skip(), pairs, ""
            return
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        ahead = room.enter()
        if ahead is None:
            history[-1]["content"] = BUSY
            yield history, "<p>Busy.</p>", "", pairs, ""
            return
        waiting = f"<p>Waiting for the model: {ahead} question(s) ahead of yours…</p>" if ahead else "<p>Searching your documents…</p>"

        def work() -> Iterator[Any]:
            standalone = rag.condense(message, [(q, a) for q, a in pairs])
            yield Rewritten(standalone)
            yield from rag.ask_stream(standalone, top_k=int(k), temperature=float(temperature), max_tokens=int(max_tokens))

        try:  # from here on, however the generator ends (Stop, a closed tab), the place is given back
            yield history, waiting, "", pairs, ""
            standalone = ""
            answer = None
            checked = ""
            for event in room.stream(work):
                if isinstance(event, Rewritten):
                    standalone = event.query
                    yield history, "<p>Searching your documents…</p>", standalone, pairs, ""
                    continue
                if isinstance(event, Answer):
                    answer = event
                    continue
                if isinstance(event, Draft):  # token by token, marked as a draft until its sentence is checked
                    history[-1]["content"] = checked + (f"{' ' if checked else ''}✎ {event.text}" if event.text else "")
                else:
                    checked += event
                    history[-1]["content"] = checked
                yield history, gr.skip(), standalone, pairs, ""
            assert answer is not None
            text = answer.text
            if answer.refused:
                text = "⚠ Not answered: " + text
            if answer.truncated:
                text += " [answer cut at the length limit]"
            history[-1]["content"] = text
            yield history, render_sources(rag, answer), standalone, [*pairs, [message, answer.text]], ""
        except RagError as err:
            history[-1]["content"] = f"Error: {err.problem}" + (f"\nFix: {err.hint}" if err.hint else "")
            yield history, "<p>No sources.</p>", "", pairs, ""
        except Exception as err:  # keep the page usable whatever happens
            history[-1]["content"] = f"Error: {type(err).__name__}: {err}. The page is still usable; try again."
            yield history, "<p>No sources.</p>", "", pairs, ""
        finally:
            room.leave()

    def add_documents(paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, str, Any]:
        if not paths:
            return "No files given.", _status_markdown(rag), gr.update(choices=_file_choices(rag))
        copies = [_keep_upload(Path(path), upload_dir) for path in paths]

        def on_progress(event: Any) -> None:
            if event.total:
                progress((event.done, event.total), desc=f"{event.phase}")

        try:
            report = rag.ingest(copies, progress=on_progress)
        except RagError as err:
            return f"**Error:** {html.escape(err.problem)}  \n{html.escape(err.hint)}", _status_markdown(rag), gr.update()
        lines = [f"Indexed {len(report.added)} new and {len(report.updated)} changed file(s), {report.chunks_added} chunks."]
        for error in report.skipped:
            lines.append(f"- skipped `{html.escape(error.path)}`: {html.escape(error.reason)} — {html.escape(error.detail)}")
        return "\n".join(lines), _status_markdown(rag), gr.update(choices=_file_choices(rag), value=[])

    def remove_documents(sources: list[str] | None) -> tuple[str, str, Any]:
        if not sources:
            return "Choose files to remove.", _status_markdown(rag), gr.update()
        try:
            removed = rag.remove(list(sources))
        except RagError as err:
            return f"**Error:** {html.escape(err.problem)}", _status_markdown(rag), gr.update()
        return f"Removed {len(sources)} file(s), {removed} chunks.", _status_markdown(rag), gr.update(choices=_file_choices(rag), value=[])

    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False) as app:
        gr.Markdown("## Ask your documents\nAnswers come only from your indexed files, with the passage behind each claim.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    label="Conversation", height=460, render_markdown=False, sanitize_html=True, allow_tags=False,
                    elem_id="chat", feedback_options=None, buttons=["copy"],
                )
                question = gr.Textbox(label="Question", placeholder="Ask a question about your documents", elem_id="question")
                with gr.Row():
                    ask = gr.Button("Ask", variant="primary", elem_id="ask")
                    stop = gr.Button("Stop", elem_id="stop")
                    clear = gr.Button("Clear conversation", elem_id="clear")
                with gr.Accordion("Rewritten query", open=False):
                    rewritten = gr.Textbox(label="Standalone query used for retrieval", interactive=False, elem_id="rewritten")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML("<p>Sources of the last answer appear here.</p>", elem_id="sources")
        with gr.Accordion("Documents", open=False, elem_id="documents"):
            upload = gr.File(file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath", label="Add documents", elem_id="upload")
            report = gr.Markdown(elem_id="ingest-report")
            status = gr.Markdown(_status_markdown(rag), elem_id="index-status")
            with gr.Row():
                files = gr.Dropdown(choices=_file_choices(rag), multiselect=True, label="Indexed files", elem_id="files")
                remove = gr.Button("Remove from index", elem_id="remove")
        with gr.Accordion("Settings", open=False):
            top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Sources per answer")
            temperature = gr.Slider(0.0, 1.5, value=settings.temperature, step=0.05, label="Temperature")
            max_tokens = gr.Slider(32, 2048, value=settings.max_tokens, step=16, label="Max answer length (tokens)")
        pairs = gr.State([])

        inputs = [question, chat, pairs, top_k, temperature, max_tokens]
        outputs = [chat, sources, rewritten, pairs, question]
        # Gradio lets several times the room's size in at once, so that the room (not Gradio's
        # queue) decides who waits, and the overflow gets the clear "busy" reply at once.
        limit = 4 * (max_waiting + 1)
        submitted = question.submit(respond, inputs, outputs, concurrency_limit=limit, api_name="ask")
        clicked = ask.click(respond, inputs, outputs, concurrency_limit=limit, api_name=False)
        stop.click(None, None, None, cancels=[submitted, clicked])
        clear.click(lambda: ([], "<p>Sources of the last answer appear here.</p>", "", []), None, [chat, sources, rewritten, pairs], api_name=False)
        upload.upload(add_documents, [upload], [report, status, files], api_name="upload")
        remove.click(remove_documents, [files], [report, status, files], api_name="remove")
        app.load(lambda: (_status_markdown(rag), gr.update(choices=_file_choices(rag))), None, [status, files], api_name=False)
    app.queue(max_size=4 * limit)
    return app

"""The chat page: a Gradio Blocks app over the rag library. No pipeline logic lives here.

Everything that comes from a document or a model is shown as inert text: the chat renders plain
text (no Markdown, no HTML), and the sources panel is HTML built with every value escaped.
Only checked sentences reach the answer bubble; the sentence being written shows apart, greyed.
Chats are kept in SQLite in the index folder, each user's own.
"""

from __future__ import annotations

import html
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.apps.chats import ChatStore, Turn
from rag.errors import RagError
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.index.manifest import file_sha256
from rag.answer.models import load_catalogue
from rag.schema import Answer, Draft
from rag.service import Rag

from .room import BUSY, WaitingRoom
from .sources import EMPTY, _unwrapped, render_sources, shown_text

__all__ = ["BUSY", "CSS", "JS", "WaitingRoom", "_unwrapped", "create_app", "render_sources"]

CSS = """
#sources .source { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; margin-bottom: 8px; }
#sources mark { background: #fff3a3; color: #1f2328; padding: 0 2px; }
#sources .refusal { border-left: 4px solid #d4a72c; background: #fff8e5; color: #3b2e00; padding: 8px 10px; margin-bottom: 8px; }
#sources .unsupported, #sources .why { color: #7d4e00; font-size: 0.9em; }
#sources .passage { white-space: pre-wrap; font-size: 0.92em; }
#sources .related { border-style: dashed; }
#sources details.reasoning, #sources .understood { color: #57606a; font-size: 0.9em; }
#sources .page-view img { max-width: 100%; border: 1px solid #d0d7de; margin-top: 6px; }
#sources .source.flash { outline: 3px solid #0969da; }
#draft { color: #6e7781; font-style: italic; min-height: 1.2em; }
.dark #sources .source { border-color: #3d444d; }
.dark #sources mark { background: #735c0f; color: #ffffff; }
.dark #sources .refusal { background: #3d2e00; color: #f0e6c8; border-left-color: #d4a72c; }
.dark #sources .unsupported, .dark #sources .why { color: #e3b341; }
.dark #sources details.reasoning, .dark #sources .understood, .dark #draft { color: #9198a1; }
::highlight(cite) { color: #0969da; text-decoration: underline; }
.dark ::highlight(cite) { color: #4493f8; }
"""

# Citation markers in answers become clickable without touching the chat's DOM: the CSS Custom
# Highlight API underlines them, and a click finds the character under the pointer.
JS = r"""
() => {
  const MARK = /\[(\d{1,3})\]/g;
  const bubbles = () => Array.from(document.querySelectorAll('#chat .bot'));
  const mark = () => {
    if (!window.CSS || !CSS.highlights) return;
    const ranges = [];
    for (const bubble of bubbles()) {
      const walker = document.createTreeWalker(bubble, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const m of node.textContent.matchAll(MARK)) {
          const r = new Range(); r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length); ranges.push(r);
        }
      }
    }
    CSS.highlights.set('cite', new Highlight(...ranges));
  };
  new MutationObserver(mark).observe(document.body, {subtree: true, childList: true, characterData: true});
  const flash = (n, turn, tries) => {
    const panel = document.querySelector('#sources [data-turn]');
    const card = document.querySelector('#sources #source-' + n);
    if ((!panel || panel.dataset.turn !== String(turn) || !card) && tries > 0) { setTimeout(() => flash(n, turn, tries - 1), 100); return; }
    if (!card) return;
    document.querySelectorAll('#sources .flash').forEach(c => c.classList.remove('flash'));
    card.classList.add('flash');
    card.scrollIntoView({block: 'center'});
  };
  document.addEventListener('click', (e) => {
    const bubble = e.target.closest && e.target.closest('#chat .bot');
    if (!bubble || !document.caretRangeFromPoint) return;
    const at = document.caretRangeFromPoint(e.clientX, e.clientY);
    if (!at || at.startContainer.nodeType !== Node.TEXT_NODE) return;
    for (const m of at.startContainer.textContent.matchAll(MARK)) {
      if (m.index <= at.startOffset && at.startOffset <= m.index + m[0].length) {
        flash(m[1], bubbles().indexOf(bubble), 30);
        return;
      }
    }
  });
}
"""

NO_CHAT = gr.update(value=None)


@dataclass
class Session:
    """Who is asking, and the Stop switch of the question they are asking now."""

    owner: str
    stop: threading.Event


def _owner(request: gr.Request | None) -> str:
    return (getattr(request, "username", None) or "local") if request is not None else "local"


def _inert(text: str) -> str:
    """Text for the chat: Gradio's Chatbot renders a message as (sanitised) HTML even without
    Markdown, so "<img src=x>" typed in a question would become an image. Escaped, it shows as typed."""
    return html.escape(text, quote=False)


def _messages(turns: list[Turn]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for t in turns:
        out += [{"role": "user", "content": _inert(t.question)}, {"role": "assistant", "content": _inert(t.shown)}]
    return out


def _panel(turn: int, body: str) -> str:
    return f'<div data-turn="{turn}">{body}</div>'


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
    status = rag.status()
    if status is None:
        return "Nothing indexed yet: add documents above."
    return f"**{status.files}** files, **{status.chunks}** passages · model `{rag.settings.model}`"


def _file_choices(rag: Rag) -> list[tuple[str, str]]:
    files = rag.files()
    names = Counter(files.values())
    return sorted((name if names[name] == 1 else f"{name} ({Path(source).parent.name})", source) for source, name in files.items())


def _model_choices(rag: Rag) -> list[tuple[str, str]]:
    """Installed models from the catalogue (weak readers marked), and the one in use."""
    choices = [
        (m.name + ("" if m.reader else " (quotes only: a weak reader)"), m.spec)
        for m in load_catalogue()
        if m.chat and m.installed()
    ]
    if rag.settings.model not in {spec for _, spec in choices}:
        choices.append((rag.settings.model, rag.settings.model))
    return choices


def create_app(rag: Rag, *, max_waiting: int = 8, room: WaitingRoom | None = None) -> gr.Blocks:
    """Build the page. Nothing heavy happens here: models load on the first question.

    `max_waiting` questions may wait behind the one being answered; more get a "busy" reply.
    """
    settings = rag.settings
    room = room or WaitingRoom(max_waiting)
    upload_dir = settings.index_dir / "uploads"
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    store = ChatStore(settings.index_dir / "chats.sqlite")
    sessions: dict[str, Session] = {}
    exports = Path(tempfile.mkdtemp(prefix="rag-export-"))

    def session(request: gr.Request | None) -> Session:
        key = getattr(request, "session_hash", None) or "local"
        if key not in sessions:
            sessions[key] = Session(_owner(request), threading.Event())
        return sessions[key]

    def chat_list(owner: str, selected: str | None) -> Any:
        return gr.update(choices=[(c.title, c.id) for c in store.chats(owner)], value=selected)

    def answer_events(question: str, earlier: list[str], k: float, temperature: float, max_tokens: float, stop: threading.Event) -> Iterator[Any]:
        follow = rag.resolve(question, earlier)
        yield from rag.ask_stream(follow, top_k=int(k), temperature=float(temperature), max_tokens=int(max_tokens), stopped=stop.is_set)

    def respond(message: str, chat_id: str | None, k: float, temperature: float, max_tokens: float, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Outputs: chat, sources, draft, chat id, chat list, question box."""
        message = " ".join((message or "").split())
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), chat_id, gr.skip(), gr.skip()
            return
        me = session(request)
        me.stop.clear()
        if chat_id is None or chat_id not in {c.id for c in store.chats(me.owner)}:
            chat_id = store.create(me.owner)
        turns = store.turns(me.owner, chat_id)
        history = [*_messages(turns), {"role": "user", "content": _inert(message)}, {"role": "assistant", "content": ""}]
        ahead = room.enter()
        if ahead is None:
            history[-1]["content"] = _inert(BUSY)
            yield history, "<p>Busy.</p>", "", chat_id, gr.skip(), ""
            return
        try:  # from here on, however the generator ends (a closed tab), the place is given back
            waiting = f"<p>Waiting for the model: {ahead} question(s) ahead of yours…</p>" if ahead else "<p>Searching your documents…</p>"
            yield history, waiting, "", chat_id, gr.skip(), ""
            earlier = [t.query for t in turns]
            answer = None
            for event in room.stream(lambda: answer_events(message, earlier, k, temperature, max_tokens, me.stop)):
                if isinstance(event, Answer):
                    answer = event
                elif isinstance(event, Draft):  # the sentence being written: shown apart, greyed, never in the bubble
                    draft = f"Writing (not yet checked): {html.escape(event.text)}" if event.text else ""
                    yield history, gr.skip(), draft, chat_id, gr.skip(), ""
                else:
                    history[-1]["content"] += _inert(event)
                    yield history, gr.skip(), gr.skip(), chat_id, gr.skip(), ""
            assert answer is not None
            shown = shown_text(answer)
            history[-1]["content"] = _inert(shown)
            panel = render_sources(rag, answer)
            store.add_turn(me.owner, chat_id, Turn(message, answer.to_json(), shown, panel))
            yield history, _panel(len(turns), panel), "", chat_id, chat_list(me.owner, chat_id), ""
        except RagError as err:
            history[-1]["content"] = _inert(f"Error: {err.problem}" + (f"\nFix: {err.hint}" if err.hint else ""))
            yield history, "<p>No sources.</p>", "", chat_id, gr.skip(), ""
        except Exception as err:  # keep the page usable whatever happens
            history[-1]["content"] = _inert(f"Error: {type(err).__name__}: {err}. The page is still usable; try again.")
            yield history, "<p>No sources.</p>", "", chat_id, gr.skip(), ""
        finally:
            room.leave()

    def regenerate(chat_id: str | None, k: float, temperature: float, max_tokens: float, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        owner = session(request).owner
        last = store.drop_last_turn(owner, chat_id) if chat_id else None
        if last is None:
            yield gr.skip(), gr.skip(), gr.skip(), chat_id, gr.skip(), gr.skip()
            return
        yield from respond(last.question, chat_id, k, temperature, max_tokens, request)

    def stop_answer(request: gr.Request) -> None:
        session(request).stop.set()

    def forget(request: gr.Request) -> None:  # a closed tab: its Stop switch goes too
        sessions.pop(getattr(request, "session_hash", None) or "local", None)

    def busy(running: bool) -> tuple[Any, Any, Any]:
        return gr.update(interactive=not running), gr.update(interactive=running), gr.update(interactive=not running)

    def open_chat(chat_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: chat, sources, chat id, chat name."""
        owner = session(request).owner
        if not chat_id:
            return [], EMPTY, None, ""
        try:
            turns = store.turns(owner, chat_id)
        except RagError:
            return [], EMPTY, None, ""
        title = next((c.title for c in store.chats(owner) if c.id == chat_id), "")
        panel = _panel(len(turns) - 1, turns[-1].sources) if turns else EMPTY
        return _messages(turns), panel, chat_id, title

    def show_turn(chat_id: str | None, evt: gr.SelectData, request: gr.Request) -> Any:
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not chat_id or not isinstance(index, int):
            return gr.skip()
        turns = store.turns(session(request).owner, chat_id)
        turn = index // 2
        return _panel(turn, turns[turn].sources) if turn < len(turns) else gr.skip()

    def load(request: gr.Request) -> tuple[Any, ...]:
        owner = session(request).owner
        chats = store.chats(owner)
        current = chats[0].id if chats else None
        shown = open_chat(current, request)
        return (chat_list(owner, current), *shown, _status_markdown(rag), gr.update(choices=_file_choices(rag)), "")

    def rename_chat(chat_id: str | None, title: str, request: gr.Request) -> Any:
        owner = session(request).owner
        if chat_id:
            try:
                store.rename(owner, chat_id, title)
            except RagError as err:
                gr.Warning(f"{err.problem}: {err.hint}")
        return chat_list(owner, chat_id)

    def delete_chat(chat_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        owner = session(request).owner
        if chat_id:
            store.delete(owner, chat_id)
        return chat_list(owner, None), [], EMPTY, None, "", gr.update(visible=False)

    def export_chat(chat_id: str | None, fmt: str, request: gr.Request) -> Any:
        if not chat_id:
            gr.Warning("Open a chat to export it.")
            return None
        path = exports / f"chat-{chat_id[:8]}.{'md' if fmt == 'markdown' else 'json'}"
        path.write_text(store.export(session(request).owner, chat_id, fmt), encoding="utf-8")
        return str(path)

    def export_markdown(chat_id: str | None, request: gr.Request) -> Any:
        return export_chat(chat_id, "markdown", request)

    def export_json_file(chat_id: str | None, request: gr.Request) -> Any:
        return export_chat(chat_id, "json", request)

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
        lines = [f"Indexed {len(report.added)} new and {len(report.updated)} changed file(s), {report.chunks_added} passages."]
        for error in report.skipped:
            lines.append(f"- skipped `{html.escape(error.path)}`: {html.escape(error.reason)} — {html.escape(error.detail)}")
        return "\n".join(lines), _status_markdown(rag), gr.update(choices=_file_choices(rag), value=[])

    def ask_to_remove(sources: list[str] | None) -> tuple[Any, Any]:
        if not sources:
            return "Choose files to remove.", gr.update(visible=False)
        return f"Remove {len(sources)} file(s) from the index? Their passages will no longer answer questions.", gr.update(visible=True)

    def remove_documents(sources: list[str] | None) -> tuple[str, str, Any, Any]:
        if not sources:
            return "Choose files to remove.", _status_markdown(rag), gr.update(), gr.update(visible=False)
        try:
            removed = rag.remove(list(sources))
        except RagError as err:
            return f"**Error:** {html.escape(err.problem)}", _status_markdown(rag), gr.update(), gr.update(visible=False)
        files = gr.update(choices=_file_choices(rag), value=[])
        return f"Removed {len(sources)} file(s), {removed} passages.", _status_markdown(rag), files, gr.update(visible=False)

    def pick_model(model: str) -> str:
        if model and model != rag.settings.model:
            rag.use_model(model)
        return _status_markdown(rag)

    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False) as app:
        gr.Markdown("## Ask your documents\nAnswers come only from your indexed files, with the passage behind each claim.")
        chat_id = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=220, elem_id="chats-panel"):
                new_chat = gr.Button("New chat", elem_id="new-chat")
                chats = gr.Radio(label="Chats", choices=[], elem_id="chat-list")
                with gr.Accordion("This chat", open=False, elem_id="chat-manage"):
                    title = gr.Textbox(label="Name", elem_id="chat-title")
                    rename = gr.Button("Rename", elem_id="rename")
                    with gr.Row():
                        export_md = gr.Button("Export Markdown", elem_id="export-md")
                        export_json = gr.Button("Export JSON", elem_id="export-json")
                    exported = gr.File(label="Download", interactive=False, elem_id="export")
                    delete = gr.Button("Delete chat", variant="stop", elem_id="delete-chat")
                    with gr.Row(visible=False) as confirm_delete_row:
                        confirm_delete = gr.Button("Yes, delete it", variant="stop", elem_id="confirm-delete")
                        keep_chat = gr.Button("Keep it", elem_id="keep-chat")
            with gr.Column(scale=3, min_width=320):
                chat = gr.Chatbot(
                    show_label=False, height=480, render_markdown=False, sanitize_html=True, allow_tags=False,
                    elem_id="chat", feedback_options=None, buttons=["copy"],
                )
                draft = gr.HTML('<span class="loading"></span>', elem_id="draft")  # until the saved chat is back
                question = gr.Textbox(show_label=False, placeholder="Ask a question about your documents", elem_id="question")
                with gr.Row():
                    ask = gr.Button("Ask", variant="primary", elem_id="ask")
                    stop = gr.Button("Stop", elem_id="stop", interactive=False)
                    regen = gr.Button("Regenerate", elem_id="regenerate")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("### Sources")
                sources = gr.HTML(EMPTY, elem_id="sources")
        with gr.Accordion("Documents", open=False, elem_id="documents"):
            upload = gr.File(file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath", label="Add documents", elem_id="upload")
            report = gr.Markdown(elem_id="ingest-report")
            status = gr.Markdown(_status_markdown(rag), elem_id="index-status")
            with gr.Row():
                files = gr.Dropdown(choices=_file_choices(rag), multiselect=True, filterable=True, label="Indexed files (type to filter)", elem_id="files")
                remove = gr.Button("Remove from index", elem_id="remove")
            with gr.Row(visible=False) as confirm_remove_row:
                confirm_remove = gr.Button("Yes, remove", variant="stop", elem_id="confirm-remove")
                keep_files = gr.Button("Cancel", elem_id="keep-files")
        with gr.Accordion("Settings", open=False):
            model = gr.Dropdown(
                choices=_model_choices(rag), value=settings.model, label="Model", elem_id="model",
                interactive=not settings.llm_url, info="Served by --llm-url" if settings.llm_url else None,
            )
            top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages per answer")
            temperature = gr.Slider(0.0, 1.5, value=settings.temperature, step=0.05, label="Temperature")
            max_tokens = gr.Slider(32, 2048, value=settings.max_tokens, step=16, label="Max answer length (tokens)")

        buttons = [ask, stop, regen]
        outputs = [chat, sources, draft, chat_id, chats, question]
        # Gradio lets several times the room's size in at once, so that the room (not Gradio's
        # queue) decides who waits, and the overflow gets the clear "busy" reply at once.
        limit = 4 * (room.max_waiting + 1)
        for trigger, fn, inputs, name in (
            (question.submit, respond, [question, chat_id, top_k, temperature, max_tokens], "ask"),
            (ask.click, respond, [question, chat_id, top_k, temperature, max_tokens], False),
            (regen.click, regenerate, [chat_id, top_k, temperature, max_tokens], "regenerate"),
        ):
            trigger(lambda: busy(True), None, buttons, api_name=False, queue=False).then(
                fn, inputs, outputs, concurrency_limit=limit, api_name=name
            ).then(lambda: busy(False), None, buttons, api_name=False, queue=False)
        stop.click(stop_answer, None, None, api_name="stop", queue=False)
        chat.select(show_turn, [chat_id], [sources], api_name=False, queue=False)
        new_chat.click(lambda: (gr.update(value=None), [], EMPTY, None, ""), None, [chats, chat, sources, chat_id, title], api_name=False, queue=False)
        chats.input(open_chat, [chats], [chat, sources, chat_id, title], api_name=False, queue=False)
        rename.click(rename_chat, [chat_id, title], [chats], api_name=False, queue=False)
        delete.click(lambda: gr.update(visible=True), None, [confirm_delete_row], api_name=False, queue=False)
        keep_chat.click(lambda: gr.update(visible=False), None, [confirm_delete_row], api_name=False, queue=False)
        confirm_delete.click(delete_chat, [chat_id], [chats, chat, sources, chat_id, title, confirm_delete_row], api_name=False, queue=False)
        export_md.click(export_markdown, [chat_id], [exported], api_name=False)
        export_json.click(export_json_file, [chat_id], [exported], api_name=False)
        upload.upload(add_documents, [upload], [report, status, files], api_name="upload")
        remove.click(ask_to_remove, [files], [report, confirm_remove_row], api_name=False, queue=False)
        keep_files.click(lambda: ("", gr.update(visible=False)), None, [report, confirm_remove_row], api_name=False, queue=False)
        confirm_remove.click(remove_documents, [files], [report, status, files, confirm_remove_row], api_name="remove")
        model.change(pick_model, [model], [status], api_name=False)
        app.unload(forget)
        app.load(load, None, [chats, chat, sources, chat_id, title, status, files, draft], api_name=False)
    app.queue(max_size=4 * limit)
    return app

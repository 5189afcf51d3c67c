"""The chat page: a Gradio Blocks app over the rag library. No pipeline logic lives here.

Everything that comes from a document or a model is shown as inert text: the chat renders plain
text (no Markdown, no HTML), and the sources panel is HTML built with every value escaped.
Only checked sentences reach the answer bubble; the sentence being written shows apart, greyed.
Chats are kept in SQLite in the index folder, each user's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rag.apps.room import BUSY, WaitingRoom
from rag.apps.watch import WatchStatus
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.service import Rag

from .page import ChatPage, _file_choices, _model_choices, busy
from .sources import EMPTY, render_sources
from .texts import PageTexts

Label = Callable[[str], Any]  # an English label, as the page shows it in the browser's language

__all__ = ["BUSY", "CSS", "JS", "WaitingRoom", "create_app", "render_sources"]

WATCH_REFRESH_S = 5.0  # how often a watched index's status line is read again

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


def create_app(
    rag: Rag, *, max_waiting: int = 8, room: WaitingRoom | None = None, texts: PageTexts | None = None, watch: WatchStatus | None = None
) -> gr.Blocks:
    """Build the page. Nothing heavy happens here: models load on the first question.

    `max_waiting` questions may wait behind the one being answered; more get a "busy" reply. With
    `watch`, the page says which folders are kept in sync and what was indexed last.
    """
    page = ChatPage(rag, room or WaitingRoom(max_waiting), texts or PageTexts.load(), watch)
    t = page.texts.label
    with gr.Blocks(title="rag — ask your documents", analytics_enabled=False) as app:
        gr.Markdown(t("## Ask your documents\nAnswers come only from your indexed files, with the passage behind each claim."))
        widgets = _widgets(page, t)
        _wire(app, page, widgets)
    app.queue(max_size=4 * _concurrency(page.room))
    return app


@dataclass
class _Widgets:
    """The page's components, named as the events refer to them."""

    chat_id: Any
    new_chat: Any
    chats: Any
    title: Any
    rename: Any
    export_md: Any
    export_json: Any
    exported: Any
    delete: Any
    confirm_delete_row: Any
    confirm_delete: Any
    keep_chat: Any
    chat: Any
    draft: Any
    question: Any
    scope: Any
    ask: Any
    stop: Any
    regen: Any
    sources: Any
    upload: Any
    report: Any
    status: Any
    files: Any
    remove: Any
    confirm_remove_row: Any
    confirm_remove: Any
    keep_files: Any
    model: Any
    top_k: Any
    temperature: Any
    max_tokens: Any


def _widgets(page: ChatPage, t: Label) -> _Widgets:
    parts: dict[str, Any] = {"chat_id": gr.State(None)}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=220, elem_id="chats-panel"):
            parts |= _chats_panel(t)
        with gr.Column(scale=3, min_width=320):
            parts |= _chat_panel(page, t)
        with gr.Column(scale=2, min_width=300):
            gr.Markdown(t("### Sources"))
            parts["sources"] = gr.HTML(EMPTY, elem_id="sources")
    parts |= _documents_panel(page, t)
    parts |= _settings_panel(page.rag, t)
    return _Widgets(**parts)


def _chats_panel(t: Label) -> dict[str, Any]:
    w: dict[str, Any] = {}
    w["new_chat"] = gr.Button(t("New chat"), elem_id="new-chat")
    w["chats"] = gr.Radio(label=t("Chats"), choices=[], elem_id="chat-list")
    with gr.Accordion(t("This chat"), open=False, elem_id="chat-manage"):
        w["title"] = gr.Textbox(label=t("Name"), elem_id="chat-title")
        w["rename"] = gr.Button(t("Rename"), elem_id="rename")
        with gr.Row():
            w["export_md"] = gr.Button(t("Export Markdown"), elem_id="export-md")
            w["export_json"] = gr.Button(t("Export JSON"), elem_id="export-json")
        w["exported"] = gr.File(label=t("Download"), interactive=False, elem_id="export")
        w["delete"] = gr.Button(t("Delete chat"), variant="stop", elem_id="delete-chat")
        with gr.Row(visible=False) as w["confirm_delete_row"]:
            w["confirm_delete"] = gr.Button(t("Yes, delete it"), variant="stop", elem_id="confirm-delete")
            w["keep_chat"] = gr.Button(t("Keep it"), elem_id="keep-chat")
    return w


def _chat_panel(page: ChatPage, t: Label) -> dict[str, Any]:
    w: dict[str, Any] = {}
    w["chat"] = gr.Chatbot(
        show_label=False,
        height=480,
        render_markdown=False,
        sanitize_html=True,
        allow_tags=False,
        elem_id="chat",
        feedback_options=None,
        buttons=["copy"],
    )
    w["draft"] = gr.HTML('<span class="loading"></span>', elem_id="draft")  # until the saved chat is back
    w["question"] = gr.Textbox(show_label=False, placeholder=t("Ask a question about your documents"), elem_id="question")
    w["scope"] = gr.Dropdown(
        choices=_file_choices(page.rag),
        multiselect=True,
        filterable=True,
        label=t("Answer from (all documents when none is chosen)"),
        elem_id="scope",
    )
    with gr.Row():
        w["ask"] = gr.Button(t("Ask"), variant="primary", elem_id="ask")
        w["stop"] = gr.Button(t("Stop"), elem_id="stop", interactive=False)
        w["regen"] = gr.Button(t("Regenerate"), elem_id="regenerate")
    return w


def _documents_panel(page: ChatPage, t: Label) -> dict[str, Any]:
    rag = page.rag
    w: dict[str, Any] = {}
    with gr.Accordion(t("Documents"), open=False, elem_id="documents"):
        w["upload"] = gr.File(
            file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath", label=t("Add documents"), elem_id="upload"
        )
        w["report"] = gr.Markdown(elem_id="ingest-report")
        w["status"] = gr.Markdown(page.status(), elem_id="index-status")
        with gr.Row():
            w["files"] = gr.Dropdown(
                choices=_file_choices(rag), multiselect=True, filterable=True, label=t("Indexed files (type to filter)"), elem_id="files"
            )
            w["remove"] = gr.Button(t("Remove from index"), elem_id="remove")
        with gr.Row(visible=False) as w["confirm_remove_row"]:
            w["confirm_remove"] = gr.Button(t("Yes, remove"), variant="stop", elem_id="confirm-remove")
            w["keep_files"] = gr.Button(t("Cancel"), elem_id="keep-files")
    return w


def _settings_panel(rag: Rag, t: Label) -> dict[str, Any]:
    settings = rag.settings
    with gr.Accordion(t("Settings"), open=False):
        return {
            "model": gr.Dropdown(
                choices=_model_choices(rag),
                value=settings.model,
                label=t("Model"),
                elem_id="model",
                interactive=not settings.llm_url,
                info="Served by --llm-url" if settings.llm_url else None,
            ),
            "top_k": gr.Slider(1, 20, value=settings.top_k, step=1, label=t("Passages per answer")),
            "temperature": gr.Slider(0.0, 1.5, value=settings.temperature, step=0.05, label=t("Temperature")),
            "max_tokens": gr.Slider(32, 2048, value=settings.max_tokens, step=16, label=t("Max answer length (tokens)")),
        }


def _concurrency(room: WaitingRoom) -> int:
    """Gradio lets several times the room's size in at once, so that the room (not Gradio's queue)
    decides who waits, and the overflow gets the clear "busy" reply at once."""
    return 4 * (room.max_waiting + 1)


def _wire(app: gr.Blocks, page: ChatPage, w: _Widgets) -> None:
    _wire_questions(page, w)
    _wire_chats(page, w)
    _wire_documents(page, w)
    w.model.change(page.pick_model, [w.model], [w.status], api_name=False)
    if page.watch is not None:  # what the watch indexes shows up without a reload
        gr.Timer(WATCH_REFRESH_S).tick(page.status, None, [w.status], api_name=False, show_progress="hidden")  # type: ignore[arg-type]
    app.unload(page.forget)
    shown = [w.chats, w.chat, w.sources, w.chat_id, w.title, w.status, w.files, w.draft]
    app.load(page.load, None, shown, api_name=False).then(  # type: ignore[arg-type]  # False (no API endpoint) works, though not typed
        page.chat_scope, [w.chat_id], [w.scope], api_name=False, queue=False
    )


def _wire_questions(page: ChatPage, w: _Widgets) -> None:
    buttons = [w.ask, w.stop, w.regen]
    outputs = [w.chat, w.sources, w.draft, w.chat_id, w.chats, w.question]
    asking = [w.question, w.chat_id, w.top_k, w.temperature, w.max_tokens, w.scope]
    for trigger, fn, inputs, name in (
        (w.question.submit, page.respond, asking, "ask"),
        (w.ask.click, page.respond, asking, False),
        (w.regen.click, page.regenerate, [w.chat_id, w.top_k, w.temperature, w.max_tokens, w.scope], "regenerate"),
    ):
        trigger(lambda: busy(True), None, buttons, api_name=False, queue=False).then(
            fn, inputs, outputs, concurrency_limit=_concurrency(page.room), api_name=name
        ).then(lambda: busy(False), None, buttons, api_name=False, queue=False)
    w.stop.click(page.stop_answer, None, None, api_name="stop", queue=False)
    w.chat.select(page.show_turn, [w.chat_id], [w.sources], api_name=False, queue=False)


def _wire_chats(page: ChatPage, w: _Widgets) -> None:
    opened = [w.chat, w.sources, w.chat_id, w.title]
    w.new_chat.click(
        lambda: (gr.update(value=None), [], EMPTY, None, "", []), None, [w.chats, *opened, w.scope], api_name=False, queue=False
    )
    w.chats.input(page.open_chat, [w.chats], opened, api_name=False, queue=False).then(
        page.chat_scope, [w.chat_id], [w.scope], api_name=False, queue=False
    )
    w.scope.input(page.keep_scope, [w.chat_id, w.scope], None, api_name=False, queue=False)
    w.rename.click(page.rename_chat, [w.chat_id, w.title], [w.chats], api_name=False, queue=False)
    w.delete.click(lambda: gr.update(visible=True), None, [w.confirm_delete_row], api_name=False, queue=False)
    w.keep_chat.click(lambda: gr.update(visible=False), None, [w.confirm_delete_row], api_name=False, queue=False)
    w.confirm_delete.click(page.delete_chat, [w.chat_id], [w.chats, *opened, w.confirm_delete_row], api_name=False, queue=False).then(
        page.chat_scope, [w.chat_id], [w.scope], api_name=False, queue=False
    )
    w.export_md.click(page.export_markdown, [w.chat_id], [w.exported], api_name=False)
    w.export_json.click(page.export_json_file, [w.chat_id], [w.exported], api_name=False)


def _wire_documents(page: ChatPage, w: _Widgets) -> None:
    w.upload.upload(page.add_documents, [w.upload], [w.report, w.status, w.files], api_name="upload").then(
        page.chat_scope, [w.chat_id], [w.scope], api_name=False, queue=False
    )
    w.remove.click(page.ask_to_remove, [w.files], [w.report, w.confirm_remove_row], api_name=False, queue=False)
    w.keep_files.click(lambda: ("", gr.update(visible=False)), None, [w.report, w.confirm_remove_row], api_name=False, queue=False)
    w.confirm_remove.click(page.remove_documents, [w.files], [w.report, w.status, w.files, w.confirm_remove_row], api_name="remove").then(
        page.chat_scope, [w.chat_id], [w.scope], api_name=False, queue=False
    )

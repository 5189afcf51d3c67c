"""What the chat page does: one method per event, over a ``Rag`` and the chats kept in SQLite.

No pipeline logic lives here. Everything that comes from a document or a model is shown as inert
text (see ``_inert``); only checked sentences reach the answer bubble.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer.models import load_catalogue
from rag.answer.safety import for_terminal
from rag.apps.chats import ChatStore, Turn
from rag.apps.room import BUSY, WaitingRoom
from rag.apps.watch import WatchStatus
from rag.errors import RagError
from rag.index.manifest import file_sha256
from rag.index.where import Where
from rag.schema import Answer, Draft
from rag.service import Rag

from .sources import EMPTY, render_sources, shown_text
from .texts import PageTexts


@dataclass
class Session:
    """Who is asking, and the Stop switch of the question they are asking now."""

    owner: str
    stop: threading.Event


def busy(running: bool) -> tuple[Any, Any, Any]:
    """Ask, Stop and Regenerate enabled only when they can act."""
    return gr.update(interactive=not running), gr.update(interactive=running), gr.update(interactive=not running)


def _owner(request: gr.Request | None) -> str:
    return (getattr(request, "username", None) or "local") if request is not None else "local"


def _inert(text: str) -> str:
    """Text for the chat: Gradio's Chatbot renders a message as (sanitised) HTML even without
    Markdown, so "<img src=x>" typed in a question would become an image. Escaped, it shows as typed."""
    return html.escape(text, quote=False)


# the marks that mean something inside a line (code, emphasis, links, images, HTML, entities, tables,
# strike-through, maths, autolinks); the text is never at a line's start, where "-", "+", "." and "#" would
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()<>!&|~$:{}])")


def _md(text: str) -> str:
    """Text (a file name, a path, an error) for a Markdown component, shown as written, within a
    line: the marks that mean something there escaped, so a name like ``x` ![t](https:evil.example) `.txt``
    can neither close a code span nor become an image or a link; on one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(for_terminal(text).split()))


def _code(text: str) -> str:
    """A name in monospace in a Markdown component (a code span would show escapes as typed)."""
    return f"<code>{_md(text)}</code>"


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


def _forget_uploads(sources: list[str], upload_dir: Path) -> None:
    """Delete the kept copies of removed uploads (each in its own folder under ``upload_dir``)."""
    root = upload_dir.resolve()
    for source in map(Path, sources):
        if source.parent.parent == root:
            source.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                source.parent.rmdir()  # the same bytes under another name share the folder


def _status_markdown(rag: Rag, watch: WatchStatus | None = None) -> str:
    status = rag.status()
    line = (
        "Nothing indexed yet: add documents above."
        if status is None
        else f"**{status.files}** files, **{status.chunks}** passages · model {_code(rag.settings.model)}"
    )
    return line + (f"  \n{_watch_line(watch)}" if watch is not None else "")


def _watch_line(watch: WatchStatus) -> str:
    """Whether the folders are watched, and the last file the watch indexed."""
    folders = ", ".join(_code(Path(root).name or root) for root in watch.roots)
    if not watch.active:
        return f"Watch of {folders} stopped."
    line = f"Watching {folders}"
    if watch.last_indexed_at is not None:
        line += f" · last indexed {_code(watch.last_indexed)} at {time.strftime('%H:%M:%S', time.localtime(watch.last_indexed_at))}"
    elif watch.last_sync_at is None:
        line += " · catching up…"
    return line + (f" · **error:** {_md(watch.last_error)}" if watch.last_error else "")


def _file_choices(rag: Rag) -> list[tuple[str, str]]:
    files = rag.files()
    names = Counter(files.values())
    return sorted((name if names[name] == 1 else f"{name} ({Path(source).parent.name})", source) for source, name in files.items())


def _model_choices(rag: Rag) -> list[tuple[str, str]]:
    """Installed models from the catalogue (weak readers marked), and the one in use."""
    choices = [
        (m.name + ("" if m.reader else " (quotes only: a weak reader)"), m.spec) for m in load_catalogue() if m.chat and m.installed()
    ]
    if rag.settings.model not in {spec for _, spec in choices}:
        choices.append((rag.settings.model, rag.settings.model))
    return choices


class ChatPage:
    """The page's state (chats, sessions, the waiting room) and a method per event."""

    def __init__(self, rag: Rag, room: WaitingRoom, texts: PageTexts, watch: WatchStatus | None = None) -> None:
        self.rag = rag
        self.room = room
        self.texts = texts
        self.watch = watch
        self.upload_dir = rag.settings.index_dir / "uploads"
        rag.settings.index_dir.mkdir(parents=True, exist_ok=True)
        self.store = ChatStore(rag.settings.index_dir / "chats.sqlite")
        self.sessions: dict[str, Session] = {}
        self.exports = Path(tempfile.mkdtemp(prefix="rag-export-"))

    def status(self) -> str:
        return _status_markdown(self.rag, self.watch)

    def session(self, request: gr.Request | None) -> Session:
        key = getattr(request, "session_hash", None) or "local"
        if key not in self.sessions:
            self.sessions[key] = Session(_owner(request), threading.Event())
        return self.sessions[key]

    def chat_list(self, owner: str, selected: str | None) -> Any:
        return gr.update(choices=[(c.title, c.id) for c in self.store.chats(owner)], value=selected)

    def answer_events(
        self,
        question: str,
        earlier: list[str],
        k: float,
        temperature: float,
        max_tokens: float,
        stop: threading.Event,
        scope: list[str] | None = None,
    ) -> Iterator[Any]:
        follow = self.rag.resolve(question, earlier)
        where = Where.chosen(scope) if scope else None
        yield from self.rag.ask_stream(
            follow, top_k=int(k), temperature=float(temperature), max_tokens=int(max_tokens), stopped=stop.is_set, where=where
        )

    def respond(
        self,
        message: str,
        chat_id: str | None,
        k: float,
        temperature: float,
        max_tokens: float,
        scope: list[str] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: chat, sources, draft, chat id, chat list, question box."""
        message = " ".join((message or "").split())
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), chat_id, gr.skip(), gr.skip()
            return
        me = self.session(request)
        me.stop.clear()
        if chat_id is None or chat_id not in {c.id for c in self.store.chats(me.owner)}:
            chat_id = self.store.create(me.owner)
        self.store.set_scope(me.owner, chat_id, scope or [])
        turns = self.store.turns(me.owner, chat_id)
        history = [*_messages(turns), {"role": "user", "content": _inert(message)}, {"role": "assistant", "content": ""}]
        ahead = self.room.enter()
        if ahead is None:
            history[-1]["content"] = _inert(BUSY)
            yield history, "<p>Busy.</p>", "", chat_id, gr.skip(), ""
            return
        try:  # from here on, however the generator ends (a closed tab), the place is given back
            waiting = f"<p>Waiting for the model: {ahead} question(s) ahead of yours…</p>" if ahead else "<p>Searching your documents…</p>"
            yield history, waiting, "", chat_id, gr.skip(), ""
            earlier = [t.query for t in turns]
            answer = None
            for event in self.room.stream(lambda: self.answer_events(message, earlier, k, temperature, max_tokens, me.stop, scope)):
                if isinstance(event, Answer):
                    answer = event
                elif isinstance(event, Draft):  # the sentence being written: shown apart, greyed, never in the bubble
                    draft = html.escape(self.texts.of(message)["writing"].format(text=event.text)) if event.text else ""
                    yield history, gr.skip(), draft, chat_id, gr.skip(), ""
                else:
                    history[-1]["content"] += _inert(event)
                    yield history, gr.skip(), gr.skip(), chat_id, gr.skip(), ""
            assert answer is not None
            shown = shown_text(answer, self.texts)
            history[-1]["content"] = _inert(shown)
            panel = render_sources(self.rag, answer, self.texts)
            self.store.add_turn(me.owner, chat_id, Turn(message, answer.to_json(), shown, panel))
            yield history, _panel(len(turns), panel), "", chat_id, self.chat_list(me.owner, chat_id), ""
        except RagError as err:
            history[-1]["content"] = _inert(f"Error: {err.problem}" + (f"\nFix: {err.hint}" if err.hint else ""))
            yield history, "<p>No sources.</p>", "", chat_id, gr.skip(), ""
        except Exception as err:  # keep the page usable whatever happens
            history[-1]["content"] = _inert(f"Error: {type(err).__name__}: {err}. The page is still usable; try again.")
            yield history, "<p>No sources.</p>", "", chat_id, gr.skip(), ""
        finally:
            self.room.leave()

    def regenerate(
        self, chat_id: str | None, k: float, temperature: float, max_tokens: float, scope: list[str] | None, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        owner = self.session(request).owner
        last = self.store.drop_last_turn(owner, chat_id) if chat_id else None
        if last is None:
            yield gr.skip(), gr.skip(), gr.skip(), chat_id, gr.skip(), gr.skip()
            return
        yield from self.respond(last.question, chat_id, k, temperature, max_tokens, scope, request)

    def chat_scope(self, chat_id: str | None, request: gr.Request) -> Any:
        """The document picker for this chat: every indexed file to choose from, and the chat's
        choice (those of its files still indexed; none: all documents)."""
        choices = _file_choices(self.rag)
        saved: list[str] = []
        if chat_id:
            try:
                saved = self.store.scope(self.session(request).owner, chat_id)
            except RagError:  # the chat is gone
                saved = []
        indexed = {source for _, source in choices}
        return gr.update(choices=choices, value=[s for s in saved if s in indexed])

    def keep_scope(self, chat_id: str | None, scope: list[str] | None, request: gr.Request) -> None:
        """The picker changed: the chat answers from these documents from now on."""
        if chat_id:
            with contextlib.suppress(RagError):  # a chat deleted in another tab
                self.store.set_scope(self.session(request).owner, chat_id, list(scope or []))

    def stop_answer(self, request: gr.Request) -> None:
        self.session(request).stop.set()

    def forget(self, request: gr.Request) -> None:  # a closed tab: its Stop switch goes too
        self.sessions.pop(getattr(request, "session_hash", None) or "local", None)

    def open_chat(self, chat_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: chat, sources, chat id, chat name."""
        owner = self.session(request).owner
        if not chat_id:
            return [], EMPTY, None, ""
        try:
            turns = self.store.turns(owner, chat_id)
        except RagError:
            return [], EMPTY, None, ""
        title = next((c.title for c in self.store.chats(owner) if c.id == chat_id), "")
        panel = _panel(len(turns) - 1, turns[-1].sources) if turns else EMPTY
        return _messages(turns), panel, chat_id, title

    def show_turn(self, chat_id: str | None, evt: gr.SelectData, request: gr.Request) -> Any:
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not chat_id or not isinstance(index, int):
            return gr.skip()
        turns = self.store.turns(self.session(request).owner, chat_id)
        turn = index // 2
        return _panel(turn, turns[turn].sources) if turn < len(turns) else gr.skip()

    def load(self, request: gr.Request) -> tuple[Any, ...]:
        owner = self.session(request).owner
        chats = self.store.chats(owner)
        current = chats[0].id if chats else None
        shown = self.open_chat(current, request)
        return (self.chat_list(owner, current), *shown, self.status(), gr.update(choices=_file_choices(self.rag)), "")

    def rename_chat(self, chat_id: str | None, title: str, request: gr.Request) -> Any:
        owner = self.session(request).owner
        if chat_id:
            try:
                self.store.rename(owner, chat_id, title)
            except RagError as err:
                gr.Warning(f"{err.problem}: {err.hint}")
        return self.chat_list(owner, chat_id)

    def delete_chat(self, chat_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        owner = self.session(request).owner
        if chat_id:
            self.store.delete(owner, chat_id)
        return self.chat_list(owner, None), [], EMPTY, None, "", gr.update(visible=False)

    def export_chat(self, chat_id: str | None, fmt: str, request: gr.Request) -> Any:
        if not chat_id:
            gr.Warning("Open a chat to export it.")
            return None
        path = self.exports / f"chat-{chat_id[:8]}.{'md' if fmt == 'markdown' else 'json'}"
        path.write_text(self.store.export(self.session(request).owner, chat_id, fmt), encoding="utf-8")
        return str(path)

    def export_markdown(self, chat_id: str | None, request: gr.Request) -> Any:
        return self.export_chat(chat_id, "markdown", request)

    def export_json_file(self, chat_id: str | None, request: gr.Request) -> Any:
        return self.export_chat(chat_id, "json", request)

    def add_documents(
        self,
        paths: list[str] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio hands a handler its progress bar
    ) -> tuple[str, str, Any]:
        if not paths:
            return "No files given.", self.status(), gr.update(choices=_file_choices(self.rag))
        copies = [_keep_upload(Path(path), self.upload_dir) for path in paths]

        def on_progress(event: Any) -> None:
            if event.total:
                progress((event.done, event.total), desc=f"{event.phase}")

        try:
            report = self.rag.ingest(copies, progress=on_progress)
        except RagError as err:
            return f"**Error:** {_md(err.problem)}  \n{_md(err.hint)}", self.status(), gr.update()
        lines = [f"Indexed {len(report.added)} new and {len(report.updated)} changed file(s), {report.chunks_added} passages."]
        for error in report.skipped:
            lines.append(f"- skipped {_code(error.path)}: {_md(error.reason)} — {_md(error.detail)}")
        return "\n".join(lines), self.status(), gr.update(choices=_file_choices(self.rag), value=[])

    def ask_to_remove(self, sources: list[str] | None) -> tuple[Any, Any]:
        if not sources:
            return "Choose files to remove.", gr.update(visible=False)
        return f"Remove {len(sources)} file(s) from the index? Their passages will no longer answer questions.", gr.update(visible=True)

    def remove_documents(self, sources: list[str] | None) -> tuple[str, str, Any, Any]:
        if not sources:
            return "Choose files to remove.", self.status(), gr.update(), gr.update(visible=False)
        try:
            files, passages = self.rag.remove(list(sources))
        except RagError as err:
            return f"**Error:** {_md(err.problem)}", self.status(), gr.update(), gr.update(visible=False)
        _forget_uploads(files, self.upload_dir)
        choices = gr.update(choices=_file_choices(self.rag), value=[])
        return f"Removed {len(files)} file(s), {passages} passages.", self.status(), choices, gr.update(visible=False)

    def pick_model(self, model: str) -> str:
        if model and model != self.rag.settings.model:
            self.rag.use_model(model)
        return self.status()

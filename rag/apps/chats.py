"""Saved conversations: one SQLite file in the index folder, each chat owned by one user.

A turn keeps the question, the answer as the JSON contract gives it, and what the page showed as
its sources, so that an old answer shows the sources it had when it was given. Nothing here leaves
the machine; exporting writes Markdown or JSON for the user to keep.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.answer.safety import sanitise
from rag.errors import InputError
from rag.index.manifest import make_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE, n INTEGER NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, shown TEXT NOT NULL, sources TEXT NOT NULL,
    PRIMARY KEY (chat_id, n)
);
CREATE INDEX IF NOT EXISTS chats_by_owner ON chats(owner, updated);
CREATE TABLE IF NOT EXISTS scopes (
    chat_id TEXT PRIMARY KEY REFERENCES chats(id) ON DELETE CASCADE, sources TEXT NOT NULL
);
"""
TITLE_CHARS = 60


@dataclass(frozen=True)
class Chat:
    id: str
    title: str
    updated: float


@dataclass(frozen=True)
class Turn:
    question: str
    answer: dict[str, Any]  # Answer.to_json()
    shown: str  # the reply as the page shows it (with a refusal or "stopped" note)
    sources: str  # the sources panel's HTML when the answer was given

    @property
    def query(self) -> str:
        """The standalone question this turn was answered as (what a follow-up builds on)."""
        return str(self.answer.get("query") or self.question)


def _sanitised(data: Any) -> Any:
    """Every string in ``data`` sanitised (chats kept by earlier versions hold raw quotes)."""
    if isinstance(data, str):
        return sanitise(data)
    if isinstance(data, dict):
        return {k: _sanitised(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_sanitised(v) for v in data]
    return data


class ChatStore:
    """Chats of every user of one index. Each call opens its own connection: the page serves
    several users from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
        make_private(path.parent)  # the chats, as the documents, are the user's alone

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        return db

    def create(self, owner: str, title: str = "New chat") -> str:
        chat_id = uuid.uuid4().hex
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT INTO chats VALUES (?, ?, ?, ?, ?)", (chat_id, owner, title, now, now))
        return chat_id

    def chats(self, owner: str) -> list[Chat]:
        with self._connect() as db:
            rows = db.execute("SELECT id, title, updated FROM chats WHERE owner = ? ORDER BY updated DESC", (owner,)).fetchall()
        return [Chat(*row) for row in rows]

    def turns(self, owner: str, chat_id: str) -> list[Turn]:
        self._own(owner, chat_id)
        with self._connect() as db:
            rows = db.execute("SELECT question, answer, shown, sources FROM turns WHERE chat_id = ? ORDER BY n", (chat_id,)).fetchall()
        return [Turn(q, json.loads(a), shown, sources) for q, a, shown, sources in rows]

    def add_turn(self, owner: str, chat_id: str, turn: Turn) -> None:
        """Append a turn; the first one names the chat after its question."""
        self._own(owner, chat_id)
        with self._connect() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM turns WHERE chat_id = ?", (chat_id,)).fetchone()
            db.execute(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, count, turn.question, json.dumps(turn.answer, ensure_ascii=False), turn.shown, turn.sources),
            )
            title = ", title = ?" if count == 0 else ""
            params: tuple[Any, ...] = (time.time(), _title(turn.question), chat_id) if count == 0 else (time.time(), chat_id)
            db.execute(f"UPDATE chats SET updated = ?{title} WHERE id = ?", params)

    def drop_last_turn(self, owner: str, chat_id: str) -> Turn | None:
        """Remove the chat's last turn (to answer it again) and return it."""
        turns = self.turns(owner, chat_id)
        if not turns:
            return None
        with self._connect() as db:
            db.execute("DELETE FROM turns WHERE chat_id = ? AND n = ?", (chat_id, len(turns) - 1))
        return turns[-1]

    def scope(self, owner: str, chat_id: str) -> list[str]:
        """The documents (source paths) this chat answers from; empty: all of them."""
        self._own(owner, chat_id)
        with self._connect() as db:
            row = db.execute("SELECT sources FROM scopes WHERE chat_id = ?", (chat_id,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def set_scope(self, owner: str, chat_id: str, sources: list[str]) -> None:
        self._own(owner, chat_id)
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO scopes VALUES (?, ?)", (chat_id, json.dumps(sorted(set(sources)), ensure_ascii=False)))

    def rename(self, owner: str, chat_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise InputError("a chat needs a name", "type a name for the chat, then rename")
        self._own(owner, chat_id)
        with self._connect() as db:
            db.execute("UPDATE chats SET title = ? WHERE id = ?", (title[:200], chat_id))

    def delete(self, owner: str, chat_id: str) -> None:
        self._own(owner, chat_id)
        with self._connect() as db:
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    def export(self, owner: str, chat_id: str, fmt: str) -> str:
        """The chat as Markdown (questions, answers and their sources) or as JSON."""
        title = next((c.title for c in self.chats(owner) if c.id == chat_id), "Chat")
        turns = self.turns(owner, chat_id)
        if fmt == "json":
            data = {"title": title, "turns": [{"question": t.question, **t.answer} for t in turns]}
            return json.dumps(_sanitised(data), ensure_ascii=False, indent=2)
        lines = [f"# {title}", ""]
        for t in turns:
            lines += [f"**You:** {t.question}", "", f"**Assistant:** {t.shown}", ""]
            for c in t.answer.get("citations", []):
                page = f", page {c['page']}" if c.get("page") is not None else ""
                lines.append(f'- [{c["n"]}] {c["source"]}{page}: "{" ".join(str(c["quote"]).split())}"')
            lines.append("")
        return sanitise("\n".join(lines))

    def _own(self, owner: str, chat_id: str) -> None:
        with self._connect() as db:
            row = db.execute("SELECT owner FROM chats WHERE id = ?", (chat_id,)).fetchone()
        if row is None or row[0] != owner:
            raise InputError("that chat does not exist (it may have been deleted)", "start a new chat or pick one from the list")


def _title(question: str) -> str:
    question = " ".join(question.split())
    return question if len(question) <= TITLE_CHARS else question[: TITLE_CHARS - 1].rstrip() + "…"

"""Saved chats: each user's own, in order, exportable, surviving a new store on the same file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.apps.chats import ChatStore, Turn
from rag.errors import InputError

ANSWER = {
    "answer": "The tank is covered for 6 years [1].",
    "query": "How long is the warranty?",
    "citations": [{"n": 1, "source": "manual.pdf", "page": 3, "quote": "covered by a limited\nwarranty of 6 years"}],
}


def test_chats_belong_to_their_user_and_survive_reopening(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.sqlite")
    mine = store.create("alice")
    store.add_turn("alice", mine, Turn("How long is the warranty?", ANSWER, ANSWER["answer"], "<p>sources</p>"))
    store.add_turn("alice", mine, Turn("And what voids it?", {"answer": "x", "query": "What voids the warranty?"}, "x", ""))
    theirs = store.create("bob")
    reopened = ChatStore(tmp_path / "chats.sqlite")
    assert [c.title for c in reopened.chats("alice")] == ["How long is the warranty?"]  # named after its first question
    assert [t.query for t in reopened.turns("alice", mine)] == ["How long is the warranty?", "What voids the warranty?"]
    assert [c.id for c in reopened.chats("bob")] == [theirs]
    with pytest.raises(InputError, match="does not exist"):
        reopened.turns("bob", mine)  # another user's chat is not there for them
    with pytest.raises(InputError):
        reopened.delete("bob", mine)
    assert reopened.drop_last_turn("alice", mine).question == "And what voids it?"
    assert len(reopened.turns("alice", mine)) == 1


def test_export_rename_and_delete(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.sqlite")
    chat = store.create("local")
    store.add_turn("local", chat, Turn("How long is the warranty?", ANSWER, ANSWER["answer"], ""))
    store.rename("local", chat, "  Heater   warranty ")
    markdown = store.export("local", chat, "markdown")
    assert markdown.startswith("# Heater warranty")
    assert '- [1] manual.pdf, page 3: "covered by a limited warranty of 6 years"' in markdown
    data = json.loads(store.export("local", chat, "json"))
    assert data["turns"][0]["question"] == "How long is the warranty?" and data["turns"][0]["citations"][0]["page"] == 3
    with pytest.raises(InputError, match="needs a name"):
        store.rename("local", chat, "   ")
    store.delete("local", chat)
    assert store.chats("local") == []

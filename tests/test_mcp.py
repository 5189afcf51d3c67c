"""`rag mcp`, driven by the MCP SDK's own client over stdio and over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, serve

pytestmark = pytest.mark.slow
mcp = pytest.importorskip("mcp")

TOKEN = "mcp-test-token-0123456789"
GUARDED = Path(__file__).resolve().parent / "guarded_cli.py"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from rag.config import Settings
    from rag.sample import sample_dir
    from rag.service import Rag

    index = tmp_path_factory.mktemp("mcp") / "index"
    Rag(Settings(index_dir=index), embedder=embedder).ingest([sample_dir()])
    return index


def _argv(index: Path, *args: str) -> list[str]:
    return [sys.executable, str(GUARDED), str(index.parent / "egress.log"), "mcp", "--index", str(index), *args]


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if set(content) == {"result"} else content
    return json.loads(result.content[0].text)


async def _session_checks(client: Any) -> dict[str, Any]:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    found = _data(await client.call_tool("search", {"query": "late fee for rent", "top_k": 3}))
    answer = _data(await client.call_tool("ask", {"question": "How long is the warranty on the water heater?"}))
    follow = _data(
        await client.call_tool("ask", {"question": "And what voids it?", "history": ["How long is the warranty on the water heater?"]})
    )
    documents = _data(await client.call_tool("list_documents", {}))
    passage_uri = found["passages"][0]["uri"]
    passage = json.loads((await client.read_resource(passage_uri)).contents[0].text)
    listed = [str(r.uri) for r in (await client.list_resources()).resources]
    bad_filter = await client.call_tool("search", {"query": "rent", "where": ["modified:2025-02-30"]})
    return {
        "tools": tools,
        "found": found,
        "answer": answer,
        "follow": follow,
        "documents": documents,
        "passage": passage,
        "resources": listed,
        "bad_filter": bad_filter,
    }


def _check(seen: dict[str, Any]) -> None:
    assert set(seen["tools"]) == {"search", "ask", "list_documents"}  # read-only: no ingest tools without the flag
    assert seen["tools"]["search"].annotations.read_only_hint
    top = seen["found"]["passages"][0]
    assert top["source"] == "lease-agreement.docx" and "late" in top["text"].lower() and top["chunk_id"]
    answer = seen["answer"]
    assert not answer["refused"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["source"] == "water-heater-manual.pdf" and answer["citations"][0]["page"]
    assert {c["source"] for c in seen["follow"]["citations"]} == {"water-heater-manual.pdf"}
    assert "void" in json.dumps(seen["follow"]["citations"]).lower()
    assert {d["source"] for d in seen["documents"]} >= {"lease-agreement.docx", "water-heater-manual.pdf", "garden-faq.html"}
    assert seen["passage"]["chunk_id"] == top["chunk_id"] and seen["passage"]["text"] == top["text"]
    assert {"rag://index/status", "rag://documents"} <= set(seen["resources"])
    assert seen["bad_filter"].is_error and "is not a date" in seen["bad_filter"].content[0].text


def test_stdio(indexed: Path) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=_argv(indexed)[1:], env=dict(os.environ))

    async def run() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=300) as client:
            return await _session_checks(client)

    _check(asyncio.run(run()))
    assert not (indexed.parent / "egress.log").exists()


@pytest.fixture
def http_url(indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    monkeypatch.setenv("RAG_MCP_TOKEN", TOKEN)
    argv = _argv(indexed, "--http", "--port", str(port), "--allow-ingest", str(tmp_path / "inbox"))
    (tmp_path / "inbox").mkdir()
    url = f"http://127.0.0.1:{port}/mcp"
    yield from (
        url for _ in serve(argv, f"http://127.0.0.1:{port}/health", tmp_path / "mcp.log", headers={"Authorization": f"Bearer {TOKEN}"})
    )


def _http_client(url: str, token: str) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300))
    return Client(transport, read_timeout_seconds=300)


def test_streamable_http_with_a_token_and_ingest_allowed(http_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "boat.md").write_text("# Boat club\n\nThe rowing boats must be back at the pier by 7 pm.\n", encoding="utf-8")

    async def run() -> tuple[dict[str, Any], Any, Any, Any]:
        async with _http_client(http_url, TOKEN) as client:
            report = _data(await client.call_tool("ingest", {"paths": [str(inbox)]}))
            outside = await client.call_tool("ingest", {"paths": [str(tmp_path)]})
            found = _data(await client.call_tool("search", {"query": "When must the rowing boats be back?", "top_k": 1}))
            return report, outside, found, await client.list_tools()

    report, outside, found, tools = asyncio.run(run())
    assert report["added"] == ["boat.md"]
    assert outside.is_error and "outside the folders" in outside.content[0].text
    assert found["passages"][0]["source"] == "boat.md"
    assert {"ingest", "remove"} <= {t.name for t in tools.tools}

    import httpx

    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        assert httpx.post(http_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers).status_code == 401


def test_http_beyond_loopback_needs_a_token(rag, tmp_path: Path) -> None:
    result = rag("mcp", "--http", "--host", "0.0.0.0", index=tmp_path / "index", check=2)
    assert "without a token" in result.stderr and "--token" in result.stderr

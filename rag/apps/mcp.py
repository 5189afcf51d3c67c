"""``rag mcp``: the index as a Model Context Protocol server, for agents and editors that speak MCP.

Tools: ``search`` (passages with their file, page and chunk id), ``ask`` (a verified, cited answer,
the JSON contract of ``rag ask --json``) and ``list_documents``. Resources: the index's status, the
list of documents, and every passage by id (``rag://passages/{chunk_id}``, the ids ``search``
returns). Read-only by default: ``ingest`` and ``remove`` exist only when the server is started with
``--allow-ingest DIR``, and then only for paths under those folders.

Served over stdio (an agent starts ``rag mcp`` itself) or streamable HTTP (``--http``), under the
chat page's rules: loopback by default, a bearer token required on any other address. Model work
runs on one thread, in arrival order, as on the chat page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from rag.answer.safety import sanitise
from rag.errors import InputError, RagError
from rag.index.where import Where
from rag.schema import Chunk
from rag.service import Rag

T = TypeVar("T")
INSTRUCTIONS = (
    "Searches and answers from the user's own indexed documents, offline. Use `search` for passages "
    "(cite them by file and page), `ask` for a checked answer with citations (it refuses when the "
    "documents do not answer), and `list_documents` to see what is indexed."
)


class McpTools:
    """What the tools do, over one ``Rag``; model work runs on one worker thread."""

    def __init__(self, rag: Rag, ingest_roots: list[Path] | None = None) -> None:
        self.rag = rag
        self.ingest_roots = [p.resolve() for p in ingest_roots or []]
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-model")

    async def run(self, work: Callable[[], T], *, resource: bool = False) -> T:
        """``work`` on the model thread; a rag error becomes the tool's (or resource's) error text, with its fix."""
        from mcp.server.mcpserver.exceptions import ResourceError, ToolError

        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, work)
        except RagError as err:
            message = f"{err.problem} (fix: {err.hint})" if err.hint else err.problem
            raise (ResourceError if resource else ToolError)(message) from None

    def search(self, query: str, top_k: int = 5, where: list[str] | None = None) -> dict[str, Any]:
        chosen = Where.parse(where or []) or None
        retrieval = self.rag.retriever().retrieve(" ".join(query.split()) or _empty(), top_k=max(1, min(top_k, 50)), where=chosen)
        passages = [
            {
                "n": n,
                **_passage_fields(hit.chunk),
                "uri": f"rag://passages/{hit.chunk.id}",
                "score": round(hit.score, 6),
            }
            for n, hit in enumerate(retrieval.hits, 1)
        ]
        return {"query": retrieval.query, "passages": passages}

    def ask(self, question: str, history: list[str] | None = None, where: list[str] | None = None) -> dict[str, Any]:
        chosen = Where.parse(where or []) or None
        earlier = [f.query for f in self.rag.resolve_all(history or [])]
        answer = self.rag.ask(self.rag.resolve(question, earlier), where=chosen)
        keep = ("question", "answer", "refused", "refusal_reason", "citations", "evidence", "query", "mode", "model")
        data = answer.to_json()
        return {k: data[k] for k in keep}

    def documents(self) -> list[dict[str, Any]]:
        index = self.rag.require_index()
        entries = index.manifest.files
        return [
            {"source": e.display_name, "path": path, "language": e.language, "passages": len(e.chunk_ids), "bytes": e.size}
            for path, e in sorted(entries.items(), key=lambda kv: kv[1].display_name)
        ]

    def status(self) -> dict[str, Any]:
        status = self.rag.status()
        if status is None:
            return {"indexed": False}
        keep = ("embedder", "files", "chunks", "generation")
        return {"indexed": True, **{k: getattr(status, k) for k in keep}}

    def passage(self, chunk_id: str) -> dict[str, Any]:
        found = self.rag.require_index().get([chunk_id])
        if not found:
            raise InputError(f"no indexed passage has the id {chunk_id!r}", "use a chunk_id that search returned")
        return _passage_fields(found[0])

    def ingest(self, paths: list[str]) -> dict[str, Any]:
        chosen = [self._allowed(p) for p in paths]
        return self.rag.ingest(chosen).to_json()

    def remove(self, sources: list[str]) -> dict[str, Any]:
        chosen = [str(self._allowed(s)) for s in sources]
        files, passages = self.rag.remove(chosen)
        if not files:
            raise InputError(f"nothing is indexed at {', '.join(chosen)}", "pass indexed files or folders (list_documents names them)")
        return {"files_removed": [sanitise(f) for f in files], "passages_removed": passages}

    def _allowed(self, path: str) -> Path:
        if "\x00" in path:
            raise InputError(f"the path {path!r} contains a NUL character, which no file name can hold", "pass the file's real path")
        resolved = Path(path).expanduser().resolve()
        if not any(resolved == root or root in resolved.parents for root in self.ingest_roots):
            roots = ", ".join(map(str, self.ingest_roots))
            raise InputError(f"{path} is outside the folders this server may index ({roots})", "restart rag mcp with --allow-ingest FOLDER")
        return resolved


def _passage_fields(c: Chunk) -> dict[str, Any]:
    """A passage as a client sees it: its text and names sanitised as every output is."""
    return {
        "chunk_id": c.id,
        "source": sanitise(c.display_name or c.source),
        "page": c.page,
        "heading": sanitise(c.heading),
        "text": sanitise(c.text),
    }


def _empty() -> str:
    raise InputError("the query is empty", "pass the words to search for")


def build_server(tools: McpTools) -> Any:
    """The MCP server: tools and resources over ``tools``."""
    from mcp.server import MCPServer
    from mcp.types import ToolAnnotations

    READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    server = MCPServer("rag", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(
        annotations=READ_ONLY,
        description="Passages of the indexed documents for a query, best first, each with its file, page and chunk id.",
    )
    async def search(query: str, top_k: int = 5, where: list[str] | None = None) -> dict[str, Any]:
        """where: optional filters, e.g. ["type:pdf", "source:contracts/*", "language:de", "modified:>=2025-01-01"]."""
        return await tools.run(lambda: tools.search(query, top_k, where))

    @server.tool(
        annotations=READ_ONLY,
        description="A checked answer from the indexed documents with numbered citations [n] (file, page, quote); refuses when they do not answer.",
    )
    async def ask(question: str, history: list[str] | None = None, where: list[str] | None = None) -> dict[str, Any]:
        """history: the conversation's earlier questions, oldest first (the question may be their follow-up)."""
        return await tools.run(lambda: tools.ask(question, history, where))

    @server.tool(annotations=READ_ONLY, description="The indexed documents: display name, path, language and number of passages.")
    async def list_documents() -> list[dict[str, Any]]:
        return await tools.run(tools.documents)

    @server.resource("rag://index/status", mime_type="application/json", description="What is indexed: files, passages, embedder.")
    async def index_status() -> str:
        return json.dumps(await tools.run(tools.status, resource=True))

    @server.resource("rag://documents", mime_type="application/json", description="The indexed documents.")
    async def documents() -> str:
        return json.dumps(await tools.run(tools.documents, resource=True), ensure_ascii=False)

    @server.resource(
        "rag://passages/{chunk_id}", mime_type="application/json", description="One indexed passage, by the chunk id search returns."
    )
    async def passage(chunk_id: str) -> str:
        return json.dumps(await tools.run(lambda: tools.passage(chunk_id), resource=True), ensure_ascii=False)

    if tools.ingest_roots:

        @server.tool(description="Index files or folders (only under the folders this server was allowed).")
        async def ingest(paths: list[str]) -> dict[str, Any]:
            return await tools.run(lambda: tools.ingest(paths))

        @server.tool(description="Remove indexed files or folders from the index (only under the allowed folders).")
        async def remove(sources: list[str]) -> dict[str, Any]:
            return await tools.run(lambda: tools.remove(sources))

    return server


def with_health(app: Any) -> Any:
    """``GET /health`` answers 200 when the server is up (for process managers and tests)."""
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def health(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.router.routes.append(Route("/health", health, methods=["GET"]))
    return app

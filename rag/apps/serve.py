"""Launching the chat page safely: loopback by default, authentication required elsewhere."""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from typing import Any
from urllib.parse import unquote

from rag.apps.egress import EgressGuard, url_hosts
from rag.apps.malloc import cap_arenas
from rag.apps.watch import FolderWatch
from rag.errors import InputError
from rag.service import Rag


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: str | None) -> tuple[str, str] | None:
    """Credentials to require, or an error when a non-loopback bind has none."""
    credentials = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise InputError("--auth must look like user:password", "pass --auth alice:a-long-password (or set RAG_AUTH)")
        credentials = (user, password)
    if not is_loopback(host) and credentials is None:
        raise InputError(
            f"refusing to serve on {host} without authentication: anyone on the network could read your documents",
            "add --auth user:password (or RAG_AUTH), or bind 127.0.0.1",
        )
    return credentials


def check_token(host: str, token: str | None, *, option: str) -> str | None:
    """The bearer token to require, or an error when a non-loopback bind has none."""
    token = (token or "").strip() or None
    if not is_loopback(host) and token is None:
        raise InputError(
            f"refusing to serve on {host} without a token: anyone on the network could read your documents",
            f"add {option} A-LONG-RANDOM-SECRET (clients send it as 'Authorization: Bearer ...'), or bind 127.0.0.1",
        )
    return token


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an Authorization header carries ``token`` (compared in constant time)."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class RequireBearer:
    """ASGI middleware: HTTP requests without the bearer token get a 401."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            headers = dict(scope.get("headers") or [])
            if not bearer_matches(headers.get(b"authorization", b"").decode("latin-1"), self.token):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b"a valid token is required: send 'Authorization: Bearer TOKEN'"})
                return
        await self.app(scope, receive, send)


_REMOTE_FILE = re.compile(r"/file=\s*(?:[a-z][a-z0-9+.-]*:|//|\\\\)", re.IGNORECASE)


class RefuseRemoteFiles:
    """ASGI middleware: the page's file routes serve local files only, never a URL they are handed
    (``/gradio_api/file=https://host/x`` would make the server fetch it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            path = unquote(unquote(scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "")))
            if _REMOTE_FILE.search(path):
                await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"rag serves no remote files"})
                return
        await self.app(scope, receive, send)


def guard_egress(rag: Rag, host: str) -> EgressGuard:
    """Refuse every connection beyond this machine, except to the servers the settings name."""
    settings = rag.settings
    return EgressGuard(url_hosts([settings.chroma_url, settings.llm_url, *settings.embedder_urls]) | {host}).install()


def serve_asgi(rag: Rag, app: Any, *, host: str, port: int) -> None:
    """Serve an ASGI app (the OpenAI-compatible API, the MCP server) under the page's egress rules."""
    import uvicorn

    guard_egress(rag, host)
    cap_arenas()
    # on SIGTERM, connections get a few seconds to finish; then the app's shutdown stops the model's work
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=3)


def launch(
    rag: Rag,
    *,
    host: str,
    port: int,
    auth: tuple[str, str] | None,
    max_upload_mb: float,
    max_waiting: int = 8,
    watch: FolderWatch | None = None,
) -> None:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    guard_egress(rag, host)
    cap_arenas()
    from starlette.middleware import Middleware

    from ui.app import CSS, JS, create_app
    from ui.texts import PageTexts

    texts = PageTexts.load()
    app = create_app(rag, max_waiting=max_waiting, texts=texts, watch=watch.status if watch is not None else None)
    blocked = [str(rag.settings.index_dir.resolve())]
    app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=False,
        max_file_size=int(max_upload_mb * 1_000_000),
        blocked_paths=blocked,
        show_error=False,
        quiet=True,
        css=CSS,
        js=JS,
        footer_links=[],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        app_kwargs={"middleware": [Middleware(RefuseRemoteFiles)]},
        i18n=texts.i18n,
    )

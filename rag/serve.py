"""Launching the chat page safely: loopback by default, authentication required elsewhere."""

from __future__ import annotations

import ipaddress
import os

from .errors import InputError
from .malloc import cap_arenas
from .service import Rag


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


def launch(rag: Rag, *, host: str, port: int, auth: tuple[str, str] | None, max_upload_mb: float, max_waiting: int = 8) -> None:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    cap_arenas()
    from ui.app import CSS, create_app

    app = create_app(rag, max_waiting=max_waiting)
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
        footer_links=[],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
    )

"""HTML with BeautifulSoup: scripts and styles dropped, headings kept as Markdown headings, tables
as named rows. E-books and e-mail read their HTML through ``html_to_text``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rag.ingest.loaders.base import Loader, LoadOptions, read_text
from rag.ingest.loaders.tables import render_table
from rag.schema import Document

_BLOCK_TAGS = {"p", "div", "li", "tr", "br", "pre", "blockquote", "section", "article", "table", "ul", "ol", "dd", "dt"}
_DROPPED = ["head", "script", "style", "noscript", "template", "iframe", "object", "embed", "svg"]
MAX_COLSPAN = 50


def _load_html(path: Path, _: LoadOptions) -> Document:
    title, text = html_to_text(read_text(path))
    return Document(source=str(path), text=text, title=title)


def html_to_text(markup: str) -> tuple[str, str]:
    """The title and the readable text of an HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(_DROPPED):
        tag.decompose()
    for table in reversed(soup.find_all("table")):  # inner tables first: an outer one reads them as text
        table.replace_with(soup.new_string(f"\n\n{_table_text(table)}\n\n"))
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(soup.new_string(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n"))
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(soup.new_string("\n\n"))
        tag.insert_after(soup.new_string("\n\n"))
    text = soup.get_text()
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return title, re.sub(r"\n{3,}", "\n\n", text).strip()


def _table_text(table: Any) -> str:
    rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
    cells: list[list[str]] = []
    for row in rows:
        line: list[str] = []
        for cell in row.find_all(["td", "th"], recursive=False):
            span = cell.get("colspan", "1")
            repeat = min(int(span), MAX_COLSPAN) if str(span).isdigit() and int(span) > 0 else 1
            line.extend([cell.get_text(" ", strip=True)] * repeat)
        cells.append(line)
    caption = table.find("caption")
    return render_table(cells, caption.get_text(" ", strip=True) if caption else "")


LOADER = Loader("html", (".html", ".htm"), _load_html, isolated=True)

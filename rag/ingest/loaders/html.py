"""HTML with BeautifulSoup: scripts and styles dropped, headings kept as Markdown headings."""

from __future__ import annotations

import re
from pathlib import Path

from rag.ingest.loaders.base import Loader, read_text
from rag.schema import Document

_BLOCK_TAGS = {"p", "div", "li", "tr", "br", "pre", "blockquote", "section", "article", "table", "ul", "ol", "dd", "dt"}


def _load_html(path: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text(path), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "template", "iframe", "object", "embed", "svg"]):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(soup.new_string(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n"))
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(soup.new_string("\n\n"))
        tag.insert_after(soup.new_string("\n\n"))
    text = soup.get_text()
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Document(source=str(path), text=text, title=title)


LOADER = Loader("html", (".html", ".htm"), _load_html, isolated=True)

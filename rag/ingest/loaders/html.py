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
# BeautifulSoup's time grows with the square of the nesting depth (20,000 deep took 17 s); real
# pages nest a few dozen levels. A page nested deeper is read as plain text, in linear time.
MAX_DEPTH = 512
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_OPTIONAL_END = {"p", "li", "td", "th", "tr", "dt", "dd", "option", "thead", "tbody", "tfoot", "colgroup", "rp", "rt"}
# inline styles that hide text from a reader (hidden text is how a page slips instructions to a model)
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0*(\.0+)?\s*(;|$)|font-size\s*:\s*[01](\.\d+)?\s*(px|pt)?\s*(;|$)",
    re.IGNORECASE,
)
_DROPPED_BLOCK = re.compile(r"<(head|script|style|noscript|template|iframe|object|svg)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _load_html(path: Path, _: LoadOptions) -> Document:
    title, text = html_to_text(read_text(path))
    return Document(source=str(path), text=text, title=title)


def html_to_text(markup: str) -> tuple[str, str]:
    """The title and the readable text of an HTML page."""
    from bs4 import BeautifulSoup

    if nesting_depth(markup) > MAX_DEPTH:
        return "", _flat_text(markup)
    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(_DROPPED):
        tag.decompose()
    for tag in soup.find_all(_hidden):
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


def _hidden(tag: Any) -> bool:
    """Whether an element is hidden from a reader: the ``hidden`` attribute, or an inline style that
    hides it (``display:none``, ``visibility:hidden``, ``opacity:0``, a font of 0 or 1 px)."""
    if tag.attrs is None or tag.decomposed:
        return False
    return tag.has_attr("hidden") or bool(_HIDDEN_STYLE.search(str(tag.get("style", ""))))


def nesting_depth(markup: str) -> int:
    """How deep the page's elements nest, counted from its tags in one pass (elements whose end
    tag may be left out, and void ones, are not counted)."""
    depth = deepest = 0
    for match in _TAG.finditer(markup):
        name = match.group(2).lower()
        if name in _VOID or name in _OPTIONAL_END or match.group(3):
            continue
        depth = max(0, depth - 1) if match.group(1) else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _flat_text(markup: str) -> str:
    """The page's text without its structure: scripts, styles and the head dropped, tags removed."""
    import html

    text = _TAG.sub(" ", _DROPPED_BLOCK.sub(" ", markup))
    text = re.sub(r"[ \t\f\v]+", " ", html.unescape(text))
    return re.sub(r"\s*\n\s*", "\n", text).strip()


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

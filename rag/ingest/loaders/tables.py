"""Tables as text that answers questions: one line per row, each cell named by its column header.

A table cut into chunks loses its header row, and "28" alone answers nothing. So every row is
written as "City: Munich | Per diem: 28 EUR | Hotel cap: 150 EUR": a row is one line, a line is
one unit of chunking and of verification, so a long table is split between rows, never inside
one, and a quote shows the whole row. The table's caption (or the sheet's name) becomes a heading,
which every chunk of it carries; the section heading above a table is carried anyway.

Every loader with tables (HTML, DOCX, Markdown, spreadsheets, CSV, slides) writes them here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CAPTION_LEVEL = 6  # a caption heading nests under whatever heading the table sits below
_SPACE = re.compile(r"\s+")


def cell_text(value: object) -> str:
    """A cell as one line of text: whitespace (line breaks included) collapsed, "28.0" read as "28"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if hasattr(value, "isoformat"):  # dates and times from spreadsheets
        text = value.isoformat()
        value = text[:-9] if text.endswith("T00:00:00") else text
    return _SPACE.sub(" ", str(value)).strip()


def render_table(rows: Sequence[Sequence[object]], caption: str = "", header: bool = True) -> str:
    """The table as text, one line per row: with ``header``, the first non-empty row names the columns
    (a column without a name is "Column N") and is not repeated as a row of its own."""
    cells = [[cell_text(c) for c in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    if header and len(cells) > 1 and sum(1 for c in cells[0] if c) > 1:
        names, body = cells[0], cells[1:]
        lines = [_named_row(names, row) for row in body]
    else:
        lines = [" | ".join(c for c in row if c) for row in cells]
    text = "\n".join(line for line in lines if line)
    caption = cell_text(caption)
    return f"{'#' * CAPTION_LEVEL} {caption}\n\n{text}" if caption else text


def _named_row(names: Sequence[str], row: Sequence[str]) -> str:
    parts: list[str] = []
    for number, value in enumerate(row):
        if not value:
            continue
        name = names[number] if number < len(names) and names[number] else f"Column {number + 1}"
        part = value if name == value else f"{name}: {value}"  # a header repeated in its own column says nothing
        if not parts or parts[-1] != part:  # merged cells repeat their value across the columns they span
            parts.append(part)
    return " | ".join(parts)


_PIPE_ROW = r"[ \t]*\|?[^\n]*\|[^\n]*"
_MARKDOWN_TABLE = re.compile(
    rf"^(?P<header>{_PIPE_ROW})\n[ \t]*\|?[ \t]*:?-{{2,}}:?[ \t]*(\|[ \t]*:?-{{2,}}:?[ \t]*)*\|?[ \t]*\n(?P<body>(?:{_PIPE_ROW}(?:\n|$))*)",
    re.MULTILINE,
)


def markdown_tables(text: str) -> str:
    """Markdown text with its pipe tables written as named rows (see ``render_table``)."""

    def rewrite(match: re.Match[str]) -> str:
        rows = [_pipe_cells(line) for line in [match.group("header"), *match.group("body").splitlines()] if line.strip()]
        return render_table(rows) + ("\n" if match.group(0).endswith("\n") else "")

    return _MARKDOWN_TABLE.sub(rewrite, text)


def _pipe_cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.replace("\\|", "|").strip() for cell in re.split(r"(?<!\\)\|", line)]

"""The sources panel: each cited passage with the quoted span marked, in plain words.

Everything that comes from a document or a model is escaped here; the panel is the only HTML the
page builds from them.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Protocol

from rag.schema import REASON_TITLES, Answer, Chunk, Citation

from .pdfpage import page_image
from .texts import PageTexts

EMPTY = "<p>Sources of an answer appear here. Click an answer to see its own sources.</p>"


class ChunkSource(Protocol):
    def chunks(self, ids: list[str]) -> list[Chunk]: ...


def _passage(chunks: dict[str, Any], citation: Citation) -> str:
    """The cited chunk with the quoted span highlighted; every piece escaped."""
    chunk = chunks.get(citation.chunk_id)
    if chunk is None:
        return "<mark>" + html.escape(citation.quote) + "</mark>"
    text = _unwrapped(chunk.text)
    a = max(0, citation.quote_start - chunk.char_start)
    b = max(a, citation.quote_end - chunk.char_start)
    return html.escape(text[:a]) + "<mark>" + html.escape(text[a:b]) + "</mark>" + html.escape(text[b:])


def _unwrapped(text: str) -> str:
    """``text`` with a PDF's hard line wraps joined (a lone newline becomes a space, the same
    length, so quote offsets still hold); blank lines and table rows (Markdown rows, and lines of
    "Header: value | ..." cells) stay on lines of their own."""
    lines = text.split("\n")
    out = [lines[0]]
    for before, line in zip(lines, lines[1:]):
        kept = not before.strip() or not line.strip() or _is_row(before) or _is_row(line)
        out.append(("\n" if kept else " ") + line)
    return "".join(out)


def _is_row(line: str) -> bool:
    line = line.strip()
    return line.startswith("|") or line.endswith("|") or " | " in line


def _page_view(citation: Citation, t: dict[str, str]) -> str:
    """For a PDF, the cited page as printed, with the quote marked (collapsed until opened)."""
    if citation.page is None or Path(citation.source).suffix.lower() != ".pdf":
        return ""
    image = page_image(citation.source, citation.page, citation.quote)
    if image is None:
        return ""
    alt = f"Page {citation.page} of {citation.display_name}, the quoted passage highlighted"
    return (
        f'<details class="page-view"><summary>{html.escape(t["show_page"].format(page=citation.page))}</summary>'
        f'<img src="{image}" alt="{html.escape(alt)}" loading="lazy"></details>'
    )


def _source_card(chunks: dict[str, Any], citation: Citation, t: dict[str, str], css_class: str = "source") -> str:
    page = t["page"].format(page=citation.page) if citation.page is not None else ""
    return (
        f'<div class="{css_class}" id="source-{citation.n}" data-n="{citation.n}"><b>[{citation.n}] {html.escape(citation.display_name)}</b>'
        f'{html.escape(page)}<div class="passage">{_passage(chunks, citation)}</div>{_page_view(citation, t)}</div>'
    )


def _why(reason: str, t: dict[str, str]) -> str:
    return f'<details class="why"><summary>{html.escape(t["why"])}</summary>{html.escape(reason)}</details>' if reason else ""


def _notice(title: str, detail: str) -> str:
    return f'<div class="refusal"><b>{html.escape(title)}</b> {html.escape(detail)}'


def _header(answer: Answer, t: dict[str, str]) -> list[str]:
    """What the answer is, in plain words: how a follow-up was understood, a refusal, a stop."""
    parts: list[str] = []
    if answer.query and answer.query != answer.question:
        parts.append(f'<p class="understood">{html.escape(t["understood_as"])} <i>{html.escape(answer.query)}</i></p>')
    if answer.refused:
        parts.append(_notice(t["not_answered"], t["not_answered_detail"]) + f"{_why(answer.refusal_reason, t)}</div>")
    if answer.mode == "stopped":
        parts.append(_notice(t["stopped"], t["stopped_detail"]) + "</div>")
    if answer.mode == "extractive":
        why = t["model_found_none"] if answer.model_refused else t["model_unsupported"]
        parts.append(f'<p class="unsupported">{html.escape(why)}</p>')
    return parts


def render_sources(index: ChunkSource, answer: Answer, texts: PageTexts) -> str:
    """The cited passages with the supporting spans highlighted, sentences left out and why,
    related passages when refused, and any model reasoning collapsed, in the asker's language
    (``texts``). All text escaped."""
    t = texts.of(answer.question)
    wanted = [c.chunk_id for c in answer.citations + answer.evidence]
    chunks = {c.id: c for c in index.chunks(wanted)} if wanted else {}
    parts = _header(answer, t)
    if answer.refused and answer.evidence:
        parts.append(f'<p class="related-title"><b>{html.escape(t["related"])}</b></p>')
        parts.extend(_source_card(chunks, c, t, "source related") for c in sorted(answer.evidence, key=lambda c: c.n))
    parts.extend(_source_card(chunks, c, t) for c in answer.citations)
    for reason in REASON_TITLES:
        left_out = [c for c in answer.claims if c.left_out_reason == reason]
        if left_out:
            items = "".join(f"<li>{html.escape(c.text)}</li>" for c in left_out)
            title = html.escape(t["left_out"].format(title=t[f"reason.{reason}"]))
            parts.append(f'<details class="unsupported"><summary>{title}</summary><ul>{items}</ul></details>')
    if answer.reasoning:
        parts.append(
            f'<details class="reasoning"><summary>{html.escape(t["reasoning"])}</summary>'
            f'<div class="passage">{html.escape(answer.reasoning)}</div></details>'
        )
    return "\n".join(parts) or "<p>No sources.</p>"


def shown_text(answer: Answer, texts: PageTexts) -> str:
    """The reply as the chat shows it, its marks in the asker's language."""
    t, text = texts.of(answer.question), answer.text
    if answer.refused:
        text = t["reply_not_answered"].format(text=text)
    elif answer.mode == "stopped":
        text = (text + " " if text else "") + t["reply_stopped"]
    elif answer.truncated and answer.mode == "generated":
        text += " " + t["reply_cut"]
    return text

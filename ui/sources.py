"""The sources panel: each cited passage with the quoted span marked, in plain words.

Everything that comes from a document or a model is escaped here; the panel is the only HTML the
page builds from them.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Protocol

from rag.schema import REASON_TITLES, Answer, Chunk, Citation

from .pdfpage import page_image

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
    length, so quote offsets still hold); blank lines and Markdown table rows stay."""
    return re.sub(r"(?<=[^\n|])\n(?=[^\n|])", " ", text)


def _page_view(citation: Citation) -> str:
    """For a PDF, the cited page as printed, with the quote marked (collapsed until opened)."""
    if citation.page is None or Path(citation.source).suffix.lower() != ".pdf":
        return ""
    image = page_image(citation.source, citation.page, citation.quote)
    if image is None:
        return ""
    alt = f"Page {citation.page} of {citation.display_name}, the quoted passage highlighted"
    return (
        f'<details class="page-view"><summary>Show page {citation.page} as printed</summary>'
        f'<img src="{image}" alt="{html.escape(alt)}" loading="lazy"></details>'
    )


def _source_card(chunks: dict[str, Any], citation: Citation, css_class: str = "source") -> str:
    page = f", page {citation.page}" if citation.page is not None else ""
    return (
        f'<div class="{css_class}" id="source-{citation.n}" data-n="{citation.n}"><b>[{citation.n}] {html.escape(citation.display_name)}</b>'
        f'{html.escape(page)}<div class="passage">{_passage(chunks, citation)}</div>{_page_view(citation)}</div>'
    )


def _why(reason: str) -> str:
    return f'<details class="why"><summary>Why?</summary>{html.escape(reason)}</details>' if reason else ""


def _header(answer: Answer) -> list[str]:
    """What the answer is, in plain words: how a follow-up was understood, a refusal, a stop."""
    parts: list[str] = []
    if answer.query and answer.query != answer.question:
        parts.append(f'<p class="understood">Understood as: <i>{html.escape(answer.query)}</i></p>')
    if answer.refused:
        parts.append(
            '<div class="refusal"><b>Not answered.</b> Your documents do not seem to answer this question.'
            f"{_why(answer.refusal_reason)}</div>"
        )
    if answer.mode == "stopped":
        parts.append('<div class="refusal"><b>Stopped.</b> Only the sentences checked before you stopped are shown.</div>')
    if answer.mode == "extractive":
        why = (
            "The model found no answer in the passages, but one answers closely"
            if answer.model_refused
            else "The model's own wording was not supported by your documents"
        )
        parts.append(f'<p class="unsupported">{why}; the passage is quoted instead.</p>')
    return parts


def render_sources(index: ChunkSource, answer: Answer) -> str:
    """The cited passages with the supporting spans highlighted, sentences left out and why,
    related passages when refused, and any model reasoning collapsed. All text escaped."""
    wanted = [c.chunk_id for c in answer.citations + answer.evidence]
    chunks = {c.id: c for c in index.chunks(wanted)} if wanted else {}
    parts = _header(answer)
    if answer.refused and answer.evidence:
        parts.append('<p class="related-title"><b>Related passages (not an answer)</b></p>')
        parts.extend(_source_card(chunks, c, "source related") for c in sorted(answer.evidence, key=lambda c: c.n))
    parts.extend(_source_card(chunks, c) for c in answer.citations)
    for reason, title in REASON_TITLES.items():
        left_out = [c for c in answer.claims if c.left_out_reason == reason]
        if left_out:
            items = "".join(f"<li>{html.escape(c.text)}</li>" for c in left_out)
            parts.append(
                f'<details class="unsupported"><summary>{html.escape(title)} (left out of the answer)</summary><ul>{items}</ul></details>'
            )
    if answer.reasoning:
        parts.append(
            '<details class="reasoning"><summary>Model reasoning (not part of the answer)</summary>'
            f'<div class="passage">{html.escape(answer.reasoning)}</div></details>'
        )
    return "\n".join(parts) or "<p>No sources.</p>"


def shown_text(answer: Answer) -> str:
    """The reply as the chat shows it."""
    text = answer.text
    if answer.refused:
        text = "⚠ Not answered: " + text
    elif answer.mode == "stopped":
        text = (text + " " if text else "") + "[stopped]"
    elif answer.truncated and answer.mode == "generated":
        text += " [answer cut at the length limit]"
    return text

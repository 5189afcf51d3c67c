"""Structure-aware chunking bounded by the embedder's token limit.

A document is cut at hard boundaries (headings, pages), then into paragraphs and sentences;
sentences are packed into chunks of at most ``max_tokens`` (heading included), neighbouring
chunks of a section overlap by up to ``overlap_tokens``. Every chunk is an exact slice of the
document text, so offsets and quotes always point at real characters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.schema import Chunk, Document
from rag.text.analysis import language, sentences

TokenCounter = Callable[[Sequence[str]], list[int]]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass
class _Unit:
    start: int
    end: int
    paragraph: int
    tokens: int = 0


@dataclass
class _Section:
    heading: str
    start: int
    end: int


def chunk_document(
    doc: Document,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap_tokens: int,
) -> list[Chunk]:
    """Split ``doc`` into chunks whose embedding text never exceeds ``max_tokens`` tokens."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    sections = _sections(doc)
    lang = language(doc.text)  # one language per document decides its sentence rules
    heading_tokens = dict(zip([s.heading for s in sections], count_tokens([s.heading for s in sections])))
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in sections:
        budget = max_tokens - (heading_tokens[section.heading] + 1 if section.heading else 0)
        if budget < max_tokens // 2:  # an absurdly long heading: keep it out of the budget's way
            budget = max_tokens // 2
        units = _units(doc.text, section, lang)
        if not units:
            continue
        for unit, n in zip(units, count_tokens([doc.text[u.start : u.end] for u in units])):
            unit.tokens = n
        units = _split_long_units(doc.text, units, budget, count_tokens)
        for start, end, n_tokens in _pack(units, budget, min(overlap_tokens, budget // 2)):
            text = doc.text[start:end]
            key = f"{doc.source}\x00{section.heading}\x00{text}"
            occurrence = seen.get(key, 0)
            seen[key] = occurrence + 1
            chunk_id = hashlib.sha256(f"{key}\x00{occurrence}".encode()).hexdigest()[:32]
            chunks.append(
                Chunk(
                    id=chunk_id,
                    text=text,
                    source=doc.source,
                    display_name=doc.display_name,
                    page=doc.page_at(start),
                    heading=section.heading,
                    char_start=start,
                    char_end=end,
                    n_tokens=n_tokens,
                )
            )
    return _enforce_limit(chunks, doc, count_tokens, max_tokens)


def _sections(doc: Document) -> list[_Section]:
    """Cut at headings and page boundaries; each section knows its heading path."""
    cuts: list[tuple[int, int, int, str]] = []  # (position, content start, level, title)
    for match in _HEADING.finditer(doc.text):
        cuts.append((match.start(), match.end(), len(match.group(1)), match.group(2).strip()))
    for page in doc.pages[1:]:
        cuts.append((page.start, page.start, 0, ""))
    cuts.sort()
    stack: list[tuple[int, str]] = []
    base = [doc.title.strip()] if doc.title.strip() else []

    def path() -> str:
        return " > ".join(base + [title for _, title in stack])

    sections: list[_Section] = []
    position, heading = 0, path()
    for cut_at, content_start, level, title in cuts:
        if cut_at > position:
            sections.append(_Section(heading, position, cut_at))
        if level:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
        position, heading = content_start, path()
    if position < len(doc.text):
        sections.append(_Section(heading, position, len(doc.text)))
    return sections


def _units(text: str, section: _Section, lang: str) -> list[_Unit]:
    """Sentences (trimmed spans) tagged with their paragraph number."""
    units: list[_Unit] = []
    paragraph_starts = [section.start] + [m.end() for m in _PARAGRAPH_BREAK.finditer(text, section.start, section.end)]
    paragraph_ends = [m.start() for m in _PARAGRAPH_BREAK.finditer(text, section.start, section.end)] + [section.end]
    for number, (p_start, p_end) in enumerate(zip(paragraph_starts, paragraph_ends)):
        units.extend(_Unit(p_start + a, p_start + b, number) for a, b in sentences(text[p_start:p_end], lines=True, lang=lang))
    return units


def _split_long_units(text: str, units: list[_Unit], budget: int, count_tokens: TokenCounter) -> list[_Unit]:
    """Break any sentence longer than the budget at word boundaries."""
    out: list[_Unit] = []
    for unit in units:
        if unit.tokens <= budget:
            out.append(unit)
            continue
        words = [m.span() for m in re.finditer(r"\S+", text[unit.start : unit.end])]
        counts = count_tokens([text[unit.start + a : unit.start + b] for a, b in words])
        piece_start, piece_tokens, last_end = None, 0, unit.start
        for (a, b), n in zip(words, counts):
            n = min(n, budget)  # a single absurd "word" still becomes its own (cut) piece below
            if piece_start is not None and piece_tokens + n > budget:
                out.append(_Unit(piece_start, last_end, unit.paragraph, piece_tokens))
                piece_start, piece_tokens = None, 0
            if piece_start is None:
                piece_start = unit.start + a
            piece_tokens += n
            last_end = unit.start + b
        if piece_start is not None:
            out.append(_Unit(piece_start, last_end, unit.paragraph, piece_tokens))
    return out


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int, int]]:
    """Greedy packing of sentences, closing early at a paragraph end when that keeps paragraphs whole."""
    spans: list[tuple[int, int, int]] = []
    paragraph_tokens: dict[int, int] = {}
    for unit in units:
        paragraph_tokens[unit.paragraph] = paragraph_tokens.get(unit.paragraph, 0) + unit.tokens
    current: list[_Unit] = []
    total = 0
    fresh = 0  # units in ``current`` that are not overlap carried from the previous chunk
    for unit in units:
        starts_paragraph = bool(current) and unit.paragraph != current[-1].paragraph
        overflow = total + unit.tokens > budget
        keep_paragraph_whole = (
            starts_paragraph
            and total >= budget // 2
            and total + paragraph_tokens[unit.paragraph] > budget
            and paragraph_tokens[unit.paragraph] <= budget
        )
        if current and fresh and (overflow or keep_paragraph_whole):
            spans.append((current[0].start, current[-1].end, total))
            carried: list[_Unit] = []
            carried_tokens = 0
            for previous in reversed(current):
                if carried_tokens + previous.tokens > overlap or carried_tokens + previous.tokens + unit.tokens > budget:
                    break
                carried.insert(0, previous)
                carried_tokens += previous.tokens
            current, total, fresh = carried, carried_tokens, 0
        elif current and not fresh and overflow:
            current, total = [], 0  # overlap alone would overflow: drop it
        current.append(unit)
        total += unit.tokens
        fresh += 1
    if current and fresh:
        spans.append((current[0].start, current[-1].end, total))
    return spans


def _enforce_limit(chunks: list[Chunk], doc: Document, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    """Measure the real embedding text; a chunk that still overflows (tokenizers that merge
    across spaces) is cut at the last word boundary that fits. Nothing is ever truncated silently."""
    counts = count_tokens([c.embedding_text() for c in chunks]) if chunks else []
    out: list[Chunk] = []
    for chunk, n in zip(chunks, counts):
        if n <= max_tokens:
            out.append(_with_tokens(chunk, n))
            continue
        end = chunk.char_end
        while True:
            cut = doc.text.rfind(" ", chunk.char_start, end - 1)
            end = cut if cut > chunk.char_start else chunk.char_start + max(1, (end - chunk.char_start) // 2)
            piece = _slice(chunk, doc, chunk.char_start, end)
            piece_tokens = count_tokens([piece.embedding_text()])[0]
            if piece_tokens <= max_tokens or end - chunk.char_start <= 1:
                break
        out.append(_with_tokens(piece, piece_tokens))
        rest = _slice(chunk, doc, end, chunk.char_end)
        if rest.text.strip():
            out.extend(_enforce_limit([rest], doc, count_tokens, max_tokens))
    return out


def _slice(chunk: Chunk, doc: Document, start: int, end: int) -> Chunk:
    while start < end and doc.text[start].isspace():
        start += 1
    text = doc.text[start:end]
    digest = hashlib.sha256(f"{chunk.id}\x00{start}\x00{end}".encode()).hexdigest()[:32]
    return Chunk(digest, text, chunk.source, chunk.display_name, doc.page_at(start), chunk.heading, start, end, 0)


def _with_tokens(chunk: Chunk, n: int) -> Chunk:
    if chunk.n_tokens == n:
        return chunk
    return Chunk(chunk.id, chunk.text, chunk.source, chunk.display_name, chunk.page, chunk.heading, chunk.char_start, chunk.char_end, n)

"""Structure-aware chunking bounded by the embedder's token limit.

A document is cut at hard boundaries (headings, pages), then into paragraphs and sentences;
sentences are packed into chunks of at most ``max_tokens`` (heading included), neighbouring
chunks of a section overlap by up to ``overlap_tokens``. Every chunk is an exact slice of the
document text, so offsets and quotes always point at real characters.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rag.schema import Chunk, Document
from rag.text.analysis import language, sentences

TokenCounter = Callable[[Sequence[str]], list[int]]
COUNT_BATCH = 1024  # texts counted per call: a huge file's words are never all tokenized at once
CHARS_PER_TOKEN = 8  # a span this many times the budget in characters is split without counting it whole
WORDS_PER_GROUP = 16  # words of an over-long sentence counted together (one tokenizer call per word was the cost)

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WORD = re.compile(r"\S+")


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
        _count_units(doc.text, units, budget, count_tokens)
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


def counted(texts: Sequence[str], count_tokens: TokenCounter) -> list[int]:
    """Token counts of ``texts``, at most ``COUNT_BATCH`` at a time (bounded tokenizer memory)."""
    return [n for i in range(0, len(texts), COUNT_BATCH) for n in count_tokens(texts[i : i + COUNT_BATCH])]


def _count_units(text: str, units: list[_Unit], budget: int, count_tokens: TokenCounter) -> None:
    """Each unit's tokens; one far longer than the budget in characters is only marked as over it."""
    limit = budget * CHARS_PER_TOKEN
    short = [u for u in units if u.end - u.start <= limit]
    for unit, n in zip(short, counted([text[u.start : u.end] for u in short], count_tokens)):
        unit.tokens = n
    for unit in units:
        if unit.end - unit.start > limit:
            unit.tokens = budget + 1


def _word_groups(text: str, start: int, end: int, longest: int, size: int) -> Iterator[tuple[int, int]]:
    """Spans of ``size`` consecutive words of ``text[start:end]`` (fewer at the end); a word longer
    than ``longest`` characters is cut into pieces of that length, each a group of its own (a line
    of base64, or of text without spaces, is not one word)."""
    group: list[tuple[int, int]] = []
    for match in _WORD.finditer(text, start, end):
        a, b = match.span()
        if b - a > longest:
            if group:
                yield group[0][0], group[-1][1]
                group = []
            yield from ((cut, min(b, cut + longest)) for cut in range(a, b, longest))
            continue
        group.append((a, b))
        if len(group) == size:
            yield group[0][0], group[-1][1]
            group = []
    if group:
        yield group[0][0], group[-1][1]


def _split_long_units(text: str, units: list[_Unit], budget: int, count_tokens: TokenCounter) -> list[_Unit]:
    """Break any sentence longer than the budget at word boundaries."""
    out: list[_Unit] = []
    for unit in units:
        out.extend([unit] if unit.tokens <= budget else _pack_words(text, unit, budget, count_tokens, WORDS_PER_GROUP))
    return out


def _pack_words(text: str, unit: _Unit, budget: int, count_tokens: TokenCounter, group: int) -> list[_Unit]:
    """``unit`` in pieces of at most ``budget`` tokens, cut between words. Words are counted a few
    at a time and a batch of groups per call, so time and memory grow with the text, however long
    one sentence is; a group over the budget is packed again word by word."""
    out: list[_Unit] = []
    piece: _Unit | None = None
    spans = _word_groups(text, unit.start, unit.end, budget * CHARS_PER_TOKEN, group)
    while batch := list(itertools.islice(spans, COUNT_BATCH)):
        for (a, b), n in zip(batch, count_tokens([text[a:b] for a, b in batch])):
            n = max(n, (b - a) // CHARS_PER_TOKEN)  # an [UNK] standing for 2,000 characters is no short word
            if n > budget and group > 1:
                out += [piece] if piece is not None else []
                out += _pack_words(text, _Unit(a, b, unit.paragraph, n), budget, count_tokens, 1)
                piece = None
                continue
            n = min(n, budget)  # a single absurd "word" still becomes its own (cut) piece
            if piece is not None and piece.tokens + n > budget:
                out.append(piece)
                piece = None
            if piece is None:
                piece = _Unit(a, b, unit.paragraph, n)
            else:
                piece.end, piece.tokens = b, piece.tokens + n
    return out + ([piece] if piece is not None else [])


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
    counts = counted([c.embedding_text() for c in chunks], count_tokens)
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

"""Citation checking: parse ``[n]`` markers, keep only sentences their sources support, quote spans.

Checks are lexical (content words and numbers) plus an optional embedding similarity to the
question; they run sentence by sentence so that an answer can stream as each sentence passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .schema import Chunk, Citation, Hit
from .textspan import (
    best_span,
    complete_prefix,
    content_words,
    numbers,
    overlap,
    sentences,
)

SUPPORT_THRESHOLD = 0.75  # share of a sentence's content words that its passage must contain
TOPIC_SIMILARITY = 0.35  # a sentence sharing one word with the question must also be this close to it
MAX_SENTENCES = 3  # longer answers from a small model are mostly repetition

_ECHO = re.compile(r"^\s*(source|passage)\s*\[?\d+\]?\s*:\s*$", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*[,;]\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_THINK_DONE = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|$)", re.IGNORECASE | re.DOTALL)
REFUSAL = re.compile(
    r"\b(documents?|sources?|context)\s+(do(es)?\s+not|don'?t)\s+(say|contain|mention|answer|provide)", re.IGNORECASE
)


class CitationChecker:
    """Checks an answer sentence by sentence, as it streams in.

    ``feed`` takes raw model text and returns the sentences accepted so far, each ending with the
    numbers of the sources that support it. A sentence is supported when most of its content words,
    and every number in it, appear in the passage it cites (or, when it cites nothing or the wrong
    source, in the best-matching passage); it must also be about the question. Everything else is
    kept aside in ``removed`` and never shown as sourced.
    """

    def __init__(self, hits: list[Hit], question: str, similarity: Callable[[str], float] | None = None) -> None:
        self.hits = hits
        self._similarity = similarity  # sentence → similarity to the question, when an embedder is at hand
        self.passage_words = [content_words(h.chunk.text + " " + h.chunk.heading) for h in hits]
        self.question_words = content_words(question)
        self.kept: list[str] = []
        self.removed: list[str] = []
        self.claims: dict[int, set[str]] = {}  # source number → words of the first sentence citing it
        self._seen: set[str] = set()
        self._buffer = ""
        self._first = True

    def feed(self, text: str) -> list[str]:
        self._buffer = _THINK_DONE.sub("", self._buffer + text)  # finished reasoning is never shown
        opened = _THINK_OPEN.search(self._buffer)
        visible = self._buffer[: opened.start()] if opened else self._buffer  # hold back unfinished reasoning
        cut = complete_prefix(visible)
        if not cut:
            return []
        done, self._buffer = visible[:cut], self._buffer[cut:]
        return self._check(done)

    @property
    def pending(self) -> str:
        """The unfinished sentence, as written so far (reasoning sections hidden)."""
        text = _THINK_DONE.sub("", self._buffer)
        opened = _THINK_OPEN.search(text)
        return " ".join((text[: opened.start()] if opened else text).split())

    @property
    def full(self) -> bool:
        return len(self.kept) >= MAX_SENTENCES

    def close(self) -> list[str]:
        text = _THINK.sub("", self._buffer)
        self._buffer = ""
        return self._check(text)

    def _check(self, text: str) -> list[str]:
        text = _ECHO.sub("", text)
        accepted = []
        for start, end in sentences(text):
            sentence = " ".join(text[start:end].split())
            if self._first:
                sentence = re.sub(r"^(answer|a)\s*:+\s*", "", sentence, flags=re.IGNORECASE)
                self._first = not sentence
            sentence = re.sub(r"^(sources?|passages?)\s*(\[?\d+\]?)?\s*:+\s*", "", sentence, flags=re.IGNORECASE)
            sentence = sentence.lstrip(":;,.-–— ")
            result = self._check_sentence(sentence)
            if result:
                accepted.append(result)
        return accepted

    def _check_sentence(self, sentence: str) -> str | None:
        numbers_cited = [n for n in dict.fromkeys(int(x) for m in _MARKER.finditer(sentence) for x in re.findall(r"\d+", m.group(1)))]
        cited = [n for n in numbers_cited if 1 <= n <= len(self.hits)]
        bare = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(_MARKER.sub("", sentence).split()))
        words = content_words(bare)
        if not words or bare.lower() in self._seen:  # nothing to check, or a repetition
            return None
        self._seen.add(bare.lower())
        if REFUSAL.search(bare):
            self.kept.append(bare)
            return bare
        supported = [n for n in cited if _supports(bare, words, self.hits[n - 1], self.passage_words[n - 1])]
        if not supported and self.hits:
            scores = [
                overlap(words, p) if _supports(bare, words, h, p) else 0.0 for h, p in zip(self.hits, self.passage_words)
            ]
            best = max(range(len(scores)), key=lambda i: scores[i])
            if scores[best] >= SUPPORT_THRESHOLD:
                supported = [best + 1]
        shared = len(words & self.question_words)
        on_topic = shared >= 2 or shared == 1 and (self._similarity is None or self._similarity(bare) >= TOPIC_SIMILARITY)
        if not supported or not on_topic:  # unsupported, or not about the question
            self.removed.append(bare)
            return None
        if len(self.kept) >= MAX_SENTENCES:
            return None
        for n in supported:
            self.claims.setdefault(n, words)
        sentence = _with_markers(bare, supported)
        self.kept.append(sentence)
        return sentence

    def result(self) -> tuple[str, list[Citation], list[str]]:
        citations = []
        for n in sorted(self.claims):
            chunk = self.hits[n - 1].chunk
            start, end = best_span(chunk.text, self.claims[n] or self.question_words)
            citations.append(make_citation(n, chunk, start, end, supported=True))
        return " ".join(self.kept), citations, self.removed


def cite(raw: str, hits: list[Hit], question: str) -> tuple[str, list[Citation], list[str]]:
    """Check a whole answer at once (see ``CitationChecker``)."""
    checker = CitationChecker(hits, question)
    checker.feed(raw)
    checker.close()
    return checker.result()


def _supports(sentence: str, words: set[str], hit: Hit, passage: set[str]) -> bool:
    """Most of the sentence's words, and every number in it (digits or words), appear in the passage."""
    if overlap(words, passage) < SUPPORT_THRESHOLD:
        return False
    evidence = hit.chunk.text + " " + hit.chunk.heading
    return set(_NUMBER.findall(sentence)) <= set(_NUMBER.findall(evidence)) and numbers(sentence) <= numbers(evidence)


def make_citation(n: int, chunk: Chunk, start: int, end: int, *, supported: bool) -> Citation:
    """A citation of ``chunk.text[start:end]``; offsets are stored relative to the source document."""
    return Citation(
        n=n,
        source=chunk.source,
        display_name=chunk.display_name or chunk.source,
        page=chunk.page,
        chunk_id=chunk.id,
        quote=chunk.text[start:end],
        quote_start=chunk.char_start + start,
        quote_end=chunk.char_start + end,
        supported=supported,
    )


def _with_markers(sentence: str, numbers: list[int]) -> str:
    """The sentence with its supporting source numbers before the final punctuation."""
    markers = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?]+[\"')\]]*$", sentence)
    if match:
        return sentence[: match.start()].rstrip() + f" {markers}" + sentence[match.start() :]
    return f"{sentence} {markers}"

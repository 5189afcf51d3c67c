"""Citation checking: parse ``[n]`` markers, keep only sentences their sources support, quote spans.

Each sentence gets the judge's verdict (``Verifier.verdict``); checks run sentence by sentence so
that an answer can stream as each sentence passes.
"""

from __future__ import annotations

import re

from rag.answer.judge import Verdict
from rag.answer.safety import sanitise
from rag.answer.verify import Verifier
from rag.schema import Chunk, Citation, Claim, Hit
from rag.text.analysis import fold, language
from rag.text.spans import complete_prefix, content_words, plain, sentences

MAX_SENTENCES = 3  # longer answers from a small model are mostly repetition

_ECHO = re.compile(r"^\s*(source|passage)\s*\[?\d+\]?\s*:\s*$", re.IGNORECASE | re.MULTILINE)
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*[,;]\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_THINK_DONE = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
REFUSAL = re.compile(r"\b(documents?|sources?|context)\s+(do(es)?\s+not|don'?t)\s+(say|contain|mention|answer|provide)", re.IGNORECASE)


def _folded(sentence: str) -> str:
    return " ".join(fold(sentence).rstrip(" .。!！").split())


class CitationChecker:
    """Checks an answer sentence by sentence, as it streams in.

    ``feed`` takes raw model text and returns the sentences accepted so far, each ending with the
    number of the source that supports it. The judge's verdict (``Verifier.verdict``) keeps a
    sentence on the passage where it answers the question best (a citation the model got wrong
    moves there), or keeps it out of the answer text with its reason. Every sentence becomes a
    ``Claim`` (kept or not, with its reason) for the outputs.
    """

    def __init__(
        self,
        hits: list[Hit],
        question: str,
        verifier: Verifier,
        *,
        refusals: tuple[str, ...] = (),
    ) -> None:
        self.hits = hits
        self.lang = language(question)  # the answer is written in the question's language
        self.refusals = tuple(_folded(r) for r in refusals)  # the refusal in every language the prompts have
        self.verifier = verifier
        self.kept: list[str] = []
        self.removed: list[str] = []
        self.claims: list[Claim] = []
        self.spans: dict[int, tuple[int, int]] = {}  # source number → span of the first claim it supports
        self.kept_verdicts: list[Verdict] = []  # the passage span behind each kept sentence
        self.reasoning: list[str] = []
        self.model_refused = False
        self._seen: set[str] = set()
        self._buffer = ""
        self._first = True

    def _take_reasoning(self, text: str) -> str:
        for match in _THINK_DONE.finditer(text):
            inner = re.sub(r"^<[^>]+>|</[^>]+>$", "", match.group(0)).strip()
            if inner:
                self.reasoning.append(sanitise(inner))
        return _THINK_DONE.sub("", text)

    def feed(self, text: str) -> list[str]:
        self._buffer = self._take_reasoning(self._buffer + text)  # finished reasoning is never shown as answer
        opened = _THINK_OPEN.search(self._buffer)
        visible = self._buffer[: opened.start()] if opened else self._buffer  # hold back unfinished reasoning
        cut = complete_prefix(visible, self.lang)
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
        text = self._take_reasoning(self._buffer)
        unfinished = _THINK_OPEN.search(text)
        if unfinished:  # reasoning cut off by the token limit
            self.reasoning.append(text[unfinished.end() :].strip())
            text = text[: unfinished.start()]
        self._buffer = ""
        return self._check(text)

    def _check(self, text: str) -> list[str]:
        text = _ECHO.sub("", text)
        accepted = []
        for start, end in sentences(text, lang=self.lang):
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
        numbers_cited = list(dict.fromkeys(int(x) for m in _MARKER.finditer(sentence) for x in re.findall(r"\d+", m.group(1))))
        bare = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(plain(_MARKER.sub("", sentence)).split()))
        if REFUSAL.search(bare) or any(_folded(bare).startswith(r) for r in self.refusals):  # the model found no answer
            self.model_refused = True
            return None
        if not content_words(bare) or bare.lower() in self._seen:  # nothing to check, or a repetition
            return None
        self._seen.add(bare.lower())
        if bare.endswith(":"):  # a lead-in ("we define the following complexities:") announces an answer, it is none
            self.claims.append(Claim(sanitise(bare), [], False, 0.0, reason="unsupported"))
            self.removed.append(sanitise(bare))
            return None
        verdict = self.verifier.verdict(bare, numbers_cited)
        if not verdict.kept or len(self.kept) >= MAX_SENTENCES:
            reason = "over-limit" if verdict.kept else verdict.reason
            if reason != "over-limit":
                self.removed.append(sanitise(bare))
            self.claims.append(self._claim(sanitise(bare), verdict, reason))
            return None
        self.spans.setdefault(verdict.passage, (verdict.start, verdict.end))
        self.kept_verdicts.append(verdict)
        self.claims.append(self._claim(sanitise(bare), verdict))
        sentence = sanitise(_with_markers(bare, [verdict.passage]))
        self.kept.append(sentence)
        return sentence

    def _claim(self, text: str, verdict: Verdict, reason: str = "") -> Claim:
        """A sentence with its verdict: kept on its passage span, or left out with why, and the
        passage span that came closest."""
        if verdict.passage == 0:
            return Claim(text, [], False, 0.0, reason=reason)
        chunk = self.hits[verdict.passage - 1].chunk
        return Claim(
            text,
            [verdict.passage] if not reason else [],
            not reason,
            round(verdict.probability, 3),
            chunk.text[verdict.start : verdict.end],
            chunk.char_start + verdict.start,
            chunk.char_start + verdict.end,
            reason=reason or "supported",
            passage=verdict.passage,
        )

    def result(self) -> tuple[str, list[Citation], list[str]]:
        citations = []
        for n in sorted(self.spans):
            chunk = self.hits[n - 1].chunk
            start, end = self.spans[n]
            citations.append(make_citation(n, chunk, start, end, supported=True))
        return " ".join(self.kept), citations, self.removed


def make_citation(n: int, chunk: Chunk, start: int, end: int, *, supported: bool) -> Citation:
    """A citation of ``chunk.text[start:end]``; offsets are stored relative to the source document."""
    return Citation(
        n=n,
        source=chunk.source,
        display_name=sanitise(chunk.display_name or chunk.source),
        page=chunk.page,
        chunk_id=chunk.id,
        quote=sanitise(chunk.text[start:end]),
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

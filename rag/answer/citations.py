"""Citation checking: parse ``[n]`` markers, keep only sentences their sources support, quote spans.

Support is scored by ``rag.verify``; checks run sentence by sentence so that an answer can stream
as each sentence passes.
"""

from __future__ import annotations

import re

from rag.answer.safety import sanitise
from rag.answer.verify import Support, Thresholds, Verifier
from rag.config import Settings
from rag.schema import Chunk, Citation, Claim, Hit
from rag.text.analysis import fold, language
from rag.text.spans import complete_prefix, content_words, plain, sentences

_FIELDS = Settings.model_fields
DEFAULT_THRESHOLDS = Thresholds(  # the thresholds that ship, relevance margin included
    _FIELDS["support_lexical"].default,
    _FIELDS["support_novel"].default,
    _FIELDS["support_semantic"].default,
    relevance_margin=_FIELDS["relevance_margin"].default,
)
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
    numbers of the sources that support it. Each sentence is verified (``rag.verify``) against the
    passages it cites; a citation to a passage that does not support it (or none) moves to the
    passage that does, or the sentence is kept out of the answer text with its reason. The passage
    that supports it must answer the question (``Verifier.answers_question``). Every sentence
    becomes a ``Claim`` (kept or not, with its reason) for the outputs.
    """

    def __init__(
        self,
        hits: list[Hit],
        question: str,
        verifier: Verifier | None = None,
        *,
        weak_reader: bool = False,
        focus: frozenset[str] = frozenset(),
        refusals: tuple[str, ...] = (),
    ) -> None:
        self.hits = hits
        self.lang = language(question)  # the answer is written in the question's language
        self.refusals = tuple(_folded(r) for r in refusals)  # the refusal in every language the prompts have
        self.weak_reader = weak_reader
        self.focus = focus  # a follow-up's own words: a weak reader's opening must mention one
        self.verifier = verifier or Verifier(hits, question, None, DEFAULT_THRESHOLDS)
        self.question_words = content_words(question)
        self.kept: list[str] = []
        self.removed: list[str] = []
        self.claims: list[Claim] = []
        self.spans: dict[int, tuple[int, int]] = {}  # source number → span of the first claim it supports
        self.kept_support: list[Support] = []  # the passage span behind each kept sentence
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
        words = content_words(bare)
        if not words or bare.lower() in self._seen:  # nothing to check, or a repetition
            return None
        self._seen.add(bare.lower())
        supports, best = self.verifier.check(bare, numbers_cited)
        if supports and not self.kept and not self._opens_answer(bare, words, supports[0]):
            supports = []  # the answer starts with a sentence that answers; context may follow it
        if not supports or len(self.kept) >= MAX_SENTENCES:
            reason = "over-limit" if supports else self.verifier.reason(bare, best)
            if reason != "over-limit":
                self.removed.append(sanitise(bare))
            self.claims.append(self._rejected(sanitise(bare), best, reason))
            return None
        numbers = [s.n for s in supports]
        first = supports[0]
        chunk = self.hits[first.n - 1].chunk
        for s in supports:
            self.spans.setdefault(s.n, (s.start, s.end))
        self.kept_support.append(first)
        self.claims.append(
            Claim(
                sanitise(bare),
                numbers,
                True,
                max(s.score for s in supports),
                chunk.text[first.start : first.end],
                chunk.char_start + first.start,
                chunk.char_start + first.end,
                passage=first.n,
            )
        )
        sentence = sanitise(_with_markers(bare, numbers))
        self.kept.append(sentence)
        return sentence

    def _opens_answer(self, text: str, words: set[str], support: Support) -> bool:
        """Whether a supported sentence may open the answer. A weak reader copies the first sentence
        of a passage, or half of the evidence sentence ("Warsaw was defended until September 27"
        for "When did Germany invade Poland?"): its opening must itself answer (its span ranks near
        the best evidence) and name something the question asks about; else the evidence is quoted.
        A model that reads is not second-guessed so: on squad-dev8 that rule rejected its correct
        answers whose span ranked 0.14 below the best evidence."""
        if text.endswith(":"):
            return False  # a lead-in ("we define the following complexities:") announces an answer, it is none
        if not self.weak_reader:
            return True  # a model that reads is trusted to open with its answer; its passage must answer (``check``)
        on_topic = bool(words & self.focus) if self.focus else True  # "Does it renew?" is not answered by when the lease begins
        return self.verifier.answers_directly(support) and bool(words & self.question_words) and on_topic

    def _rejected(self, text: str, best: Support | None, reason: str) -> Claim:
        """A sentence left out, with why and the passage span that came closest to supporting it."""
        if best is None:
            return Claim(text, [], False, 0.0, reason=reason)
        chunk = self.hits[best.n - 1].chunk
        return Claim(
            text,
            [],
            False,
            best.score,
            chunk.text[best.start : best.end],
            chunk.char_start + best.start,
            chunk.char_start + best.end,
            reason=reason,
            passage=best.n,
        )

    def result(self) -> tuple[str, list[Citation], list[str]]:
        citations = []
        for n in sorted(self.spans):
            chunk = self.hits[n - 1].chunk
            start, end = self.spans[n]
            citations.append(make_citation(n, chunk, start, end, supported=True))
        return " ".join(self.kept), citations, self.removed


def cite(raw: str, hits: list[Hit], question: str) -> tuple[str, list[Citation], list[str]]:
    """Check a whole answer at once (see ``CitationChecker``)."""
    checker = CitationChecker(hits, question)
    checker.feed(raw)
    checker.close()
    return checker.result()


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

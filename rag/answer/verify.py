"""Verification: how well a retrieved passage supports a sentence, and which sentence is the evidence.

Every passage is split into sentences, embedded once per question. A sentence of the answer is
scored against a passage by four signals:

- ``lexical``: share of its content words found in the passage;
- ``novel``: share of the words it adds *beyond the question* found in the passage (a small model
  restates the question and adds the answer: the added words are the claim, and must be sourced;
  a sentence that adds nothing answers a yes/no question at most, never a what/who/when question);
- ``semantic``: cosine similarity to the passage's closest sentence;
- ``numbers``: every number in it (digits or words) appears in the passage, on the sentence or
  table row that holds what it is about; and every negation or restriction it makes ("not",
  "never", "only", "unless", "except") is the passage's too: a small model that stitches "covered
  for 1 year" to "void if installed without a valve" writes "covered for 1 year, but only if
  installed without a valve", every word of which is in the passage;
- optionally ``entailment`` from an NLI cross-encoder (``--verifier``).

Thresholds live in ``Settings`` and come from ``scripts/calibrate_verification.py``. The same
sentence vectors give the evidence: the passage sentences that best answer the question, and an
answerability score (how well the best of them covers the question) used to refuse honestly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from rag.answer.safety import instruction_spans, mask_instructions
from rag.index.embeddings import REFERENCE_SCALE, Embedder
from rag.schema import Hit
from rag.text.analysis import NUMBER_WORDS, is_stopword, language
from rag.text.question import QuestionPart, how_words, kind_fit, parts
from rag.text.spans import content_word_forms, content_words, numbers, overlap, plain, sentences, weighted_overlap

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A question asking for something (not yes/no), or a blank to fill ("_____ protects the biosphere
# from UV"): a sentence that only restates it answers nothing.
_OPEN_QUESTION = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how)\b|_{2,}", re.IGNORECASE)


_QUALIFIER = re.compile(r"\b(not|never|no|nor|neither|none|without|only|unless|except|excluding)\b|n't\b", re.IGNORECASE)
_SAME_QUALIFIER = {"only": "only", "unless": "unless", "except": "except", "excluding": "except"}  # any other is a negation


def _qualifiers(text: str) -> set[str]:
    """The negations ("not", "never", "no", "n't": one kind) and restrictions ("only", "unless",
    "except") that ``text`` makes."""
    return {_SAME_QUALIFIER.get(m.group(0).lower(), "not") for m in _QUALIFIER.finditer(text)}


_CLAUSE_END = re.compile(r"[,;:.!?]")


def _flips(claim: str, span: str) -> bool:
    """Whether ``claim`` states what ``span`` negates: it uses the words a negation of the span
    governs (the next content word of its clause) without negating them itself. "Cats are allowed"
    from "Cats are not allowed"; "operated with water" from "operated without water"; "press the
    reset button if the water is too hot" from "No hot water: press the reset button"."""
    words, negated = content_words(claim), set().union(*_negated(claim))
    return any(governed <= words and not governed <= negated for governed in _negated(span))


_CELL = re.compile(r"^\s*([^:|]{1,60}):\s*(.+?)\s*$")


def _misreads_row(claim: str, span: str) -> bool:
    """Whether ``claim`` names a column of the table row ``span`` ("City: Vienna | Per diem: 26 EUR",
    as rag writes rows) without that column's value: "The per diem there is Vienna" names the per
    diem and gives the city."""
    cells = [m.groups() for cell in span.split(" | ") if (m := _CELL.match(cell))]
    if len(cells) < 2:
        return False
    words, held = content_words(claim), _numbers_of(claim)
    for header, value in cells:
        named = content_words(header)
        if not named or not named <= words:
            continue
        numbers = _numbers_of(value)
        if not (numbers <= held if numbers else content_words(value) <= words):
            return True
    return False


def _negated(text: str) -> list[set[str]]:
    """What each negation of ``text`` governs (the next content word of its clause), as stems;
    negations inside parentheses and "not only" (which asserts more) are left out."""
    out = []
    for m in _QUALIFIER.finditer(text):
        if _SAME_QUALIFIER.get(m.group(0).lower(), "not") != "not" or _aside(text, m.start()):
            continue
        clause = _CLAUSE_END.split(text[m.end() :], maxsplit=1)[0]
        if re.match(r"\s+only\b", clause, re.I):
            continue
        governed = content_words(next((w for w in re.findall(r"[^\W_]+", clause) if not is_stopword(w.lower())), ""))
        if governed:
            out.append(governed)
    return out


def _aside(text: str, at: int) -> bool:
    """Whether position ``at`` of ``text`` is inside parentheses (a remark on the side)."""
    return text.count("(", 0, at) > text.count(")", 0, at)


def _short_words(text: str) -> set[str]:
    """Words of one or two letters that are not stop words ("P", "UK", "EU"), lower-cased."""
    return {w for w in (m.group(0).lower() for m in re.finditer(r"[^\W_]+", text)) if len(w) <= 2 and not is_stopword(w)}


def _numbers_of(text: str) -> set[str]:
    return set(_NUMBER.findall(text)) | numbers(text)


def _number_units(text: str) -> list[tuple[set[str], set[str]]]:
    """(content words, numbers) of each sentence of ``text`` that holds a number (a Markdown table
    row is a sentence of its own; a hard-wrapped line of a PDF is not)."""
    pieces = (text[start:end] for start, end in sentences(text))
    return [(content_words(plain(p)), held) for p in pieces if (held := _numbers_of(p))]


class EntailmentModel(Protocol):
    """Probability that each premise entails its hypothesis."""

    name: str

    def entailment(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


@dataclass(frozen=True)
class Thresholds:
    lexical: float
    novel: float
    semantic: float
    entailment: float = 0.5
    relevance_margin: float = 1.0  # how far below the best evidence sentence a supporting span may score


@dataclass(frozen=True)
class Support:
    n: int  # source number (1-based position among the hits)
    lexical: float
    novel: float
    semantic: float
    numbers_ok: bool
    start: int  # best-supporting span inside the chunk's text
    end: int
    entailment: float | None = None

    @property
    def score(self) -> float:
        """One number for display: the weakest of the signals (0 when a number is not found)."""
        if not self.numbers_ok:
            return 0.0
        parts = [self.lexical, self.novel, max(self.semantic, 0.0)] + ([self.entailment] if self.entailment is not None else [])
        return round(min(parts), 3)

    def passes(self, t: Thresholds) -> bool:
        return (
            self.numbers_ok
            and self.lexical >= t.lexical
            and self.novel >= t.novel
            and self.semantic >= t.semantic
            and (self.entailment is None or self.entailment >= t.entailment)
        )


# how much holding the kind of answer asked for (a duration for "how long") counts when evidence is
# ranked; it orders evidence and judges relevance, and never changes answerability (calibrated without it)
KIND_BONUS = 0.1


@dataclass(frozen=True)
class Evidence:
    n: int
    start: int
    end: int
    score: float  # how well the sentence answers the question
    coverage: float  # share of the question's words (by weight, less those all headings share) in the sentence, 3/4, and its passage, 1/4
    similarity: float
    rank: float = 0.0  # the score for ranking: the best over the question's parts, KIND_BONUS up for holding the kind of answer asked for, down for lacking it
    part: int = 0  # the part of the question (0-based) this sentence answers best


def _part_weights(
    question_parts: list[QuestionPart], whole: dict[str, float], term_weight: Callable[[str], float | None] | None
) -> list[dict[str, float]]:
    """The word weights of each part of the question. A later part ("and what voids it?") keeps
    the first part's words at half weight: it names its topic by a pronoun."""
    if len(question_parts) == 1:
        return [whole]
    first = question_weights(question_parts[0].text, term_weight)
    out = [first]
    for part in question_parts[1:]:
        own = question_weights(part.text, term_weight)
        out.append({**{w: v / 2 for w, v in first.items()}, **own})
    return out


def question_weights(question: str, term_weight: Callable[[str], float | None] | None) -> dict[str, float]:
    """How much each content word of the question counts when a sentence covers it.

    With ``term_weight`` (the keyword index's inverse document frequency), a rare word such as a
    name or a date counts for more than a word every passage of the collection has: a passage that
    shares only the topic words with a question seldom answers it. Without it, all words count alike.
    Words the weighting knows nothing about get the mean weight of the others.
    """
    forms = content_word_forms(question)
    if term_weight is None:
        return dict.fromkeys(forms, 1.0)
    weights = {stem: term_weight(form) for stem, form in forms.items()}
    known = [w for w in weights.values() if w is not None]
    fallback = sum(known) / len(known) if known else 1.0
    return {stem: (fallback if w is None else w) for stem, w in weights.items()}


class Verifier:
    def __init__(
        self,
        hits: list[Hit],
        question: str,
        embedder: Embedder | None,
        thresholds: Thresholds,
        entailment: EntailmentModel | None = None,
        term_weight: Callable[[str], float | None] | None = None,
    ) -> None:
        self.hits = hits
        self.thresholds = thresholds
        self._embedder = embedder
        self._scale = embedder.scale if embedder is not None else REFERENCE_SCALE
        self._entailment = entailment
        # passages in another language than the question's, when the embedder reads across languages:
        # their words cannot be matched to the question's, so their meaning stands in for them
        self.asked_in = language(question)
        self._across = [self._scale.across is not None and language(h.chunk.text) != self.asked_in for h in hits]
        self.question_words = content_words(question)
        self.question_weights = question_weights(question, term_weight)
        # whether the question asks for something (not yes/no): told by English's question words; in
        # another language taken as so, since a sentence that only restates it then answers nothing
        self.open_question = bool(_OPEN_QUESTION.search(question)) or self.asked_in != "en"
        self._question_short = _short_words(question)
        self.parts: list[QuestionPart] = parts(question)
        self._part_weights = _part_weights(self.parts, self.question_weights, term_weight)
        self._how = content_words(how_words(question)) & self.question_weights.keys()
        # sentences that address the assistant (prompt injection) never count as evidence or support
        trusted = [mask_instructions(h.chunk.text, " ") for h in hits]
        self.passage_words = [content_words(t + " " + h.chunk.heading) for t, h in zip(trusted, hits)]
        self._headings = [content_words(h.chunk.heading) for h in hits]
        self._shared_heading = set.intersection(*self._headings) if len(hits) > 1 else set()
        self.evidence_text = [t + " " + h.chunk.heading for t, h in zip(trusted, hits)]
        self._number_units = [_number_units(t) for t in trusted]
        self._passage_numbers = [_numbers_of(t) for t in self.evidence_text]  # read once, not once per sentence checked
        self._passage_short = [_short_words(t) for t in trusted]
        self.spans: list[tuple[int, int, int]] = []  # (hit index, start, end) of every trusted passage sentence
        for i, hit in enumerate(hits):
            hostile = set(instruction_spans(hit.chunk.text))
            for start, end in sentences(hit.chunk.text) or [(0, len(hit.chunk.text))]:
                if (start, end) not in hostile:
                    self.spans.append((i, start, end))
        texts = [hits[i].chunk.text[a:b] for i, a, b in self.spans]
        self._span_words = [content_words(t) for t in texts]
        self._span_vectors: np.ndarray | None = None
        self._question_vector: np.ndarray | None = None
        if embedder is not None and texts:
            self._span_vectors = embedder.embed_documents(texts)
            self._question_vector = embedder.embed_queries([question])[0]
        self._sentence_vectors: dict[str, np.ndarray] = {}
        self._part_ranks: dict[tuple[int, int, int], list[float]] = {}  # each span's rank for each part of the question

    def sentence_vector(self, sentence: str) -> np.ndarray | None:
        """The embedding of an answer sentence, computed once however many checks use it."""
        if self._embedder is None:
            return None
        if sentence not in self._sentence_vectors:
            self._sentence_vectors[sentence] = self._embedder.embed_documents([sentence])[0]
        return self._sentence_vectors[sentence]

    def question_similarity(self, sentence: str) -> float | None:
        """Cosine similarity of an answer sentence to the question (None without an embedder)."""
        vector = self.sentence_vector(sentence)
        if vector is None or self._question_vector is None:
            return None
        return float(vector @ self._question_vector)

    # evidence for the question -------------------------------------------------------------
    def evidence(self, k: int = 3) -> list[Evidence]:
        """The passage sentences that best answer the question, best first: the best for each part
        of the question, then the best of each other passage."""
        return self._evidence_order[:k]

    def best_mentioning(self, words: frozenset[str], min_score: float) -> Evidence | None:
        """The best sentence, scoring at least ``min_score``, that mentions one of ``words``."""
        return next(
            (
                e
                for e in self._scored_spans
                if e.score >= min_score and words & content_words(self.hits[e.n - 1].chunk.text[e.start : e.end])
            ),
            None,
        )

    @cached_property
    def _evidence_order(self) -> list[Evidence]:
        chosen: list[Evidence] = []
        for part in range(len(self.parts)):
            best = next((e for e in self._scored_spans if e.part == part), None)
            if best is not None and best not in chosen:
                chosen.append(best)
        passages = {e.n for e in chosen}
        for e in self._scored_spans:
            if e.n not in passages:
                passages.add(e.n)
                chosen.append(e)
        return chosen

    @cached_property
    def _passage_ranks(self) -> dict[int, float]:
        best: dict[int, float] = {}
        for e in self._scored_spans:
            best.setdefault(e.n, e.rank)
        return best

    @cached_property
    def _part_best(self) -> list[float]:
        self._scored_spans  # noqa: B018 - scoring fills _part_ranks
        return [max((ranks[p] for ranks in self._part_ranks.values()), default=0.0) for p in range(len(self.parts))]

    def _gaps(self, support: Support) -> list[float]:
        """How far the span that supports a sentence ranks below each part's best evidence."""
        ranks = self._part_ranks.get((support.n, support.start, support.end))
        return [best - r for r, best in zip(ranks, self._part_best)] if ranks else []

    def answers_directly(self, support: Support) -> bool:
        """Whether the very span that supports a sentence answers some part of the question."""
        return bool(self._parts_answered(support))

    def _parts_answered(self, support: Support) -> list[int]:
        """The parts of the question the span that supports a sentence answers: it ranks within
        ``thresholds.relevance_margin`` of the part's best evidence, and holds the kind of answer the
        part asks for when that kind can be told ("How long…?" is not answered by a sentence without
        a duration, however many of the question's words it shares)."""
        gaps = self._gaps(support)
        text = self.hits[support.n - 1].chunk.text[support.start : support.end]
        return [p for p, gap in enumerate(gaps) if gap <= self.thresholds.relevance_margin and kind_fit(self.parts[p].kind, text) >= 0]

    def unanswered_parts(self, kept: list[Support]) -> list[Evidence]:
        """For each part of the question that none of the ``kept`` sentences answers (each answers
        the part its span ranks closest to the best of, among those it answers), that part's best
        evidence, when it answers nearly as well as the best evidence of all."""
        margin = self.thresholds.relevance_margin
        answered, spans = set(), {(s.n, s.start, s.end) for s in kept}
        for support in kept:
            parts, gaps = self._parts_answered(support), self._gaps(support)
            if parts:
                answered.add(min(parts, key=lambda p: gaps[p]))
        best = self._evidence_order[0].rank if self._evidence_order else 0.0
        found = [next((e for e in self._scored_spans if e.part == p), None) for p in range(len(self.parts)) if p not in answered]
        return [e for e in found if e is not None and e.rank >= best - margin and (e.n, e.start, e.end) not in spans]

    @cached_property
    def _answering_passages(self) -> set[int]:
        """Passages whose best sentence, for some part of the question, ranks within
        ``thresholds.relevance_margin`` of that part's best evidence."""
        self._scored_spans  # noqa: B018 - scoring fills _part_ranks
        answering: set[int] = set()
        for p in range(len(self.parts)):
            ranked = [(ranks[p], n) for (n, _, _), ranks in self._part_ranks.items()]
            best = max((r for r, _ in ranked), default=0.0)
            answering |= {n for r, n in ranked if r >= best - self.thresholds.relevance_margin}
        return answering

    def answers_question(self, support: Support) -> bool:
        """Whether the passage that supports a sentence answers the question (or a part of it).
        A true sentence from a passage about something else is not an answer, however well it is
        sourced; any sentence of a passage that answers belongs, whatever words it shares."""
        return support.n in self._answering_passages

    @cached_property
    def _scored_spans(self) -> list[Evidence]:
        """Every trusted passage sentence scored as an answer to the question, best first."""
        if not self.spans:
            return []
        raw = (
            self._span_vectors @ self._question_vector
            if self._span_vectors is not None and self._question_vector is not None
            else np.zeros(len(self.spans))
        )
        scored: list[Evidence] = []
        for (i, start, end), words, cosine in zip(self.spans, self._span_words, raw):
            sim = self._similarity(float(cosine), i) if self._span_vectors is not None else 0.0
            text = self.hits[i].chunk.text[start:end]
            words = words | self._kind_words(text)
            coverage = self._coverage(i, *self._topical_weights(i, words, self.question_weights))
            score = self._blend(i, sim, coverage)
            ranks = [
                (self._blend(i, sim, self._coverage(i, *self._topical_weights(i, words, weights_p))) if len(self.parts) > 1 else score)
                + KIND_BONUS * kind_fit(part.kind, text)
                for part, weights_p in zip(self.parts, self._part_weights)
            ]
            part = max(range(len(ranks)), key=lambda p: ranks[p])
            self._part_ranks[(i + 1, start, end)] = ranks
            scored.append(
                Evidence(i + 1, start, end, round(score, 4), round(coverage, 4), round(float(sim), 4), round(ranks[part], 4), part)
            )
        scored.sort(key=lambda e: (-e.rank, -e.score, e.n, e.start))
        return scored

    def _kind_words(self, text: str) -> set[str]:
        """The question's word after "how" ("long" in "how long"), when ``text`` holds the kind of
        answer it asks for: "three months" answers "how long" without the word "long"."""
        if not self._how or not any(kind_fit(part.kind, text) > 0 for part in self.parts):
            return set()
        return self._how

    def _similarity(self, cosine: float, i: int) -> float:
        """A cosine between a sentence of passage ``i`` and the question or an answer, on the
        reference scale (across languages when the passage is in another language)."""
        return float(self._scale.calibrated(cosine, across=self._across[i]))

    def _blend(self, i: int, sim: float, coverage: float) -> float:
        """How well a sentence of passage ``i`` answers: its similarity and its coverage of the
        question's words, half each. Across languages, words match only in names and numbers, so
        the similarity stands in for a coverage lower than itself."""
        return 0.5 * sim + 0.5 * (max(coverage, sim) if self._across[i] else coverage)

    def _coverage(self, i: int, weights: dict[str, float], words: set[str]) -> float:
        """The sentence answers; its passage gives context (a sentence often names by a pronoun
        what the question names), so the passage's own coverage counts for a quarter."""
        return 0.75 * weighted_overlap(weights, words) + 0.25 * weighted_overlap(weights, self.passage_words[i])

    def _topical_weights(self, i: int, words: set[str], weights: dict[str, float]) -> tuple[dict[str, float], set[str]]:
        """The question's word weights for judging a sentence of passage ``i``, and the words that
        sentence offers (its own and its heading's).

        Words that the headings of all the retrieved passages share (a document's title when they
        all come from one document) say what every passage is about, not which of them answers:
        every passage of an article about Warsaw has "Warsaw". They are left out of the weights, so
        a sentence must cover what the question asks about that topic; a heading of its own (a
        section named "Staff discount") still counts as part of the sentence. With one passage
        there is nothing to compare and a question made only of shared words is judged on all.
        """
        heading = self._headings[i]
        topical = {w: v for w, v in weights.items() if w not in self._shared_heading}
        if not topical:
            return weights, words | heading
        return topical, words | (heading - self._shared_heading)

    def passage_scores(self) -> dict[int, float]:
        """Each passage's best evidence score (how well its best sentence answers the question)."""
        return dict(self._passage_ranks)

    def answerability(self) -> float:
        """How well the best evidence sentence answers the question (0 when there is none)."""
        return max((e.score for e in self._scored_spans), default=0.0)

    # support for a sentence ----------------------------------------------------------------
    def support(self, sentence: str, n: int, vector: np.ndarray | None = None) -> Support:
        i = n - 1
        words = content_words(sentence)
        added = self._added(sentence)
        lexical = overlap(words, self.passage_words[i])
        if added:
            novel = overlap(added, self.passage_words[i] | self._passage_short[i])
        else:  # nothing beyond the question's own words: it confirms a yes/no question, answers no other
            novel = 0.0 if self._restates(sentence) else 1.0
        numbers_ok = (
            _numbers_of(sentence) <= self._passage_numbers[i]
            and self._numbers_placed(sentence, words, i)
            and _qualifiers(sentence) <= _qualifiers(self.evidence_text[i])
        )
        best_j, semantic = -1, 0.0
        for j, (hit_index, _, _) in enumerate(self.spans):
            if hit_index != i:
                continue
            lexical_j = overlap(words, self._span_words[j])
            sim = (
                self._similarity(float(self._span_vectors[j] @ vector), i)
                if self._span_vectors is not None and vector is not None
                else lexical_j
            )
            if best_j < 0 or sim + lexical_j > semantic + overlap(words, self._span_words[best_j]):
                best_j, semantic = j, sim
        _, start, end = self.spans[best_j] if best_j >= 0 else (i, 0, len(self.hits[i].chunk.text))
        span = self.hits[i].chunk.text[start:end]
        numbers_ok = numbers_ok and not _flips(sentence, span) and not _misreads_row(sentence, span)
        entailment = None
        if self._entailment is not None:
            entailment = self._entailment.entailment([(self.hits[i].chunk.text, sentence)])[0]
        return Support(n, round(lexical, 4), round(novel, 4), round(semantic, 4), numbers_ok, start, end, entailment)

    def _numbers_placed(self, sentence: str, words: set[str], i: int) -> bool:
        """Whether each number of ``sentence`` stands in passage ``i`` beside what the sentence or
        the question says it is about. A table row or a sentence holds its number; "Paris, €52" is
        wrong when €52 is on Berlin's row, however surely €52 is in the passage."""
        units = self._number_units[i]
        subject = {w for w in words | self.question_words if not w.isdigit() and w not in NUMBER_WORDS}
        if len(units) < 2 or not subject:
            return True
        common = set.intersection(*(u for u, _ in units))  # what every number-bearing line says ("per day")
        return all(any(n in held and (u - common) & subject for u, held in units) for n in _numbers_of(sentence))

    def _added(self, sentence: str) -> set[str]:
        """What ``sentence`` says beyond the question: its content words the question lacks, or
        when there are none, its short words the question lacks ("#P", "UK": an answer too)."""
        added = content_words(sentence) - self.question_words
        return added or (_short_words(sentence) - self._question_short)

    def _restates(self, sentence: str) -> bool:
        """Whether ``sentence``, adding no word to the question, restates it: the question asks for
        something, or the sentence is itself a question (a model that echoes "…带薪年假？")."""
        return self.open_question or plain(sentence).rstrip().endswith(("?", "？", "؟"))

    def misattributes(self, sentence: str, support: Support) -> bool:
        """Whether ``sentence`` says of what the question asks about a fact its span states of
        something else: the span does not answer the question, and the sentence names words of the
        question the span lacks. A small model stitches "the notice period" to "the rent is due on
        the third working day" and writes "The notice period is due on the third working day",
        every word of which is in the passage."""
        if self.answers_directly(support):
            return False
        span = content_words(self.hits[support.n - 1].chunk.text[support.start : support.end]) | self._headings[support.n - 1]
        return bool((content_words(sentence) & self.question_words) - span)

    def reason(self, sentence: str, best: Support | None) -> str:
        """Why ``sentence``, whose best support is ``best``, was left out, in one word."""
        if not self._added(sentence) and self._restates(sentence):
            return "restates-question"
        if best is None or self.misattributes(sentence, best):
            return "unsupported"
        if best.passes(self.thresholds):
            return "off-topic"
        if best.entailment is not None and best.entailment < self.thresholds.entailment and best.lexical >= self.thresholds.lexical:
            return "contradicted"
        return "unsupported"

    def check(self, sentence: str, cited: list[int]) -> tuple[list[Support], Support | None]:
        """(the passage to cite for ``sentence`` as a one-element list, or [] when none supports it;
        and the best support seen, for reporting).

        Every passage is scored, not only the cited ones: of those that support the sentence, the
        one that best answers the question is cited (a citation the model got wrong is moved, and
        one to a passage that merely repeats the fact is moved to the passage about the question).
        """
        vector = self.sentence_vector(sentence)
        cited_set = {n for n in cited if 1 <= n <= len(self.hits)}
        order = sorted(cited_set) + [n for n in range(1, len(self.hits) + 1) if n not in cited_set]
        everything = [self.support(sentence, n, vector) for n in order]
        passing = [s for s in everything if s.passes(self.thresholds) and self.answers_question(s) and not self.misattributes(sentence, s)]
        if passing:
            best = self._preferred(passing, cited_set)
            return [best], best
        return [], max(everything, key=lambda s: (s.passes(self.thresholds), s.score)) if everything else None

    def _preferred(self, supports: list[Support], cited: set[int]) -> Support:
        """Of several passages that support a sentence, the one that best answers the question.

        Several passages of one document often repeat a fact; citing them all, or the one whose
        wording happens to match best, points the reader away from the passage that is about the
        question. Ties go to the passage the model cited, then the better support, then the earlier source.
        """
        answering = self.passage_scores()
        return max(supports, key=lambda s: (answering.get(s.n, 0.0), s.n in cited, s.score, -s.n))


class CrossEncoderEntailment:
    """An NLI cross-encoder (e.g. cross-encoder/nli-deberta-v3-small) by name or path."""

    def __init__(self, spec: str, *, downloads_allowed: bool = True) -> None:
        from rag.errors import ModelError
        from rag.index.st_models import load_cross_encoder

        hint = "pass an NLI cross-encoder folder or name (e.g. cross-encoder/nli-deberta-v3-small)"
        self._model, self.name = load_cross_encoder(spec, kind="verifier", downloads_allowed=downloads_allowed, hint=hint)
        labels = {str(v).lower(): int(k) for k, v in (self._model.config.id2label or {}).items()}
        if "entailment" not in labels:
            raise ModelError(
                f"verifier '{spec}' has no 'entailment' label", "use an NLI cross-encoder (labels contradiction/entailment/neutral)"
            )
        self._index = labels["entailment"]

    def entailment(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        logits = np.asarray(self._model.predict(list(pairs), show_progress_bar=False, convert_to_numpy=True, apply_softmax=True))
        return [float(row[self._index]) for row in np.atleast_2d(logits)]

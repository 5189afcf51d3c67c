"""Verification: the judge's verdict on each sentence of an answer, and the evidence for a question.

Every passage is split into sentences, embedded once per question. For a sentence and a passage,
the ``Verifier`` finds the passage span closest to the sentence and measures the signals the answer
judge reads (``rag.answer.judge.FEATURES``): similarities between the question, the sentence and the
span, how much of the sentence the passage holds, how much of the question it covers, how the span
ranks among the passage sentences, and whether it holds the kind of answer asked for. The judge
turns them into one probability; a sentence is kept when that reaches the judge's threshold and the
typed fact checks (``rag.answer.facts``) hold. The passage sentences themselves are judged the same
way, as answers: the best of them are the evidence, and when none reaches the threshold the
documents do not answer the question.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from rag.answer import facts
from rag.answer.judge import FEATURES, JudgeModel, Verdict
from rag.answer.safety import instruction_spans, mask_instructions
from rag.index.embeddings import REFERENCE_SCALE, Embedder
from rag.schema import Hit
from rag.text.analysis import is_stopword, language
from rag.text.question import QuestionPart, how_words, kind_fit, parts
from rag.text.spans import content_word_forms, content_words, overlap, plain, sentences, weighted_overlap

_QUESTION_MARKS = ("?", "？", "؟")
TIE = 0.05  # judge probabilities this close for one part of a question are a tie: both sentences are quoted


class EntailmentModel(Protocol):
    """Probability that each premise entails its hypothesis."""

    name: str

    def entailment(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


@dataclass(frozen=True)
class Support:
    """How passage ``n`` supports a sentence: its closest span, the judge's probability, and the
    first fact check the sentence fails against it (None when all hold)."""

    n: int  # source number (1-based position among the hits)
    start: int  # the span inside the chunk's text
    end: int
    probability: float
    lexical: float  # share of the sentence's content words in the passage
    semantic: float  # similarity of the sentence and the span
    fact: str | None = None
    entailment: float | None = None  # from an NLI cross-encoder (--verifier), when one is set
    restates: bool = False

    @property
    def score(self) -> float:
        """One number for display: the judge's probability (0 when a fact check fails)."""
        return 0.0 if self.fact else round(self.probability, 3)


@dataclass(frozen=True)
class Evidence:
    n: int
    start: int
    end: int
    score: float  # the judge's probability that the sentence answers the question (its best part)
    coverage: float  # share of the question's words (by weight, less those all headings share) in the sentence, 3/4, and its passage, 1/4
    similarity: float
    rank: float = 0.0  # the judge's probability for the part this sentence answers best
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


def _short_words(text: str) -> set[str]:
    """Words of one or two letters that are not stop words ("P", "UK", "EU"), lower-cased."""
    return {w for w in (m.lower() for m in _WORD.findall(text)) if len(w) <= 2 and not is_stopword(w)}


_RULE_LINE = re.compile(r"\s*\|?\s*:?-{3,}")


def _states(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` can state something: it has a word, and is not a table's header
    row (the line before a ``|---|`` rule) or the rule itself."""
    return bool(_WORD.search(text, start, end)) and not _RULE_LINE.match(text, end)


def _names(text: str) -> set[str]:
    """Words of ``text`` that are names or numbers: capitalised ones after its first word, and
    any with a digit, folded (an answer to "who", "where" or "how many" holds one)."""
    found = _WORD.findall(text)
    return {w.casefold() for k, w in enumerate(found) if any(c.isdigit() for c in w) or (k > 0 and w[:1].isupper())}


class Verifier:
    """Judges sentences as answers to one question from a list of retrieved passages."""

    def __init__(
        self,
        hits: list[Hit],
        question: str,
        embedder: Embedder | None,
        judge: JudgeModel,
        *,
        threshold: float | None = None,
        entailment: EntailmentModel | None = None,
        term_weight: Callable[[str], float | None] | None = None,
    ) -> None:
        self.hits = hits
        self.judge = judge
        self.threshold = judge.threshold if threshold is None else threshold
        self._embedder = embedder
        self._scale = embedder.scale if embedder is not None else REFERENCE_SCALE
        self._entailment = entailment
        # passages in another language than the question's, when the embedder reads across languages:
        # their words cannot be matched to the question's, so their meaning stands in for them
        self.asked_in = language(question)
        self._across = [self._scale.across is not None and language(h.chunk.text) != self.asked_in for h in hits]
        self.question_words = content_words(question)
        self.question_weights = question_weights(question, term_weight)
        self._question_short = _short_words(question)
        self._question_names = {w.casefold() for w in _WORD.findall(question)}
        self.parts: list[QuestionPart] = parts(question)
        self._part_weights = _part_weights(self.parts, self.question_weights, term_weight)
        self._how = content_words(how_words(question)) & self.question_weights.keys()
        self._open = self._asks_for_something(question)
        # sentences that address the assistant (prompt injection) never count as evidence or support
        trusted = [mask_instructions(h.chunk.text, " ") for h in hits]
        self.passage_words = [content_words(t + " " + h.chunk.heading) for t, h in zip(trusted, hits)]
        self._headings = [content_words(h.chunk.heading) for h in hits]
        self._shared_heading = set.intersection(*self._headings) if len(hits) > 1 else set()
        self.evidence_text = [t + " " + h.chunk.heading for t, h in zip(trusted, hits)]
        self._passage_short = [_short_words(t) for t in trusted]
        self.spans: list[tuple[int, int, int]] = []  # (hit index, start, end) of every trusted passage sentence
        for i, hit in enumerate(hits):
            hostile = set(instruction_spans(hit.chunk.text))
            for start, end in sentences(hit.chunk.text) or [(0, len(hit.chunk.text))]:
                if (start, end) not in hostile and _states(hit.chunk.text, start, end):
                    self.spans.append((i, start, end))
        texts = [hits[i].chunk.text[a:b] for i, a, b in self.spans]
        self._span_words = [content_words(t) for t in texts]
        self._span_vectors: np.ndarray | None = None
        self._question_vector: np.ndarray | None = None
        if embedder is not None and texts:
            self._span_vectors = embedder.embed_documents(texts)
            self._question_vector = embedder.embed_queries([question])[0]
        self._sentence_vectors: dict[str, np.ndarray] = {}

    def _asks_for_something(self, question: str) -> bool:
        """Whether the question asks for something (not yes/no): a sentence that only restates it
        then answers nothing. Told by English's question words; in another language taken as so."""
        first = {w.lower() for w in _WORD.findall(question)}
        return bool(first & _WH) or "__" in question or self.asked_in != "en"

    def sentence_vector(self, sentence: str) -> np.ndarray | None:
        """The embedding of an answer sentence, computed once however many checks use it."""
        if self._embedder is None:
            return None
        if sentence not in self._sentence_vectors:
            self._sentence_vectors[sentence] = self._embedder.embed_documents([sentence])[0]
        return self._sentence_vectors[sentence]

    # the signals ---------------------------------------------------------------------------
    def _similarity(self, cosine: float, i: int) -> float:
        """A cosine between a sentence of passage ``i`` and the question or an answer, on the
        reference scale (across languages when the passage is in another language)."""
        return float(self._scale.calibrated(cosine, across=self._across[i]))

    @cached_property
    def _question_span(self) -> list[float]:
        """Each span's similarity to the question (its weighted word overlap without an embedder)."""
        if self._span_vectors is None or self._question_vector is None:
            return [weighted_overlap(self.question_weights, w) for w in self._span_words]
        raw = self._span_vectors @ self._question_vector
        return [self._similarity(float(c), i) for (i, _, _), c in zip(self.spans, raw)]

    def _coverage(self, i: int, weights: dict[str, float], words: set[str]) -> tuple[float, float]:
        """(the sentence's coverage of the question's words, that blended with its passage's: the
        passage counts for a quarter, since a sentence often names by a pronoun what the question
        names). Words all the passages' headings share say what every passage is about, not which
        answers (every passage of an article about Warsaw has "Warsaw"), and are left out."""
        heading = self._headings[i]
        topical = {w: v for w, v in weights.items() if w not in self._shared_heading}
        if topical:
            weights, words = topical, words | (heading - self._shared_heading)
        else:
            words = words | heading
        own = weighted_overlap(weights, words)
        return own, 0.75 * own + 0.25 * weighted_overlap(weights, self.passage_words[i])

    def _kind_words(self, text: str, kind: str | None) -> set[str]:
        """The question's word after "how" ("long" in "how long"), when ``text`` holds the kind of
        answer it asks for: "three months" answers "how long" without the word "long"."""
        return self._how if self._how and kind_fit(kind, text) > 0 else set()

    @cached_property
    def _span_parts(self) -> list[list[tuple[float, float, float]]]:
        """For each span and each part of the question: (own coverage, blended coverage, evidence
        score), the score being half similarity, half blended coverage (across languages, the
        similarity stands in for a coverage below itself)."""
        out = []
        for (i, start, end), words, sim in zip(self.spans, self._span_words, self._question_span):
            text = self.hits[i].chunk.text[start:end]
            row = []
            for part, weights in zip(self.parts, self._part_weights):
                own, blended = self._coverage(i, weights, words | self._kind_words(text, part.kind))
                row.append((own, blended, 0.5 * sim + 0.5 * (max(blended, sim) if self._across[i] else blended)))
            out.append(row)
        return out

    @cached_property
    def _best_scores(self) -> list[float]:
        return [max((row[p][2] for row in self._span_parts), default=0.0) for p in range(len(self.parts))]

    @cached_property
    def _span_ranks(self) -> np.ndarray:
        """Each span's rank (0: the best) by evidence score, for each part, (spans × parts)."""
        scores = np.asarray([[cell[2] for cell in row] for row in self._span_parts]).reshape(len(self.spans), len(self.parts))
        return np.argsort(np.argsort(-scores, axis=0, kind="stable"), axis=0)

    def _rare_coverage(self, words: set[str], weights: dict[str, float]) -> float:
        """The weight of the rarest question word ``words`` hold, over the rarest word's weight."""
        top = max(weights.values(), default=0.0)
        return max((v for w, v in weights.items() if w in words), default=0.0) / top if top else 0.0

    def _row(self, j: int, p: int, sentence: str, sims: tuple[float, float], lexical: float, novel: float, restates: bool) -> list[float]:
        """The judge's signals (``FEATURES`` order) for ``sentence`` on span ``j``, about part ``p``."""
        i, start, end = self.spans[j]
        span = self.hits[i].chunk.text[start:end]
        kind = self.parts[p].kind
        words = content_words(sentence) | self._kind_words(sentence, kind)
        own, _ = self._coverage(i, self._part_weights[p], words)
        _, span_blended, span_score = self._span_parts[j][p]
        values = {
            "question_sentence": sims[0],
            "sentence_span": sims[1],
            "question_span": self._question_span[j],
            "lexical": lexical,
            "novel": novel,
            "restates": float(restates),
            "coverage": own,
            "span_coverage": span_blended,
            "span_gap": self._best_scores[p] - span_score,
            "similarity_gap": max(self._question_span) - self._question_span[j],
            "span_rank": math.log1p(float(self._span_ranks[j][p])),
            "passage_rank": math.log1p(i),
            "rare_coverage": self._rare_coverage(words, self._part_weights[p]),
            "passage_rare_coverage": self._rare_coverage(self.passage_words[i], self._part_weights[p]),
            "passage_similarity": self.hits[i].dense_similarity or 0.0,
            "new_names": math.log1p(min(len(_names(sentence) - self._question_names), 4)),
            "kind_sentence": float(kind_fit(kind, sentence)),
            "kind_span": float(kind_fit(kind, span)),
            "length": math.log1p(len(_WORD.findall(sentence))),
            "open_question": float(self._open),
            "across": float(self._across[i]),
        }
        return [values[name] for name in FEATURES]

    def span_rows(self) -> np.ndarray:
        """The signals of every passage sentence judged as an answer to each part, (spans × parts × features)."""
        rows = []
        for j, (i, start, end) in enumerate(self.spans):
            text = self.hits[i].chunk.text[start:end]
            sim = self._question_span[j]
            restates = not self._added(text) and self._restates(text)
            rows.append([self._row(j, p, text, (sim, 1.0), 1.0, 0.0 if restates else 1.0, restates) for p in range(len(self.parts))])
        return np.asarray(rows, dtype=np.float64).reshape(len(self.spans), len(self.parts), len(FEATURES))

    def sentence_rows(self, sentence: str, n: int) -> tuple[int, np.ndarray]:
        """(the span of passage ``n`` closest to ``sentence``, as an index into ``spans``; the
        signals of the sentence on it, one row per part of the question)."""
        i = n - 1
        words = content_words(sentence)
        vector = self.sentence_vector(sentence)
        best_j, best_sim, best_key = -1, 0.0, -math.inf
        for j, (hit_index, _, _) in enumerate(self.spans):
            if hit_index != i:
                continue
            lexical_j = overlap(words, self._span_words[j])
            sim = (
                self._similarity(float(self._span_vectors[j] @ vector), i)
                if self._span_vectors is not None and vector is not None
                else lexical_j
            )
            if sim + lexical_j > best_key:
                best_j, best_sim, best_key = j, sim, sim + lexical_j
        if best_j < 0:
            return -1, np.zeros((len(self.parts), len(FEATURES)))
        if vector is not None and self._question_vector is not None:
            q_s = float(self._scale.calibrated(float(vector @ self._question_vector)))
        else:
            q_s = weighted_overlap(self.question_weights, words)
        added = self._added(sentence)
        restates = not added and self._restates(sentence)
        novel = overlap(added, self.passage_words[i] | self._passage_short[i]) if added else (0.0 if restates else 1.0)
        lexical = overlap(words, self.passage_words[i])
        rows = [self._row(best_j, p, sentence, (q_s, best_sim), lexical, novel, restates) for p in range(len(self.parts))]
        return best_j, np.asarray(rows, dtype=np.float64)

    def _added(self, sentence: str) -> set[str]:
        """What ``sentence`` says beyond the question: its content words the question lacks, or
        when there are none, its short words the question lacks ("#P", "UK": an answer too)."""
        added = content_words(sentence) - self.question_words
        return added or (_short_words(sentence) - self._question_short)

    def _restates(self, sentence: str) -> bool:
        """Whether ``sentence``, adding no word to the question, restates it: the question asks for
        something, or the sentence is itself a question (a model that echoes "…带薪年假？")."""
        return self._open or plain(sentence).rstrip().endswith(_QUESTION_MARKS)

    # evidence for the question -------------------------------------------------------------
    @cached_property
    def _span_probabilities(self) -> np.ndarray:
        """The judge's probability that each passage sentence answers each part, (spans × parts)."""
        if not self.spans:
            return np.zeros((0, len(self.parts)))
        rows = self.span_rows()
        return self.judge.probability(rows.reshape(-1, len(FEATURES))).reshape(len(self.spans), len(self.parts))

    @cached_property
    def _scored_spans(self) -> list[Evidence]:
        """Every trusted passage sentence judged as an answer to the question, best first."""
        scored = []
        for j, (i, start, end) in enumerate(self.spans):
            probs = self._span_probabilities[j]
            part = int(np.argmax(probs))
            _, blended, _ = self._span_parts[j][part]
            score = round(float(probs[part]), 4)
            scored.append(Evidence(i + 1, start, end, score, round(blended, 4), round(self._question_span[j], 4), score, part))
        scored.sort(key=lambda e: (-e.rank, e.n, e.start))
        return scored

    def evidence(self, k: int = 3) -> list[Evidence]:
        """The passage sentences that best answer the question, best first: the best for each part
        of the question, then the best of each other passage."""
        return self._evidence_order[:k]

    @cached_property
    def _evidence_order(self) -> list[Evidence]:
        chosen: list[Evidence] = []
        for part in range(len(self.parts)):
            best = next((e for e in self._scored_spans if e.part == part), None)
            if best is not None and best not in chosen:
                chosen.append(best)
        chosen.sort(key=lambda e: -e.rank)
        chosen = [t for e in chosen for t in [e, *self.ties(e)]]
        passages = {e.n for e in chosen}
        for e in self._scored_spans:
            if e.n not in passages:
                passages.add(e.n)
                chosen.append(e)
        return chosen

    def ties(self, best: Evidence, margin: float = TIE) -> list[Evidence]:
        """The next sentence for the same part of the question, when the judge rates it within
        ``margin`` of ``best``: a tie it cannot break ("covered for 6 years" and "elements are
        covered for 1 year" for "How long is the warranty?"), so both are shown."""
        return [e for e in self._scored_spans if e.part == best.part and e != best and e.score >= best.score - margin][:1]

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

    def passage_scores(self) -> dict[int, float]:
        """Each passage's best evidence score (how well its best sentence answers the question)."""
        best: dict[int, float] = {}
        for e in self._scored_spans:
            best.setdefault(e.n, e.rank)
        return best

    def answerability(self) -> float:
        """The judge's probability for the best evidence sentence (0 when there is none)."""
        return max((e.score for e in self._scored_spans), default=0.0)

    def unanswered_parts(self, kept: list[Verdict]) -> list[Evidence]:
        """For each part of the question that no ``kept`` sentence answers, that part's best
        evidence, when the judge says it answers."""
        index = {(i + 1, start, end): j for j, (i, start, end) in enumerate(self.spans)}
        answered = set()
        for verdict in kept:  # a kept sentence answers the part its span answers best
            j = index.get((verdict.passage, verdict.start, verdict.end))
            if j is not None:
                answered.add(int(np.argmax(self._span_probabilities[j])))
        spans = {(v.passage, v.start, v.end) for v in kept}
        found = [next((e for e in self._scored_spans if e.part == p), None) for p in range(len(self.parts)) if p not in answered]
        return [e for e in found if e is not None and e.score >= self.threshold and (e.n, e.start, e.end) not in spans]

    # the verdict on a sentence -------------------------------------------------------------
    def support(self, sentence: str, n: int) -> Support:
        """How passage ``n`` supports ``sentence``: the judge's probability and the fact checks."""
        i = n - 1
        j, rows = self.sentence_rows(sentence, n)
        if j < 0:
            return Support(n, 0, 0, 0.0, 0.0, 0.0, "unsupported")
        _, start, end = self.spans[j]
        span = self.hits[i].chunk.text[start:end]
        probability = float(self.judge.probability(rows).max())
        fact = facts.first_failure(
            sentence, span, self.evidence_text[i], self.question_words, self.passage_words[i], across=self._across[i]
        )
        entailment = self._entailment.entailment([(self.hits[i].chunk.text, sentence)])[0] if self._entailment is not None else None
        if fact is None and entailment is not None and entailment < 0.5:
            fact = "not-entailed"
        lexical, semantic, restates = (
            float(rows[0][FEATURES.index("lexical")]),
            float(rows[0][FEATURES.index("sentence_span")]),
            bool(rows[0][FEATURES.index("restates")]),
        )
        return Support(n, start, end, round(probability, 4), round(lexical, 4), round(semantic, 4), fact, entailment, restates)

    def kept(self, support: Support) -> bool:
        return support.fact is None and support.probability >= self.threshold

    def verdict(self, sentence: str, cited: Sequence[int] = ()) -> Verdict:
        """Whether ``sentence`` is kept, on which passage, and why not. Every passage is judged,
        not only the cited ones: of those that keep it, the one with the highest probability is
        cited (a citation the model got wrong is moved), ties going to the one the model cited."""
        cited_set = {n for n in cited if 1 <= n <= len(self.hits)}
        everything = [self.support(sentence, n) for n in range(1, len(self.hits) + 1)]
        if not everything:
            return Verdict(False, 0, 0, 0, 0.0, "unsupported")
        passing = [s for s in everything if self.kept(s)]
        if passing:
            best = max(passing, key=lambda s: (s.probability, s.n in cited_set, -s.n))
            return Verdict(True, best.n, best.start, best.end, best.probability)
        sourced = [s for s in everything if s.fact is None and s.lexical >= 0.5 and s.semantic >= 0.5]
        best = max(sourced or everything, key=lambda s: (s.probability, -s.n))
        return Verdict(False, best.n, best.start, best.end, best.probability, self._reason(best, bool(sourced)))

    def _reason(self, best: Support, sourced: bool) -> str:
        """Why a sentence whose closest support is ``best`` was left out, in one word: ``sourced``
        when a passage says it (then it does not answer the question)."""
        if best.restates:
            return "restates-question"
        if sourced:
            return "off-topic"
        if best.fact and best.probability >= self.threshold / 2:
            return best.fact
        return "unsupported"


_WORD = re.compile(r"[^\W_]+")
_WH = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how"})


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

"""The question pipeline: retrieve → budget → generate → check citations → Answer."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.answer.citations import CitationChecker, make_citation
from rag.answer.conversation import FollowUp, mentions_any, resolve
from rag.answer.judge import JudgeModel
from rag.answer.llm import LLM, Message
from rag.answer.models import quotes_unverified
from rag.answer.prompts import Prompts
from rag.answer.retrieval import Retrieval, Retriever
from rag.answer.safety import mask_instructions, sanitise
from rag.answer.verify import EntailmentModel, Evidence, Verifier
from rag.config import Settings
from rag.errors import InputError
from rag.index.where import Where
from rag.schema import EXTRACT_ONLY, Answer, Citation, Claim, Draft, Hit
from rag.text.analysis import language
from rag.text.spans import content_word_forms, plain

STOP = ["\nQuestion:", "\nSources:", "\nSource:", "<<<"]  # where a small model starts echoing the prompt


@dataclass(frozen=True)
class PackedPrompt:
    messages: list[Message]
    hits: list[Hit]  # the sources placed in the prompt, numbered from 1
    dropped: int  # retrieved passages that did not fit
    prompt_tokens: int


@dataclass
class _Written:
    """How a generation ended: its finish reason, whether the user stopped it, sentences shown."""

    finish: str | None = None
    stopped: bool = False
    shown: int = 0


@dataclass(frozen=True)
class Grounding:
    """What an answer is built from: the numbered sources in the prompt and the best evidence."""

    packed: PackedPrompt
    verifier: Verifier
    evidence: list[Evidence]


class QuestionAnswerer:
    def __init__(
        self,
        retriever: Retriever,
        llm: Callable[[], LLM],
        prompts: Prompts,
        settings: Settings,
        entailment: EntailmentModel | None = None,
        judge: JudgeModel | None = None,
    ) -> None:
        self.retriever = retriever
        self._llm_factory = llm
        self.prompts = prompts
        self.settings = settings
        self._entailment = entailment
        self.judge = judge or JudgeModel.load()

    def ask(self, question: str | FollowUp, **overrides: Any) -> Answer:
        answer = None
        for event in self.stream(question, **overrides):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self,
        question: str | FollowUp,
        *,
        top_k: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        query_vector: np.ndarray | None = None,
        stopped: Callable[[], bool] | None = None,
        where: Where | None = None,
    ) -> Iterator[str | Draft | Answer]:
        """Yield checked answer text (``str``) as each sentence passes, ``Draft`` updates of the
        sentence being written, then the finished ``Answer``.

        A ``FollowUp`` is answered as its standalone query, and its answer must rest on evidence
        that mentions a word of the follow-up itself. When ``stopped()`` turns true, generation
        ends and the answer is what was verified so far. With ``where``, only the chosen documents
        are searched."""
        if isinstance(question, str):
            question = check_question(question)
            follow = FollowUp(question, question, "as-is")
        else:
            follow = question
        for event in self._stream(follow, top_k, temperature, max_tokens, query_vector, stopped or (lambda: False), where):
            if isinstance(event, FollowUp):
                follow = event  # the one answered
            elif isinstance(event, Answer):
                event.question, event.query, event.query_method = follow.question, follow.query, follow.method
                yield event
            else:
                yield event

    def _stream(
        self,
        follow: FollowUp,
        top_k: int | None,
        temperature: float | None,
        max_tokens: int | None,
        query_vector: np.ndarray | None,
        stopped: Callable[[], bool],
        where: Where | None,
    ) -> Iterator[FollowUp | str | Draft | Answer]:
        """The answer's events, after the ``FollowUp`` that was answered (one the documents do not
        answer is tried once more as its alternative: in context, or as the user typed it)."""
        started = time.perf_counter()
        max_tokens = max_tokens or self.settings.max_tokens
        temperature = self.settings.temperature if temperature is None else temperature
        llm = self._llm_factory() if self.settings.answer_mode == "generate" else None
        grounded = self._ground(follow, llm, top_k, max_tokens, query_vector, started, where)
        if isinstance(grounded, Answer) and follow.alternative is not None:
            retried = self._ground(follow.alternative, llm, top_k, max_tokens, None, started, where)
            if not isinstance(retried, Answer):
                follow, grounded = follow.alternative, retried
        yield follow
        if isinstance(grounded, Answer):
            yield from _with_text(grounded)
            return
        question, packed, verifier, evidence = follow.query, grounded.packed, grounded.verifier, grounded.evidence
        if llm is None:
            yield from _with_text(self._extractive(question, verifier, evidence, started, EXTRACT_ONLY, packed, []))
            return
        yield from self._generated(follow, grounded, llm, temperature, max_tokens, stopped, started)

    def _generated(
        self,
        follow: FollowUp,
        grounded: Grounding,
        llm: LLM,
        temperature: float,
        max_tokens: int,
        stopped: Callable[[], bool],
        started: float,
    ) -> Iterator[str | Draft | Answer]:
        """A model's answer: its checked sentences as they pass, then the ``Answer``."""
        question, packed, verifier = follow.query, grounded.packed, grounded.verifier
        checker = CitationChecker(packed.hits, question, verifier=verifier, refusals=self.prompts.refusals())
        written = yield from self._write(checker, llm, packed.messages, temperature, max_tokens, stopped)
        if written.stopped:  # the user stopped it: the answer is what was verified so far
            yield self._stopped(question, checker, verifier, packed, llm.name, started)
            return
        text, citations, removed = checker.result()
        if not citations:
            answer = self._unsupported(question, grounded, checker, llm.name, removed, started)
            answer.truncated = not answer.refused and written.finish == "length"
            yield ("\n\n" if written.shown else "") + answer.text
            yield answer
            return
        claims = checker.claims
        for e in verifier.unanswered_parts(checker.kept_verdicts):
            # the model's sentences do not answer (a part of) the question directly: quote its evidence
            addition, more, quoted = self._other_part(verifier, e, language(question))
            yield " " + addition
            text, citations, claims = f"{text} {addition}", citations + more, claims + quoted
        yield self._answer(
            question,
            started,
            verifier,
            grounded.evidence,
            packed,
            text=text,
            citations=citations,
            truncated=written.finish == "length",
            model=llm.name,
            removed_sentences=removed,
            mode="generated",
            claims=claims,
            reasoning="\n\n".join(checker.reasoning),
        )

    def _write(
        self,
        checker: CitationChecker,
        llm: LLM,
        messages: list[Message],
        temperature: float,
        max_tokens: int,
        stopped: Callable[[], bool],
    ) -> Generator[str | Draft, None, _Written]:
        """Generate, yielding each sentence the checker passes and the sentence being written. The
        generation is closed however this ends, so the model's lock is released at once."""
        written = _Written()
        generation = llm.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=self.settings.seed, stop=STOP)
        with closing(generation):
            for chunk in generation:
                written.finish = chunk.finish_reason or written.finish
                for sentence in checker.feed(chunk.text):  # only checked sentences become answer text
                    yield (" " if written.shown else "") + sentence
                    written.shown += 1
                yield Draft(checker.pending)
                if checker.full:  # enough supported sentences: stop generating
                    written.finish = "stop"
                    break
                if stopped():
                    written.stopped = True
                    return written
        for sentence in checker.close():
            yield (" " if written.shown else "") + sentence
            written.shown += 1
        return written

    def _unsupported(
        self, question: str, grounded: Grounding, checker: CitationChecker, model: str, removed: list[str], started: float
    ) -> Answer:
        """The answer when the model refused or none of its sentences was kept: the judge found an
        answering sentence in the passages (else the question was refused before the model ran),
        so that sentence is quoted, whichever model wrote (unless ``unverified`` is "refuse")."""
        if self.settings.unverified == "refuse":
            said = (
                "found no answer in the sources"
                if checker.model_refused
                else f"wrote no sentence the judge keeps ({len(checker.claims)} left out)"
            )
            answer = self._refusal(question, started, f"the model {said}", grounded.verifier, grounded.evidence, grounded.packed)
            answer.model, answer.claims, answer.removed_sentences = model, list(checker.claims), removed
        else:
            answer = self._extractive(question, grounded.verifier, grounded.evidence, started, model, grounded.packed, removed)
            answer.claims = checker.claims + answer.claims
        answer.model_refused, answer.reasoning = checker.model_refused, "\n\n".join(checker.reasoning)
        return answer

    def _other_part(self, verifier: Verifier, evidence: Evidence, lang: str) -> tuple[str, list[Citation], list[Claim]]:
        """The evidence quoted for a part of the question the model's sentences leave unanswered."""
        quotes, more, quoted = _quotes(verifier, [evidence])
        part = verifier.parts[evidence.part].text
        addition = (
            self.prompts.render("other_part", lang, part=part[:1].lower() + part[1:], quotes=quotes)
            if len(verifier.parts) > 1
            else self.prompts.render("extractive", lang, quotes=quotes)
        )
        return addition, more, quoted

    def _ground(
        self,
        follow: FollowUp,
        llm: LLM | None,
        top_k: int | None,
        max_tokens: int,
        vector: np.ndarray | None,
        started: float,
        where: Where | None,
    ) -> Grounding | Answer:
        """The sources and evidence to answer ``follow`` from, or the refusal when they do not answer it."""
        question = follow.query
        if llm is not None:
            self.pack(llm, question, Retrieval(question, [], 0.0, 0), max_tokens)  # fails fast if it cannot fit
        retrieval = self.retriever.retrieve(question, top_k=top_k, vector=vector, where=where)
        if not retrieval.hits:
            reason = (
                f"no passage in the {'chosen documents' if where else 'index'} is relevant to the question "
                f"(best similarity {retrieval.best_similarity:.2f} < {self.settings.min_similarity})"
            )
            return self._refusal(question, started, reason, None, [])
        focused = focus(retrieval, self.settings.relative_cutoff)
        packed = self.pack(llm, question, focused, max_tokens) if llm is not None else PackedPrompt([], focused.hits, 0, 0)
        retriever = self.retriever
        verifier = Verifier(
            packed.hits,
            question,
            retriever.embedder,
            self.judge,
            threshold=self.settings.judge_threshold,
            entailment=self._entailment,
            term_weight=retriever.idf,
        )
        evidence = verifier.evidence(3)
        answerability = verifier.answerability()
        if answerability < verifier.threshold:
            reason = f"no retrieved sentence answers the question (the judge's best {answerability:.2f} < {verifier.threshold:.2f})"
            return self._refusal(question, started, reason, verifier, evidence, packed)
        evidence = _about(follow.own_words, verifier, evidence, verifier.threshold)
        if not mentions_any(follow.own_words, verifier.hits[evidence[0].n - 1].chunk.embedding_text()):
            asked = ", ".join(f'"{w}"' for stem, w in content_word_forms(follow.question).items() if stem in follow.own_words)
            reason = f"no passage that answers mentions what the follow-up asks about ({asked})"
            return self._refusal(question, started, reason, verifier, evidence, packed)
        return Grounding(packed, verifier, evidence)

    def _stopped(
        self, question: str, checker: CitationChecker, verifier: Verifier, packed: PackedPrompt, model: str, started: float
    ) -> Answer:
        text, citations, removed = checker.result()
        return self._answer(
            question,
            started,
            verifier,
            verifier.evidence(3),
            packed,
            text=text,
            citations=citations,
            truncated=True,
            model=model,
            removed_sentences=removed,
            mode="stopped",
            claims=checker.claims,
        )

    def _answer(
        self, question: str, started: float, verifier: Verifier, evidence: list[Evidence], packed: PackedPrompt, **fields: Any
    ) -> Answer:
        """An answer (not a refusal) with the fields every kind shares; the rest come in ``fields``."""
        fields.setdefault("truncated", False)
        return Answer(
            question=question,
            refused=False,
            embedder=self.retriever.embedder.name,
            prompt_version=self.prompts.version,
            latency_s=round(time.perf_counter() - started, 3),
            sources_considered=len(packed.hits),
            sources_dropped=packed.dropped,
            evidence=self._evidence_citations(verifier, evidence, supported=True),
            answerability=verifier.answerability(),
            **fields,
        )

    def _evidence_citations(self, verifier: Verifier, evidence: list[Evidence], *, supported: bool) -> list[Citation]:
        return [make_citation(e.n, verifier.hits[e.n - 1].chunk, e.start, e.end, supported=supported) for e in evidence]

    def _extractive(
        self,
        question: str,
        verifier: Verifier,
        evidence: list[Evidence],
        started: float,
        model: str,
        packed: PackedPrompt,
        removed: list[str],
    ) -> Answer:
        quotes, citations, claims = _quotes(verifier, _quoted_evidence(verifier, evidence))
        return self._answer(
            question,
            started,
            verifier,
            evidence,
            packed,
            text=self.prompts.render("extractive", language(question), quotes=quotes),
            citations=citations,
            model=model,
            removed_sentences=removed,
            mode="extractive",
            claims=claims,
        )

    def resolve(self, question: str, earlier: Sequence[str]) -> FollowUp:
        """``question`` as a standalone question, given the conversation's ``earlier`` standalone
        questions (see ``rag.answer.conversation``; the model rewrites from the user's questions only)."""
        question = check_question(question)
        rewriter = self._rewrite if self.settings.answer_mode == "generate" else None
        return resolve(question, earlier, rewriter)

    def _rewrite(self, question: str, earlier: Sequence[str]) -> str:
        messages: list[Message] = [
            {"role": "user", "content": self.prompts.render("condense", history="\n".join(earlier), question=question)}
        ]
        llm = self._llm_factory()
        if llm.count_tokens(messages) + 64 > llm.n_ctx:
            return ""
        chunks = llm.generate(messages, max_tokens=64, temperature=0.0, seed=self.settings.seed, stop=["\n"])
        return "".join(c.text for c in chunks)

    def pack(self, llm: LLM, question: str, retrieval: Retrieval, max_tokens: int) -> PackedPrompt:
        """Number the sources and add them, best first, while the prompt fits the context window."""
        budget = llm.n_ctx - max_tokens
        chosen: list[Hit] = []
        blocks: list[str] = []
        weak = quotes_unverified(self.settings, llm.name)
        messages = self._messages(question, blocks, weak)
        used = llm.count_tokens(messages)
        if used > budget:
            raise InputError(
                f"the question is too long: with the instructions it needs {used} tokens, and the model's "
                f"{llm.n_ctx}-token context keeps {max_tokens} for the answer",
                "shorten the question, lower --max-tokens, or raise --n-ctx",
            )
        for hit in retrieval.hits:
            block = self._source_block(len(chosen) + 1, hit)
            trial = self._messages(question, blocks + [block], weak)
            needed = llm.count_tokens(trial)
            if needed <= budget:
                chosen.append(hit)
                blocks.append(block)
                messages, used = trial, needed
        return PackedPrompt(messages, chosen, len(retrieval.hits) - len(chosen), used)

    def _no_answer(self, weak: bool, lang: str) -> str:
        """What a weak reader is told to say when the sources lack the answer (prompts/no_answer.txt).
        A model that reads is not told: measured on squad-dev8, Qwen2.5 1.5B then answered "The
        documents do not say." to questions whose answer stood in source [1]; without the line,
        SmolLM2 glues neighbouring sentences into claims the sources do not make."""
        return " " + self.prompts.render("no_answer", lang) if weak else ""

    def _source_block(self, n: int, hit: Hit) -> str:
        return self.prompts.render("source", n=n, text=mask_instructions(hit.chunk.text))

    def _messages(self, question: str, blocks: list[str], weak: bool) -> list[Message]:
        sources = "\n\n".join(blocks) if blocks else "(none)"
        lang = language(question)
        instruction = self.prompts.language_instruction(lang)
        return [
            {"role": "system", "content": self.prompts.render("system")},
            {
                "role": "user",
                "content": self.prompts.render("qa", sources=sources, question=question)
                + (" " + instruction if instruction else "")
                + self._no_answer(weak, lang),
            },
        ]

    def _refusal(
        self,
        question: str,
        started: float,
        reason: str,
        verifier: Verifier | None,
        related: list[Evidence],
        packed: PackedPrompt | None = None,
    ) -> Answer:
        """The documents do not answer: say so, and show the closest passages as related, not an answer."""
        return Answer(
            question=question,
            text=self.prompts.render("refusal", language(question)),
            citations=[],
            refused=True,
            truncated=False,
            model="(not called)",
            embedder=self.retriever.embedder.name,
            prompt_version=self.prompts.version,
            latency_s=round(time.perf_counter() - started, 3),
            mode="refusal",
            refusal_reason=reason,
            evidence=self._evidence_citations(verifier, related, supported=False) if verifier is not None else [],
            answerability=related[0].score if related else None,
            sources_considered=len(packed.hits) if packed else 0,
            sources_dropped=packed.dropped if packed else 0,
        )


def _quotes(verifier: Verifier, evidence: list[Evidence]) -> tuple[str, list[Citation], list[Claim]]:
    """Evidence sentences quoted with their source numbers, their citations, and their claims."""
    texts, citations, claims = [], [], []
    for e in evidence:
        chunk = verifier.hits[e.n - 1].chunk
        quote = sanitise(" ".join(plain(chunk.text[e.start : e.end]).split()))
        citation = make_citation(e.n, chunk, e.start, e.end, supported=True)
        texts.append(f'"{quote}" [{e.n}]')
        citations.append(citation)
        claims.append(Claim(quote, [e.n], True, 1.0, citation.quote, citation.quote_start, citation.quote_end, passage=e.n))
    return "; ".join(texts), citations, claims


def _quoted_evidence(verifier: Verifier, evidence: list[Evidence]) -> list[Evidence]:
    """What an extractive answer quotes: the best evidence (with a sentence the judge rates as well),
    and for a question that asks two things the best evidence for each further part that the judge
    says answers it."""
    chosen = [evidence[0], *verifier.ties(evidence[0])]
    for e in evidence[1:]:
        if e.part not in {c.part for c in chosen} and e.score >= verifier.threshold:
            chosen += [e, *verifier.ties(e)]
    return chosen


def _about(words: frozenset[str], verifier: Verifier, evidence: list[Evidence], min_score: float) -> list[Evidence]:
    """The evidence, led by the best sentence that mentions what a follow-up asks about: a
    follow-up completed with the earlier question's words ranks sentences on the earlier topic
    high ("The lease runs for 12 months" for "Does it renew?")."""
    first = verifier.best_mentioning(words, min_score) if words else None
    return [first] + [e for e in evidence if e != first] if first is not None else evidence


def _with_text(answer: Answer) -> Iterator[str | Answer]:
    """Stream an answer that was not generated piece by piece: its text, then the answer."""
    yield answer.text
    yield answer


def focus(retrieval: Retrieval, cutoff: float) -> Retrieval:
    """Keep the passages close to the best one: weak matches only distract a small model.

    A passage stays when its dense similarity, or else its BM25 score, is at least ``cutoff`` times
    the best of that kind among the hits.
    """
    best_dense = max((h.dense_similarity for h in retrieval.hits if h.dense_similarity is not None), default=0.0)
    best_bm25 = max((h.bm25_score for h in retrieval.hits if h.bm25_score is not None), default=0.0)
    kept = [
        h
        for h in retrieval.hits
        if (h.dense_similarity is not None and h.dense_similarity >= cutoff * best_dense)
        or (h.bm25_score is not None and h.bm25_score >= cutoff * best_bm25 and best_bm25 > 0)
    ]
    return Retrieval(retrieval.query, kept or retrieval.hits[:1], retrieval.best_similarity, retrieval.keyword_hits)


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_question(question: str) -> str:
    """The question with white space collapsed, and a lone surrogate (undecodable bytes on a
    command line, a broken client's JSON) as U+FFFD; an empty one is an error."""
    question = " ".join(_SURROGATE.sub("\ufffd", question).split())
    if not question:
        raise InputError("the question is empty", 'type a question, e.g. rag ask "What does the contract say about notice?"')
    return question

"""The question pipeline: retrieve → budget → generate → check citations → Answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .citations import REFUSAL, CitationChecker, make_citation
from .config import Settings
from .errors import InputError
from .llm import LLM, Message
from .prompts import Prompts
from .retrieval import HybridRetriever, Retrieval
from .schema import Answer, Draft, Hit
from .textspan import content_words, overlap, sentences

STOP = ["\nQuestion:", "\nSources:", "\nSource:", "<<<"]  # where a small model starts echoing the prompt


@dataclass(frozen=True)
class PackedPrompt:
    messages: list[Message]
    hits: list[Hit]  # the sources placed in the prompt, numbered from 1
    dropped: int  # retrieved passages that did not fit
    prompt_tokens: int


class QuestionAnswerer:
    def __init__(
        self,
        retriever: HybridRetriever,
        llm: Callable[[], LLM],
        prompts: Prompts,
        settings: Settings,
    ) -> None:
        self.retriever = retriever
        self._llm_factory = llm
        self.prompts = prompts
        self.settings = settings

    def ask(self, question: str, **overrides: object) -> Answer:
        answer = None
        for event in self.stream(question, **overrides):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Iterator[str | Draft | Answer]:
        """Yield checked answer text (``str``) as each sentence passes, ``Draft`` updates of the
        sentence being written, then the finished ``Answer``."""
        started = time.perf_counter()
        question = check_question(question)
        max_tokens = max_tokens or self.settings.max_tokens
        temperature = self.settings.temperature if temperature is None else temperature
        llm = self._llm_factory() if self.settings.answer_mode == "generate" else None
        if llm is not None:
            self.pack(llm, question, Retrieval(question, [], 0.0, 0), max_tokens)  # fails fast if it cannot fit
        retrieval = self.retriever.retrieve(question, top_k=top_k, vector=query_vector)
        if not retrieval.hits:
            yield from _with_text(self._refusal(question, retrieval, started, "no passage in the index is relevant to the question"))
            return
        if llm is None:
            yield from _with_text(self._extractive(question, retrieval.hits, started, "(extractive)", len(retrieval.hits), 0, []))
            return
        packed = self.pack(llm, question, focus(retrieval, self.settings.relative_cutoff), max_tokens)
        embedder = self.retriever.index.embedder
        question_vector = embedder.embed_queries([question])[0]
        checker = CitationChecker(
            packed.hits, question, lambda sentence: float(embedder.embed_documents([sentence])[0] @ question_vector)
        )
        finish = None
        shown = 0
        for chunk in llm.generate(
            packed.messages, max_tokens=max_tokens, temperature=temperature, seed=self.settings.seed, stop=STOP
        ):
            finish = chunk.finish_reason or finish
            for sentence in checker.feed(chunk.text):  # only checked sentences become answer text
                yield (" " if shown else "") + sentence
                shown += 1
            yield Draft(checker.pending)
            if checker.full:  # enough supported sentences: stop generating
                finish = "stop"
                break
        for sentence in checker.close():
            yield (" " if shown else "") + sentence
            shown += 1
        text, citations, removed = checker.result()
        refused = bool(REFUSAL.search(text)) and not citations
        mode = "generated"
        if refused:
            citations, mode = [], "refusal"
            if not shown:
                text = self.prompts.render("refusal")
                yield text
        elif not citations:
            # The model wrote nothing its sources back: show the best evidence instead.
            answer = self._extractive(question, packed.hits, started, llm.name, len(packed.hits), packed.dropped, removed)
            answer.truncated = finish == "length"
            yield from _with_text(answer)
            return
        yield Answer(
            question=question,
            text=text,
            citations=citations,
            refused=refused,
            truncated=finish == "length",
            model=llm.name,
            embedder=self.retriever.index.embedder.name,
            prompt_version=self.prompts.version,
            latency_s=round(time.perf_counter() - started, 3),
            sources_considered=len(packed.hits),
            sources_dropped=packed.dropped,
            refusal_reason="the model found no answer in the sources" if refused else "",
            removed_sentences=removed,
            mode=mode,
        )

    def _extractive(
        self, question: str, hits: list[Hit], started: float, model: str, considered: int, dropped: int, removed: list[str]
    ) -> Answer:
        n, start, end = self.best_evidence(question, hits)
        chunk = hits[n - 1].chunk
        return Answer(
            question=question,
            text=self.prompts.render("extractive", quote=" ".join(chunk.text[start:end].split()), n=n),
            citations=[make_citation(n, chunk, start, end, supported=True)],
            refused=False,
            truncated=False,
            model=model,
            embedder=self.retriever.index.embedder.name,
            prompt_version=self.prompts.version,
            latency_s=round(time.perf_counter() - started, 3),
            sources_considered=considered,
            sources_dropped=dropped,
            removed_sentences=removed,
            mode="extractive",
        )

    def best_evidence(self, question: str, hits: list[Hit]) -> tuple[int, int, int]:
        """(source number, start, end) of the retrieved sentence that best answers the question:
        embedding similarity plus the share of the question's words it contains."""
        candidates: list[tuple[int, int, int]] = []
        for n, hit in enumerate(hits, start=1):
            for start, end in sentences(hit.chunk.text):
                candidates.append((n, start, end))
        texts = [hits[n - 1].chunk.text[a:b] for n, a, b in candidates]
        embedder = self.retriever.index.embedder
        similarity = embedder.embed_documents(texts) @ embedder.embed_queries([question])[0]
        wanted = content_words(question)
        scores = [float(sim) + 0.5 * overlap(wanted, content_words(t)) for sim, t in zip(similarity, texts)]
        return candidates[max(range(len(scores)), key=lambda i: (scores[i], -i))]

    def condense(self, question: str, history: list[tuple[str, str]]) -> str:
        """Rewrite a follow-up into a standalone question using the chat history (prompts/condense.txt).

        A small model may rewrite badly: a rewrite that drops every content word of the question, or
        balloons, is replaced by the previous question joined with this one.
        """
        question = check_question(question)
        if not history:
            return question
        recent = history[-3:]
        fallback = f"{recent[-1][0]} {question}"
        if self.settings.answer_mode != "generate":
            return fallback
        lines = "\n".join(f"User: {q}\nAssistant: {' '.join(a.split())[:300]}" for q, a in recent)
        messages = [{"role": "user", "content": self.prompts.render("condense", history=lines, question=question)}]
        llm = self._llm_factory()
        if llm.count_tokens(messages) + 64 > llm.n_ctx:
            return fallback
        text = "".join(c.text for c in llm.generate(messages, max_tokens=64, temperature=0.0, seed=self.settings.seed, stop=["\n"]))
        rewritten = " ".join(text.split()).strip('"')
        if not rewritten or len(rewritten) > 3 * len(fallback) or not content_words(rewritten) & content_words(question):
            return fallback
        return rewritten

    def pack(self, llm: LLM, question: str, retrieval: Retrieval, max_tokens: int) -> PackedPrompt:
        """Number the sources and add them, best first, while the prompt fits the context window."""
        budget = llm.n_ctx - max_tokens
        chosen: list[Hit] = []
        blocks: list[str] = []
        messages = self._messages(question, blocks)
        used = llm.count_tokens(messages)
        if used > budget:
            raise InputError(
                f"the question is too long: with the instructions it needs {used} tokens, and the model's "
                f"{llm.n_ctx}-token context keeps {max_tokens} for the answer",
                "shorten the question, lower --max-tokens, or raise --n-ctx",
            )
        for hit in retrieval.hits:
            block = self._source_block(len(chosen) + 1, hit)
            trial = self._messages(question, blocks + [block])
            needed = llm.count_tokens(trial)
            if needed <= budget:
                chosen.append(hit)
                blocks.append(block)
                messages, used = trial, needed
        return PackedPrompt(messages, chosen, len(retrieval.hits) - len(chosen), used)

    def _source_block(self, n: int, hit: Hit) -> str:
        return self.prompts.render("source", n=n, text=hit.chunk.text)

    def _messages(self, question: str, blocks: list[str]) -> list[Message]:
        sources = "\n\n".join(blocks) if blocks else "(none)"
        return [
            {"role": "system", "content": self.prompts.render("system")},
            {"role": "user", "content": self.prompts.render("qa", sources=sources, question=question)},
        ]

    def _refusal(self, question: str, retrieval: Retrieval, started: float, reason: str) -> Answer:
        return Answer(
            question=question,
            text=self.prompts.render("refusal"),
            citations=[],
            refused=True,
            truncated=False,
            model="(not called)",
            embedder=self.retriever.index.embedder.name,
            prompt_version=self.prompts.version,
            latency_s=round(time.perf_counter() - started, 3),
            mode="refusal",
            refusal_reason=f"{reason} (best similarity {retrieval.best_similarity:.2f} < {self.retriever.settings.min_similarity})",
        )


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


def check_question(question: str) -> str:
    """The question with white space collapsed; an empty one is an error."""
    question = " ".join(question.split())
    if not question:
        raise InputError("the question is empty", 'type a question, e.g. rag ask "What does the contract say about notice?"')
    return question

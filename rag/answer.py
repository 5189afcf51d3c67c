"""The question pipeline: retrieve → budget → generate → parse and check citations → Answer."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .config import Settings
from .errors import InputError
from .llm import LLM, Message
from .prompts import Prompts
from .retrieval import HybridRetriever, Retrieval
from .schema import Answer, Chunk, Citation, Draft, Hit
from .textspan import best_span, complete_prefix, content_words, numbers, overlap, sentences

_ECHO = re.compile(r"^\s*(source|passage)\s*\[?\d+\]?\s*:\s*$", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
MAX_SENTENCES = 3
TOPIC_SIMILARITY = 0.35  # a sentence sharing one word with the question must also be this close to it
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*[,;]\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_THINK_DONE = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|$)", re.IGNORECASE | re.DOTALL)
_REFUSAL = re.compile(r"\b(documents?|sources?|context)\s+(do(es)?\s+not|don'?t)\s+(say|contain|mention|answer|provide)", re.IGNORECASE)
SUPPORT_THRESHOLD = 0.75  # share of a sentence's content words that its passage must contain
STOP = ["\nQuestion:", "\nSources:", "\nSource:", "<<<"]  # share of a sentence's content words found in the passage it cites


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
        retrieval = self.retriever.retrieve(question, top_k=top_k)
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
        refused = bool(_REFUSAL.search(text)) and not citations
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
            citations=[_citation(n, chunk, start, end, supported=True)],
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
        if _REFUSAL.search(bare):
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
            citations.append(_citation(n, chunk, start, end, supported=True))
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


def _citation(n: int, chunk: Chunk, start: int, end: int, *, supported: bool) -> Citation:
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

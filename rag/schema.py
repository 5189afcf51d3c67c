"""Plain dataclasses passed between pipeline stages.

Library types (Chroma results, llama.cpp dicts) never travel past their adapter; these do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PageSpan:
    """A page of a document: ``text[start:end]`` is page ``number`` (1-based)."""

    number: int
    start: int
    end: int


@dataclass
class Document:
    """A loaded file: its whole text, where each page lies in it, and light metadata."""

    source: str  # stable key: the resolved absolute path, or an id given by the caller
    text: str
    pages: list[PageSpan] = field(default_factory=list)
    title: str = ""
    display_name: str = ""  # what citations show: a path relative to the ingested root

    def page_at(self, offset: int) -> int | None:
        for page in self.pages:
            if page.start <= offset < page.end:
                return page.number
        return self.pages[-1].number if self.pages and offset >= self.pages[-1].end else None


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: ``document.text[char_start:char_end] == text``."""

    id: str
    text: str
    source: str
    display_name: str
    page: int | None
    heading: str
    char_start: int
    char_end: int
    n_tokens: int

    def embedding_text(self) -> str:
        """The text the embedder sees: the heading path gives the passage its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever evidence."""

    chunk: Chunk
    score: float
    dense_similarity: float | None = None  # cosine similarity (on the reference scale: SimilarityScale), when the dense retriever saw it
    bm25_score: float | None = None
    rerank_score: float | None = None  # cross-encoder score, when a reranker re-ordered the hits


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    display_name: str
    page: int | None
    chunk_id: str
    quote: str
    quote_start: int  # offsets of the quote inside the source document
    quote_end: int
    supported: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.display_name or self.source,
            "path": self.source,
            "page": self.page,
            "chunk_id": self.chunk_id,
            "quote": self.quote,
            "quote_start": self.quote_start,
            "quote_end": self.quote_end,
            "supported": self.supported,
        }


EXTRACT_ONLY = "(extractive)"  # the model of an answer that quotes evidence with no model run (answer_mode extract)

# what each reason a sentence was left out means, in plain words (the CLI and the chat page show these)
REASON_TITLES = {
    "unsupported": "Not supported by your documents",
    "off-topic": "Supported by your documents, but not an answer to this question",
    "restates-question": "Only restates the question",
    "wrong-number": "A number, amount or unit in it is not the one in your documents",
    "added-negation": "Adds, drops or turns round a negation or restriction of your documents",
    "unsourced-word": "Names something your documents never mention",
    "wrong-cell": "Gives a table cell under the wrong column",
    "not-entailed": "Contradicted by your documents",
    "over-limit": "Supported, but left out to keep the answer short",
}


@dataclass(frozen=True)
class Claim:
    """One sentence of the answer, the sources that support it, and the span that does best."""

    text: str  # the sentence, without citation markers
    sources: list[int]  # citation numbers that support it (empty when unsupported)
    supported: bool
    support: float  # the answer judge's probability that it answers the question from its best passage, 0..1
    quote: str = ""  # best-supporting span in the first supporting source
    quote_start: int | None = None  # offsets of ``quote`` in the source document
    quote_end: int | None = None
    # "supported", or why it was left out: "unsupported", "off-topic", "restates-question", a fact
    # check's reason (rag.answer.facts), "not-entailed" (an NLI verifier disagreed) or "over-limit"
    reason: str = "supported"
    passage: int | None = None  # the source that supports it best, even when it was left out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def left_out_reason(self) -> str | None:
        """Why the sentence is not in the answer (None when it is)."""
        if self.supported:
            return None
        return self.reason if self.reason in REASON_TITLES else "unsupported"


@dataclass(frozen=True)
class Draft:
    """The sentence the model is writing now, not yet checked: show it as a draft, if at all."""

    text: str


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    refused: bool
    truncated: bool
    model: str
    embedder: str
    prompt_version: str
    latency_s: float
    sources_considered: int = 0  # retrieved passages placed in the prompt
    sources_dropped: int = 0  # retrieved passages left out because the context was full
    refusal_reason: str = ""
    removed_sentences: list[str] = field(default_factory=list)  # model sentences no source supports
    # "generated", "extractive" (the model's text was unsupported), "refusal", or "stopped" (by the user:
    # the text is what was verified before the stop)
    mode: str = "generated"
    claims: list[Claim] = field(default_factory=list)  # every sentence the model wrote, checked (supported or not)
    evidence: list[Citation] = field(default_factory=list)  # best sentences for the question (related, if refused)
    reasoning: str = ""  # a reasoning model's <think> section, kept out of the answer
    answerability: float | None = None  # how well the best evidence sentence answers the question
    model_refused: bool = False  # the model said the sources do not answer (the evidence may still be quoted)
    query: str = ""  # the standalone question retrieval and the checks used (a follow-up's rewrite)
    query_method: str = "as-is"  # "as-is", "rewritten" (a checked model rewrite) or "completed" (deterministic)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data = {"question": data.pop("question"), "answer": data.pop("text"), **data}
        data["citations"] = [c.to_json() for c in self.citations]
        data["evidence"] = [c.to_json() for c in self.evidence]
        data["claims"] = [c.to_json() for c in self.claims]
        return data


@dataclass(frozen=True)
class FileError:
    path: str
    reason: str  # a short typed reason, e.g. "encrypted-pdf", "unsupported-type"
    detail: str


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[FileError] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    languages: dict[str, int] = field(default_factory=dict)  # passages added, by detected language
    notes: list[str] = field(default_factory=list)  # advice about the run, said once
    # pipelined ingest: seconds the embedder waited for the parser and the writer, and the writer worked
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [asdict(e) for e in self.skipped]
        return data

"""Wires the pipeline together for one settings object. Heavy parts load on first use."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.answer.answerer import QuestionAnswerer, check_question
from rag.answer.conversation import FollowUp
from rag.answer.llm import LLM
from rag.answer.prompts import Prompts
from rag.answer.rerank import CrossEncoderReranker, Reranker
from rag.answer.retrieval import HybridRetriever, Retriever
from rag.backends import open_embedder, open_llm
from rag.config import BUNDLED_MULTILINGUAL_EMBEDDER, ENGLISH_ONLY_EMBEDDERS, Settings
from rag.errors import IndexMismatchError, InputError, NotIndexedError
from rag.index.embeddings import Embedder
from rag.index.index import Index, IndexStatus, check_index_dir
from rag.index.manifest import Manifest, WriterLock
from rag.ingest.pipeline import ProgressCallback, ingest
from rag.schema import Answer, Chunk, Draft, IngestReport


class Rag:
    """The assistant over one index. Create one per process (it owns the model and the store)."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
        reranker: Reranker | None = None,
        index: Index | None = None,
    ) -> None:
        check_index_dir(settings.index_dir)
        self.settings = settings
        self._embedder = embedder
        self._llm = llm
        self._reranker = reranker
        self._index = index
        self._prompts: Prompts | None = None
        self._answerer: QuestionAnswerer | None = None
        # the lazy parts open once, whichever thread asks first: two threads opening the store at
        # once broke chromadb ('RustBindingsAPI' object has no attribute 'bindings')
        self._opening = threading.RLock()

    def replica(self, *, threads: int) -> Rag:
        """Another assistant over the same index, embedder and reranker, with its own copy of the
        in-process model on ``threads`` threads: copies answer in parallel (one generation at a
        time runs in each), where one model would take questions in turn."""
        from rag.answer.llm import LlamaCppLLM, resolve_model

        llm = LlamaCppLLM(resolve_model(self.settings.model, self.settings), self.settings, threads=threads)
        return Rag(self.settings, embedder=self.embedder, llm=llm, reranker=self.reranker, index=self.index)

    @property
    def prompts(self) -> Prompts:
        if self._prompts is None:
            with self._opening:
                if self._prompts is None:
                    self._prompts = Prompts.load(self.settings.prompts_dir)
        return self._prompts

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._opening:
                if self._embedder is None:
                    self._embedder = open_embedder(self.settings)
        return self._embedder

    def llm(self) -> LLM:
        if self._llm is None:
            with self._opening:
                if self._llm is None:
                    self._llm = open_llm(self.settings)
        return self._llm

    @property
    def index(self) -> Index:
        if self._index is None:
            with self._opening:
                if self._index is None:
                    s = self.settings
                    self._index = Index(s.index_dir, self.embedder, chroma_url=s.chroma_url, collection=s.chroma_collection)
        return self._index

    def ingest(self, paths: list[Path], *, rebuild: bool = False, progress: ProgressCallback | None = None) -> IngestReport:
        """Index ``paths``. With ``rebuild`` the index starts over, even one this version cannot
        open (another embedder, layout or chromadb wrote it); without paths it rebuilds from the
        paths the index was built from."""
        kwargs: dict[str, Any] = {"rebuild": rebuild}
        if progress is not None:
            kwargs["progress"] = progress
        if rebuild and not paths:
            paths = Manifest.recorded_paths(self.settings.index_dir / "manifest.json")
            if not paths:
                raise InputError(
                    f"the index at {self.settings.index_dir} records no documents that still exist",
                    "pass the files or folders to index: rag ingest --rebuild PATH...",
                )
        if rebuild:
            try:
                self.index  # noqa: B018
            except IndexMismatchError:
                s = self.settings
                with WriterLock(s.index_dir):
                    Index.discard(s.index_dir, self.embedder.name, s.chroma_url, s.chroma_collection)
        report = ingest(self.index, paths, self.settings, **kwargs)
        report.notes.extend(filter(None, [self._language_advice(report)]))
        return report

    def _language_advice(self, report: IngestReport) -> str | None:
        """Advice to switch embedder when most new passages are in languages it does not understand."""
        if self.settings.embedder not in ENGLISH_ONLY_EMBEDDERS or not report.chunks_added:
            return None
        other = {lang: n for lang, n in report.languages.items() if lang != "en"}
        if sum(other.values()) <= report.chunks_added / 2:
            return None
        shown = ", ".join(f"{lang} {n}" for lang, n in sorted(other.items(), key=lambda kv: -kv[1])[:4])
        return (
            f"most of the new passages are not in English ({shown} of {report.chunks_added}), and the embedder "
            f"{self.settings.embedder} understands English only: for these documents, switch to the multilingual one with "
            f"rag ingest --rebuild --embedder {BUNDLED_MULTILINGUAL_EMBEDDER} (and pass the same --embedder, or set "
            f"RAG_EMBEDDER, when you ask)"
        )

    def _indexed(self) -> bool:
        """Whether there is an index to open: in the folder, or (a Chroma server) possibly on the server."""
        return self.settings.chroma_url is not None or Index.exists(self.settings.index_dir)

    def require_index(self) -> Index:
        if not self._indexed():
            raise NotIndexedError(
                f"nothing is indexed yet at {self.settings.index_dir.resolve()}",
                "run `rag ingest PATH...` first (or `rag demo` for the bundled sample), or pass --index DIR",
            )
        index = self.index
        index.refresh()
        if index.manifest.chunk_count == 0:
            roots = " ".join(shlex.quote(r) for r in index.manifest.roots) or "PATH..."
            lost = index.recovered.get("reindex") if index.recovered else None
            problem = f"the index at {self.settings.index_dir.resolve()} holds no passages"
            if lost:
                problem += f" (its store had lost the passages of {len(lost)} file(s), which were taken out of the manifest)"
            raise NotIndexedError(problem, f"run `rag ingest {roots}` to index the documents (again)")
        return index

    @property
    def reranker(self) -> Reranker | None:
        if self._reranker is None and self.settings.reranker:
            with self._opening:
                if self._reranker is None:
                    self._reranker = CrossEncoderReranker(self.settings.reranker, downloads_allowed=self.settings.downloads_allowed)
        return self._reranker

    def retriever(self, settings: Settings | None = None) -> Retriever:
        """Passages for questions, with these settings' retrieval knobs (default: this Rag's)."""
        return HybridRetriever(self.require_index(), settings or self.settings, self.reranker)

    def status(self) -> IndexStatus | None:
        """What is indexed, or None before anything is."""
        if not self._indexed():
            return None
        return self.index.status()

    def files(self) -> dict[str, str]:
        """Indexed files: source path → display name."""
        return self.index.files() if self._indexed() else {}

    @property
    def answerer(self) -> QuestionAnswerer:
        if self._answerer is None:
            with self._opening:
                if self._answerer is None:
                    self._answerer = self._open_answerer()
        return self._answerer

    def _open_answerer(self) -> QuestionAnswerer:
        entailment = None
        if self.settings.verifier:
            from rag.answer.verify import CrossEncoderEntailment

            entailment = CrossEncoderEntailment(self.settings.verifier, downloads_allowed=self.settings.downloads_allowed)
        return QuestionAnswerer(self.retriever(), self.llm, self.prompts, self.settings, entailment)

    def chunks(self, ids: list[str]) -> list[Chunk]:
        """The indexed passages with these ids (those still indexed)."""
        return self.index.get(ids)

    def use_model(self, model: str) -> None:
        """Answer with another model from now on (the next question loads it)."""
        with self._opening:
            self.settings = self.settings.model_copy(update={"model": model})
            self._llm = None
            self._answerer = None

    def remove(self, paths: list[str]) -> tuple[list[str], int]:
        """Take files, or every file under folders, out of the index: (files, passages) removed."""
        from rag.ingest.pipeline import remove

        return remove(self.index, paths)

    def resolve(self, question: str, earlier: Sequence[str]) -> FollowUp:
        """``question`` as a standalone question after the ``earlier`` standalone questions."""
        return self.answerer.resolve(question, earlier)

    def resolve_all(self, questions: Sequence[str]) -> list[FollowUp]:
        """The questions of one conversation, each resolved against the ones before it."""
        resolved: list[FollowUp] = []
        for question in questions:
            resolved.append(self.resolve(question, [r.query for r in resolved]))
        return resolved

    def ask(self, question: str | FollowUp, **overrides: Any) -> Answer:
        if isinstance(question, str):
            check_question(question)
        return self.answerer.ask(question, **overrides)

    def ask_stream(self, question: str | FollowUp, **overrides: Any) -> Iterator[str | Draft | Answer]:
        if isinstance(question, str):
            check_question(question)
        return self.answerer.stream(question, **overrides)

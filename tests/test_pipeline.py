"""The library end to end in one process: real embedder, real GGUF model, real Chroma, no egress."""

from __future__ import annotations

from pathlib import Path

from rag.config import Settings
from rag.loaders import load
from rag.service import Rag


def test_answer_cites_the_file_that_holds_the_fact(corpus: Path, settings: Settings, embedder, llm, no_egress) -> None:
    rag = Rag(settings, embedder=embedder, llm=llm)
    report = rag.ingest([corpus])
    assert len(report.added) == 5

    answer = rag.ask("How quickly must the supplier respond to outages?")
    assert not answer.refused
    assert answer.citations
    cited = {c.display_name for c in answer.citations}
    assert cited == {"contract.docx"}, answer
    for citation in answer.citations:
        document = load(Path(citation.source))
        assert document.text[citation.quote_start : citation.quote_end] == citation.quote
        assert f"[{citation.n}]" in answer.text
    assert "4 hours" in answer.text
    assert no_egress.attempts == []


def test_streaming_yields_text_then_the_answer(corpus: Path, settings: Settings, embedder, llm) -> None:
    rag = Rag(settings, embedder=embedder, llm=llm)
    rag.ingest([corpus])
    from rag.schema import Draft

    events = list(rag.ask_stream("How many books can a member borrow from the library?"))
    final = events[-1]
    checked = [e for e in events if isinstance(e, str)]
    drafts = [e for e in events if isinstance(e, Draft)]
    assert checked and "".join(checked) == final.text  # the checked text is exactly the answer
    if final.mode == "generated":
        assert len(drafts) > 3  # the draft grew token by token
        assert any(len(a.text) < len(b.text) for a, b in zip(drafts, drafts[1:]))
    assert final.citations and final.citations[0].display_name == "faq.html"
    assert "twelve" in final.citations[0].quote


def test_off_topic_question_is_refused_without_the_model(corpus: Path, settings: Settings, embedder, llm) -> None:
    class CountOnly:
        """Measures prompts (the length check) but must never generate."""

        name, n_ctx = llm.name, llm.n_ctx
        count_tokens = staticmethod(llm.count_tokens)

        def generate(self, *args: object, **kwargs: object):
            raise AssertionError("the model was asked to generate")

    rag = Rag(settings, embedder=embedder, llm=CountOnly())  # type: ignore[arg-type]
    rag.ingest([corpus])
    answer = rag.ask("Who won the 1966 football world cup final?")
    assert answer.refused and answer.citations == []
    assert "do not say" in answer.text

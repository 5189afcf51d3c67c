"""Follow-up questions: resolved from the user's own words, never from a rewrite's invented facts."""

from __future__ import annotations

import pytest

from rag.answer.conversation import complete, needs_context, resolve, rewrite_problem

EARLIER = ["How long is the warranty on the water heater?"]


@pytest.mark.parametrize(
    ("question", "leans"),
    [
        ("And what voids it?", True),
        ("What about the deposit?", True),
        ("Is that per month?", True),
        ("Why?", True),
        ("What is the monthly rent of the apartment?", False),
        ("Is there a late fee for rent?", False),
    ],
)
def test_a_question_that_points_back_needs_its_context(question: str, leans: bool) -> None:
    assert needs_context(question) is leans


@pytest.mark.parametrize(
    ("rewrite", "problem"),
    [
        ("What voids the water heater warranty?", None),
        ("The warranty on the water heater is void after 6 years.", "not one question"),
        ("What voids the warranty? How long is it?", "not one question"),
        ("What voids the boiler warranty?", "adds words the user did not use"),
        ("How long is the warranty on the water heater?", "drops words of the follow-up"),
        ("What voids the 2024 water heater warranty?", "adds words the user did not use"),
        ("", "empty or more than one line"),
    ],
)
def test_a_rewrite_is_checked_against_the_users_words(rewrite: str, problem: str | None) -> None:
    assert rewrite_problem(rewrite, "And what voids it?", EARLIER) == problem


def test_a_rewrite_may_not_turn_the_follow_up_around() -> None:
    earlier = ["What should I check if the water heater gives no hot water?"]
    # seen from SmolLM2: "too hot" became "no hot water", every word taken from the user's questions
    assert rewrite_problem("What should I check if the water heater gives no hot water?", "And if the water is too hot?", earlier)
    assert rewrite_problem("What if the water from the heater is too hot?", "And if the water is too hot?", earlier) is None
    assert rewrite_problem("Why does the heater give no hot water?", "Why is the water hot?", earlier) == "adds a negation"


def test_the_deterministic_rewrite_adds_the_earlier_questions_key_words() -> None:
    assert complete("And what voids it?", EARLIER) == "And what voids it? (warranty water heater)"
    assert complete("Who runs the garden?", []) == "Who runs the garden?"


def test_resolve_uses_a_self_contained_question_as_it_is_and_never_in_the_last_topics_words() -> None:
    """Found in the chat page: "What is the dress code at the Hamburg office?" after a home-office
    question was retried with the home-office words and answered from that policy, while asked
    alone it was refused. A question that stands alone is a topic change: it is asked as typed."""
    follow = resolve("What is the monthly rent of the apartment?", EARLIER, rewriter=lambda q, e: "unused?")
    assert (follow.query, follow.method, follow.alternative) == ("What is the monthly rent of the apartment?", "as-is", None)


def test_resolve_falls_back_when_the_model_answers_instead_of_rewriting() -> None:
    follow = resolve("And what voids it?", EARLIER, rewriter=lambda q, e: "The warranty is void after 25 days.")
    assert follow.method == "completed" and "25" not in follow.query
    assert follow.alternative is not None and follow.alternative.query == "And what voids it?"  # tried when this finds nothing
    assert follow.own_words == frozenset({"void"})
    good = resolve("And what voids it?", EARLIER, rewriter=lambda q, e: '"What voids the water heater warranty?"')
    assert (good.query, good.method) == ("What voids the water heater warranty?", "rewritten")


def test_a_follow_up_naming_a_new_place_takes_the_topic_not_the_place_it_replaces() -> None:
    """Found in the chat page: "And in Oslo?" after "What is the hotel cap in Vienna?" was asked as
    "And in Oslo? (hotel cap vienna)", and "What is the per diem there?" was not taken as a
    follow-up at all, so the tiny model answered "The per diem there is Vienna [1]"."""
    from rag.answer.conversation import needs_context, resolve

    first = resolve("And in Oslo?", ["What is the hotel cap in Vienna?"])
    assert first.query == "And in Oslo? (hotel cap)"
    second = resolve("What is the per diem there?", ["What is the hotel cap in Vienna?", first.query])
    assert second.method == "completed" and "oslo" in second.query and "vienna" not in second.query.lower()
    assert needs_context("How do I get there from the station?")
    assert not needs_context("Is there parking near the office?") and not needs_context("Are there exceptions to the leave rule?")
    assert not needs_context("There are two meeting rooms; which one seats thirty people?")

"""The typed fact checks beside the answer judge: one test each, both ways."""

from __future__ import annotations

from rag.answer.facts import added_negation, amounts, first_failure, unsourced_word, wrong_cell, wrong_number
from rag.text.spans import content_words

TABLE = "City: Amsterdam | Hotel cap per night: €180 | Per diem: 52 EUR"
POLICY = "Business trips by car are reimbursed at 45p per mile. Trains are booked in standard class."


def test_a_number_must_stand_in_the_passage_in_the_same_currency_or_unit() -> None:
    assert amounts("€180, 180 EUR, 180 euros and £180") == [("180", "EUR"), ("180", "EUR"), ("180", "EUR"), ("180", "GBP")]
    question = content_words("What is the hotel cap per night in Amsterdam?")
    assert wrong_number("The hotel cap in Amsterdam is €180.", TABLE, TABLE, question) is None
    assert wrong_number("The hotel cap in Amsterdam is 180 euros.", TABLE, TABLE, question) is None
    assert wrong_number("The hotel cap in Amsterdam is £180.", TABLE, TABLE, question) == "wrong-number"
    assert wrong_number("The hotel cap in Amsterdam is €190.", TABLE, TABLE, question) == "wrong-number"
    # a number with no currency beside it in the passage takes none from the claim
    plain = "The deposit is 1350 and is paid before moving in."
    assert wrong_number("The deposit is 1350 euros.", plain, plain, content_words("How much is the deposit?")) is None


def test_a_number_must_stand_on_the_line_about_what_the_claim_says() -> None:
    rows = "Paris: €60 per day.\nBerlin: €52 per day."
    question = content_words("What is the per diem in Paris?")
    assert wrong_number("The per diem in Paris is €60.", rows, rows, question) is None
    assert wrong_number("The per diem in Paris is €52.", rows, rows, question) == "wrong-number"


def test_no_negation_or_restriction_is_added() -> None:
    span = "Cats are not allowed in the flat."
    assert added_negation("Cats are not allowed.", span, span) is None
    assert added_negation("Cats are allowed in the flat.", span, span) == "added-negation"  # states what the span negates
    kept = "The warranty covers the heating element for 1 year."
    assert added_negation("The element is covered only if installed by a plumber.", kept, kept) == "added-negation"


def test_no_word_of_the_question_the_passage_lacks_is_asserted() -> None:
    question = content_words("What mileage rate does the travel policy pay for business trips by motorcycle?")
    words = content_words(POLICY + " Travel policy")
    assert unsourced_word("The travel policy pays 45p per mile for business trips by motorcycle.", question, words) == "unsourced-word"
    assert unsourced_word("Business trips by car are reimbursed at 45p per mile.", question, words) is None
    assert (
        unsourced_word("Cats rule the office.", content_words("When are dogs allowed?"), content_words("Dogs are allowed on Fridays."))
        == "unsourced-word"
    )


def test_a_claim_naming_a_column_gives_that_columns_value() -> None:
    assert wrong_cell("The per diem in Amsterdam is 52 EUR.", TABLE) is None
    assert wrong_cell("The per diem there is Amsterdam.", TABLE) == "wrong-cell"
    assert wrong_cell("Anything at all.", "Not a table row.") is None


def test_the_checks_run_in_one_place() -> None:
    question = content_words("What is the hotel cap per night in Amsterdam?")
    assert first_failure("The hotel cap in Amsterdam is £180.", TABLE, TABLE, question, content_words(TABLE)) == "wrong-number"
    assert first_failure("The hotel cap in Amsterdam is €180.", TABLE, TABLE, question, content_words(TABLE)) is None

"""Typed fact checks: plain statements of fact about a claim and the passage span it cites.

Whether a sentence *answers* the question is the learned judge's call (``rag.answer.judge``). These
checks stand beside it because a sentence can answer well and still change a fact; each is one
function, returns its reason when the fact does not hold (``rag.schema.REASON_TITLES`` words it for
the user), and None when it does:

- ``wrong_number``: every number, date and amount of the claim stands in the passage, on the line
  about what the claim or the question says it is about, with the same currency or unit (£180 is
  not €180);
- ``added_negation``: the claim adds no negation or restriction ("not", "only", "unless"), and
  does not state what the span negates;
- ``unsourced_word``: no word of the question that the passage lacks is asserted ("… by
  motorcycle" from a policy that never mentions motorcycles), and most of the claim's other words
  are the passage's;
- ``wrong_cell``: a claim that names a column of a table row gives that column's value.
"""

from __future__ import annotations

import functools
import re

from rag.text.analysis import NUMBER_WORDS, is_stopword
from rag.text.spans import content_words, numbers, plain, sentences

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# currencies and units written beside a number, each mapped to one name: "€", "EUR" and "euros" agree
_CURRENCY = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "p": "GBP-pence", "pence": "GBP-pence",
    "$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "us$": "USD",
    "¥": "JPY", "jpy": "JPY", "yen": "JPY", "cny": "CNY", "rmb": "CNY", "元": "CNY", "yuan": "CNY",
    "₹": "INR", "inr": "INR", "rupees": "INR", "chf": "CHF", "francs": "CHF", "sek": "SEK", "nok": "NOK", "dkk": "DKK",
    "%": "percent", "percent": "percent", "per cent": "percent",
    "km": "km", "kilometres": "km", "kilometers": "km", "mi": "mile", "mile": "mile", "miles": "mile",
    "kg": "kg", "kilograms": "kg", "g": "g", "grams": "g", "lb": "lb", "lbs": "lb",
    "m": "m", "metres": "m", "meters": "m", "cm": "cm", "mm": "mm",
}  # fmt: skip
_UNIT_WORD = "|".join(sorted((re.escape(k) for k in _CURRENCY if k[0].isalpha()), key=len, reverse=True))
_SYMBOL = r"[€£$¥₹%元]|US\$"
_AMOUNT = re.compile(
    rf"(?P<before>{_SYMBOL}|\b(?:{_UNIT_WORD})\b)?\s?(?P<n>\d+(?:[.,]\d+)*)(?:\s?(?P<after>{_SYMBOL}|(?:{_UNIT_WORD})\b))?",
    re.IGNORECASE,
)


def amounts(text: str) -> list[tuple[str, str | None]]:
    """(number, currency or unit) for each number of ``text``: "€180" and "180 EUR" are
    ("180", "EUR"); "12 months" is ("12", None)."""
    out = []
    for m in _AMOUNT.finditer(text):
        mark = m.group("after") or m.group("before")
        out.append((m.group("n").replace(",", ""), _CURRENCY.get(mark.lower()) if mark else None))
    return out


def _numbers_of(text: str) -> set[str]:
    return set(_NUMBER.findall(text)) | numbers(text)


@functools.lru_cache(maxsize=256)
def _passage_numbers(passage: str) -> tuple[frozenset[str], tuple[tuple[frozenset[str], frozenset[str]], ...]]:
    """(every number of ``passage``, and the content words and numbers of each of its lines that
    holds one), read once per passage however many sentences are checked against it."""
    lines = tuple(
        (frozenset(content_words(plain(p))), frozenset(held))
        for start, end in sentences(passage)
        if (held := _numbers_of(p := passage[start:end]))
    )
    return frozenset(_numbers_of(passage)), lines


def wrong_number(claim: str, span: str, passage: str, question_words: set[str]) -> str | None:
    """Every number of ``claim`` stands in ``passage``, beside what it is about, in the same unit."""
    if not _numbers_of(claim) <= _passage_numbers(passage)[0]:
        return "wrong-number"
    if not _placed(claim, passage, question_words):
        return "wrong-number"
    units: dict[str, set[str | None]] = {}
    for n, unit in amounts(span) + amounts(passage):
        units.setdefault(n, set()).add(unit)
    for n, unit in amounts(claim):
        written = units.get(n, set())
        if unit is not None and written and unit not in written and written != {None}:
            return "wrong-number"  # the passage gives this number only in other units
    return None


def _placed(claim: str, passage: str, question_words: set[str]) -> bool:
    """Each number of ``claim`` stands on a line (a sentence or a table row) of ``passage`` that
    names what the claim or the question says it is about: "Paris, €52" is wrong when €52 is on
    Berlin's row."""
    units = _passage_numbers(passage)[1]
    subject = {w for w in content_words(claim) | question_words if not w.isdigit() and w not in NUMBER_WORDS}
    if len(units) < 2 or not subject:
        return True
    common = frozenset.intersection(*(u for u, _ in units))  # what every number-bearing line says ("per day")
    return all(any(n in held and (u - common) & subject for u, held in units) for n in _numbers_of(claim))


_QUALIFIER = re.compile(r"\b(not|never|no|nor|neither|none|without|only|unless|except|excluding)\b|n't\b", re.IGNORECASE)
_SAME_QUALIFIER = {"only": "only", "unless": "unless", "except": "except", "excluding": "except"}  # any other is a negation
_CLAUSE_END = re.compile(r"[,;:.!?]")


def qualifiers(text: str) -> set[str]:
    """The negations ("not", "never", "no", "n't": one kind) and restrictions ("only", "unless",
    "except") that ``text`` makes."""
    return {_SAME_QUALIFIER.get(m.group(0).lower(), "not") for m in _QUALIFIER.finditer(text)}


def added_negation(claim: str, span: str, passage: str) -> str | None:
    """``claim`` makes no negation or restriction that ``passage`` lacks, and does not state what
    ``span`` negates ("Cats are allowed" from "Cats are not allowed")."""
    if not qualifiers(claim) <= qualifiers(passage):
        return "added-negation"
    words, negated = content_words(claim), set().union(*_negated(claim))
    if any(governed <= words and not governed <= negated for governed in _negated(span)):
        return "added-negation"
    return None


def _negated(text: str) -> list[set[str]]:
    """What each negation of ``text`` governs (the next content word of its clause), as stems;
    negations inside parentheses and "not only" (which asserts more) are left out."""
    out = []
    for m in _QUALIFIER.finditer(text):
        if _SAME_QUALIFIER.get(m.group(0).lower(), "not") != "not" or text.count("(", 0, m.start()) > text.count(")", 0, m.start()):
            continue
        clause = _CLAUSE_END.split(text[m.end() :], maxsplit=1)[0]
        if re.match(r"\s+only\b", clause, re.I):
            continue
        governed = content_words(next((w for w in re.findall(r"[^\W_]+", clause) if not is_stopword(w.lower())), ""))
        if governed:
            out.append(governed)
    return out


def unsourced_word(claim: str, question_words: set[str], passage_words: set[str]) -> str | None:
    """``claim`` asserts no word of the question that the passage (with its heading) lacks, and
    most of the other words it says are the passage's ("Cats rule" is in no passage about dogs)."""
    words = content_words(claim)
    added = words - question_words
    if (words & question_words) - passage_words or len(added - passage_words) > len(added) / 2:
        return "unsourced-word"
    return None


_CELL = re.compile(r"^\s*([^:|]{1,60}):\s*(.+?)\s*$")


def wrong_cell(claim: str, span: str) -> str | None:
    """A claim that names a column of the table row ``span`` ("City: Vienna | Per diem: 26 EUR",
    as rag writes rows) gives that column's value: "The per diem there is Vienna" does not."""
    cells = [m.groups() for cell in span.split(" | ") if (m := _CELL.match(cell))]
    if len(cells) < 2:
        return None
    words, held = content_words(claim), _numbers_of(claim)
    for header, value in cells:
        named = content_words(header)
        if not named or not named <= words:
            continue
        values = _numbers_of(value)
        if not (values <= held if values else content_words(value) <= words):
            return "wrong-cell"
    return None


def first_failure(
    claim: str, span: str, passage: str, question_words: set[str], passage_words: set[str], *, across: bool = False
) -> str | None:
    """The first fact check ``claim`` fails against its ``span`` and ``passage``, or None. A
    passage in another language than the claim (``across``) shares no words with it to check."""
    return (
        wrong_number(claim, span, passage, question_words)
        or (None if across else added_negation(claim, span, passage))
        or (None if across else unsourced_word(claim, question_words, passage_words))
        or wrong_cell(claim, span)
    )

"""What a question asks for: the kind of answer it wants, and its parts when it asks two things.

"How long is the warranty, and what voids it?" wants a duration, then a condition. Evidence that
repeats the question's words without holding a duration does not answer its first part; evidence
for the second part is looked for on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOW_WORD = re.compile(r"(?<=\bhow )\w+", re.I)


def how_words(question: str) -> str:
    """The word after "how" ("long" in "how long", "many" in "how many"): it asks for a kind of
    answer, it does not name the topic; a duration answers "how long" without the word "long"."""
    return " ".join(_HOW_WORD.findall(question))


_KINDS: list[tuple[str, re.Pattern[str]]] = [
    (
        "duration",
        re.compile(
            r"\bhow long\b|\bfor how many (seconds|minutes|hours|days|weeks|months|years)\b"
            r"|\bwhat (is|was|are|were) the (\w+\s){0,3}(period|term|duration)\b(?!\s*['\"“‘])",
            re.I,
        ),
    ),
    ("date", re.compile(r"\bwhen\b|\b(what|which) (year|date|day|month|time|century|decade)\b|\bwhat time\b", re.I)),
    (
        "quantity",
        re.compile(
            r"\bhow (many|much|often|far|big|large|old|tall|high|wide|deep|heavy)\b|\bwhat (percentage|share|proportion|number|amount|price|cost|fee|rate)\b",
            re.I,
        ),
    ),
    ("person", re.compile(r"\bwho(m|se)?\b", re.I)),
    (
        "place",
        re.compile(r"\bwhere\b|\b(which|what|in what) (city|country|town|place|region|state|county|street|room|building|office)\b", re.I),
    ),
]

_NUMBER_WORDS = r"(?:\d+(?:[.,]\d+)*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|hundred|a|an|several|few)"
_UNIT = r"(?:second|minute|hour|day|night|week|fortnight|month|year|decade|century|centuries)s?"
_MONTHS = r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
_WEEKDAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekday|weekend)s?"

_HOLDS: dict[str, re.Pattern[str]] = {
    "duration": re.compile(rf"\b{_NUMBER_WORDS}[\s-]+{_UNIT}\b|\b(annual|yearly|monthly|weekly|daily|lifetime)\b", re.I),
    "date": re.compile(
        rf"\b(1[0-9]{{3}}|20[0-9]{{2}})\b|\b{_MONTHS}\b|\b{_WEEKDAYS}\b|\b\d{{1,2}}:\d{{2}}\b|\b\d{{1,2}}(st|nd|rd|th)\b", re.I
    ),
    "quantity": re.compile(
        r"\d|[€$£¥%]|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|half|twice)\b",
        re.I,
    ),
    "person": re.compile(r"(?<=[a-z,;:]\s)[A-Z][a-z]+"),
    "place": re.compile(r"\b(in|at|from|near|on)\s+(the\s+)?[A-Z][a-z]+"),
}

_SPLIT = re.compile(r",?\s+and\s+(?=(?:what|which|who|whom|whose|when|where|why|how)\b)", re.I)


@dataclass(frozen=True)
class QuestionPart:
    text: str
    kind: str | None  # "duration", "date", "quantity", "person", "place", or None (anything)


def answer_kind(question: str) -> str | None:
    """The kind of answer the question's first wh-phrase asks for."""
    found = [(m.start(), kind) for kind, pattern in _KINDS if (m := pattern.search(question))]
    return min(found)[1] if found else None


def holds(kind: str | None, sentence: str) -> bool:
    """Whether ``sentence`` holds something of ``kind`` (a duration, a date, a number, a name...)."""
    return kind is not None and bool(_HOLDS[kind].search(sentence))


# kinds whose presence the patterns above find reliably: a sentence without one does not answer
# (a name or a place can stand where the patterns do not look, so their absence is not held against it)
_REQUIRED = {"duration", "date", "quantity"}


def kind_fit(kind: str | None, sentence: str) -> int:
    """+1 when ``sentence`` holds the kind of answer asked for, -1 when it lacks a kind that can be
    told reliably (a duration, a date, a number), 0 otherwise."""
    if kind is None:
        return 0
    if holds(kind, sentence):
        return 1
    return -1 if kind in _REQUIRED else 0


def parts(question: str) -> list[QuestionPart]:
    """The question, split where it asks a second thing ("..., and what voids it?")."""
    pieces = [p.strip(" ,?") for p in _SPLIT.split(question) if p.strip(" ,?")]
    return [QuestionPart(p, answer_kind(p)) for p in pieces] or [QuestionPart(question, answer_kind(question))]

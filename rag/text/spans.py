"""Small text helpers shared by citation mapping: sentences with offsets and word overlap."""

from __future__ import annotations

import re
import threading
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A sentence ends at . ! or ? (after any closing quotes or a citation marker like ". [2]") followed by
# white space that does not open a citation marker, at a blank line, or where a Markdown table row
# begins (each row is a statement of its own: "| Paris | €60 |").
_BOUNDARY = re.compile(r"(?:(?<=[.!?])[\"')\]]*|(?<=[.!?] \[\d\])|(?<=[.!?]\[\d\]))\s+(?!\[\d)|\n[ \t]*\n|\n(?=[ \t]*\|)")


def complete_prefix(text: str) -> int:
    """Length of the part of ``text`` made of finished sentences (for streaming)."""
    last = 0
    for match in _BOUNDARY.finditer(text):
        last = match.end()
    return last


STOPWORDS = frozenset(
    """a about only above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall one two many much said says say according source sources document documents""".split()
)


NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
    billion first second third fourth fifth sixth seventh eighth ninth tenth half quarter twice""".split()
)


_stemmers = threading.local()  # a Snowball stemmer object is not safe to share between threads


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    """The Snowball (Porter 2) stem, as the keyword index uses: "ruled" and "rule", "counties" and
    "county" match."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        import Stemmer

        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


def _is_content(word: str) -> bool:
    return (word not in STOPWORDS and len(word) > 2) or word.isdigit() or word in NUMBER_WORDS


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in (m.group(0).lower() for m in _WORD.finditer(text)) if _is_content(w)}


def word_stems(text: str) -> set[str]:
    """Every word of ``text`` stemmed, stop words included."""
    return {_stem(m.group(0).lower()) for m in _WORD.finditer(text)}


def content_word_forms(text: str) -> dict[str, str]:
    """Each content word of ``text`` (as ``content_words`` stems it) with a surface form it had."""
    forms: dict[str, str] = {}
    for w in (m.group(0).lower() for m in _WORD.finditer(text)):
        if _is_content(w):
            forms.setdefault(_stem(w), w)
    return forms


def weighted_overlap(weights: dict[str, float], evidence: set[str]) -> float:
    """Share of the words' total weight found in the evidence (0 when there are none)."""
    total = sum(weights.values())
    return sum(w for word, w in weights.items() if word in evidence) / total if total else 0.0


def numbers(text: str) -> set[str]:
    """Digits and number words: a claim must not change any of them."""
    words = {m.group(0).lower() for m in _WORD.finditer(text)}
    return {w for w in words if w.isdigit() or w in NUMBER_WORDS}


_EMPHASIS = re.compile(r"(?<!\w)(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*(\n|$)", re.MULTILINE)
_HEADING_MARK = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)


def plain(text: str) -> str:
    """``text`` without Markdown markup: emphasis and code marks, heading marks, and table pipes
    (a row ``| Paris | €60 |`` reads "Paris, €60"). Answers quote documents; they do not show markup."""
    text = _TABLE_RULE.sub("", text)
    text = _HEADING_MARK.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    lines = []
    for line in text.split("\n"):
        if ("|" in line and line.strip().startswith("|")) or line.count("|") >= 2:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            line = ", ".join(c for c in cells if c)
        lines.append(line)
    return "\n".join(lines)


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end), trimmed of surrounding white space."""
    spans = []
    cuts = [0] + [m.end() for m in _BOUNDARY.finditer(text)] + [len(text)]
    for start, end in zip(cuts, cuts[1:]):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def overlap(claim: set[str], evidence: set[str]) -> float:
    """Share of the claim's content words found in the evidence (0 when the claim has none)."""
    return len(claim & evidence) / len(claim) if claim else 0.0

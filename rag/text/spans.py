"""Small text helpers shared by citation mapping: content words, numbers, word overlap and plain text
(sentences and words come from rag.text.analysis)."""

from __future__ import annotations

import re

from rag.text import analysis
from rag.text.analysis import complete_prefix, sentences

__all__ = [
    "complete_prefix", "content_word_forms", "content_words", "numbers", "overlap", "plain", "sentences", "weighted_overlap", "word_stems",
]  # fmt: skip


def content_words(text: str) -> set[str]:
    """The stems of ``text``'s content words, in its language (see rag.text.analysis)."""
    lang = analysis.language(text)
    return {analysis.stem(w, lang) for w in analysis.words(text) if analysis.is_content(w, lang)}


def word_stems(text: str) -> set[str]:
    """Every word of ``text`` stemmed, stop words included."""
    lang = analysis.language(text)
    return {analysis.stem(w, lang) for w in analysis.words(text)}


def content_word_forms(text: str) -> dict[str, str]:
    """Each content word of ``text`` (as ``content_words`` stems it) with a surface form it had."""
    lang = analysis.language(text)
    forms: dict[str, str] = {}
    for w in analysis.words(text):
        if analysis.is_content(w, lang):
            forms.setdefault(analysis.stem(w, lang), w)
    return forms


def weighted_overlap(weights: dict[str, float], evidence: set[str]) -> float:
    """Share of the words' total weight found in the evidence (0 when there are none)."""
    total = sum(weights.values())
    return sum(w for word, w in weights.items() if word in evidence) / total if total else 0.0


def numbers(text: str) -> set[str]:
    """The numbers ``text`` states, as digits: numerals of any script and number words of its
    language or English ("drei", "three" and "3" are all "3"). A claim must not change any of them."""
    lang = analysis.language(text)
    return {v for w in analysis.words(text) if (v := analysis.number_value(w, lang)) is not None}


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


def overlap(claim: set[str], evidence: set[str]) -> float:
    """Share of the claim's content words found in the evidence (0 when the claim has none)."""
    return len(claim & evidence) / len(claim) if claim else 0.0

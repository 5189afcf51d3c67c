"""Follow-up questions: what the user asks in the context of their earlier questions.

"And what voids it?" after "How long is the water heater warranty?" means "What voids the water
heater warranty?". A model may rewrite a follow-up that way, but a small one also writes answers
("The notice period is 25 days.") or glues questions together, and such a rewrite must never reach
retrieval or the checks. So:

- a follow-up that stands on its own is used as it is;
- a rewrite is built only from the user's own questions (the model never sees the answers), and is
  used only when it is a question, keeps every content word of the follow-up, and adds no word,
  number, name or date that the user's questions did not contain;
- otherwise the follow-up is completed deterministically with the key words of the question
  before it.

The words the user typed in the follow-up itself stay what the answer must be about: an answer
whose evidence mentions none of them is the previous topic again, not an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import InputError
from rag.text.question import how_words
from rag.text.spans import content_word_forms, content_words, numbers, word_stems

# words that point back at something said before
_ANAPHORA = frozenset(
    "it its it's they them their theirs this that these those he she him his her hers same such former latter else also too either".split()
)
_LEADS_ON = re.compile(r"^\s*(and|but|so|or|also|then|what about|how about|what if|same for|and for)\b", re.I)
_QUESTION = re.compile(
    r"\?\s*$|^\s*(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
    r"may|might|must|shall|should|will|would|has|have|had)\b",
    re.I,
)
_THERE = re.compile(  # "there" as a place, not "is there", "there are"
    r"(?<!\bis\s)(?<!\bare\s)(?<!\bwas\s)(?<!\bwere\s)\bthere\b(?!\s+(is|are|was|were|be|been|will|would|'s|must|may|might|should|can|could)\b)",
    re.I,
)
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][\w-]+")
_NEGATION = re.compile(r"\b(no|not|never|without|cannot|can't|don't|doesn't|isn't|aren't|won't)\b|n't\b", re.I)
_REPLACEABLE = (
    "and but so or also then about if what which who whom whose when where why how is are was were be been do does did "
    "can could may might must shall should will would has have had a an the of for to in on at by with i you we me my your our "
    "it its it's they them their this that these those he she him his her one ones same such either else too"
).split()
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
MAX_EARLIER = 3  # earlier questions the rewrite may draw on


@dataclass(frozen=True)
class FollowUp:
    """A question resolved in its conversation."""

    question: str  # what the user typed
    query: str  # the standalone question used for retrieval, the prompt and every check
    method: str  # "as-is", "rewritten" (a checked model rewrite) or "completed" (the deterministic rewrite)
    own_words: frozenset[str] = frozenset()  # what the follow-up adds to the conversation: its answer must be about one
    # what to try when this finds no answer: a question used as it is, completed by the conversation;
    # a rewritten or completed one, the question as the user typed it
    alternative: FollowUp | None = None


Rewriter = Callable[[str, Sequence[str]], str]


def needs_context(question: str) -> bool:
    """Whether ``question`` leans on what came before: it points back ("it", "that", "there" as a
    place), leads on from it ("And...", "What about..."), or is too short to stand alone."""
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in _ANAPHORA for w in words) or _LEADS_ON.search(question) or _THERE.search(question):
        return True
    return len(content_words(question)) < 2


def rewrite_problem(rewrite: str, question: str, earlier: Sequence[str]) -> str | None:
    """Why ``rewrite`` may not stand for ``question`` (None when it may)."""
    if not rewrite or "\n" in rewrite:
        return "empty or more than one line"
    if not _QUESTION.search(rewrite) or rewrite.count("?") > 1 or re.search(r"[.!?]\s+\S", rewrite):
        return "not one question"
    if len(rewrite) > 3 * (len(question) + max((len(e) for e in earlier), default=0)):
        return "longer than the questions it comes from"
    if not _kept_words(question) <= word_stems(rewrite):
        return "drops words of the follow-up"
    if _NEGATION.search(rewrite) and not _NEGATION.search(question):
        return "adds a negation"
    asked = " ".join([question, *earlier])
    if not content_words(rewrite) <= content_words(asked):
        return "adds words the user did not use"
    if not numbers(rewrite) <= numbers(asked):
        return "adds a number the user did not give"
    return None


def complete(question: str, earlier: Sequence[str]) -> str:
    """The follow-up with the key words of the question before it that it does not already use:
    "And what voids it?" after "How long is the warranty?" → "And what voids it? (warranty)". A
    follow-up that names something new in place of a name before ("And in Oslo?" after "What is
    the hotel cap in Vienna?") takes the topic, not the name it replaces: "(hotel cap)"."""
    if not earlier:
        return question
    have = content_words(question) | content_words(how_words(earlier[-1]))
    replaced = _names(earlier[-1]) if _names(question) - _names(" ".join(earlier)) else set()
    terms = [form for stem, form in _surface_forms(earlier[-1]).items() if stem not in have and form not in replaced]
    return f"{question} ({' '.join(terms)})" if terms else question


def _names(text: str) -> set[str]:
    """The capitalised words of ``text`` that do not open a sentence (names), folded."""
    return {w.casefold() for w in _NAME.findall(text)}


def resolve(question: str, earlier: Sequence[str], rewriter: Rewriter | None = None) -> FollowUp:
    """``question`` in the context of the ``earlier`` standalone questions (oldest first)."""
    recent = list(earlier)[-MAX_EARLIER:]
    own = _new_words(question, recent)
    if not recent:
        return FollowUp(question, question, "as-is")
    if not needs_context(question):  # it stands alone: a topic change is never answered from the last topic
        return FollowUp(question, question, "as-is")
    typed = FollowUp(question, question, "as-is", own)
    if rewriter is not None:
        rewrite = " ".join(rewriter(question, recent).split()).strip("\"'“”")
        if rewrite_problem(rewrite, question, recent) is None:
            return FollowUp(question, rewrite, "rewritten", own, typed)
    return FollowUp(question, complete(question, recent), "completed", own, typed)


def _new_words(question: str, earlier: Sequence[str]) -> frozenset[str]:
    """What the follow-up adds to the conversation: its content words the earlier questions lack
    ("logo" in "Who designed the kettle's logo?" after a question on the kettle's warranty), or all
    of them when it adds none."""
    own = content_words(question) - _anaphora_stems()
    return frozenset(own - content_words(" ".join(earlier)) or own)


def _kept_words(question: str) -> set[str]:
    """The follow-up's words a rewrite must keep: all but the connectives, pronouns, question
    words and auxiliaries a rewrite may change ("too" in "And if it is too hot?" stays)."""
    return word_stems(question) - word_stems(" ".join(_REPLACEABLE))


def mentions_any(words: frozenset[str], text: str) -> bool:
    return not words or bool(words & content_words(text))


def _surface_forms(text: str) -> dict[str, str]:
    """Content words of ``text`` as written, less the ones that only point back."""
    return {stem: form for stem, form in content_word_forms(text).items() if form not in _ANAPHORA}


def _anaphora_stems() -> set[str]:
    return content_words(" ".join(_ANAPHORA))


def read_history(path: Path) -> list[str]:
    """The earlier questions of a conversation, oldest first, from a file: a JSON list (of strings,
    or of objects with a "question"), JSON lines of the same, or plain text with one per line."""
    if not path.is_file():
        raise InputError(f"history file not found: {path}", "pass a .json, .jsonl or .txt file of the earlier questions")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix.lower() == ".txt":
        return [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    try:
        rows = json.loads(text) if path.suffix.lower() == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise InputError(
            f"{path} is not valid JSON (line {err.lineno}: {err.msg})", 'write a list such as ["How long is the warranty?"]'
        ) from None
    questions = [row.get("question") if isinstance(row, dict) else row for row in (rows if isinstance(rows, list) else [rows])]
    texts = [q for q in questions if isinstance(q, str) and q.strip()]
    if len(texts) != len(questions):
        raise InputError(f"{path} holds an entry that is not a question", 'give each turn as a string or as {"question": "..."}')
    return [" ".join(q.split()) for q in texts]

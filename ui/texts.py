"""The chat page's fixed texts in the asker's language (the language of the question).

English lives here; ``ui/languages/<code>.toml`` translates any of the keys, and a key a language
leaves out reads English. The reasons sentences were left out (``REASON_TITLES``) are keys
``reason.<name>``.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError
from rag.schema import REASON_TITLES
from rag.text.analysis import language

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENGLISH: dict[str, str] = {
    "understood_as": "Understood as:",
    "not_answered": "Not answered.",
    "not_answered_detail": "Your documents do not seem to answer this question.",
    "why": "Why?",
    "stopped": "Stopped.",
    "stopped_detail": "Only the sentences checked before you stopped are shown.",
    "model_found_none": "The model found no answer in the passages, but one answers closely; the passage is quoted instead.",
    "model_unsupported": "The model's own wording was not supported by your documents; the passage is quoted instead.",
    "related": "Related passages (not an answer)",
    "left_out": "{title} (left out of the answer)",
    "reasoning": "Model reasoning (not part of the answer)",
    "page": ", page {page}",
    "show_page": "Show page {page} as printed",
    "reply_not_answered": "⚠ Not answered: {text}",
    "reply_stopped": "[stopped]",
    "reply_cut": "[answer cut at the length limit]",
    "writing": "Writing (not yet checked): {text}",
} | {f"reason.{name}": title for name, title in REASON_TITLES.items()}


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@dataclass(frozen=True)
class PageTexts:
    languages: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> translated texts

    @classmethod
    def load(cls, directory: Path | None = None) -> PageTexts:
        """The translations in ``directory`` (default: beside this module), each checked to use
        known keys with the placeholders of the English text."""
        directory = directory or Path(__file__).resolve().parent / "languages"
        languages = {}
        for path in sorted(directory.glob("*.toml")):
            try:
                texts = {k: str(v) for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise RagError(f"the page texts in {path} cannot be read ({err})", "fix the file's TOML syntax, or remove it") from None
            wrong = sorted(k for k, v in texts.items() if k not in ENGLISH or _fields(v) != _fields(ENGLISH[k]))
            if wrong:
                raise RagError(f"{path} has unknown texts or wrong placeholders: {wrong}", "compare them with ENGLISH in ui/texts.py")
            languages[path.stem] = texts
        return cls(languages)

    def of(self, question: str) -> dict[str, str]:
        """Every text, in the language ``question`` is written in where it is translated."""
        return ENGLISH | self.languages.get(language(question), {})

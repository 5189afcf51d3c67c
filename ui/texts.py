"""The chat page's fixed texts in the reader's language.

Two kinds, both English here and translated in ``ui/languages/<code>.toml``:

- texts about an answer (not answered, stopped, why a sentence was left out: ``REASON_TITLES`` as
  keys ``reason.<name>``) follow the language of the question;
- the page's labels (buttons, panels, the placeholder) follow the browser's language, through
  Gradio's i18n. The English label is its own key, so a page launched without the translations
  still reads English.

A text a language leaves out reads English.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

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


LABELS = (
    "## Ask your documents\nAnswers come only from your indexed files, with the passage behind each claim.",
    "### Sources",
    "New chat",
    "Chats",
    "This chat",
    "Name",
    "Rename",
    "Export Markdown",
    "Export JSON",
    "Download",
    "Delete chat",
    "Yes, delete it",
    "Keep it",
    "Ask a question about your documents",
    "Ask",
    "Stop",
    "Regenerate",
    "Documents",
    "Add documents",
    "Indexed files (type to filter)",
    "Answer from (all documents when none is chosen)",
    "Remove from index",
    "Yes, remove",
    "Cancel",
    "Settings",
    "Model",
    "Passages per answer",
    "Temperature",
    "Max answer length (tokens)",
)


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@dataclass(frozen=True)
class PageTexts:
    languages: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> translated texts
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> English label -> translated label

    @classmethod
    def load(cls, directory: Path | None = None) -> PageTexts:
        """The translations in ``directory`` (default: beside this module), each checked to use
        known keys with the placeholders of the English text."""
        directory = directory or Path(__file__).resolve().parent / "languages"
        languages, labels = {}, {}
        for path in sorted(directory.glob("*.toml")):
            try:
                texts = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise RagError(f"the page texts in {path} cannot be read ({err})", "fix the file's TOML syntax, or remove it") from None
            labels[path.stem] = {str(k): str(v) for k, v in texts.pop("labels", {}).items()}
            languages[path.stem] = {k: str(v) for k, v in texts.items()}
            wrong = sorted(k for k, v in languages[path.stem].items() if k not in ENGLISH or _fields(v) != _fields(ENGLISH[k]))
            wrong += sorted(f"labels.{k}" for k in labels[path.stem] if k not in LABELS)
            if wrong:
                raise RagError(f"{path} has unknown texts or wrong placeholders: {wrong}", "compare them with ui/texts.py")
        return cls(languages, labels)

    @cached_property
    def i18n(self) -> Any:
        """The labels' translations for Gradio (``launch(i18n=...)``)."""
        import gradio as gr

        return gr.I18n(**self.labels)

    def label(self, english: str) -> Any:
        """A label of the page, translated in the browser where its language has it."""
        return self.i18n(english)

    def of(self, question: str) -> dict[str, str]:
        """Every text, in the language ``question`` is written in where it is translated."""
        return ENGLISH | self.languages.get(language(question), {})

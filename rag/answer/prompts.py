"""Prompt templates live as files in ``prompts/``; this module loads and fills them."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError

REQUIRED: dict[str, set[str]] = {
    "system": set(),
    "qa": {"sources", "question"},
    "source": {"n", "text"},
    "refusal": set(),
    "no_answer": set(),
    "extractive": {"quotes"},
    "other_part": {"part", "quotes"},
    "condense": {"history", "question"},
}


def default_prompts_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "_prompts"  # a wheel carries the templates inside the package
    return installed if installed.is_dir() else package.parent / "prompts"


@dataclass(frozen=True)
class Prompts:
    templates: dict[str, str]
    version: str

    @classmethod
    def load(cls, directory: Path | None = None) -> Prompts:
        directory = directory or default_prompts_dir()
        templates: dict[str, str] = {}
        digest = hashlib.sha256()
        for name, needed in sorted(REQUIRED.items()):
            path = directory / f"{name}.txt"
            if not path.is_file():
                raise RagError(f"prompt template {path} is missing", f"restore it, or point --prompts-dir at a folder with {name}.txt")
            text = path.read_text(encoding="utf-8").strip()
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            if not needed <= fields:
                raise RagError(
                    f"prompt template {path} lacks {sorted(needed - fields)}",
                    "add the missing {placeholders} to the template",
                )
            templates[name] = text
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        return cls(templates, f"{directory.name}@{digest.hexdigest()[:10]}")

    def render(self, template: str, /, **values: object) -> str:
        return self.templates[template].format(**values)

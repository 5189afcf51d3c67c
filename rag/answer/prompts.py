"""Prompt templates live as files in ``prompts/``; this module loads and fills them.

``prompts/languages/<code>.toml`` holds, for a language, the texts an asker reads (the refusal, the
notes around quoted evidence) and its English name for ``answer_language.txt``. A text a language
does not translate falls back to the English template.
"""

from __future__ import annotations

import hashlib
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REQUIRED: dict[str, set[str]] = {
    "system": set(),
    "qa": {"sources", "question"},
    "source": {"n", "text"},
    "refusal": set(),
    "no_answer": set(),
    "extractive": {"quotes"},
    "other_part": {"part", "quotes"},
    "condense": {"history", "question"},
    "answer_language": {"language"},
}
TRANSLATED = ("refusal", "no_answer", "extractive", "other_part")  # what a language file may translate


def default_prompts_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    installed = package / "_prompts"  # a wheel carries the templates inside the package
    return installed if installed.is_dir() else package.parent / "prompts"


@dataclass(frozen=True)
class Prompts:
    templates: dict[str, str]
    version: str
    languages: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> name and translated texts

    @classmethod
    def load(cls, directory: Path | None = None) -> Prompts:
        directory = directory or default_prompts_dir()
        templates: dict[str, str] = {}
        digest = hashlib.sha256()
        for name, needed in sorted(REQUIRED.items()):
            path = directory / f"{name}.txt"
            if not path.is_file():
                raise RagError(f"prompt template {path} is missing", f"restore it, or set RAG_PROMPTS_DIR to a folder with {name}.txt")
            text = path.read_text(encoding="utf-8").strip()
            _check_fields(path, text, needed)
            templates[name] = text
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        languages = _languages(directory / "languages")
        digest.update(repr(sorted((code, sorted(texts.items())) for code, texts in languages.items())).encode())
        return cls(templates, f"{directory.name}@{digest.hexdigest()[:10]}", languages)

    def render(self, template: str, /, lang: str = "en", **values: object) -> str:
        """``template`` filled in, in language ``lang`` where it is translated."""
        return self.languages.get(lang, {}).get(template, self.templates[template]).format(**values)

    def refusals(self) -> tuple[str, ...]:
        """The refusal in English and every translated language."""
        return (self.templates["refusal"], *(t["refusal"] for t in self.languages.values() if "refusal" in t))

    def language_instruction(self, lang: str) -> str:
        """What tells the model to answer in ``lang`` ("" for English, the language of the templates)."""
        if lang == "en":
            return ""
        return self.render("answer_language", language=self.languages.get(lang, {}).get("name", f"the language '{lang}'"))


def _check_fields(path: Path, text: str, needed: set[str]) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    if not needed <= fields:
        raise RagError(f"prompt template {path} lacks {sorted(needed - fields)}", "add the missing {placeholders} to the template")


def _languages(directory: Path) -> dict[str, dict[str, str]]:
    """The translations in ``directory`` (``<code>.toml`` each), checked like the templates."""
    languages: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            texts = {k: str(v).strip() for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise RagError(f"the translations in {path} cannot be read ({err})", "fix the file's TOML syntax, or remove it") from None
        unknown = set(texts) - {"name", *TRANSLATED}
        if unknown:
            raise RagError(f"{path} has texts rag does not use: {sorted(unknown)}", f"keep to name and {', '.join(TRANSLATED)}")
        for name in TRANSLATED:
            if name in texts:
                _check_fields(path, texts[name], REQUIRED[name])
        languages[path.stem] = texts
    return languages

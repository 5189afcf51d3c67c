"""Questions limited to chosen documents: ``--where KEY:VALUE`` conditions over the indexed files.

    source:contracts/*      a glob over the file's name as cited (its path under the folder
                            ingested) or its full path; a folder name matches every file under it
    type:pdf                the file's type (its suffix); "type:pdf,docx" allows either
    language:de             the language most of the file's passages are in
    modified:>=2025-01-01   the file's modification date: >, >=, <, <= a date, or a bare
                            year, month or day ("modified:2025-03") for that period

Conditions on one key allow any of their values; conditions on different keys must all hold.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath

from rag.errors import InputError
from rag.index.manifest import FileEntry

KEYS = ("source", "type", "language", "modified")
_DATE = re.compile(r"^(?P<op><=|>=|<|>|=)?(?P<year>\d{4})(?:-(?P<month>\d{2}))?(?:-(?P<day>\d{2}))?$")
_EXAMPLES = '--where "source:contracts/*" --where "type:pdf" --where "language:de" --where "modified:>=2025-01-01"'


@dataclass(frozen=True)
class Where:
    """Which indexed files a question may be answered from (empty: all of them)."""

    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    modified: tuple[tuple[str, str], ...] = ()  # (operator, ISO date prefix)
    files: tuple[str, ...] = ()  # exact source paths (a chat's document picker)
    text: tuple[str, ...] = field(default=(), compare=False)  # as written, for messages

    @classmethod
    def parse(cls, expressions: Iterable[str]) -> Where:
        values: dict[str, list[str]] = {key: [] for key in KEYS}
        written = tuple(e.strip() for e in expressions if e.strip())
        for expression in written:
            key, _, value = expression.partition(":")
            key, value = key.strip().lower(), value.strip()
            if key not in KEYS or not value:
                raise InputError(
                    f"cannot read the filter '{expression}'", f"write KEY:VALUE with KEY one of {', '.join(KEYS)}, e.g. {_EXAMPLES}"
                )
            if key == "source":  # a file name may hold a comma: repeat --where for several
                values[key].append(value)
            else:
                values[key].extend(v.strip() for v in value.split(",") if v.strip())
        return cls(
            sources=tuple(values["source"]),
            types=tuple(t.lower().lstrip(".") for t in values["type"]),
            languages=tuple(code.lower() for code in values["language"]),
            modified=tuple(_date_condition(v) for v in values["modified"]),
            text=written,
        )

    @classmethod
    def chosen(cls, sources: Iterable[str]) -> Where:
        """Exactly these indexed files (by source path)."""
        return cls(files=tuple(sources))

    def __bool__(self) -> bool:
        return bool(self.sources or self.types or self.languages or self.modified or self.files)

    def __str__(self) -> str:
        written = " ".join(f'--where "{t}"' for t in self.text)
        chosen = f"the {len(self.files)} chosen document(s)" if self.files else ""
        return " and ".join(part for part in (written, chosen) if part)

    def matches(self, source: str, entry: FileEntry) -> bool:
        return (
            (not self.files or source in self.files)
            and (not self.sources or any(_source_matches(pattern, source, entry.display_name) for pattern in self.sources))
            and (not self.types or PurePath(source).suffix.lower().lstrip(".") in self.types)
            and (not self.languages or (entry.language or "") in self.languages)
            and all(_date_holds(op, bound, entry.mtime_ns) for op, bound in self.modified)
        )

    def select(self, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        """The files (source -> entry) these conditions allow."""
        return {source: entry for source, entry in files.items() if self.matches(source, entry)}


def _source_matches(pattern: str, source: str, display_name: str) -> bool:
    pattern = pattern.replace("\\", "/")
    for name in (display_name.replace("\\", "/"), source.replace("\\", "/")):
        if fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def _date_condition(value: str) -> tuple[str, str]:
    match = _DATE.match(value.replace(" ", ""))
    if match is None:
        raise InputError(
            f"cannot read the date in 'modified:{value}'", "write a date as YYYY, YYYY-MM or YYYY-MM-DD, after >, >=, < or <= if you like"
        )
    day = "-".join(part for part in (match["year"], match["month"], match["day"]) if part)
    try:
        date.fromisoformat(day if match["day"] else f"{match['year']}-{match['month'] or '01'}-01")
    except ValueError:
        raise InputError(f"'{day}' is not a date", "write a date as YYYY, YYYY-MM or YYYY-MM-DD") from None
    return match["op"] or "=", day


def _date_holds(op: str, bound: str, mtime_ns: int) -> bool:
    """Whether the file's modification day (local time) compares as asked with a date or a period's prefix."""
    day = datetime.fromtimestamp(mtime_ns / 1e9).date().isoformat()[: len(bound)]
    return {"=": day == bound, "<": day < bound, "<=": day <= bound, ">": day > bound, ">=": day >= bound}[op]


def parse_where(expressions: Sequence[str] | None) -> Where | None:
    """The conditions, or None when there are none."""
    where = Where.parse(expressions or ())
    return where or None

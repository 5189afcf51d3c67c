"""The manifest of indexed files (content hashes → chunk ids) and the single-writer lock."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IndexLockedError, IndexMismatchError

MANIFEST_VERSION = 1


@dataclass
class FileEntry:
    sha256: str
    size: int
    mtime_ns: int
    display_name: str
    chunk_ids: list[str] = field(default_factory=list)
    chunking: str | None = None  # "tokens/overlap" the file was chunked with (None: unknown, older index)
    language: str | None = None  # the language most of its passages are in (None: indexed before rag recorded it)


@dataclass
class Manifest:
    embedder: str
    generation: int = 0  # bumped on every change; the BM25 index records the one it was built from
    files: dict[str, FileEntry] = field(default_factory=dict)
    written_by: dict[str, str] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    roots: list[str] = field(default_factory=list)  # the paths given to ingest: `rag ingest --rebuild` reuses them

    @property
    def chunk_count(self) -> int:
        return sum(len(e.chunk_ids) for e in self.files.values())

    def chunk_ids(self) -> set[str]:
        return {i for e in self.files.values() for i in e.chunk_ids}

    @classmethod
    def load(cls, path: Path, embedder: str) -> Manifest:
        if path.is_dir():
            raise IndexMismatchError(
                f"the index manifest {path} is a folder, not a file",
                f"move it out of the way (mv {path} {path}.bad), then {rebuild_hint(path.parent)}",
            )
        if not path.exists():
            return cls(embedder=embedder)
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise TypeError("not a JSON object")
            if raw.get("version") != MANIFEST_VERSION:
                writer = raw.get("written_by") or {}
                raise IndexMismatchError(
                    f"the index at {path.parent} has layout version {raw.get('version')} (written by rag "
                    f"{writer.get('rag', 'unknown')}, chromadb {writer.get('chromadb', 'unknown')}); this rag reads layout {MANIFEST_VERSION}",
                    rebuild_hint(path.parent),
                )
            files = {k: FileEntry(**v) for k, v in raw.get("files", {}).items()}
            return cls(
                embedder=raw["embedder"],
                generation=int(raw.get("generation", 0)),
                files=files,
                written_by=dict(raw.get("written_by", {})),
                roots=[str(r) for r in raw.get("roots", [])],
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError, OSError) as err:
            raise IndexMismatchError(f"the index manifest {path} is unreadable ({err})", rebuild_hint(path.parent)) from None

    @staticmethod
    def recorded_embedder(path: Path) -> str | None:
        """The embedder an index names, read leniently (None when there is no readable manifest)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return str(raw["embedder"]) if isinstance(raw, dict) and raw.get("embedder") else None
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def recorded_paths(path: Path) -> list[Path]:
        """What an index was built from, read leniently (the manifest may be from another version):
        its recorded roots, else its files; only those still on disk."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        if not isinstance(raw, dict):
            return []
        listed = raw.get("roots") or list((raw.get("files") or {}).keys())
        return [Path(p) for p in listed if isinstance(p, str) and Path(p).exists()]

    def save(self, path: Path) -> None:
        data = asdict(self)
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


def rebuild_hint(index_dir: Path) -> str:
    where = "" if index_dir == Path("index") else f" --index {index_dir}"
    return f"rebuild it from the same documents with one command: rag ingest --rebuild{where}"


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename with fsync: the file is always either the old or the new version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_private(folder: Path) -> None:
    """Make the index private to its owner: the folder and every folder in it 0700, every file
    0600 (chromadb and SQLite create theirs by the umask, often world-readable)."""
    with contextlib.suppress(OSError):
        _private(folder, 0o700)
    for path in folder.rglob("*") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            _private(path, 0o700 if path.is_dir() and not path.is_symlink() else 0o600)


def _private(path: Path, mode: int) -> None:
    st = path.lstat()
    if not stat.S_ISLNK(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
        path.chmod(mode)


class WriterLock:
    """An exclusive, non-blocking lock on the index; released by the OS if the holder dies."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / "writer.lock"
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexLockedError(
                f"another process (pid {holder}) is writing to the index at {self.path.parent}",
                "wait for it to finish, or point this run at another index with --index DIR",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            make_private(self.path.parent)  # whatever the writer (or chromadb under it) created
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

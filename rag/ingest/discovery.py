"""Finding the files to index under the given paths, never leaving them through symlinks.

Every file or folder skipped becomes a ``FileError`` with a reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.schema import FileError


@dataclass(frozen=True)
class FoundFile:
    path: Path  # resolved absolute path
    display_name: str  # path relative to the root it was found under


def discover(paths: list[Path], max_bytes: int) -> tuple[list[FoundFile], list[FileError]]:
    """Walk files and folders (recursively), never leaving the given roots through symlinks.

    Returns the supported files and an error for everything skipped: files, and folders that
    cannot be listed or are links that leave the root or loop. Nothing is skipped silently."""
    found: dict[Path, FoundFile] = {}
    errors: list[FileError] = []
    require_existing(paths)
    for given in paths:
        state = path_state(given)
        if state == "unreadable":
            errors.append(FileError(display_path(str(given)), "unreadable", "cannot be read (permission denied); check its permissions"))
            continue
        root = given.resolve()
        if given.is_dir() and is_index_folder(given):
            errors.append(FileError(display_path(str(given)), "rag-index", _INDEX_DETAIL))
            continue
        if given.is_dir():
            candidates: Iterator[tuple[Path, str]] = _walk(given, root, errors)
        else:
            candidates = iter([(given, given.name)])
        for path, display in candidates:
            error = _check_file(path, root, max_bytes, display)
            if error is not None:
                errors.append(error)
                continue
            resolved = path.resolve()
            found.setdefault(resolved, FoundFile(resolved, display))
    return sorted(found.values(), key=lambda f: str(f.path)), errors


def require_existing(paths: list[Path]) -> None:
    """Raise ``InputError`` (exit code 2) for the first path that does not exist (a dangling link
    exists: it is reported as a skipped file)."""
    from rag.errors import InputError

    for path in paths:
        if path_state(path) == "missing" and not path.is_symlink():
            raise InputError(f"path does not exist: {path}", "check the spelling, or pass an existing file or folder")


def path_state(path: Path) -> str:
    """ "present", "missing", or "unreadable" (a folder on the way cannot be searched)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    return "present"


_INDEX_DETAIL = "a rag index (its manifest, keyword index and store), never a document; index the folders it was built from"


def is_index_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a rag index: its manifest beside its keyword index or store (a
    folder that cannot be searched is reported as unreadable, not here)."""
    try:
        return (folder / "manifest.json").is_file() and ((folder / "bm25").is_dir() or (folder / "chroma").is_dir())
    except OSError:
        return False


def display_path(text: str) -> str:
    """A path as text that can always be printed and stored (undecodable bytes become �)."""
    return os.fsencode(text).decode("utf-8", errors="replace")


def _walk(folder: Path, root: Path, errors: list[FileError]) -> Iterator[tuple[Path, str]]:
    def unreadable(err: OSError) -> None:
        where = display_path(os.path.relpath(err.filename, folder)) if err.filename else str(folder)
        errors.append(FileError(where, "unreadable", f"cannot list this folder ({err.strerror}); its files are not indexed"))

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False, onerror=unreadable):
        kept = []
        for d in sorted(dirnames):
            path = Path(dirpath) / d
            error = _not_walked(path, path.relative_to(folder)) or _check_linked_folder(path, folder, root)
            if error is not None:
                errors.append(error)
            elif not path.is_symlink():
                kept.append(d)  # a link to a folder inside the root is indexed where it really is
        dirnames[:] = kept
        for name in sorted(filenames):
            path = Path(dirpath) / name
            error = _not_a_document(name, display_path(str(path.relative_to(folder))))
            if error is not None:
                errors.append(error)
                continue
            yield path, str(path.relative_to(folder))


def _not_walked(path: Path, relative: Path) -> FileError | None:
    """Why a folder met in a walk is not searched: hidden, or a rag index (its own files are not documents)."""
    display = display_path(str(relative))
    if relative.name.startswith("."):
        return FileError(display, "hidden", "a hidden folder; its files are not indexed (pass it by name to index it)")
    if is_index_folder(path):
        return FileError(display, "rag-index", _INDEX_DETAIL)
    return None


def _not_a_document(name: str, display: str) -> FileError | None:
    """Why a file met in a walk is not a document: hidden, or an Office lock file ("~$report.docx")."""
    if name.startswith("~$"):
        return FileError(display, "lock-file", "an Office lock file (the document is open in an editor), not a document")
    if name.startswith("."):
        return FileError(display, "hidden", "a hidden file; not indexed (pass it by name to index it)")
    return None


def _check_linked_folder(path: Path, folder: Path, root: Path) -> FileError | None:
    if not path.is_symlink():
        return None
    display = display_path(str(path.relative_to(folder)))
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        return FileError(display, "bad-symlink", f"a folder link that loops or dangles ({type(err).__name__}); not followed")
    if not target.is_relative_to(root):
        return FileError(
            display, "outside-root", f"a folder link to {display_path(str(target))}, outside {display_path(str(root))}; not followed"
        )
    if path.parent.resolve().is_relative_to(target):
        return FileError(display, "bad-symlink", "a folder link to a folder that contains it (a loop); not followed")
    return None


def _check_file(path: Path, root: Path, max_bytes: int, display: str) -> FileError | None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return FileError(
            display_path(display),
            "bad-filename",
            "the file name is not valid UTF-8; rename it (for example: convmv -f latin1 -t utf-8 --notest FILE)",
        )
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # broken link or symlink loop
        return FileError(display, "bad-symlink", f"cannot resolve: {err}")
    if path.is_symlink() and root.is_dir() and not resolved.is_relative_to(root):
        return FileError(display, "outside-root", f"symlink points outside {root}; not followed")
    if not resolved.is_file():
        return FileError(display, "not-a-file", "not a regular file")
    if resolved.suffix.lower() not in SUPPORTED_SUFFIXES:
        return FileError(
            display,
            "unsupported-type",
            f"'{resolved.suffix or '(none)'}' files are not supported; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    try:
        size = resolved.stat().st_size
    except OSError as err:
        return FileError(display, "unreadable", f"cannot read it ({err.strerror}); check its permissions")
    if size == 0:
        return FileError(display, "empty-file", "the file is empty")
    if size > max_bytes:
        return FileError(display, "too-large", f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB cap (raise --max-file-mb)")
    return None

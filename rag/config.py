"""One typed settings object: defaults < config file (TOML) < RAG_* environment < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_EMBEDDER = "bundled:all-MiniLM-L6-v2"
BUNDLED_MULTILINGUAL_EMBEDDER = "bundled:multilingual-e5-small"
# embedders trained on English text only: rag ingest advises the multilingual one for other languages
ENGLISH_ONLY_EMBEDDERS = frozenset({BUNDLED_EMBEDDER, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
BUNDLED_MODEL = "bundled:smollm2"


class Settings(BaseSettings):
    """Everything the pipeline can be told. Pass an instance in; nothing reads globals."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="forbid", validate_assignment=True)

    index_dir: Path = Field(Path("index"), description="Where the index lives (Chroma, BM25, manifest).")
    embedder: str = Field(
        BUNDLED_EMBEDDER,
        description=(
            "sentence-transformers model: a local path, a Hugging Face name, or bundled:all-MiniLM-L6-v2 (English); "
            "or bundled:multilingual-e5-small (about 100 languages; needs rag[multilingual], Linux x86-64)."
        ),
    )
    embedder_backend: Literal["auto", "torch", "openvino", "onnx", "onnx-int8"] = Field(
        "auto",
        description="How a sentence-transformers embedder runs: torch (PyTorch); openvino (its ONNX export in OpenVINO, "
        "bfloat16 where the CPU has it: 2.6x PyTorch on 2 cores, the same rankings); onnx (ONNX Runtime, float32: 1.5x); "
        "onnx-int8 (int8-quantized: as fast as openvino, rankings move a little). auto: the back-end an existing index "
        "was built with, else openvino. The export is made once, offline, into the index folder.",
    )
    embedder_exports: Path | None = Field(
        None,
        description="Folder for the embedder's ONNX exports (default: embedder-exports in the index folder); several indexes may share one.",
    )
    model: str = Field(
        BUNDLED_MODEL,
        description="GGUF model: a local .gguf path, a Hugging Face 'repo/file.gguf', or bundled:smollm2 / bundled:gemma3-270m.",
    )
    offline: bool = Field(
        False,
        description="Never download anything (models from Hugging Face included). HF_HUB_OFFLINE=1 implies it.",
    )
    # scale-out: existing servers instead of the embedded store / in-process model
    chroma_url: str | None = Field(
        None, description="Use a Chroma server (http://host:port, from `chroma run`) instead of the embedded store."
    )
    chroma_collection: str = Field("rag_chunks", min_length=3, max_length=63, description="Collection name on the Chroma server.")
    llm_url: str | None = Field(
        None,
        description="Send generation to an OpenAI-compatible server (http://host:port/v1: llama-server, "
        "python -m llama_cpp.server, vLLM) instead of loading the GGUF in this process.",
    )
    embedder_url: str | None = Field(
        None,
        description="Embed on OpenAI-compatible /v1/embeddings servers instead of in this process: one URL "
        "(http://host:port/v1) or several separated by commas; the model is the one those servers serve.",
    )
    embedder_api_key: str | None = Field(None, description="Bearer token for --embedder-url, if the servers want one.")
    embedder_in_flight: int = Field(2, ge=1, le=64, description="Embedding requests kept in flight per embedding server.")
    embedder_timeout: float = Field(120.0, gt=0, description="Seconds to wait for one embedding request.")
    llm_api_key: str | None = Field(None, description="Bearer token for --llm-url, if the server wants one.")
    llm_timeout: float = Field(300.0, gt=0, description="Seconds to wait for the LLM server's reply.")
    # generation
    answer_mode: Literal["generate", "extract"] = Field(
        "generate",
        description="generate: the LLM writes a cited answer, checked against its sources; "
        "extract: no LLM, the best supporting sentence is quoted with its citation.",
    )
    unverified: Literal["auto", "quote", "refuse"] = Field(
        "auto",
        description="When the answer judge keeps no sentence the model wrote (or the model finds no answer) but finds one "
        "in the sources that answers: quote it (auto, quote), or refuse and show it as related (refuse). auto also tells "
        "a model the catalogue marks as a weak reader (the bundled SmolLM2) to say when the sources lack the answer.",
    )
    n_ctx: int = Field(4096, ge=512, le=262144, description="LLM context window in tokens.")
    max_tokens: int = Field(200, ge=16, le=32768, description="Longest answer in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (reproducible).")
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    seed: int = Field(0, description="Sampling seed.")
    n_gpu_layers: int = Field(-1, ge=-1, description="-1 = offload every layer when llama.cpp has a GPU backend.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for llama.cpp (default: its own choice).")
    # retrieval
    top_k: int = Field(5, ge=1, le=50, description="Passages given to the model.")
    candidates: int = Field(40, ge=1, le=1000, description="Hits each retriever returns before fusion.")
    # fusion: scripts/tune_retrieval.py on squad-dev8 (1,574 queries, chunkings 200/40 and 120/24):
    # dense:BM25 = 1:1.5 with k = 10 has the best nDCG@10 averaged over both chunkings
    rrf_k: int = Field(10, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(1.5, ge=0.0, description="Weight of the BM25 ranking in fusion.")
    reranker: str | None = Field(
        None,
        description="Optional cross-encoder (sentence-transformers CrossEncoder: a local folder or a Hugging Face "
        "name) that re-scores the fused candidates.",
    )
    rerank_candidates: int = Field(30, ge=1, le=200, description="Fused hits the reranker re-scores.")
    min_similarity: float = Field(
        # a floor only: the answer judge decides what passes it. On squad-dev8
        # (scripts/calibrate_refusal.py) 0.2 refuses 0.5% of answerable questions and 44.5% of those
        # about an article not indexed; 0.3 refused 2% and 86%, but with only the gold paragraph
        # removed it turned away 5-7 of 200 answerable questions the evidence check answers (3 samples)
        0.2,
        ge=-1.0,
        le=1.0,
        description="Refuse without calling the model when no retrieved passage is at least this similar (cosine) to the question.",
    )
    judge_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="The answer judge's probability a sentence needs to be kept, and the best evidence sentence to answer "
        "at all (default: the judge's operating point, set by scripts/train_judge.py).",
    )
    verifier: str | None = Field(
        None, description="Optional NLI cross-encoder (folder or Hugging Face name) that must also find each sentence entailed."
    )
    prompts_dir: Path | None = Field(None, description="Folder of prompt templates overriding the bundled ones.")
    relative_cutoff: float = Field(
        0.5, ge=0.0, le=1.0, description="Passages scoring below this share of the best hit are not shown to the model."
    )
    # ingestion
    chunk_tokens: int = Field(200, ge=32, description="Chunk size in embedder tokens (capped by its max sequence length).")
    chunk_overlap: int = Field(40, ge=0, description="Tokens of overlap between neighbouring chunks.")
    query_prompt: str | None = Field(
        None, description="Text put before every query for the embedder (default: the model's own, or its family's: e5, bge, nomic)."
    )
    document_prompt: str | None = Field(
        None, description="Text put before every passage for the embedder (default: the model's own, or its family's)."
    )
    max_file_mb: float = Field(64.0, gt=0, description="Files larger than this are skipped.")
    parse_timeout_s: float = Field(
        120.0, gt=0, description="A file whose parsing (or one page's OCR) takes longer is skipped (reason 'timeout')."
    )
    parse_memory_mb: int = Field(2048, ge=256, description="Memory cap for parsing one file (reason 'too-large' beyond it).")
    ocr_languages: str = Field(
        "",
        pattern=r"^[A-Za-z_]*(\+[A-Za-z_]+)*$",
        description="Tesseract languages for scanned pages and pictures, e.g. 'deu+eng' (empty: each document's own, detected).",
    )
    embed_batch_size: int = Field(32, ge=1, le=4096)
    ingest_pipeline: bool = Field(
        True, description="Parse ahead of the embedder and write behind it in threads of their own (false: one stage after another)."
    )

    @field_validator("index_dir", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return Path(os.path.expanduser(str(value))) if value is not None else value

    @field_validator("chroma_url", "llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        from urllib.parse import urlparse

        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"'{value}' is not an http(s)://host:port URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self

    @property
    def embedder_urls(self) -> list[str]:
        """The embedding servers, in the order given (``embedder_url`` split at commas and spaces)."""
        return [u.rstrip("/") for u in (self.embedder_url or "").replace(",", " ").split()]

    @property
    def downloads_allowed(self) -> bool:
        return not self.offline and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0", "false", "False")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("RAG_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``overrides`` (CLI flags) win, ``None`` values are ignored."""
    from pydantic import ValidationError

    from rag.errors import InputError

    clean = {k: v for k, v in overrides.items() if v is not None}
    if config_file is not None and not config_file.is_file():
        raise InputError(f"config file {config_file} does not exist", "pass an existing TOML file to --config")
    previous = os.environ.get("RAG_CONFIG")
    try:
        if config_file is not None:
            os.environ["RAG_CONFIG"] = str(config_file)
        return Settings(**clean)
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()]
        raise InputError("invalid settings: " + "; ".join(lines), "correct the flag, RAG_* variable or config file named above") from None
    except ValueError as err:  # the TOML parser's error names the line and column
        where = config_file or os.environ.get("RAG_CONFIG")
        raise InputError(f"the config file {where} is not valid TOML: {err}", "correct the line named above") from None
    except OSError as err:
        where = config_file or os.environ.get("RAG_CONFIG")
        raise InputError(f"the config file {where} cannot be read ({err.strerror or err})", "pass a readable TOML file") from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop("RAG_CONFIG", None)
            else:
                os.environ["RAG_CONFIG"] = previous

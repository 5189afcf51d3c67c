from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import Settings, load_settings
from rag.errors import InputError


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rag.toml"
    config.write_text('top_k = 7\nn_ctx = 2048\nmodel = "/models/from-file.gguf"\n')
    monkeypatch.setenv("RAG_N_CTX", "8192")
    settings = load_settings(config, top_k=3)
    assert settings.top_k == 3  # flag
    assert settings.n_ctx == 8192  # env beats file
    assert settings.model == "/models/from-file.gguf"  # file beats default
    assert load_settings(config).top_k == 7


def test_invalid_values_say_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TOP_K", "0")
    with pytest.raises(InputError, match="top_k"):
        load_settings()


def test_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(InputError, match="chunk_overlap"):
        load_settings(chunk_tokens=64, chunk_overlap=64)


def test_missing_config_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_defaults_are_offline_capable() -> None:
    settings = Settings()
    assert settings.model.startswith("bundled:")
    assert settings.embedder.startswith("bundled:")
    assert settings.index_dir == Path("index")

"""The wheel carries everything a non-editable install needs: prompts, the sample corpus, the CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_prompts_and_sample(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 and "hatchling" in result.stderr:  # no build backend here: build it isolated
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("rag-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("system", "qa", "source", "refusal", "extractive"):
        assert f"rag/_prompts/{template}.txt" in names
    assert "rag/sample/docs/water-heater-manual.pdf" in names
    assert "ui/app.py" in names and "rag/_prompts/condense.txt" in names
    assert "rag/_prompts/languages/de.toml" in names and "ui/languages/de.toml" in names  # the translations
    assert any(n.endswith("entry_points.txt") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "rag = rag.apps.cli:main" in entry_points

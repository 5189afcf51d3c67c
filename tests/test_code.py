"""The code itself: lint, formatting and types as CI runs them, short functions, imports that point down.

The tools are pinned in the ``test`` extra, so a new ruff or mypy release cannot turn CI red by itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("rag", "ui", "tests", "scripts")
MAX_FUNCTION_LINES = 60

# Each folder of rag/ may import from the folders after it in this order, never from one before it
# (the top-level modules config, schema and errors are below everything; service and backends wire).
LAYERS = ["apps", "service", "backends", "answer", "ingest", "index", "text"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_fix() -> None:
    result = _run("ruff", "check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted() -> None:
    result = _run("ruff", "format", "--check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr + "\nfix: ruff format rag ui tests scripts"


def test_mypy_passes_on_rag_and_ui() -> None:
    result = _run("mypy")  # files and strictness: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def _python_files() -> list[Path]:
    return sorted(p for folder in ("rag", "ui") for p in (ROOT / folder).rglob("*.py"))


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "rag" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_imports_point_down_the_stages() -> None:
    """apps → service → answer → ingest → index → text; no stage imports one above it, and
    nothing in rag/ imports the chat page (ui/ sits above rag, beside apps)."""
    upward = []
    for path in _python_files():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        here = _layer(module)
        for name in _imports(path):
            if module.startswith("rag.") and name.startswith("ui") and not module.startswith("rag.apps."):
                upward.append(f"{module} imports {name}")
            there = _layer(name)
            if here is not None and there is not None and there < here:
                upward.append(f"{module} imports {name}")
    assert not upward, upward

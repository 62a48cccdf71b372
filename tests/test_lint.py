"""Static checks in the test command: ruff (lint and format) and mypy over dafxlib, configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["dafxlib", "tests", "benchmarks", "scripts"]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is pinned in the 'test' extra (pip install -e '.[test]')")
    return [found]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    targets = [t for t in TARGETS if (REPO / t).exists()]
    return subprocess.run(cmd + targets, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_lint():
    out = _run(_tool("ruff") + ["check", "--no-cache"])
    assert out.returncode == 0, "ruff check found problems:\n" + out.stdout[-6000:] + out.stderr[-2000:]


def test_ruff_format():
    out = _run(_tool("ruff") + ["format", "--check", "--no-cache"])
    assert out.returncode == 0, "files ruff would reformat (run `ruff format`):\n" + out.stdout[-6000:]


def test_mypy():
    out = subprocess.run(
        _tool("mypy") + ["--cache-dir", str(REPO / "build" / ".mypy_cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, "mypy found type errors:\n" + out.stdout[-8000:] + out.stderr[-2000:]

"""Shared fixtures. The smoke run of every notebook is made once per session, in a
temporary build/output folder, so tests never read a stale cache from an earlier run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run ``run_notebooks --profile smoke`` once; return (returncode, output, out_dir)."""
    base = tmp_path_factory.mktemp("smoke")
    env = dict(
        os.environ,
        DAFX_BUILD_DIR=str(base / "build"),
        DAFX_OUTPUT_DIR=str(base / "out"),
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dafxlib.run_notebooks", "--profile", "smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return proc.returncode, proc.stdout + proc.stderr, base / "out", base / "build"

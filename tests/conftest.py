"""Shared fixtures. The smoke run of every notebook is made once per session, in a
temporary build/output folder, so tests never read a stale cache from an earlier run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_profile(base: Path, profile: str, sets: dict | None = None, timeout: float = 1200):
    """Run ``run_notebooks --profile PROFILE [--set k=v ...]`` with its build and output folders
    under ``base``; return (returncode, output, out_dir, build_dir)."""
    env = dict(
        os.environ,
        DAFX_BUILD_DIR=str(base / "build"),
        DAFX_OUTPUT_DIR=str(base / "out"),
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
    )
    args = [f"--set={k}={v}" for k, v in (sets or {}).items()]
    proc = subprocess.run(
        [sys.executable, "-m", "dafxlib.run_notebooks", "--profile", profile, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, base / "out", base / "build"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run ``run_notebooks --profile smoke`` once; return (returncode, output, out_dir)."""
    return run_profile(tmp_path_factory.mktemp("smoke"), "smoke")


@pytest.fixture(scope="session")
def notebook_runner():
    """:func:`run_profile`, for tests that run the notebooks under another profile or overrides."""
    return run_profile

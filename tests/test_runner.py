"""run_notebooks: skips missing notebooks, names the failing notebook and cell, times each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _nb(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "default"\nOVERRIDES = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "dafx", "display_name": "Python (dafx)", "language": "python"}
    nbformat.write(nb, path)


def _run(tmp_path, *args):
    env = dict(
        os.environ,
        DAFX_ROOT=str(tmp_path),
        DAFX_BUILD_DIR=str(tmp_path / "build"),
        DAFX_OUTPUT_DIR=str(tmp_path / "out"),
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "dafxlib.run_notebooks", "--no-report", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_runs_in_order_skips_missing_and_stops_at_failure(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _nb(tmp_path / "notebooks" / "01_ok.ipynb", "assert PROFILE == 'smoke'\nx = 1")
    _nb(tmp_path / "notebooks" / "03_bad.ipynb", "raise ValueError('boom in cell')")
    _nb(tmp_path / "notebooks" / "04_never.ipynb", "x = 2")
    proc = _run(tmp_path, "--profile", "smoke")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "01_ok" in out and "02  skipped" in out
    assert "03_bad" in out and "FAILED" in out and "ValueError: boom in cell" in out and "cell [" in out
    assert "04_never" not in out
    prov = json.loads((tmp_path / "out" / "report" / "provenance.json").read_text())
    assert prov["notebooks"]["01_ok"]["status"] == "ok"
    assert prov["notebooks"]["03_bad"]["status"] == "failed"
    assert (tmp_path / "build" / "smoke" / "notebooks" / "01_ok.ipynb").exists()


def test_only_and_bad_arguments(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _nb(tmp_path / "notebooks" / "01_ok.ipynb", "x = 1")
    proc = _run(tmp_path, "--profile", "smoke", "--only", "02")
    assert proc.returncode == 0 and "01_ok" not in proc.stdout
    proc = _run(tmp_path, "--profile", "nosuch")
    assert proc.returncode == 2 and "valid profiles are" in proc.stderr
    proc = _run(tmp_path, "--profile", "smoke", "--set", "vae.nosuch=1")
    assert proc.returncode == 2 and "valid keys are" in proc.stderr
    proc = _run(tmp_path, "--only", "9")
    assert proc.returncode == 2

"""Live progress of a notebook run: loops report to a file, the runner shows cell, section and counts,
redrawn in place on a terminal and throttled in a log."""

from __future__ import annotations

import io
import json

import nbformat
import pytest

from dafxlib import progress
from dafxlib.run_progress import ENGINE, LiveProgress, _heading


def test_loops_write_nothing_without_a_runner(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert list(progress.track(range(3), "x")) == [0, 1, 2]
    progress.step("y", 1, 2)
    assert list(tmp_path.iterdir()) == []


def test_loops_report_counts_throttled_but_always_the_end(monkeypatch, tmp_path):
    path = tmp_path / "p.json"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "_state", {})
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 3600.0)
    monkeypatch.setattr(progress, "_last_write", -1e9)
    progress.step("epochs", 0, 4)  # the first write: nothing written for longer than the interval
    assert progress.read(path) == {"epochs": {"done": 0, "total": 4}}
    progress.step("epochs", 1, 4)  # throttled
    assert progress.read(path)["epochs"]["done"] == 0
    assert list(progress.track(["a", "b"], "cells")) == ["a", "b"]  # finishing is always written
    assert progress.read(path) == {"epochs": {"done": 1, "total": 4}, "cells": {"done": 2, "total": 2}}
    assert json.loads(path.read_text())["pid"] > 0
    assert progress.read(tmp_path / "missing.json") == {}
    assert progress.bar(3, 12, width=4) == "3/12 [#...]" and progress.bar(5, None) == "5"


def test_log_lines_are_throttled_and_terminal_lines_redrawn(tmp_path):
    out = io.StringIO()
    live = LiveProgress("03_beta_tuning", stream=out, tty=False, every_s=0.0)
    live.cell(2, 9, "Sweep")
    live.file.write_text(json.dumps({"loops": {"sweep configurations": {"done": 1, "total": None}}}))
    live.show()
    live.show()  # nothing changed: no second line
    live.file.write_text(
        json.dumps({"loops": {"sweep configurations": {"done": 2, "total": None}, "epochs": {"done": 3, "total": 14}}})
    )
    live.show()
    assert len(live.lines) == 2 and out.getvalue().count("\n") == 2
    assert "03_beta_tuning  cell 2/9 (Sweep) | sweep configurations 2 | epochs 3/14 [###" in live.lines[1]
    slow = LiveProgress("x", stream=io.StringIO(), tty=False, every_s=3600.0)
    slow.show()
    slow.cell(1, 2, "")
    slow.show()  # changed, but within the interval
    assert len(slow.lines) == 1
    tty = io.StringIO()
    t = LiveProgress("04_end_to_end", stream=tty, tty=True)
    t.cell(1, 3, "Train")
    t.show()
    t.show()
    assert tty.getvalue().count("\r") == 2 and "\n" not in tty.getvalue()


def test_heading_is_the_last_markdown_title_before_the_cell():
    cells = [
        nbformat.v4.new_markdown_cell("# Title\ntext"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_markdown_cell("no heading"),
        nbformat.v4.new_markdown_cell("## Training\n"),
        nbformat.v4.new_code_cell("b = 2"),
    ]
    assert _heading(cells, 1) == "Title" and _heading(cells, 4) == "Training"


@pytest.mark.slow
def test_a_notebook_run_shows_cells_and_loops(tmp_path):
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "dafx", "display_name": "Python (dafx)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Warm-up"),
        nbformat.v4.new_code_cell("import time"),
        nbformat.v4.new_markdown_cell("## Long loop"),
        nbformat.v4.new_code_cell(
            "from dafxlib import progress\nfor i in progress.track(range(6), 'items'):\n    time.sleep(0.3)"
        ),
    ]
    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    out = io.StringIO()
    with LiveProgress("99_test", stream=out, tty=False, every_s=0.0, tick_s=0.1) as live:
        pm.execute_notebook(str(src), str(dst), kernel_name="dafx", progress_bar=False, engine_name=ENGINE)
    text = "\n".join(live.lines)
    assert "99_test  cell 2/2 (Long loop)" in text
    assert "items 6/6 [############]" in text and any("items " in ln and "6/6" not in ln for ln in live.lines)
    assert not live.file.exists()  # the temporary folder is gone

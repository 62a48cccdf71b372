"""The notebook runner's live progress line: which notebook, which cell and section, which loop.

:class:`LiveProgress` wraps one papermill execution. A papermill engine (registered as
:data:`ENGINE`) tells it when each cell starts; the kernel's loops report through
:mod:`dafxlib.progress` into a temporary file that a background thread reads once a second.
On a terminal the line is redrawn in place (carriage return); when stdout is not a terminal
(CI logs, pipes) a line is printed only when the cell or a loop's count changed and at most
every :data:`LOG_EVERY_S` seconds (``DAFX_PROGRESS_EVERY`` overrides it), so a long run
leaves a few dozen lines, not thousands.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from . import progress

ENGINE = "dafx-progress"
LOG_EVERY_S = 30.0
_active: LiveProgress | None = None


def _heading(cells: list[Any], index: int) -> str:
    """The last Markdown heading at or before cell ``index`` (the notebook's section)."""
    for cell in reversed(cells[: index + 1]):
        if cell.get("cell_type") == "markdown":
            m = re.search(r"^#+\s*(.+)$", cell.get("source", ""), re.M)
            if m:
                return m.group(1).strip()
    return ""


def _register_engine() -> None:
    from papermill.engines import NBClientEngine, papermill_engines

    class _ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                cells = nb_man.nb.cells
                if _active is not None and cell_index is not None and cells[cell_index].cell_type == "code":
                    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
                    _active.cell(code.index(cell_index) + 1, len(code), _heading(cells, cell_index))
                return start(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(ENGINE, _ProgressEngine)


class LiveProgress:
    """``with LiveProgress("03_beta_tuning"): pm.execute_notebook(..., engine_name=ENGINE)``."""

    def __init__(
        self,
        name: str,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float | None = None,
        tick_s: float = 1.0,
    ):
        self.name = name
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = float(os.environ.get("DAFX_PROGRESS_EVERY", LOG_EVERY_S)) if every_s is None else every_s
        self.tick_s = tick_s
        self.cell_no, self.n_cells, self.section = 0, 0, ""
        self.lines: list[str] = []  # what was printed (non-TTY), for tests and logs
        self._t0 = time.monotonic()
        self._last_key: tuple | None = None
        self._last_print = -1e9
        self._stop = threading.Event()
        self._dir = tempfile.mkdtemp(prefix="dafx-progress-")
        self.file = Path(self._dir) / "progress.json"

    # ---- what the engine and the kernel report --------------------------------------------
    def cell(self, n: int, total: int, section: str) -> None:
        self.cell_no, self.n_cells, self.section = n, total, section

    def line(self) -> str:
        loops = progress.read(self.file)
        parts = [f"{self.name}  cell {self.cell_no}/{self.n_cells}" + (f" ({self.section})" if self.section else "")]
        parts += [f"{label} {progress.bar(int(v.get('done') or 0), v.get('total'))}" for label, v in loops.items()]
        return " | ".join(parts) + f"  {time.monotonic() - self._t0:.0f} s"

    def _key(self) -> tuple:
        loops = progress.read(self.file)
        return (self.cell_no, tuple(sorted((k, v.get("done")) for k, v in loops.items())))

    def show(self, *, force: bool = False) -> None:
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns
            self.stream.write("\r" + self.line()[: width - 1].ljust(width - 1))
            self.stream.flush()
            return
        key, now = self._key(), time.monotonic()
        if force or (key != self._last_key and now - self._last_print >= self.every_s):
            text = "  " + self.line()
            self.lines.append(text)
            print(text, file=self.stream, flush=True)
            self._last_key, self._last_print = key, now

    # ---- lifetime -------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.show()
            except Exception:  # a display problem must never stop the run
                pass

    def __enter__(self) -> LiveProgress:
        global _active
        _register_engine()
        _active = self
        os.environ[progress.ENV] = str(self.file)  # the kernel papermill starts inherits it
        self._thread = threading.Thread(target=self._loop, name="dafx-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        global _active
        self._stop.set()
        self._thread.join(timeout=5)
        _active = None
        os.environ.pop(progress.ENV, None)
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
        shutil.rmtree(self._dir, ignore_errors=True)

"""Live progress of long loops, written for the notebook runner to show on the terminal.

A notebook's kernel runs in another process than ``./run_all.sh``. The runner sets
:data:`ENV` to a file path before it starts a notebook; long loops (training epochs, sweep
configurations, controllers, evaluation cells) call :func:`step` or wrap their iterable in
:func:`track`, which write ``{label: {"done": i, "total": n}}`` to that file (atomically, at
most every :data:`MIN_INTERVAL_S` seconds, and always when a loop finishes). Without the
variable (an interactive session) both cost one dictionary lookup and write nothing.
:func:`read` is the runner's side.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

ENV = "DAFX_PROGRESS_FILE"
MIN_INTERVAL_S = 0.5
T = TypeVar("T")

_state: dict[str, dict[str, int | None]] = {}
_last_write = 0.0


def _write(path: str) -> None:
    global _last_write
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "time": time.time(), "loops": _state}, f)
        os.replace(tmp, path)
    except OSError:  # progress is a courtesy: never fail a run for it
        return
    _last_write = time.monotonic()


def step(label: str, done: int, total: int | None = None) -> None:
    """Record that loop ``label`` has finished ``done`` of ``total`` items (``total`` may be unknown)."""
    path = os.environ.get(ENV)
    if not path:
        return
    _state[label] = {"done": int(done), "total": None if total is None else int(total)}
    finished = total is not None and done >= total
    if finished or time.monotonic() - _last_write >= MIN_INTERVAL_S:
        _write(path)


def track(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items``, recording progress under ``label`` after each one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    step(label, 0, total)
    for i, item in enumerate(items, 1):
        yield item
        step(label, i, total)


def read(path: str | os.PathLike) -> dict[str, dict[str, int | None]]:
    """The loops a progress file records (empty if it does not exist or is being replaced)."""
    try:
        return dict(json.loads(Path(path).read_text()).get("loops", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def bar(done: int, total: int | None, width: int = 12) -> str:
    """``done/total [#####.......]`` (or just ``done`` when the total is unknown)."""
    if not total:
        return f"{done}"
    k = max(0, min(width, round(width * done / total)))
    return f"{done}/{total} [{'#' * k}{'.' * (width - k)}]"

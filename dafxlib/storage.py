"""Atomic, locked file writes (JSON, npz, torch): a killed run never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import CorruptFileError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The parsed file, ``default`` when it does not exist, CorruptFileError when it is damaged."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(
            f"{path} is damaged (not valid JSON: {exc}); delete it and run again "
            "(it is rebuilt), or run_all.sh --rebuild"
        ) from exc


def remove_temp_files(folder: str | os.PathLike, names: Any) -> int:
    """Delete the temporary files :func:`atomic_path` leaves beside ``folder/<name>`` when a
    process is killed mid-write (``.<name>.*``). Call only where no other writer is active."""
    folder = Path(folder)
    removed = 0
    for name in names:
        for tmp in folder.glob(f".{name}.*"):
            if tmp.is_file() and not tmp.name.endswith(".lock"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock on ``path + '.lock'`` for read-modify-write cycles."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_json(path: str | os.PathLike, fn: Callable[[Any], Any], default: Any = None) -> Any:
    """Atomically read, transform and write a JSON file under a lock."""
    with locked(path):
        obj = read_json(path, default if default is not None else {})
        obj = fn(obj)
        write_json(path, obj)
    return obj


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

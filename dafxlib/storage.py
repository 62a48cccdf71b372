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


class NpzRows:
    """Rows of one uncompressed ``.npz`` member read from disk on demand, never held whole.

    Indexing reads only the rows asked for (``os.pread``, no memory map, so the rows read
    do not stay in the process's resident memory): an int gives one row, a slice or an index
    array gives a new array, a tuple indexes the rows first and then the rest. ``len``,
    ``shape``, ``dtype`` and ``ndim`` are those of the stored array; ``numpy.asarray`` reads it
    all.
    """

    def __init__(self, path: str | os.PathLike, offset: int, dtype: Any, shape: tuple[int, ...]):
        import numpy as np

        self.path = Path(path)
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        if not self.shape:
            raise CorruptFileError(f"{path}: NpzRows needs an array with at least one axis")
        self.ndim = len(self.shape)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.nbytes = self.row_bytes * self.shape[0]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<NpzRows {self.path.name}@{self.offset} {self.dtype} {self.shape}>"

    def _read(self, start: int, count: int) -> Any:
        import numpy as np

        out = np.empty((count, *self.row_shape), self.dtype)
        if count == 0 or self.row_bytes == 0:
            return out
        want = count * self.row_bytes
        fd = os.open(self.path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [out.reshape(-1).view(np.uint8).data], self.offset + start * self.row_bytes)
        finally:
            os.close(fd)
        if got != want:
            raise CorruptFileError(f"{self.path} is truncated (read {got} of {want} bytes); delete it and run again")
        return out

    def __getitem__(self, key: Any) -> Any:
        import numpy as np

        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        n = self.shape[0]
        one = isinstance(key, (int, np.integer))
        if one:
            i = int(key) + n if int(key) < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"row {int(key)} out of range for {n} rows")
            out = self._read(i, 1)[0]
        elif isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                out = self._read(start, max(0, stop - start))
            else:
                out = self[np.arange(start, stop, step)]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + n, idx).astype(np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"row index out of range for {n} rows")
            out = np.empty((idx.size, *self.row_shape), self.dtype)
            for j, row in enumerate(idx.tolist()):
                out[j] = self._read(row, 1)[0]
        if not rest:
            return out
        return out[rest] if one else out[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        a = self._read(0, self.shape[0])
        return a if dtype is None else a.astype(dtype, copy=False)


def npz_rows(path: str | os.PathLike) -> dict[str, Any]:
    """The members of an ``.npz`` file: :class:`NpzRows` readers for uncompressed arrays
    with at least one axis (as :func:`save_npz` writes them), loaded arrays for the rest."""
    import zipfile

    import numpy as np

    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.compress_type != zipfile.ZIP_STORED:
                    with zf.open(info) as member:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                    continue
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise CorruptFileError(f"{path}: bad zip member header for {info.filename}")
                start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                start += int.from_bytes(local[28:30], "little")
                fh.seek(start)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    shape, fortran, dtype = (), True, None
                if fortran or dtype is None or dtype.hasobject or not shape:
                    with zf.open(info) as member:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                else:
                    out[name] = NpzRows(path, fh.tell(), dtype, shape)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptFileError(f"{path} is damaged ({exc}); delete it and run again (it is rebuilt)") from exc
    return out

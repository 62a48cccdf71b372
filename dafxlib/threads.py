"""Torch thread control: how many intra-op threads a block of work runs on, in one place.

On a busy machine with few cores, multi-threaded small torch ops stall on thread barriers
(measured here on 2 cores: 7 ms vs 50-300 ms per small STFT batch), so short metric and
search loops run on one thread there, and controller training takes its count from the
profile (``controller.torch_threads``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError

__all__ = ["few_cores", "set_torch_threads", "single_thread", "threads_callback", "torch_threads"]

#: machines with at most this many cores count as "few" (small ops run on one thread)
FEW_CORES = 4


def few_cores() -> bool:
    """True on machines with at most :data:`FEW_CORES` cores."""
    return (os.cpu_count() or 1) <= FEW_CORES


def set_torch_threads(n: int | None) -> int:
    """Set torch's intra-op threads to ``n`` (``None``: every core); return the count now in force."""
    import torch

    count = int(n) if n is not None else int(os.cpu_count() or 1)
    if count < 1:
        raise ConfigError(f"torch thread count must be >= 1 or None, got {n}")
    torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged), then restore."""
    import torch

    if n is None:
        yield
        return
    if int(n) < 1:
        raise ConfigError(f"controller.torch_threads must be >= 1 or None, got {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def single_thread(enabled: bool | None = None) -> Iterator[None]:
    """Run small torch ops on one thread (restored after); ``enabled=None``: only when :func:`few_cores`."""
    if enabled is None:
        enabled = few_cores()
    with torch_threads(1 if enabled else None):
        yield


def threads_callback(n: int | None) -> Any:
    """A Lightning callback that sets ``n`` torch threads once the Trainer starts (``fit`` sets its own before)."""
    import lightning.pytorch as pl
    import torch

    class _Threads(pl.Callback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if n is not None:
                torch.set_num_threads(int(n))

    return _Threads()

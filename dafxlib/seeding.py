"""Stable hashes and seeds: every cache key and every derived random seed comes from here.

All of them are independent of ``PYTHONHASHSEED`` and of the platform.

Two seed derivations exist and both are kept on purpose: :func:`derive_seed` (training
examples, widgets, latent planes) and :func:`mix_seed` (evaluation cells). Replacing one by
the other would redraw every cached example set and move every number of the canonical run
without fixing anything, so they stay as they are, side by side, in this one place.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

import numpy as np

__all__ = ["array_hash", "derive_seed", "mix_seed", "stable_hash", "unit_hash"]


def stable_hash(obj: Any, n: int = 12) -> str:
    """First ``n`` hex digits of the SHA-1 of ``obj`` as sorted JSON (non-JSON values as ``str``)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def array_hash(*parts: Any, n: int = 12) -> str:
    """First ``n`` hex digits of the SHA-1 over arrays (their bytes, C order) and strings, in order."""
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, str):
            h.update(p.encode())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()[:n]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any printable parts (SHA-1 of ``"|".join(parts)``)."""
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def mix_seed(base: int, *parts: Any) -> int:
    """A 31-bit seed from a base seed and labels (CRC-32 of ``"/".join(parts)``), for evaluation cells."""
    return (int(base) * 1_000_003 + zlib.crc32("/".join(map(str, parts)).encode())) % (2**31)


def unit_hash(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed`` (SHA-256), for file-level splits."""
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64

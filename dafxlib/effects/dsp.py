"""Small DSP kernels behind the portable effects (numba for sample loops, scipy filters).

Kernels compute in float64 and release the GIL, so render threads run them in parallel.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def ringmod_kernel(x, dphi, fb):
    """``y[n] = (x[n] + fb * y[n-1]) * sin(phi_n)``, phi advancing ``dphi`` rad per sample."""
    n = x.shape[0]
    y = np.empty(n, np.float32)
    phi = 0.0
    prev = 0.0
    two_pi = 2.0 * math.pi
    for i in range(n):
        v = (x[i] + fb * prev) * math.sin(phi)
        prev = v
        y[i] = v
        phi += dphi
        if phi >= two_pi:
            phi -= two_pi
    return y


@numba.njit(nogil=True, cache=True)
def delay_kernel(x, d1, d2, fb, pole, lp_gain, hp_gain, wet, dry):
    """Two-tap feedback delay with a tone filter in the loop.

    Taps at ``d1`` and ``d2`` samples are averaged; their sum times ``fb`` goes back into
    the line through a one-pole filter blend ``lp_gain * LP + hp_gain * (1 - LP)`` (gain
    <= 1 at every frequency, so ``fb < 1`` keeps the loop stable). The first echo is
    filtered too, as in mda Delay.
    """
    n = x.shape[0]
    size = max(d1, d2) + 1
    buf = np.zeros(size, np.float64)
    y = np.empty(n, np.float32)
    w = 0
    lp = 0.0
    for i in range(n):
        r1 = w - d1
        if r1 < 0:
            r1 += size
        r2 = w - d2
        if r2 < 0:
            r2 += size
        tap = 0.5 * (buf[r1] + buf[r2])
        s = x[i] + fb * tap
        lp = s + pole * (lp - s)
        buf[w] = lp_gain * lp + hp_gain * (s - lp)
        y[i] = dry * x[i] + wet * tap
        w += 1
        if w == size:
            w = 0
    return y


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def sum_squares(x):
    """Sum of ``x[n]**2`` in float64, in one vectorised pass without the GIL.

    Non-finite exactly when ``x`` holds a NaN or an inf: squares of float32 values are at
    most ~1.2e77, so a float64 sum of them cannot overflow. Only reassociation and
    contraction are relaxed (no "no-NaN" assumption), so NaN and inf propagate. About 3 us
    for a 65k-sample clip, against ~10 us for ``np.isfinite(x).all()`` plus ~35 us for a
    float64 mean square: the cheap check every render and every pool item goes through.
    """
    s = 0.0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s += v * v
    return s


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def copy_sum_squares(dst, src):
    """``dst[:] = src`` and :func:`sum_squares` of ``src`` in the same pass (one read)."""
    s = 0.0
    for i in range(src.shape[0]):
        v = src[i]
        dst[i] = v
        w = np.float64(v)
        s += w * w
    return s


@lru_cache(maxsize=512)
def _lr4_sos(sample_rate: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy import signal

    lp = signal.butter(2, cutoff, "lowpass", fs=sample_rate, output="sos")
    hp = signal.butter(2, cutoff, "highpass", fs=sample_rate, output="sos")
    return np.concatenate([lp, lp]), np.concatenate([hp, hp])


def lr4_split(x: np.ndarray, sample_rate: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Linkwitz-Riley 4th-order crossover: (low, high) whose sum is an allpass of ``x``."""
    cutoff = float(min(cutoff, 0.45 * sample_rate))
    from scipy import signal

    lp, hp = _lr4_sos(int(sample_rate), round(cutoff, 6))
    return signal.sosfilt(lp, x), signal.sosfilt(hp, x)


def lr4_allpass(x: np.ndarray, sample_rate: int, cutoff: float) -> np.ndarray:
    """The allpass a LR4 split at ``cutoff`` applies (to keep bands of a 3-way split in phase)."""
    lo, hi = lr4_split(x, sample_rate, cutoff)
    return lo + hi


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))

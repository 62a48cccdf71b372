"""Statistics shared by every stage: bootstrap intervals of a mean and of a difference of means, Holm correction.

Bootstrap intervals come from ``scipy.stats.bootstrap`` (seeded, vectorised): BCa for a
mean, whose per-clip metrics are skewed; the percentile
interval is used where BCa is undefined (too few values or all values equal) and, by
default, for differences of large samples (see :func:`mean_diff_ci`).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

__all__ = ["holm", "mean_ci", "mean_diff_ci"]

Method = Literal["BCa", "percentile", "basic"]
#: resamples per vectorised batch: 6x faster than all at once for 5,000-value samples (cache-sized arrays)
_BATCH = 64


def _finite(values: object) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _interval(
    data: tuple[np.ndarray, ...], statistic, n_resamples: int, seed: int, level: float, method: Method
) -> tuple[float, float]:
    from scipy import stats

    for m in dict.fromkeys((method, "percentile")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa warns (and returns NaN) on degenerate samples
            res = stats.bootstrap(
                data,
                statistic,
                n_resamples=int(n_resamples),
                confidence_level=level,
                method=m,
                vectorized=True,
                paired=False,
                batch=_BATCH,
                random_state=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return lo, hi
    return float("nan"), float("nan")


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def mean_ci(
    values: object, n_resamples: int = 1000, seed: int = 0, level: float = 0.95, method: Method = "BCa"
) -> tuple[float | None, float | None, float | None]:
    """Mean of the finite values and its bootstrap interval: (mean, lo, hi).

    ``(None, None, None)`` when no value is finite; ``(mean, mean, mean)`` for one value or
    ``n_resamples < 1``. The interval always contains the mean.
    """
    v = _finite(values)
    if v.size == 0:
        return None, None, None
    mean = float(v.mean())
    if v.size == 1 or n_resamples < 1 or np.all(v == v[0]):
        return mean, mean, mean
    lo, hi = _interval((v,), _mean, n_resamples, seed, level, method)
    return mean, float(min(lo, mean)), float(max(hi, mean))


def mean_diff_ci(
    a: object, b: object, n_resamples: int = 1000, seed: int = 0, level: float = 0.95, method: Method = "percentile"
) -> tuple[float, float, float]:
    """Difference of the means of two independent samples (a - b) and its bootstrap interval,
    each sample resampled on its own (unpaired): (diff, lo, hi). NaN when either sample is empty.

    Percentile by default: BCa's jackknife costs over a second per pair of 5,000-clip samples here.
    """
    va, vb = _finite(a), _finite(b)
    if va.size == 0 or vb.size == 0:
        return float("nan"), float("nan"), float("nan")
    diff = float(va.mean() - vb.mean())
    if va.size == 1 and vb.size == 1 or n_resamples < 1:
        return diff, diff, diff
    lo, hi = _interval((va, vb), _diff, n_resamples, seed, level, method)
    return diff, float(min(lo, diff)), float(max(hi, diff))


def holm(p: object) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as ``p``; NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adj = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    out[order] = np.minimum(adj, 1.0)
    return out

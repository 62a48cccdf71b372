"""The shared statistics: bootstrap intervals (scipy.stats.bootstrap) and the Holm correction."""

from __future__ import annotations

import numpy as np
import pytest

from dafxlib.stats import holm, mean_ci, mean_diff_ci


def test_mean_interval_contains_the_mean_is_seeded_and_narrows_with_n():
    rng = np.random.default_rng(0)
    v = rng.gamma(2.0, 0.5, 40)
    mean, lo, hi = mean_ci(v, 500, seed=1)
    assert lo < mean < hi and mean == pytest.approx(v.mean())
    assert mean_ci(v, 500, seed=1) == (mean, lo, hi)
    _, lo2, hi2 = mean_ci(np.concatenate([v] * 9), 500, seed=1)
    assert hi2 - lo2 < hi - lo
    assert mean_ci(np.concatenate([v, [np.nan]]), 500, seed=1) == (mean, lo, hi)  # non-finite values ignored
    assert mean_ci([np.nan], 100) == (None, None, None)
    assert mean_ci([2.0, 2.0, 2.0], 100) == (2.0, 2.0, 2.0)


def test_mean_interval_agrees_with_normal_theory_on_a_large_sample():
    v = np.random.default_rng(1).normal(3.0, 2.0, 4000)
    mean, lo, hi = mean_ci(v, 2000, seed=0)
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert lo < 3.0 < hi


def test_unpaired_difference_finds_a_real_shift_and_not_a_null_one():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1.0, 3000), rng.normal(1.2, 1.0, 2000)  # unequal sizes: unpaired by design
    d, lo, hi = mean_diff_ci(a, b, 1000, seed=3)
    assert d == pytest.approx(a.mean() - b.mean()) and lo < d < hi < 0
    d0, lo0, hi0 = mean_diff_ci(a, a.copy(), 1000, seed=3)  # the same sample twice: no shift
    assert d0 == 0 and lo0 < 0 < hi0
    assert all(np.isnan(mean_diff_ci([], b)))


def test_holm_adjusts_in_order_and_keeps_nan():
    adj = holm([0.01, 0.04, 0.03, np.nan, 0.5])
    np.testing.assert_allclose(adj[[0, 1, 2, 4]], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adj[3])
    assert (holm([0.9, 0.8]) <= 1).all()

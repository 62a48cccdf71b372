"""SPSA gradient quality: the finite-difference reference, cosine against K, estimator options."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dafxlib.e2e import gradcheck
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError
from dafxlib.spsa import EffectLayer, check_n_perturbations

SR = 8000


class Gain(Effect):
    """y = g x with g = 0.1 + 1.9 p: dL/dp is known in closed form."""

    name = "Gain"

    def __init__(self):
        super().__init__([ParamSpec("gain", 0.1, 2.0, 1.0)])

    def _render(self, audio, sample_rate, raw):
        return raw["gain"] * audio


class ToyMix(Effect):
    """Four smooth knobs mixing four transforms of x (gradient direction depends on all four)."""

    name = "ToyMix"

    def __init__(self):
        super().__init__([ParamSpec(n, 0.0, 1.0, 0.5) for n in ("a", "b", "c", "d")])

    def _render(self, audio, sample_rate, raw):
        return raw["a"] * audio + raw["b"] * np.tanh(3 * audio) + raw["c"] * audio**3 + raw["d"] * np.roll(audio, 3)


class SerialPool:
    def __init__(self, effect):
        self.effect = effect
        self.sizes: list[int] = []

    def render(self, audios, params01):
        self.sizes.append(len(audios))
        out = np.stack([self.effect.process(a, SR, p) for a, p in zip(audios, params01)])
        return SimpleNamespace(audio=out.astype(np.float32), failed=[], ok=np.ones(len(audios), bool))


def _signals(b, n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.6 * np.sin(2 * np.pi * rng.uniform(100, 600, (b, 1)) * t) + 0.1 * rng.standard_normal((b, n))).astype(
        np.float32
    )


def _mse_rows(y_hat, y):
    return ((np.asarray(y_hat, np.float64) - np.asarray(y, np.float64)) ** 2).sum(axis=1)


def test_fd_reference_matches_the_analytic_gradient_of_a_gain():
    eff = Gain()
    pool = SerialPool(eff)
    x = _signals(3)
    g_true = 0.1 + 1.9 * 0.8
    y = g_true * x
    # interior, near the lower bound (step shrinks to 0.005) and at the upper bound (centre moves in)
    p = np.array([[0.3], [0.005], [1.0]])
    ref = gradcheck.fd_gradient(lambda a, q: pool.render(a, q).audio, _mse_rows, x, y, p, h=0.02)
    g = 0.1 + 1.9 * p[:, 0]
    analytic = 2 * ((g[:, None] - g_true) * x.astype(np.float64) ** 2).sum(axis=1) * 1.9
    # the loss is quadratic in p: central differences are exact about their centre; at p=1 the
    # centre is 1 - 1e-3 (min_h), an O(1e-3) shift of the slope
    np.testing.assert_allclose(ref[:2, 0], analytic[:2], rtol=1e-4)
    np.testing.assert_allclose(ref[2, 0], analytic[2], rtol=1e-2)
    assert pool.sizes == [2 * 3]  # one render call of 2 B P


def test_spsa_cosine_rises_with_the_number_of_perturbations():
    eff = ToyMix()
    x = _signals(6, seed=1)
    p_true = np.random.default_rng(2).uniform(0.2, 0.8, (6, 4))
    y = np.stack([eff.process(a, SR, q) for a, q in zip(x, p_true)]).astype(np.float32)
    rows, info = gradcheck.gradient_quality(
        eff,
        x,
        y,
        p_true,
        SR,
        loss_fn=lambda a, b: ((a - b) ** 2).sum(),
        l1_weight=0.0,
        perturbations=(1, 2, 4, 8),
        epsilons=(0.02,),
        distances=(0.1, 0.3),
        draws=16,
        seed=3,
        pool=SerialPool(eff),
    )
    s = gradcheck.summarise(rows, by=("K",)).set_index("K")["mean"]
    assert s[1] < s[2] < s[4] < s[8], s
    # ideal SPSA on P=4 smooth knobs: ~sqrt(K / (K + P - 1)) -> ~0.5 at K=1, ~0.85 at K=8
    assert 0.3 < s[1] < 0.7 and s[8] > 0.75, s
    assert info["ref_self_cosine"] > 0.999  # a smooth effect has a well-defined reference
    assert {"renders", "loss_evals"} <= set(info)


def test_layer_averages_k_perturbations_in_one_pool_call():
    eff = ToyMix()
    pool = SerialPool(eff)
    layer = EffectLayer(eff, SR, pool=pool, epsilon=0.02, n_perturbations=3)
    x = torch.from_numpy(_signals(4))
    p = torch.full((4, 4), 0.5, requires_grad=True)
    layer(x, p).pow(2).sum().backward()
    assert pool.sizes == [4, 2 * 3 * 4]
    assert layer.renders_per_example_per_step == 6
    assert torch.all(torch.isfinite(p.grad)) and p.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", None])
def test_bad_perturbation_counts_are_rejected(bad):
    with pytest.raises(ConfigError):
        check_n_perturbations(bad)
    eff = ToyMix()
    with pytest.raises(ConfigError):
        EffectLayer(eff, SR, pool=SerialPool(eff), n_perturbations=bad)


def test_gradient_quality_rejects_bad_settings():
    eff = ToyMix()
    x = _signals(2)
    p = np.full((2, 4), 0.5)
    kw = dict(loss_fn=lambda a, b: ((a - b) ** 2).sum(), pool=SerialPool(eff))
    with pytest.raises(ConfigError):
        gradcheck.gradient_quality(eff, x, x, p, SR, perturbations=(1, 32), draws=16, **kw)
    with pytest.raises(ConfigError):
        gradcheck.gradient_quality(eff, x, x, p, SR, epsilons=(0.6,), **kw)
    with pytest.raises(ConfigError):
        gradcheck.gradient_quality(eff, x, x, p[:, :3], SR, **kw)
    with pytest.raises(ConfigError):
        gradcheck.points_at_distance(p, 0.0, np.random.default_rng(0))
    with pytest.raises(ConfigError):
        gradcheck.fd_gradient(lambda a, q: a, _mse_rows, x, x, p, h=0.0)


def test_points_sit_at_the_requested_distance():
    p = gradcheck.points_at_distance(np.zeros((50, 5)), 0.05, np.random.default_rng(0))
    np.testing.assert_allclose(np.minimum(p, 1 - p).min(axis=1), 0.05)

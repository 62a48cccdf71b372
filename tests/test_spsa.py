"""SPSA through a black-box effect: agreement with autograd, bounds, counting, training."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError, EffectError
from dafxlib.spsa import EffectLayer, epsilon_schedule, perturbation_points

SR = 8000


class ToyDrive(Effect):
    """gain * ((1 - mix) * x + mix * tanh(drive * x)): smooth in every knob."""

    name = "ToyDrive"

    def __init__(self):
        super().__init__(
            [ParamSpec("gain", 0.2, 2.0, 1.0), ParamSpec("drive", 0.5, 6.0, 1.0), ParamSpec("mix", 0.0, 1.0, 0.5)]
        )

    def _render(self, audio, sample_rate, raw):
        return raw["gain"] * ((1 - raw["mix"]) * audio + raw["mix"] * np.tanh(raw["drive"] * audio))


def toy_torch(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The same function in torch (autograd reference), p normalised."""
    gain = 0.2 + 1.8 * p[:, 0:1]
    drive = 0.5 + 5.5 * p[:, 1:2]
    mix = p[:, 2:3]
    return gain * ((1 - mix) * x + mix * torch.tanh(drive * x))


class SerialPool:
    """Minimal stand-in for dafxlib.render.RenderPool that records its calls."""

    def __init__(self, effect, fail_rows=()):
        self.effect = effect
        self.calls: list[np.ndarray] = []
        self.fail_rows = set(fail_rows)

    def render(self, audios, params01):
        self.calls.append(np.array(params01))
        out = np.stack([self.effect.process(a, SR, p) for a, p in zip(audios, params01)])
        ok = np.ones(len(audios), bool)
        failed = []
        for i in self.fail_rows:
            if i < len(audios):
                out[i] = 0
                ok[i] = False
                failed.append((i, "exception"))
        return SimpleNamespace(audio=out.astype(np.float32), failed=failed, ok=ok)


def _signal(n=512, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    env = np.linspace(0.1, 1.0, n)
    return (env * np.sin(2 * np.pi * 220 * t) + 0.2 * rng.standard_normal(n)).astype(np.float32)


def _autograd_and_spsa(p0, p_target, epsilon, draws=400, seed=0):
    eff = ToyDrive()
    x1 = torch.from_numpy(_signal())
    target = toy_torch(x1[None], torch.tensor([p_target])).detach()
    # autograd reference
    p_ref = torch.tensor([p0], dtype=torch.float32, requires_grad=True)
    ((toy_torch(x1[None], p_ref) - target) ** 2).sum().backward()
    g_true = p_ref.grad[0].double()
    # SPSA: one batch of `draws` copies = `draws` independent Rademacher draws
    pool = SerialPool(eff)
    layer = EffectLayer(eff, SR, pool=pool, epsilon=epsilon, seed=seed)
    x = x1[None].repeat(draws, 1)
    p = torch.tensor([p0] * draws, dtype=torch.float32, requires_grad=True)
    ((layer(x, p) - target) ** 2).sum().backward()
    g_spsa = p.grad.double().mean(0)
    return g_true, g_spsa, layer, pool


def test_spsa_agrees_with_autograd():
    # target chosen so that all three gradient components matter (not just the gain)
    g_true, g_spsa, layer, _ = _autograd_and_spsa([0.4, 0.5, 0.6], [0.4, 0.1, 0.3], epsilon=0.05)
    cos = torch.nn.functional.cosine_similarity(g_true, g_spsa, dim=0).item()
    assert cos > 0.95, (g_true, g_spsa)
    assert 0.8 < (g_spsa.norm() / g_true.norm()).item() < 1.2


def test_near_bound_estimate_is_unbiased_and_inside_box():
    p0 = [0.02, 0.985, 0.5]
    # a mirrored perturbation fails this (norm ratio ~0.3): its two sides are not symmetric
    g_true, g_spsa, layer, pool = _autograd_and_spsa(p0, [0.02, 0.5, 0.3], epsilon=0.1, draws=600)
    cos = torch.nn.functional.cosine_similarity(g_true, g_spsa, dim=0).item()
    assert cos > 0.95, (g_true, g_spsa)
    assert 0.8 < (g_spsa.norm() / g_true.norm()).item() < 1.2
    pert = pool.calls[-1]
    assert pert.min() >= 0 and pert.max() <= 1
    b = len(pert) // 2
    # symmetric about p with the shrunk scalar epsilon (0.015 = distance of 0.985 to 1)
    np.testing.assert_allclose((pert[:b] + pert[b:]) / 2, np.array([p0] * b), atol=1e-6)
    np.testing.assert_allclose(np.abs(pert[:b] - pert[b:]) / 2, 0.015, atol=1e-6)


def test_mirroring_would_be_biased_but_shrinking_is_not():
    """Guard against 'fixing' the bounds by reflection: it halves the near-bound slope."""
    p = np.array([[0.01, 0.5, 0.5]])
    delta = np.array([[1.0, 1.0, -1.0]])
    p_plus, p_minus, eps = perturbation_points(p, 0.1, delta)
    assert eps[0] == pytest.approx(0.01)
    np.testing.assert_allclose(p_plus - p, -(p_minus - p))
    # min_epsilon floor: a parameter at the bound moves the centre inwards, never one-sided
    p_plus, p_minus, eps = perturbation_points(np.array([[0.0, 0.5, 1.0]]), 0.1, delta, min_epsilon=1e-3)
    assert eps[0] == pytest.approx(1e-3)
    assert p_plus.min() >= 0 and p_minus.max() <= 1
    np.testing.assert_allclose(np.abs(p_plus - p_minus), 2e-3)


def test_two_renders_per_example_in_one_pool_call():
    eff = ToyDrive()
    pool = SerialPool(eff)
    layer = EffectLayer(eff, SR, pool=pool, epsilon=0.05)
    b = 5
    x = torch.from_numpy(np.stack([_signal(seed=i) for i in range(b)]))
    for step in range(3):
        p = torch.rand(b, 3, generator=torch.Generator().manual_seed(step)).requires_grad_()
        layer(x, p).pow(2).mean().backward()
    # per step: one forward call of B, one perturbation call of 2B
    assert [len(c) for c in pool.calls] == [b, 2 * b] * 3
    assert layer.renders_per_example_per_step == 2
    assert layer.renders_forward == 3 * b and layer.renders_perturbation == 6 * b
    assert layer.backward_steps == 3 and layer.pool_calls == 6
    # no grad needed: forward only, no perturbation renders
    with torch.no_grad():
        layer(x, p)
    assert layer.renders_perturbation == 6 * b


def test_failed_renders_give_zero_gradient_rows():
    eff = ToyDrive()
    pool = SerialPool(eff, fail_rows={1})  # row 1 of the 2B perturbation batch = example 1 (+)
    layer = EffectLayer(eff, SR, pool=pool, epsilon=0.05)
    x = torch.from_numpy(np.stack([_signal(seed=i) for i in range(3)]))
    p = torch.full((3, 3), 0.5, requires_grad=True)
    layer(x, p).pow(2).sum().backward()
    assert torch.all(p.grad[1] == 0)
    assert torch.any(p.grad[0] != 0) and torch.any(p.grad[2] != 0)
    assert layer.failed_renders == 2  # forward row 1 and perturbation row 1


def test_bad_inputs_and_schedule():
    eff = ToyDrive()
    layer = EffectLayer(eff, SR, pool=SerialPool(eff))
    x = torch.zeros(2, 64)
    with pytest.raises(EffectError):
        layer(x, torch.full((2, 2), 0.5))
    with pytest.raises(EffectError):
        layer(x, torch.full((2, 3), 1.5))
    with pytest.raises(ConfigError):
        EffectLayer(eff, SR, pool=SerialPool(eff), epsilon=0.0)
    with pytest.raises(ConfigError):
        epsilon_schedule("cosine", 0.1)
    sched = epsilon_schedule("decay", 0.1)
    assert sched(0) == pytest.approx(0.1) and sched(100) < sched(10) < 0.1


def test_training_through_spsa_recovers_true_parameters():
    eff = ToyDrive()
    layer = EffectLayer(eff, SR, pool=SerialPool(eff), epsilon=0.02, seed=1)
    x = torch.from_numpy(np.stack([_signal(256, seed=i) * (0.3 + 0.5 * i) for i in range(4)]))
    p_true = np.array([0.7, 0.3, 0.6])
    y = torch.from_numpy(np.stack([eff.process(a.numpy(), SR, p_true) for a in x]))
    logits = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(400):
        p = torch.sigmoid(logits)[None].expand(len(x), 3)
        loss = (layer(x, p) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(torch.sigmoid(logits).detach().numpy(), p_true, atol=0.05)


def test_with_real_render_pool():
    from dafxlib import render

    eff = ToyDrive()
    x = torch.from_numpy(np.stack([_signal(seed=i) for i in range(4)]))
    with render.RenderPool(eff, SR, workers=2) as pool:
        layer = EffectLayer(eff, SR, pool=pool, epsilon=0.05)
        p = torch.full((4, 3), 0.5, requires_grad=True)
        y = layer(x, p)
        y.pow(2).mean().backward()
    expect = np.stack([eff.process(a.numpy(), SR, [0.5] * 3) for a in x])
    np.testing.assert_allclose(y.detach().numpy(), expect, atol=1e-6)
    assert layer.renders_per_example_per_step == 2
    assert torch.all(torch.isfinite(p.grad)) and p.grad.abs().sum() > 0

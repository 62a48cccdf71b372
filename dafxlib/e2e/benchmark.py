"""Timing of one SPSA training step, split into renders, loss and the rest."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ..config import Profile
from ..spsa import EffectLayer
from ..threads import torch_threads
from .train import audio_loss_fn


def spsa_benchmark(
    profile: Profile,
    effect_key: str = "overdrive",
    *,
    batch_size: int | None = None,
    steps: int = 3,
    workers: Iterable[int] = (1, 2),
    seed: int | None = None,
) -> dict[str, Any]:
    """Time full SPSA training steps (forward render, loss, 2KB perturbation renders, update)
    with render pools of 1 and 2 workers on random clips. Returns per-worker timings and the
    counted renders per example per step."""
    with torch_threads(profile.controller.torch_threads):
        return _spsa_benchmark(profile, effect_key, batch_size=batch_size, steps=steps, workers=workers, seed=seed)


def _spsa_benchmark(
    profile: Profile, effect_key: str, *, batch_size: int | None, steps: int, workers: Iterable[int], seed: int | None
) -> dict[str, Any]:
    from ..effects import get_effect
    from ..render import RenderPool

    seed = profile.seed if seed is None else int(seed)
    effect = get_effect(effect_key, profile.effects.effect_set)
    sr, n = profile.data.sample_rate, profile.half_samples
    b = batch_size or profile.controller.spsa_batch_size
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = (
        0.3 * np.sin(2 * np.pi * rng.uniform(100, 800, (b, 1)) * t) * rng.uniform(0.3, 1, (b, 1))
        + 0.02 * rng.standard_normal((b, n))
    ).astype(np.float32)
    y = np.stack([effect.process(a, sr, rng.uniform(0, 1, effect.n_params)) for a in x]).astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = audio_loss_fn(profile.controller.loss_fft_sizes, profile.controller.loss_hop_fraction)
    out: dict[str, Any] = {"effect": effect.key, "batch_size": b, "steps": steps, "per_workers": {}}
    for w in workers:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            logits = torch.zeros(b, effect.n_params, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=1e-2)
        with RenderPool(effect, sr, workers=w) as pool:
            layer = EffectLayer(
                effect,
                sr,
                pool=pool,
                epsilon=profile.controller.spsa_epsilon,
                n_perturbations=profile.controller.spsa_perturbations,
                seed=seed,
            )
            times = []
            for i in range(steps + 1):  # the first step warms the pool up and is not timed
                t0 = time.perf_counter()
                y_hat = layer(xt, torch.sigmoid(logits))
                loss = loss_fn(y_hat[:, None], yt[:, None]) + (y_hat - yt).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i == 0:
                    layer.reset_counters()
                else:
                    times.append(time.perf_counter() - t0)
            step_s = float(np.mean(times))
            renders = layer.renders_forward + layer.renders_perturbation
            out["per_workers"][int(w)] = {
                "step_seconds": step_s,
                "render_seconds_per_step": layer.render_seconds / steps,
                "renders_per_step": renders / steps,
                "renders_per_second": renders / layer.render_seconds,
                "renders_per_example_per_step": layer.renders_per_example_per_step,
                "forward_renders_per_example_per_step": layer.renders_forward / (steps * b),
            }
    ws = sorted(out["per_workers"])
    first, last = out["per_workers"][ws[0]], out["per_workers"][ws[-1]]
    out["parallel_speedup"] = first["step_seconds"] / last["step_seconds"]
    out["render_speedup"] = first["render_seconds_per_step"] / last["render_seconds_per_step"]
    out["renders_per_example_per_step"] = last["renders_per_example_per_step"]
    out["forward_renders_per_example_per_step"] = last["forward_renders_per_example_per_step"]
    out["step_seconds"] = last["step_seconds"]
    out["renders_per_second"] = last["renders_per_second"]
    return out

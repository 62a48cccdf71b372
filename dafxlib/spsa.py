"""Gradients through a black-box audio effect by simultaneous perturbation (SPSA).

:class:`EffectLayer` renders a batch of audio through any :class:`~dafxlib.effects.base.Effect`
with parameters ``p`` of shape (B, P) in [0, 1]. The forward pass is an ordinary render
(one pool call of B items). The backward pass estimates the vector-Jacobian product
``g = J(p)^T v`` (``v`` = ``grad_output``, ``J = dy/dp``) with a two-sided simultaneous
perturbation (Spall 1992; as used by DeepAFx-ST, Steinmetz et al. 2022):

    Delta ~ Rademacher(+-1)^P,       y+- = effect(x, p +- eps * Delta)
    v^T J Delta  ~=  v . (y+ - y-) / (2 eps)
    g_j = v . (y+ - y-) / (2 eps) * Delta_j^{-1}      (Delta_j^{-1} = Delta_j)

``E[Delta Delta^T] = I`` makes ``E[g] = J^T v + O(eps^2)``. ``n_perturbations = K``
independent Deltas per example are averaged; each costs two renders (``p + eps Delta`` and
``p - eps Delta``), all 2KB rendered together in ONE pool call so the render workers run them
in parallel. The forward render is counted separately (``renders_forward``).

Why average K perturbations (measured by :mod:`dafxlib.e2e.gradcheck`, notebook 04's
gradient-quality figure). A single Delta gives the true gradient's direction plus noise
along the P - 1 other directions: its cosine with a finite-difference reference is about
``sqrt(K / (K + P - 1))``, ~0.5 for Overdrive (P = 3) and ~0.25 for Dynamics (P = 10) at
K = 1, rising to ~0.9 and ~0.6 at K = 8; epsilon (0.01-0.1) and the distance to the bounds
(the per-example shrink below) barely change it. On a CPU the audio loss, evaluated ONCE per
step whatever K is (``v`` is shared by every Delta), costs more than the renders, so K > 1
buys gradient quality at the price of renders alone, where taking K times as many K = 1
steps would pay K loss evaluations for the same averaging. Antithetic pairs are what the
two-sided difference already is. For a modulation effect (Flanger) the cosine stays near 0
for every K and epsilon: the loss has no well-defined slope at these scales (the
finite-difference reference disagrees with itself at h and h/2), so no estimator helps there.

Bounds. Perturbed settings must stay in [0, 1]. We **shrink a per-example scalar**
``eps_i = min(eps, min_j min(p_ij, 1 - p_ij))`` so that ``p_i +- eps_i Delta_i`` is inside the
box; the estimator stays the symmetric central difference with the same Delta, hence
unbiased to O(eps_i^2) (mirroring at the bounds would not be: the two sides would no longer
be symmetric about p). A scalar per example keeps the ``Delta^{-1}`` form exact (a per-
coordinate eps would need ``Delta_j / eps_j`` weights and inflate the variance of the
near-bound coordinates). ``eps_i`` never drops below ``min_epsilon``: for the rare parameter
closer than that to a bound the perturbation is centred at ``clip(p, eps_i, 1 - eps_i)``
(an O(min_epsilon) shift of the evaluation point, never a one-sided difference).

Failed renders (non-finite, silent, exception; see :class:`dafxlib.render.RenderPool`) give
zero audio in the forward pass and a zero gradient row in the backward pass; they are
counted in ``failed_renders``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, EffectError

#: Spall's recommended decay exponent for the perturbation size c_k = c / (k + 1)^gamma
SPALL_GAMMA = 0.101


def epsilon_schedule(schedule: str | Callable[[int], float] | None, epsilon: float) -> Callable[[int], float]:
    """Turn a schedule spec into ``step -> epsilon``.

    ``None`` / ``"constant"``: always ``epsilon``; ``"decay"``: ``epsilon / (step + 1)**0.101``
    (Spall's gain sequence); a callable ``step -> epsilon`` is used as is.
    """
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 0.5):
        raise ConfigError(f"SPSA epsilon must be a number in (0, 0.5), got {epsilon!r}")
    if schedule is None or schedule == "constant":
        return lambda step: float(epsilon)
    if schedule == "decay":
        return lambda step: float(epsilon) / (step + 1) ** SPALL_GAMMA
    if callable(schedule):
        return schedule
    raise ConfigError(
        f"unknown SPSA epsilon schedule {schedule!r}; use None, 'constant', 'decay' or a callable step -> epsilon"
    )


def perturbation_points(
    p: np.ndarray, epsilon: float, delta: np.ndarray, min_epsilon: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two settings SPSA renders for each example, and the per-example scalar eps.

    ``p`` (B, P) in [0, 1], ``delta`` (B, P) of +-1. Returns ``(p_plus, p_minus, eps)`` with
    ``eps`` (B,) = ``clip(min(epsilon, distance of p to the nearest bound), min_epsilon)``.
    """
    p = np.asarray(p, dtype=np.float64)
    dist = np.minimum(p, 1.0 - p).min(axis=1)
    eps = np.clip(np.minimum(epsilon, dist), min(min_epsilon, epsilon), None)
    centre = np.clip(p, eps[:, None], 1.0 - eps[:, None])
    p_plus = np.clip(centre + eps[:, None] * delta, 0.0, 1.0)
    p_minus = np.clip(centre - eps[:, None] * delta, 0.0, 1.0)
    return p_plus, p_minus, eps


def check_n_perturbations(n: Any) -> int:
    """``n`` as a positive int (perturbations averaged per example per step), else ConfigError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"SPSA n_perturbations must be an int >= 1, got {n!r}")
    return int(n)


def rademacher(gen: torch.Generator, k: int, b: int, n_p: int) -> np.ndarray:
    """``k`` independent Rademacher (+-1) perturbations per example: (k, b, n_p) float64."""
    return (torch.randint(0, 2, (k, b, n_p), generator=gen).to(torch.float64) * 2 - 1).numpy()


def per_draw_estimates(
    render: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    p: np.ndarray,
    v: np.ndarray,
    epsilon: float,
    deltas: np.ndarray,
    min_epsilon: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided SPSA estimates of ``J^T v`` for each of ``K`` perturbations, rendered in ONE call.

    ``render(xs, ps) -> (audio, ok)`` renders a batch; ``x`` (B, N), ``p`` (B, P), ``v`` (B, N)
    (``dL/dy``), ``deltas`` (K, B, P) of +-1. Returns ``g`` (K, B, P) and ``ok`` (K, B) (both
    sides rendered). All 2KB settings go to the pool together so its workers run them in
    parallel.
    """
    k, b, n_p = deltas.shape
    pts = [perturbation_points(p, epsilon, deltas[i], min_epsilon) for i in range(k)]
    ps = np.concatenate([q[0] for q in pts] + [q[1] for q in pts])
    xs = np.concatenate([x] * (2 * k))
    y, ok = render(xs, ps)
    y = np.asarray(y, dtype=np.float64).reshape(2, k, b, -1)
    ok = np.asarray(ok, dtype=bool).reshape(2, k, b)
    diff = y[0] - y[1]
    # the actual half-distance between the two points (equals eps_i unless clipped by rounding)
    half = np.stack([0.5 * np.abs(q[0] - q[1]).max(axis=1) for q in pts])  # (K, B)
    proj = np.einsum("bn,kbn->kb", np.asarray(v, dtype=np.float64), diff) / (2.0 * np.maximum(half, 1e-12))
    g = proj[..., None] * deltas  # Delta^{-1} = Delta for Rademacher entries
    both = ok[0] & ok[1]
    g[~both] = 0.0
    return g, both


def average_draws(g: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Mean over the perturbations that rendered (K, B, P) -> (B, P); zero rows where none did."""
    n = ok.sum(axis=0).astype(np.float64)  # (B,)
    return g.sum(axis=0) / np.maximum(n, 1.0)[:, None]


class _SPSAFunction(torch.autograd.Function):
    """y = effect(x, p); backward: two-sided SPSA estimate of J^T grad_output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: torch.Tensor, layer: EffectLayer) -> torch.Tensor:
        x_np = x.detach().cpu().numpy().astype(np.float32, copy=False)
        p_np = p.detach().cpu().numpy().astype(np.float64)
        y = layer._render(x_np, p_np, kind="forward")
        ctx.layer = layer
        ctx.x_np = x_np
        ctx.p_np = p_np
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        layer: EffectLayer = ctx.layer
        grad_p = None
        if ctx.needs_input_grad[1]:
            v = grad_output.detach().cpu().numpy().astype(np.float64)
            g = layer._estimate(ctx.x_np, ctx.p_np, v)
            grad_p = torch.from_numpy(g).to(device=grad_output.device, dtype=grad_output.dtype)
        return None, grad_p, None


class EffectLayer(nn.Module):
    """Differentiable-by-SPSA wrapper around a black-box effect.

    ``layer(x, p)`` with ``x`` (B, N) audio and ``p`` (B, P) in [0, 1] returns the rendered
    audio (B, N); gradients with respect to ``p`` (not ``x``) come from SPSA.

    Args:
        effect: any Effect.
        sample_rate: sample rate of ``x`` in Hz.
        pool: a :class:`dafxlib.render.RenderPool` (anything with ``render(audios, params01)``
            returning ``.audio``, ``.failed``, ``.ok``). ``None``: the layer opens its own
            ``RenderPool(effect, sample_rate, workers)`` on first use; :meth:`close` ends it.
        epsilon: perturbation size in normalised units (study / DeepAFx-ST use small values;
            0.05 suits effects whose output changes in steps).
        schedule: ``None``/``"constant"``, ``"decay"`` or a callable ``step -> epsilon``.
        min_epsilon: floor of the per-example shrunk epsilon near the bounds.
        seed: seeds the Rademacher draws.

    Counters (reset with :meth:`reset_counters`): ``renders_forward``,
    ``renders_perturbation``, ``examples_backward``, ``backward_steps``, ``pool_calls``,
    ``render_seconds``, ``failed_renders``; :attr:`renders_per_example_per_step` is
    ``renders_perturbation / examples_backward`` (2 by construction, counted).
    """

    def __init__(
        self,
        effect,
        sample_rate: int,
        pool: Any = None,
        epsilon: float = 0.05,
        schedule: str | Callable[[int], float] | None = None,
        *,
        min_epsilon: float = 1e-3,
        n_perturbations: int = 1,
        workers: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive int, got {sample_rate!r}")
        self.effect = effect
        self.sample_rate = int(sample_rate)
        self.epsilon = float(epsilon)
        self._schedule = epsilon_schedule(schedule, epsilon)
        self.min_epsilon = float(min_epsilon)
        self.n_perturbations = check_n_perturbations(n_perturbations)
        self.workers = int(workers)
        self._pool = pool
        self._own_pool = pool is None
        self._gen = torch.Generator().manual_seed(int(seed))
        self.step = 0
        self.reset_counters()

    # ---- bookkeeping -------------------------------------------------------------
    def reset_counters(self) -> None:
        self.renders_forward = 0
        self.renders_perturbation = 0
        self.examples_backward = 0
        self.backward_steps = 0
        self.pool_calls = 0
        self.render_seconds = 0.0
        self.failed_renders = 0

    @property
    def renders_per_example_per_step(self) -> float:
        """Perturbation renders per example per backward step, as counted (2 x n_perturbations)."""
        return self.renders_perturbation / self.examples_backward if self.examples_backward else math.nan

    @property
    def current_epsilon(self) -> float:
        eps = float(self._schedule(self.step))
        if not (0 < eps < 0.5):
            raise ConfigError(f"SPSA epsilon schedule gave {eps} at step {self.step}; it must lie in (0, 0.5)")
        return eps

    @property
    def pool(self):
        if self._pool is None:
            from .render import RenderPool

            self._pool = RenderPool(self.effect, self.sample_rate, workers=self.workers)
            if hasattr(self._pool, "__enter__"):
                self._pool.__enter__()
        return self._pool

    def close(self) -> None:
        """Close the pool if this layer opened it."""
        if self._own_pool and self._pool is not None:
            if hasattr(self._pool, "__exit__"):
                self._pool.__exit__(None, None, None)
            elif hasattr(self._pool, "close"):
                self._pool.close()
            self._pool = None

    def __enter__(self) -> EffectLayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- rendering ---------------------------------------------------------------
    def _render(self, x: np.ndarray, p: np.ndarray, kind: str) -> np.ndarray:
        t0 = time.perf_counter()
        res = self.pool.render(np.ascontiguousarray(x, dtype=np.float32), np.asarray(p, dtype=np.float64))
        self.render_seconds += time.perf_counter() - t0
        self.pool_calls += 1
        n = x.shape[0]
        if kind == "forward":
            self.renders_forward += n
        else:
            self.renders_perturbation += n
        self.failed_renders += len(getattr(res, "failed", ()))
        y = np.asarray(res.audio, dtype=np.float32)
        if y.shape != x.shape:
            raise EffectError(
                f"{self.effect.name}: render returned shape {y.shape} for input {x.shape}; "
                "effects must keep the input length"
            )
        self._last_ok = np.asarray(getattr(res, "ok", np.ones(n, bool)), dtype=bool)
        return y

    def _estimate(self, x: np.ndarray, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        """SPSA estimate of J^T v for each example: (B, P), averaged over ``n_perturbations``."""
        b, n_p = p.shape
        eps = self.current_epsilon
        deltas = rademacher(self._gen, self.n_perturbations, b, n_p)
        g_k, ok_k = per_draw_estimates(
            lambda xs, ps: (self._render(xs, ps, kind="perturbation"), self._last_ok),
            x,
            p,
            v,
            eps,
            deltas,
            self.min_epsilon,
        )
        g = average_draws(g_k, ok_k)
        self.examples_backward += b
        self.backward_steps += 1
        self.step += 1
        return g

    def render(self, x, p) -> np.ndarray:
        """Plain render (no gradient): numpy in, numpy out."""
        x = np.asarray(x, dtype=np.float32)
        p = np.asarray(p, dtype=np.float64)
        self._check(x, p)
        return self._render(x, p, kind="forward")

    def _check(self, x, p) -> None:
        if x.ndim != 2:
            raise EffectError(f"EffectLayer expects audio of shape (B, N), got {tuple(x.shape)}")
        if p.ndim != 2 or p.shape[0] != x.shape[0] or p.shape[1] != self.effect.n_params:
            raise EffectError(
                f"{self.effect.name}: expected params of shape ({x.shape[0]}, "
                f"{self.effect.n_params}) for audio {tuple(x.shape)}, got {tuple(p.shape)}"
            )
        pv = p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p)
        if not np.all(np.isfinite(pv)) or pv.min() < 0 or pv.max() > 1:
            raise EffectError(f"{self.effect.name}: parameters must be finite and in [0, 1] (use a sigmoid output)")

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        self._check(x, p)
        if torch.is_grad_enabled() and p.requires_grad:
            return _SPSAFunction.apply(x, p, self)
        y = self._render(
            x.detach().cpu().numpy().astype(np.float32), p.detach().cpu().numpy().astype(np.float64), kind="forward"
        )
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return (
            f"effect={self.effect.name}, sample_rate={self.sample_rate}, epsilon={self.epsilon}, "
            f"n_perturbations={self.n_perturbations}"
        )

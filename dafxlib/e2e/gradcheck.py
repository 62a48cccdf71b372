"""How good is the SPSA gradient? Cosine against a finite-difference reference through the real effect.

For a few examples of an effect and parameter points at a chosen distance from the [0, 1]
bounds, :func:`gradient_quality` computes

* the **reference** gradient of the per-example training loss ``L(effect(x, p), y)`` with
  respect to ``p`` by central finite differences, one parameter at a time (``2P`` renders and
  ``2P`` loss evaluations per point; step ``h`` shrunk near a bound, centre moved inwards as in
  :func:`dafxlib.spsa.perturbation_points`), and the same at ``h / 2`` to show how well the
  reference itself is defined (a black box with stepped or chaotic output has no unique
  gradient);
* the **SPSA estimate** exactly as :mod:`dafxlib.spsa` computes it in training: ``v = dL/dy``
  by autograd through the loss at the forward render, then
  :func:`~dafxlib.spsa.per_draw_estimates` (two-sided, per-example scalar epsilon) averaged
  over ``K`` perturbations (:func:`~dafxlib.spsa.average_draws`).

``16`` perturbations per point and epsilon are rendered once; the estimates for ``K`` in
``(1, 2, 4, 8)`` average disjoint groups of them, so every ``K`` is scored on the same draws.
The result is a tidy table of cosine similarities; :func:`summarise` gives mean, spread and
count per (effect, epsilon, K, distance).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..config import Profile
from ..errors import ConfigError
from ..spsa import average_draws, check_n_perturbations, per_draw_estimates, rademacher
from ..threads import torch_threads
from .train import audio_loss_fn

#: one static nonlinearity, one dynamics processor, one modulation effect
DEFAULT_EFFECTS = ("overdrive", "dynamics", "flanger")


def _loss_rows(loss_fn: Callable, l1_weight: float, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row training loss ``loss_fn(y_hat_i, y_i) + l1_weight * mean|y_hat_i - y_i|`` (no grad)."""
    out = np.empty(len(y_hat))
    with torch.no_grad():
        for i in range(len(y_hat)):
            a = torch.from_numpy(np.asarray(y_hat[i], np.float32))[None, None]
            b = torch.from_numpy(np.asarray(y[i], np.float32))[None, None]
            out[i] = float(loss_fn(a, b)) + l1_weight * float((a - b).abs().mean())
    return out


def _loss_grad(loss_fn: Callable, l1_weight: float, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dL_i / dy_hat_i`` per row (autograd through the loss), float64 (B, N)."""
    out = np.empty(y_hat.shape, dtype=np.float64)
    for i in range(len(y_hat)):
        a = torch.from_numpy(np.asarray(y_hat[i], np.float32).copy())[None, None].requires_grad_()
        b = torch.from_numpy(np.asarray(y[i], np.float32))[None, None]
        (loss_fn(a, b) + l1_weight * (a - b).abs().mean()).backward()
        grad = a.grad
        assert grad is not None
        out[i] = grad[0, 0].double().numpy()
    return out


def fd_gradient(
    render: Callable[[np.ndarray, np.ndarray], np.ndarray],
    loss_rows: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    h: float,
    min_h: float = 1e-3,
) -> np.ndarray:
    """Central finite-difference gradient of ``loss_rows(render(x, p), y)`` per parameter: (B, P).

    ``render(xs, ps) -> audio`` (B', N); ``loss_rows(y_hat, y) -> (B',)`` per-row losses. The
    step of parameter ``j`` is ``h_j = max(min(h, p_j, 1 - p_j), min_h)`` about
    ``clip(p_j, h_j, 1 - h_j)``, so both sides stay in [0, 1]. One render call of ``2 B P``.
    """
    if not 0 < h < 0.5:
        raise ConfigError(f"finite-difference step must be in (0, 0.5), got {h!r}")
    p = np.asarray(p, dtype=np.float64)
    b, n_p = p.shape
    hj = np.maximum(np.minimum(h, np.minimum(p, 1.0 - p)), min(min_h, h))  # (B, P)
    centre = np.clip(p, hj, 1.0 - hj)
    plus = np.repeat(centre[None], n_p, axis=0)  # (P, B, P): row j perturbs parameter j
    minus = plus.copy()
    for j in range(n_p):
        plus[j, :, j] += hj[:, j]
        minus[j, :, j] -= hj[:, j]
    ps = np.concatenate([plus.reshape(-1, n_p), minus.reshape(-1, n_p)])
    xs = np.concatenate([x] * (2 * n_p))
    ys = np.concatenate([y] * (2 * n_p))
    losses = loss_rows(render(xs, ps), ys).reshape(2, n_p, b)
    return ((losses[0] - losses[1]) / (2.0 * hj.T)).T


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; NaN where either row is (numerically) zero."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.einsum("...i,...i->...", a, b) / (na * nb)
    return np.where((na > 1e-12) & (nb > 1e-12), c, np.nan)


def points_at_distance(p_true: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """Parameter points whose nearest bound is ``distance`` away: a random point in
    ``[distance, 1 - distance]`` (away from the true setting) with one random coordinate
    placed exactly at ``distance`` or ``1 - distance``."""
    if not 0 < distance <= 0.5:
        raise ConfigError(f"distance to the bounds must be in (0, 0.5], got {distance!r}")
    b, n_p = p_true.shape
    p = rng.uniform(distance, 1.0 - distance, size=(b, n_p))
    j = rng.integers(0, n_p, size=b)
    side = rng.integers(0, 2, size=b)
    p[np.arange(b), j] = np.where(side == 1, 1.0 - distance, distance)
    return p


def gradient_quality(
    effect,
    x: np.ndarray,
    y: np.ndarray,
    p_true: np.ndarray,
    sample_rate: int,
    *,
    loss_fn: Callable | None = None,
    l1_weight: float = 1.0,
    perturbations: Sequence[int] = (1, 2, 4, 8),
    epsilons: Sequence[float] = (0.01, 0.03, 0.1),
    distances: Sequence[float] = (0.01, 0.1, 0.3),
    h: float = 0.02,
    draws: int = 16,
    seed: int = 0,
    pool: Any = None,
    workers: int = 2,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Cosine of SPSA estimates with the finite-difference reference for one effect.

    ``x``, ``y`` (B, N) clean input and target, ``p_true`` (B, P) the target's settings (used
    only to draw evaluation points). Returns rows ``{effect, example, distance, epsilon, K,
    group, cosine}`` (one per disjoint group of ``K`` of the ``draws`` perturbations), plus
    ``ref`` rows' statistics: the cosine of the ``h`` and ``h / 2`` references and the counts.
    """
    ks = [check_n_perturbations(k) for k in perturbations]
    if not ks or max(ks) > draws:
        raise ConfigError(f"perturbation counts {tuple(perturbations)} need 1 <= K <= draws={draws}")
    for e in epsilons:
        if not 0 < e < 0.5:
            raise ConfigError(f"SPSA epsilon must be in (0, 0.5), got {e!r}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    p_true = np.asarray(p_true, np.float64)
    if x.ndim != 2 or x.shape != y.shape or p_true.shape != (len(x), effect.n_params):
        raise ConfigError(
            f"gradient_quality needs x, y (B, N) and p_true (B, {effect.n_params}); "
            f"got {x.shape}, {y.shape}, {p_true.shape}"
        )
    loss_fn = loss_fn or audio_loss_fn()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    own = pool is None
    if own:
        from ..render import RenderPool

        pool = RenderPool(effect, sample_rate, workers=workers).__enter__()
    counts = {"renders": 0, "loss_evals": 0, "render_s": 0.0}

    def render_ok(xs, ps):
        t0 = time.perf_counter()
        res = pool.render(np.ascontiguousarray(xs, np.float32), np.asarray(ps, np.float64))
        counts["render_s"] += time.perf_counter() - t0
        counts["renders"] += len(xs)
        return np.asarray(res.audio, np.float32), np.asarray(res.ok, bool)

    def loss_rows(y_hat, yy):
        counts["loss_evals"] += len(y_hat)
        return _loss_rows(loss_fn, l1_weight, y_hat, yy)

    rows: list[dict[str, Any]] = []
    ref_cos: list[float] = []
    try:
        for d in distances:
            p = points_at_distance(p_true, float(d), rng)
            ref = fd_gradient(lambda a, b: render_ok(a, b)[0], loss_rows, x, y, p, h)
            ref_half = fd_gradient(lambda a, b: render_ok(a, b)[0], loss_rows, x, y, p, h / 2)
            ref_cos += list(_cosine(ref, ref_half))
            y_hat, _ = render_ok(x, p)
            v = _loss_grad(loss_fn, l1_weight, y_hat, y)
            counts["loss_evals"] += len(x)
            for eps in epsilons:
                deltas = rademacher(gen, draws, len(x), effect.n_params)
                g_k, ok_k = per_draw_estimates(render_ok, x, p, v, float(eps), deltas)
                for k in ks:
                    for grp in range(draws // k):
                        sl = slice(grp * k, (grp + 1) * k)
                        cos = _cosine(average_draws(g_k[sl], ok_k[sl]), ref)
                        for i, c in enumerate(cos):
                            rows.append(
                                {
                                    "effect": effect.key,
                                    "example": i,
                                    "distance": float(d),
                                    "epsilon": float(eps),
                                    "K": k,
                                    "group": grp,
                                    "cosine": float(c),
                                }
                            )
    finally:
        if own:
            pool.__exit__(None, None, None)
    rc = np.asarray(ref_cos, float)
    info = {
        "ref_self_cosine": float(np.nanmean(rc)) if np.isfinite(rc).any() else float("nan"),
        "ref_undefined": int(np.sum(~np.isfinite(rc))),
        **counts,
    }
    return rows, info


def summarise(rows: Sequence[dict[str, Any]], by: Sequence[str] = ("effect", "epsilon", "K", "distance")):
    """Mean, standard deviation, 25/75th percentiles and count of the cosine per ``by`` group."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    g = df.dropna(subset=["cosine"]).groupby(list(by))["cosine"]
    out = g.agg(["mean", "std", "count"])
    out["q25"] = g.quantile(0.25)
    out["q75"] = g.quantile(0.75)
    return out.reset_index()


def run_gradcheck(
    profile: Profile,
    effects: Sequence[str] = DEFAULT_EFFECTS,
    *,
    n_examples: int = 4,
    corpus: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`gradient_quality` on the first ``n_examples`` cached training examples of each
    effect in ``effects``, with the profile's training loss (``loss_fft_sizes``,
    ``loss_hop_fraction``, ``l1_weight``). Returns ``{"rows", "summary", "info", "seconds"}``."""
    from ..effects import get_effect
    from ..pairs import cached_examples
    from ..render import shared_pool

    cfg = profile.controller
    sr = profile.data.sample_rate
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    info: dict[str, dict[str, float]] = {}
    with torch_threads(cfg.torch_threads):
        loss_fn = audio_loss_fn(cfg.loss_fft_sizes, cfg.loss_hop_fraction)
        for key in effects:
            effect = get_effect(key, profile.effects.effect_set)
            ex = cached_examples(profile, effect.key, "train", cfg.n_train_per_effect, "controller", corpus=corpus)
            n = min(n_examples, len(ex.p))
            pool = shared_pool(effect, sr, workers=profile.effects.workers)
            r, i = gradient_quality(
                effect,
                ex.x[:n],
                ex.y[:n],
                ex.p[:n],
                sr,
                loss_fn=loss_fn,
                l1_weight=cfg.l1_weight,
                seed=profile.seed,
                pool=pool,
                **kwargs,
            )
            rows += r
            info[effect.key] = i
    return {"rows": rows, "summary": summarise(rows), "info": info, "seconds": time.perf_counter() - t0}


def gradcheck_numbers(summary, info: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flat numbers for :func:`dafxlib.provenance.record_numbers`: per effect, epsilon (in
    thousandths: ``eps030`` = 0.03) and K the mean cosine over distances, per effect and K the
    mean over epsilons at the nearest and farthest distance, and the reference's self-cosine."""
    out: dict[str, float] = {}
    for (key, eps, k), g in summary.groupby(["effect", "epsilon", "K"]):
        out[f"{key}.eps{round(eps * 1000):03d}.k{k}.cosine"] = float(g["mean"].mean())
    for (key, k), g in summary.groupby(["effect", "K"]):
        d = g.groupby("distance")["mean"].mean()
        out[f"{key}.k{k}.cosine_nearest_bound"] = float(d.iloc[0])
        out[f"{key}.k{k}.cosine_farthest_bound"] = float(d.iloc[-1])
        out[f"{key}.k{k}.cosine"] = float(g["mean"].mean())
    for key, i in info.items():
        out[f"{key}.reference_self_cosine"] = float(i["ref_self_cosine"])
        out[f"{key}.renders"] = float(i["renders"])
        out[f"{key}.loss_evals"] = float(i["loss_evals"])
    return out

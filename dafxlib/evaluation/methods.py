"""The evaluated methods: baselines, trained controllers, the ITO (CMA-ES) search and the oracle."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import metrics as M
from ..errors import ConfigError, MissingArtifactError
from ..pairs import Examples
from ..seeding import mix_seed
from ..threads import torch_threads

#: every method, in table order
METHODS: tuple[str, ...] = (
    "do_nothing",
    "random",
    "mean_params",
    "controller_audio",
    "controller_regression",
    "controller_both",
    "controller",
    "ito",
    "ito_amortised",
    "deepafx",
    "oracle",
)


SIGNALS: tuple[str, ...] = ("audio", "regression", "both")


BASELINES: tuple[str, ...] = ("do_nothing", "random", "mean_params")


ITO_LEVEL_WEIGHT = 1.0


ITO_LEVEL_SCALE_DB = 6.0


#: CMA-ES step size of ``ito_amortised`` (the search from 0.5 uses 0.3): the controller's
#: prediction is already near the answer, so the refinement searches a smaller neighbourhood
ITO_AMORTISED_SIGMA0 = 0.1


def ito_schedule(budget: int, n_params: int) -> tuple[int, int]:
    """CMA-ES population and generations for ``budget`` renders per clip (see :func:`ito_search`)."""
    if budget < 1:
        raise ConfigError(f"eval.ito_budget must be >= 1, got {budget}")
    lam = max(2, min(4 + int(3 * np.log(max(n_params, 1))), budget // 3))
    lam = min(lam, budget)
    return lam, max(1, budget // lam)


@dataclass
class MethodOutput:
    y_hat: np.ndarray
    p_hat: np.ndarray | None
    seconds: float
    renders: int  # total renders for the cell
    render_failed: np.ndarray  # (B,) bool
    note: str = ""


def _render(pool, x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    res = pool.render(np.ascontiguousarray(x, np.float32), np.clip(np.asarray(p, np.float64), 0.0, 1.0))
    audio = np.asarray(res.audio, np.float32)
    ok = np.asarray(res.ok, bool) if getattr(res, "ok", None) is not None else np.ones(len(x), bool)
    return audio, ~ok


def _render_method(pool, x, p, t0) -> MethodOutput:
    y_hat, failed = _render(pool, x, p)
    return MethodOutput(y_hat, np.asarray(p, np.float32), time.perf_counter() - t0, len(x), failed)


class _Randn:
    """``randn(*shape)`` for cma from a private seeded generator (no global numpy state)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(int(seed))

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


def ito_search(
    pool,
    encoder,
    x: np.ndarray,
    y_ref: np.ndarray,
    n_params: int,
    *,
    budget: int,
    seed: int,
    level_weight: float = ITO_LEVEL_WEIGHT,
    sigma0: float = 0.3,
    start: np.ndarray | None = None,
    after_generation: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
):
    """Inference-time optimisation of each clip's settings with CMA-ES (``cma``).

    What is compared. The encoder embeds (clean, effected) *pairs*. At inference only the
    input x (clean half A) and the reference y_ref (effected half B) are known; the clean
    half B is hidden (using it would give ITO information the controller never gets). So
    the target is ``embed(x, y_ref)`` -- exactly the input the controller sees -- and a
    candidate setting p scores ``embed(x, render(x, p))``. Both pairs share the clean
    input; they differ in the effected side, whose content is half B for the reference
    and half A for the candidate: that content mismatch is the same one the controller
    faces. Distance: mean squared difference of the embeddings, each dimension scaled by
    the spread of the reference embeddings in the batch, plus ``level_weight`` times the
    squared RMS-level difference (render vs y_ref) in units of 6 dB, because the encoder's
    per-image normalisation hides level.

    Search: one CMA-ES per clip, all clips in lock-step so each generation is one batched
    render call; start at 0.5 with step 0.3 inside [0, 1]; population ``4 + 3 ln P``, but
    at most a third of the budget (so at least three generations when the budget allows,
    and never fewer than two candidates); ``budget // popsize`` generations, so at most
    ``budget`` renders per clip. Returns (p_best, y_best, objective_best, renders_per_clip); the
    best rendered candidate is the answer (no extra render).

    ``start`` (B, P): the amortised start (``ito_amortised``). Each clip's start setting is
    rendered and scored first (one render of the budget), then CMA-ES searches around it with
    the remaining ``budget - 1`` renders (population and generations as above for that
    budget); the answer is never worse in the objective than the start.
    ``after_generation(renders_per_clip, p_best, y_best, f_best)`` is called after the start
    and after every generation (the budget curve reads the best-so-far from it).
    """
    import cma

    b = x.shape[0]
    lam, gens = ito_schedule(budget, n_params)
    x0 = np.full((b, n_params), 0.5)
    if start is not None:
        x0 = np.clip(np.asarray(start, np.float64), 0.0, 1.0)
        if x0.shape != (b, n_params):
            raise ConfigError(f"ITO start settings have shape {x0.shape}, expected {(b, n_params)}")
        if budget > 1:
            lam, gens = ito_schedule(budget - 1, n_params) if budget > 2 else (1, 0)
        else:
            lam, gens = 1, 0
    # one torch thread on every machine: conv results depend on the thread count for some batch
    # shapes, and the search must not change with the machine (also no thread-barrier stalls)
    with torch_threads(1):
        e_ref = np.asarray(encoder.embed(x, y_ref), np.float64)
    scale = e_ref.std(axis=0) if b > 1 else np.ones(e_ref.shape[1])
    scale = np.maximum(scale, 1e-3 * max(float(scale.max()), 1e-6))
    ref_db = M.rms_db(y_ref)

    def objective(X, Y, failed, lam):
        with torch_threads(1):
            e = np.asarray(encoder.embed(X, Y), np.float64)
        d_emb = np.mean(((e - np.repeat(e_ref, lam, axis=0)) / scale) ** 2, axis=1)
        d_lvl = ((M.rms_db(Y) - np.repeat(ref_db, lam)) / ITO_LEVEL_SCALE_DB) ** 2
        f = d_emb + level_weight * d_lvl
        return np.where(np.isfinite(f) & ~failed, f, 1e12).reshape(b, lam)

    best_f = np.full(b, np.inf)
    best_p = x0.copy()
    best_y = np.zeros_like(x, dtype=np.float32)
    renders = 0
    if start is not None:
        y0, failed0 = _render(pool, x, x0)
        renders = 1
        best_f, best_y = objective(x, y0, failed0, 1)[:, 0], np.asarray(y0, np.float32).copy()
        if after_generation is not None:
            after_generation(renders, best_p, best_y, best_f)
    ess = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(b if gens else 0):
            # each clip's search draws from its own generator: cma's "seed" option only seeds
            # numpy's global RNG, which every search (and any other thread) shares, so results
            # depended on what else drew from it and when (reruns differed on a loaded machine)
            ess.append(
                cma.CMAEvolutionStrategy(
                    x0[i],
                    sigma0,
                    {
                        "bounds": [0.0, 1.0],
                        "popsize": lam,
                        "verbose": -9,
                        "seed": float("nan"),
                        "randn": _Randn(mix_seed(seed, "cma", i) + 1),
                    },
                )
            )
    for _ in range(gens):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cands = [np.clip(np.asarray(es.ask(), np.float64), 0.0, 1.0) for es in ess]
        P = np.concatenate(cands, axis=0)  # (b*lam, P)
        X = np.repeat(x, lam, axis=0)
        Y, failed = _render(pool, X, P)
        renders += lam
        f = objective(X, Y, failed, lam)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, es in enumerate(ess):
                es.tell(list(cands[i]), f[i].tolist())
        j = np.argmin(f, axis=1)
        for i in range(b):
            if f[i, j[i]] < best_f[i]:
                best_f[i] = f[i, j[i]]
                best_p[i] = cands[i][j[i]]
                best_y[i] = Y[i * lam + j[i]]
        if after_generation is not None:
            after_generation(renders, best_p, best_y, best_f)
    return best_p, best_y, best_f, renders


def run_method(
    method: str,
    es: Examples,
    pool,
    n_params: int,
    *,
    predictors: Mapping[str, Any] | None = None,
    encoder=None,
    ito_budget: int = 0,
    seed: int = 0,
) -> MethodOutput:
    """Compute one method's outputs on one cell. ``predictors`` maps a signal name to an
    object with ``.predict(x, y_ref) -> p01``; ``encoder`` has ``.embed(x, y)``."""
    x, b = es.x, len(es)
    t0 = time.perf_counter()
    if method == "do_nothing":
        return MethodOutput(x.copy(), None, time.perf_counter() - t0, 0, np.zeros(b, bool))
    if method == "random":
        p = np.random.default_rng(mix_seed(seed, "random", es.corpus, es.effect)).random((b, n_params))
        return _render_method(pool, x, p, t0)
    if method == "mean_params":
        return _render_method(pool, x, np.full((b, n_params), 0.5), t0)
    if method == "oracle":
        return _render_method(pool, x, es.p, t0)
    if method.startswith("controller_"):
        sig = method.split("_", 1)[1]
        pred = (predictors or {}).get(sig)
        if pred is None:
            raise MissingArtifactError(f"no trained {sig!r} controller for {es.effect}; run notebook 04_end_to_end")
        p = np.clip(np.asarray(pred.predict(x, es.y_ref), np.float64), 0.0, 1.0)
        if p.shape != (b, n_params):
            raise ConfigError(f"controller {sig} for {es.effect} predicted shape {p.shape}, expected {(b, n_params)}")
        return _render_method(pool, x, p, t0)
    if method == "ito":
        if encoder is None:
            raise MissingArtifactError("ITO needs the selected encoder; run notebook 03_beta_tuning")
        p, y_hat, _, renders = ito_search(
            pool, encoder, x, es.y_ref, n_params, budget=ito_budget, seed=mix_seed(seed, "ito", es.corpus, es.effect)
        )
        return MethodOutput(
            y_hat,
            p.astype(np.float32),
            time.perf_counter() - t0,
            renders * b,
            np.zeros(b, bool),
            note=f"CMA-ES, {renders} renders per clip",
        )
    if method == "ito_amortised":
        # the controller whose prediction starts the search, under the method's name (run.py maps
        # it to the best signal's controller); its forward pass is part of the method's cost
        pred = (predictors or {}).get("ito_amortised")
        if encoder is None or pred is None:
            raise MissingArtifactError(
                f"ITO from the controller's prediction needs the selected encoder and the best controller for "
                f"{es.effect}; run notebooks 03_beta_tuning and 04_end_to_end"
            )
        p0 = np.clip(np.asarray(pred.predict(x, es.y_ref), np.float64), 0.0, 1.0)
        p, y_hat, _, renders = ito_search(
            pool,
            encoder,
            x,
            es.y_ref,
            n_params,
            budget=ito_budget,
            seed=mix_seed(seed, "ito_amortised", es.corpus, es.effect),
            sigma0=ITO_AMORTISED_SIGMA0,
            start=p0,
        )
        return MethodOutput(
            y_hat,
            p.astype(np.float32),
            time.perf_counter() - t0,
            renders * b,
            np.zeros(b, bool),
            note=f"controller's prediction + CMA-ES (sigma {ITO_AMORTISED_SIGMA0}), {renders} renders per clip",
        )
    if method == "deepafx":
        # a differentiable EQ + compressor stands in for the effect: no render, and its settings are
        # not the effect's, so p_hat is None (no parameter error)
        chain = (predictors or {}).get("deepafx")
        if chain is None:
            raise MissingArtifactError(f"no deepafx controller for {es.effect}; run notebook 04_end_to_end")
        y_hat, _ = chain.apply(x, es.y_ref)
        note = "differentiable EQ + compressor in torch (no effect render)"
        return MethodOutput(np.asarray(y_hat, np.float32), None, time.perf_counter() - t0, 0, np.zeros(b, bool), note)
    raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")

"""Evaluation: methods x effects x corpora on fixed, paired, file-disjoint test sets.

Test sets. For each corpus (embedded ``speech`` and ``music``; VCTK, DAPS, MUSDB18 and a
user folder in the paper profile) and each of the nine effects, ``profile.eval.n_per_cell``
examples (x, y, y_ref, p) are drawn from the corpus's *test* split only (recordings never
used in training; :func:`check_disjoint` verifies it), rendered once with seeded uniform
random settings and cached (npz) under ``build/<profile>/cache/eval_examples``.

Methods, all scored on the SAME examples against the ground truth ``y`` (effected half A):

- ``do_nothing``: y_hat = x (no render).
- ``random``: uniform random settings (seeded), one render.
- ``mean_params``: every knob at 0.5, the mean of the uniform training distribution.
- ``controller_audio`` / ``controller_regression`` / ``controller_both``: the trained
  controllers of notebook 04 by training signal, where they were trained; ``controller``
  is the best signal per effect (:func:`dafxlib.models.controller.best_signal`).
- ``ito``: inference-time optimisation in the manner of ST-ITO (Steinmetz et al., 2024):
  CMA-ES over the normalised settings of each clip, ``profile.eval.ito_budget`` renders
  per clip. See :func:`ito_search` for what it compares and why.
- ``oracle``: the true settings rendered on x: the floor the metrics can reach.

Outputs: a per-item table (one row per corpus, effect, example, method; metric columns;
NaN only where an item was excluded, with the reason in ``excluded``), per-cell costs
(wall ms and renders per clip), bootstrap 95% intervals, paired win counts, seen/unseen
summaries, cached under ``build/<profile>/eval`` by atomic writes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import io, metrics as M, paths
from .config import Profile, get_profile
from .errors import ConfigError, DatasetError, MissingArtifactError
from .seeding import array_hash, mix_seed, stable_hash
from .stats import mean_ci
from .threads import single_thread, torch_threads

#: every method, in table order
METHODS: tuple[str, ...] = ("do_nothing", "random", "mean_params", "controller_audio",
                            "controller_regression", "controller_both", "controller", "ito", "oracle")
SIGNALS: tuple[str, ...] = ("audio", "regression", "both")
BASELINES: tuple[str, ...] = ("do_nothing", "random", "mean_params")
#: metrics of the evaluation table (pesq on speech corpora only)
EVAL_METRICS: tuple[str, ...] = ("mrstft", "msd", "sce", "rms", "lufs", "pesq", "param_mae")
#: metrics whose bootstrap interval also goes into numbers.json
CI_METRICS: tuple[str, ...] = ("mrstft",)
SPEECH_CORPORA = ("speech", "vctk", "daps")
DATASET_NAMES = {"musdb18hq": "musdb18", "musdb18_hq": "musdb18", "musdb": "musdb18"}
ITO_LEVEL_WEIGHT = 1.0
ITO_LEVEL_SCALE_DB = 6.0


# ---- test sets ----------------------------------------------------------------------------
@dataclass
class EvalSet:
    """One cell's fixed examples: x (clean A), y (effected A), y_ref (effected B), p (true)."""

    corpus: str
    effect: str
    x: np.ndarray
    y: np.ndarray
    y_ref: np.ndarray
    p: np.ndarray
    clip_ids: list[str]
    sample_rate: int

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _slug(s: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in str(s).lower()).strip("_")
    return out or "corpus"


def corpus_groups(clips: Sequence[Any], corpus_kind: str = "embedded") -> dict[str, list[Any]]:
    """Group test clips into evaluation corpora: ``speech`` and ``music`` (by ``kind``) for
    the embedded corpus, otherwise by ``clip.meta['dataset']`` (vctk, daps, musdb18); clips
    of a user folder (role ``user``) form the corpus ``user``."""
    groups: dict[str, list[Any]] = {}
    for c in clips:
        meta = getattr(c, "meta", None) or {}
        role = meta.get("role", "")
        if role == "user":
            name = "user"
        elif corpus_kind == "embedded":
            name = c.kind
        else:
            ds = str(meta.get("dataset") or c.kind).lower()
            name = DATASET_NAMES.get(ds, ds)
        groups.setdefault(_slug(name), []).append(c)
    order = {"speech": 0, "vctk": 1, "daps": 2, "music": 3, "musdb18": 4}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])))


def check_disjoint(clips: Sequence[Any]) -> None:
    """Raise DatasetError when a recording (``clip.source``) is in the test split and in
    train or val: evaluation clips must never overlap training files."""
    test = {c.source for c in clips if c.split == "test"}
    other = {c.source for c in clips if c.split != "test"}
    both = sorted(test & other)
    if both:
        raise DatasetError(f"{len(both)} recording(s) are in the test split and in train/val, e.g. "
                           f"{both[:3]}; rebuild the corpus (its split must be file-level)")


def test_clip_groups(profile: Profile, corpus=None) -> dict[str, list[Any]]:
    """The test-split clips of each evaluation corpus (builds or loads the corpus)."""
    if corpus is None:
        from .corpus import build_corpus

        corpus = build_corpus(profile)
    clips = list(corpus.clips)
    check_disjoint(clips)
    test = [c for c in clips if c.split == "test"]
    if not test:
        raise DatasetError(f"profile {profile.name!r}: the corpus has no test clips; "
                           "check profile.data.split and the corpus size")
    return corpus_groups(test, profile.data.corpus)


def effect_fingerprint(effect, sample_rate: int) -> str:
    """Hash of the effect's output on a fixed probe at three settings: a cache made with an
    older implementation of the effect is never reused."""
    rng = np.random.default_rng(1234)
    n = 4096
    probe = (0.2 * np.sin(2 * np.pi * 220.0 * np.arange(n) / sample_rate)
             + 0.05 * rng.standard_normal(n)).astype(np.float32)
    outs = [np.round(np.asarray(effect.process(probe, int(sample_rate), np.full(effect.n_params, v)), np.float64), 5)
            for v in (0.2, 0.5, 0.8)]
    return array_hash(f"{effect.key}|{effect.param_names}", *outs)


def eval_set(profile: Profile, corpus_name: str, clips: Sequence[Any], effect_key: str, *,
             n: int | None = None, workers: int | None = None, make=None, fingerprint: str = "") -> EvalSet:
    """The fixed, cached examples of one cell (seeded by profile seed, corpus and effect;
    the cache key includes the clips and ``fingerprint``, see :func:`effect_fingerprint`)."""
    n = int(n or profile.eval.n_per_cell)
    sr, half = profile.data.sample_rate, profile.half_samples
    ids = sorted(c.id for c in clips)
    seed = mix_seed(profile.seed, "eval", corpus_name, effect_key)
    key = stable_hash([profile.hash("data", "effects"), effect_key, corpus_name, n, seed, ids, fingerprint])
    path = paths.cache_dir(profile.name, "eval_examples") / f"{corpus_name}_{effect_key}_{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return EvalSet(corpus_name, effect_key, z["x"], z["y"], z["y_ref"], z["p"],
                       [str(s) for s in z["clip_ids"]], sr)
    if make is None:
        from .pairs import make_examples as make
    from .effects import get_effect

    effect = get_effect(effect_key, profile.effects.effect_set)
    ex = make(effect, list(clips), n, seed, sr, half, workers=workers or profile.effects.workers)
    es = EvalSet(corpus_name, effect_key, np.asarray(ex.x, np.float32), np.asarray(ex.y, np.float32),
                 np.asarray(ex.y_ref, np.float32), np.asarray(ex.p, np.float32),
                 [str(s) for s in ex.clip_ids], sr)
    io.save_npz(path, x=es.x, y=es.y, y_ref=es.y_ref, p=es.p, clip_ids=np.array(es.clip_ids))
    return es


# ---- methods -------------------------------------------------------------------------------
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


def ito_search(pool, encoder, x: np.ndarray, y_ref: np.ndarray, n_params: int, *, budget: int,
               seed: int, level_weight: float = ITO_LEVEL_WEIGHT, sigma0: float = 0.3):
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
    """
    import cma

    b = x.shape[0]
    if budget < 1:
        raise ConfigError(f"eval.ito_budget must be >= 1, got {budget}")
    lam = max(2, min(4 + int(3 * np.log(max(n_params, 1))), budget // 3))
    lam = min(lam, budget)
    gens = max(1, budget // lam)
    # one torch thread on every machine: conv results depend on the thread count for some batch
    # shapes, and the search must not change with the machine (also no thread-barrier stalls)
    with torch_threads(1):
        e_ref = np.asarray(encoder.embed(x, y_ref), np.float64)
    scale = e_ref.std(axis=0) if b > 1 else np.ones(e_ref.shape[1])
    scale = np.maximum(scale, 1e-3 * max(float(scale.max()), 1e-6))
    ref_db = M.rms_db(y_ref)
    ess = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(b):
            # each clip's search draws from its own generator: cma's "seed" option only seeds
            # numpy's global RNG, which every search (and any other thread) shares, so results
            # depended on what else drew from it and when (reruns differed on a loaded machine)
            ess.append(cma.CMAEvolutionStrategy(np.full(n_params, 0.5), sigma0,
                                                {"bounds": [0.0, 1.0], "popsize": lam, "verbose": -9,
                                                 "seed": float("nan"),
                                                 "randn": _Randn(mix_seed(seed, "cma", i) + 1)}))
    best_f = np.full(b, np.inf)
    best_p = np.full((b, n_params), 0.5)
    best_y = np.zeros_like(x, dtype=np.float32)
    renders = 0
    for _ in range(gens):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cands = [np.clip(np.asarray(es.ask(), np.float64), 0.0, 1.0) for es in ess]
        P = np.concatenate(cands, axis=0)  # (b*lam, P)
        X = np.repeat(x, lam, axis=0)
        Y, failed = _render(pool, X, P)
        renders += lam
        with torch_threads(1):
            e = np.asarray(encoder.embed(X, Y), np.float64)
        d_emb = np.mean(((e - np.repeat(e_ref, lam, axis=0)) / scale) ** 2, axis=1)
        d_lvl = ((M.rms_db(Y) - np.repeat(ref_db, lam)) / ITO_LEVEL_SCALE_DB) ** 2
        f = d_emb + level_weight * d_lvl
        f = np.where(np.isfinite(f) & ~failed, f, 1e12)
        f = f.reshape(b, lam)
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
    return best_p, best_y, best_f, renders


def run_method(method: str, es: EvalSet, pool, n_params: int, *, predictors: Mapping[str, Any] | None = None,
               encoder=None, ito_budget: int = 0, seed: int = 0) -> MethodOutput:
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
        p, y_hat, _, renders = ito_search(pool, encoder, x, es.y_ref, n_params, budget=ito_budget,
                                          seed=mix_seed(seed, "ito", es.corpus, es.effect))
        return MethodOutput(y_hat, p.astype(np.float32), time.perf_counter() - t0, renders * b,
                            np.zeros(b, bool), note=f"CMA-ES, {renders} renders per clip")
    raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


# ---- one cell ------------------------------------------------------------------------------
@dataclass
class CellResult:
    rows: list[dict]
    costs: list[dict]
    report: dict[str, M.MetricReport]
    skipped: list[dict]


def evaluate_cell(es: EvalSet, pool, n_params: int, methods: Sequence[str], *,
                  predictors: Mapping[str, Any] | None = None, best_signal: str | None = None,
                  encoder=None, ito_budget: int = 0, seed: int = 0, pesq: bool | None = None,
                  workers: int = 1, seen: bool | None = None) -> CellResult:
    """Run every method on the same examples of one cell and score each against ``y``.

    ``controller`` reuses the outputs of ``controller_<best_signal>`` (no second run).
    A method that cannot run (missing artifact) is listed in ``skipped`` with the reason.
    """
    pesq = es.corpus in SPEECH_CORPORA if pesq is None else pesq
    names = [m for m in EVAL_METRICS if m != "pesq" or pesq]
    tcache: dict = {}
    rows, costs, skipped = [], [], []
    reports: dict[str, M.MetricReport] = {}
    outputs: dict[str, MethodOutput] = {}
    scored: dict[str, tuple] = {}
    src = None
    order = [m for m in methods if m != "controller"] + (["controller"] if "controller" in methods else [])
    for method in order:
        if method == "controller":
            src = f"controller_{best_signal}" if best_signal else None
            if src not in outputs:
                try:
                    if src is None:
                        raise MissingArtifactError("no best signal known; run notebook 04_end_to_end")
                    with single_thread():
                        outputs[src] = run_method(src, es, pool, n_params, predictors=predictors, seed=seed)
                except MissingArtifactError as exc:
                    skipped.append({"corpus": es.corpus, "effect": es.effect, "method": method, "reason": str(exc)})
                    continue
            out = outputs[src]
        else:
            try:
                with single_thread():  # same thread policy for every method (fair costs)
                    out = run_method(method, es, pool, n_params, predictors=predictors, encoder=encoder,
                                     ito_budget=ito_budget, seed=seed)
            except MissingArtifactError as exc:
                skipped.append({"corpus": es.corpus, "effect": es.effect, "method": method, "reason": str(exc)})
                continue
            outputs[method] = out
        key = src if method == "controller" else method
        if key in scored:  # the controller's outputs are those of its best signal: same scores
            vals, rep0, reasons, silent = scored[key]
            rep = M.MetricReport().merge(rep0)
        else:
            use = [m for m in names if m != "param_mae" or out.p_hat is not None]
            vals, rep = M.compute_metrics(out.y_hat, es.y, es.sample_rate, metrics=use, params_hat=out.p_hat,
                                          params_true=es.p if out.p_hat is not None else None,
                                          workers=workers, target_cache=tcache)
            _, _, reasons, silent = M.screen(out.y_hat, es.y)
            scored[key] = (vals, rep, reasons, silent)
        reports[method] = rep
        for i in range(len(es)):
            row = {"corpus": es.corpus, "effect": es.effect, "seen": seen, "method": method, "item": i,
                   "clip_id": es.clip_ids[i]}
            for m in EVAL_METRICS:
                row[m] = float(vals[m][i]) if m in vals else np.nan
            row["excluded"] = reasons.get(i, "")
            row["silent_estimate"] = bool(silent[i])
            row["render_failed"] = bool(out.render_failed[i])
            rows.append(row)
        costs.append({"corpus": es.corpus, "effect": es.effect, "method": method, "n": len(es),
                      "seconds": out.seconds, "renders": out.renders,
                      "ms_per_clip": 1000.0 * out.seconds / len(es), "renders_per_clip": out.renders / len(es),
                      "note": out.note + (f"; outputs of controller_{best_signal}" if method == "controller" else "")})
    return CellResult(rows, costs, reports, skipped)


# ---- statistics ----------------------------------------------------------------------------
def paired(table, cell: tuple[str, str], a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-item values of methods a and b in one cell, on the items valid for both."""
    c = table[(table.corpus == cell[0]) & (table.effect == cell[1])]
    va = c[c.method == a].set_index("item")[metric]
    vb = c[c.method == b].set_index("item")[metric]
    j = va.index.intersection(vb.index)
    va, vb = va.loc[j].to_numpy(float), vb.loc[j].to_numpy(float)
    ok = np.isfinite(va) & np.isfinite(vb)
    return va[ok], vb[ok]


def cell_summary(table, *, n_boot: int = 1000, seed: int = 0, metrics: Iterable[str] = EVAL_METRICS):
    """Per (corpus, effect, method, metric): mean, 95% bootstrap interval, n valid, n excluded."""
    import pandas as pd

    out = []
    for (corpus, effect, method), g in table.groupby(["corpus", "effect", "method"], sort=False):
        for m in metrics:
            if m not in g:
                continue
            v = g[m].to_numpy(float)
            if not np.isfinite(v).any() and m in ("pesq", "param_mae"):
                continue  # not applicable (music corpus, or a method without parameters)
            mean, lo, hi = mean_ci(v, n_boot, mix_seed(seed, "boot", corpus, effect, method, m))
            out.append({"corpus": corpus, "effect": effect, "method": method, "metric": m,
                        "mean": mean, "lo": lo, "hi": hi, "n": int(np.isfinite(v).sum()),
                        "n_excluded": int((~np.isfinite(v)).sum())})
    return pd.DataFrame(out)


def win_table(table, method: str = "controller", against: Sequence[str] = ("do_nothing", "random"),
              metric: str = "mrstft", *, n_boot: int = 1000, seed: int = 0):
    """Paired comparison per cell: means, win (mean better), item win rate (ties count
    half), and whether the paired bootstrap 95% interval of the difference excludes 0."""
    import pandas as pd

    sgn = M.sign(metric)
    rows = []
    cells = table[["corpus", "effect"]].drop_duplicates().itertuples(index=False)
    for corpus, effect in cells:
        seen = table[(table.corpus == corpus) & (table.effect == effect)]["seen"].iloc[0]
        row = {"corpus": corpus, "effect": effect, "seen": seen}
        for other in against:
            a, b = paired(table, (corpus, effect), method, other, metric)
            key = f"vs_{other}"
            if a.size == 0:  # the method or the baseline did not run in this cell
                row.update({f"{other}_mean": None, f"{key}_win": None, f"{key}_win_rate": None,
                            f"{key}_significant": None, f"{key}_n": 0})
                continue
            d = sgn * (a - b)  # < 0: method better
            _, lo, hi = mean_ci(d, n_boot, mix_seed(seed, "pair", corpus, effect, method, other, metric))
            row.update({f"{method}_mean": float(a.mean()), f"{other}_mean": float(b.mean()),
                        f"{key}_win": bool(d.mean() < 0), f"{key}_win_rate": float(np.mean((d < 0) + 0.5 * (d == 0))),
                        f"{key}_significant": bool(hi < 0), f"{key}_n": int(a.size)})
        rows.append(row)
    return pd.DataFrame(rows)


# ---- results -------------------------------------------------------------------------------
@dataclass
class EvalResults:
    """The per-item table, per-cell costs, exclusion reports, skipped methods and metadata."""

    table: Any  # pandas DataFrame
    costs: Any  # pandas DataFrame
    reports: dict[str, dict] = field(default_factory=dict)  # method -> MetricReport.to_dict()
    skipped: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        present = set(self.table["method"])
        return [m for m in METHODS if m in present]

    @property
    def corpora(self) -> list[str]:
        return list(dict.fromkeys(self.table["corpus"]))

    @property
    def effects(self) -> list[str]:
        return list(dict.fromkeys(self.table["effect"]))

    def summary(self, *, n_boot: int | None = None, seed: int | None = None):
        return cell_summary(self.table, n_boot=self.meta.get("bootstrap", 1000) if n_boot is None else n_boot,
                            seed=self.meta.get("seed", 0) if seed is None else seed)

    def wins(self, method: str = "controller", against=("do_nothing", "random"), metric: str = "mrstft"):
        return win_table(self.table, method, against, metric, n_boot=self.meta.get("bootstrap", 1000),
                         seed=self.meta.get("seed", 0))

    def cost_summary(self):
        """Per method: mean ms per clip and renders per clip over all cells."""
        g = self.costs.groupby("method", sort=False)
        df = g.agg(ms_per_clip=("ms_per_clip", "mean"), renders_per_clip=("renders_per_clip", "mean"),
                   cells=("n", "size")).reset_index()
        df["order"] = df["method"].map({m: i for i, m in enumerate(METHODS)})
        return df.sort_values("order").drop(columns="order").reset_index(drop=True)

    def group_means(self, metric: str = "mrstft"):
        """Mean of cell means per (corpus, group) and method, group in all / seen / unseen."""
        import pandas as pd

        cm = self.table.groupby(["corpus", "effect", "seen", "method"], sort=False)[metric].mean().reset_index()
        out = []
        for grp, sel in (("all", cm), ("seen", cm[cm.seen == True]), ("unseen", cm[cm.seen == False])):  # noqa: E712
            for (corpus, method), g in sel.groupby(["corpus", "method"], sort=False):
                v = g[metric].dropna()
                if len(v):
                    out.append({"corpus": corpus, "group": grp, "method": method, metric: float(v.mean()),
                                "cells": int(len(v))})
            for method, g in sel.groupby("method", sort=False):
                v = g[metric].dropna()
                if len(v):
                    out.append({"corpus": "all", "group": grp, "method": method, metric: float(v.mean()),
                                "cells": int(len(v))})
        return pd.DataFrame(out)

    def excluded_counts(self) -> dict[str, int]:
        """Excluded items per metric over every method and cell."""
        tot: dict[str, int] = {}
        for rep in self.reports.values():
            for m, reasons in rep.get("excluded", {}).items():
                tot[m] = tot.get(m, 0) + sum(reasons.values())
        return tot


def results_dir(profile: str) -> Path:
    d = paths.build_dir(profile) / "eval"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _artifact_fingerprint(profile: str) -> list:
    d = paths.build_dir(profile) / "artifacts"
    if not d.exists():
        return []
    out = []
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            st = p.stat()
            out.append([str(p.relative_to(d)), st.st_size, int(st.st_mtime)])
    return out


def cache_key(profile: Profile, methods, effects, corpora, effect_prints: Sequence[str] = ()) -> str:
    return stable_hash([profile.hash(), list(methods), list(effects), list(corpora), list(effect_prints),
                        _artifact_fingerprint(profile.name)], 16)


def save_results(res: EvalResults, profile: str) -> Path:
    d = results_dir(profile)
    with io.atomic_path(d / "results.csv") as tmp:
        res.table.to_csv(tmp, index=False)
    with io.atomic_path(d / "costs.csv") as tmp:
        res.costs.to_csv(tmp, index=False)
    io.write_json(d / "meta.json", {**res.meta, "reports": res.reports, "skipped": res.skipped})
    return d


def load_results(profile: str) -> EvalResults:
    """The cached evaluation of ``profile`` (raises MissingArtifactError naming notebook 06)."""
    import pandas as pd

    d = paths.build_dir(profile) / "eval"
    if not (d / "meta.json").exists() or not (d / "results.csv").exists():
        raise MissingArtifactError(f"no evaluation results for profile {profile!r} in {d}; "
                                   f"run notebook 06_evaluation first (./run_all.sh --profile {profile} --only 06)")
    meta = io.read_json(d / "meta.json")
    table = pd.read_csv(d / "results.csv", dtype={"clip_id": str})
    costs = pd.read_csv(d / "costs.csv")
    text = lambda col: ["" if isinstance(v, float) and np.isnan(v) else str(v) for v in col]  # noqa: E731
    table["excluded"] = text(table["excluded"])
    costs["note"] = text(costs["note"])
    return EvalResults(table, costs, meta.pop("reports", {}), meta.pop("skipped", []), meta)


# ---- the whole run -------------------------------------------------------------------------
def _load_predictors(profile: Profile, effect_key: str, methods: Sequence[str], encoder=None):
    """Trained controllers by signal, and the best signal (None where none were trained)."""
    want = {m.split("_", 1)[1] for m in methods if m.startswith("controller_")}
    if "controller" in methods:
        want |= set(SIGNALS)
    preds, best = {}, None
    if not want:
        return preds, best
    try:
        from .e2e import best_signal, load_controller
    except ImportError:
        return preds, best
    for sig in SIGNALS:
        if sig in want:
            try:
                preds[sig] = (load_controller(profile, effect_key, sig, encoder=encoder) if encoder is not None
                              else load_controller(profile, effect_key, sig))
            except MissingArtifactError:
                pass
    if "controller" in methods:
        try:
            best = best_signal(profile, effect_key)
        except MissingArtifactError:
            best = None
    return preds, best


#: methods that need no trained artifact (what ``eval.baselines_only`` scores)
NO_TRAINING: tuple[str, ...] = ("do_nothing", "random", "mean_params", "oracle")


def _load_trained(prof: Profile, fx: Mapping[str, Any], methods: Sequence[str], log) -> tuple[Any, dict]:
    """The encoder and each effect's controllers; MissingArtifactError listing every trained
    artifact a requested method needs and does not find (a partial evaluation is refused)."""
    encoder, loaded, gaps = None, {}, []
    if "ito" in methods or any(m.startswith("controller") for m in methods):
        try:
            from .models.encoder import load_selected_encoder

            encoder = load_selected_encoder(prof)
        except MissingArtifactError:
            gaps.append("the selected encoder (notebook 03_beta_tuning)")
    missing_ctl = []
    for e, effect in fx.items():
        preds, best = _load_predictors(prof, effect.key, methods, encoder)
        loaded[e] = (preds, best)
        if not any(m.startswith("controller") for m in methods):
            continue
        from .e2e import signals_for

        trained = signals_for(prof, effect.key)
        want = [s for s in trained if f"controller_{s}" in methods or "controller" in methods]
        lost = [s for s in want if s not in preds]
        if lost or ("controller" in methods and best is None):
            missing_ctl.append(f"{e} ({', '.join(lost) or 'best signal'})")
    if missing_ctl:
        gaps.append(f"the controllers of {len(missing_ctl)} effect(s) (notebook 04_end_to_end): "
                    + "; ".join(missing_ctl[:4]) + (" ..." if len(missing_ctl) > 4 else ""))
    if gaps:
        raise MissingArtifactError(
            "the evaluation would be partial (methods scored on nothing): missing " + ", and ".join(gaps)
            + ". Run those notebooks first (./run_all.sh --from 03), or score only the baselines "
            "(do-nothing, random, mean settings, oracle) with --set eval.baselines_only=true")
    return encoder, loaded


def run_evaluation(profile: str | Profile = "default", *, corpus=None, effects: Sequence[str] | None = None,
                   methods: Sequence[str] | None = None, force: bool = False, progress: bool = True,
                   log: Callable[[str], None] | None = print) -> EvalResults:
    """Evaluate every method on every (corpus, effect) cell, or load the cached result.

    The cache (``build/<profile>/eval``) is keyed on the whole profile, the methods,
    effects and corpora, and the artifacts earlier notebooks wrote (retraining a
    controller invalidates it). ``force`` recomputes.

    Before any work: a requested method whose trained artifact is missing (the encoder of
    notebook 03, a controller of notebook 04 that the profile trains) raises
    MissingArtifactError naming the notebook to run, unless ``profile.eval.baselines_only``
    is set, which scores only the methods that need no training (:data:`NO_TRAINING`).
    """
    import pandas as pd

    from .effects import ALL, SEEN, get_effect
    from .render import RenderPool

    prof = get_profile(profile) if isinstance(profile, str) else profile
    effects = list(effects or ALL)
    methods = list(methods or METHODS)
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        raise ConfigError(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
    if prof.eval.baselines_only:
        methods = [m for m in methods if m in NO_TRAINING]
    fx = {e: get_effect(e, prof.effects.effect_set) for e in effects}
    encoder, loaded = _load_trained(prof, fx, methods, log)
    groups = test_clip_groups(prof, corpus)
    prints = {e: effect_fingerprint(f, prof.data.sample_rate) for e, f in fx.items()}
    key = cache_key(prof, methods, effects, list(groups), [prints[e] for e in effects])
    if not force:
        try:
            res = load_results(prof.name)
            if res.meta.get("key") == key:
                if log:
                    log(f"evaluation: loaded cached results ({len(res.table)} rows) from {results_dir(prof.name)}")
                return res
        except MissingArtifactError:
            pass
    rows, costs, skipped = [], [], []
    reports: dict[str, M.MetricReport] = {}
    cells = [(c, e) for e in effects for c in groups]
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(cells), desc="evaluation cells")
        except ImportError:
            bar = None
    t_all = time.perf_counter()
    for e in effects:
        effect = fx[e]
        preds, best = loaded[e]
        with RenderPool(effect, prof.data.sample_rate, workers=prof.effects.workers) as pool:
            warm = np.zeros((max(1, prof.effects.workers), prof.half_samples), np.float32)
            warm[:, ::50] = 0.1
            pool.render(warm, np.full((len(warm), effect.n_params), 0.5))  # start-up is not a method's cost
            for c in groups:
                es = eval_set(prof, c, groups[c], effect.key, fingerprint=prints[e])
                cr = evaluate_cell(es, pool, effect.n_params, methods, predictors=preds, best_signal=best,
                                   encoder=encoder, ito_budget=prof.eval.ito_budget, seed=prof.seed,
                                   workers=prof.effects.workers, seen=effect.key in SEEN)
                rows += cr.rows
                costs += cr.costs
                skipped += cr.skipped
                for m, r in cr.report.items():
                    reports.setdefault(m, M.MetricReport()).merge(r)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    meta = {"key": key, "profile": prof.name, "seed": prof.seed, "n_per_cell": prof.eval.n_per_cell,
            "ito_budget": prof.eval.ito_budget, "bootstrap": prof.eval.bootstrap, "methods": methods,
            "effects": effects, "corpora": list(groups), "wall_s": round(time.perf_counter() - t_all, 2),
            "mrstft_fft_sizes": M.mrstft_resolutions(prof.half_samples),
            "msd_fft_size": M.msd_fft_size(prof.half_samples), "sample_rate": prof.data.sample_rate,
            "test_clips": {c: len(v) for c, v in groups.items()}}
    res = EvalResults(pd.DataFrame(rows), pd.DataFrame(costs), {m: r.to_dict() for m, r in reports.items()},
                      skipped, meta)
    save_results(res, prof.name)
    if log:
        log(f"evaluation: {len(cells)} cells x {len(methods)} methods in {meta['wall_s']:.1f} s; "
            f"{len(skipped)} method-cells skipped")
    return res


# ---- numbers contract ----------------------------------------------------------------------
def number_entries(res: EvalResults, summary=None) -> dict[str, Any]:
    """Flat ``eval.*`` keys for numbers.json (lower-case):

    - ``eval.<corpus>.<effect>.<method>.<metric>``: cell means over valid items (pesq on
      speech corpora only; param_mae for methods that output settings), plus
      ``..._lo`` / ``..._hi`` 95% bootstrap bounds for mrstft;
    - ``eval.<seen|unseen>.<method>.<metric>`` and ``eval.<corpus>.<all|seen|unseen>.<method>.<metric>``:
      means of cell means (mrstft, pesq, param_mae);
    - ``eval.<corpus>.<effect>.<m>.win_rate_vs_<do_nothing|random>``: share of clips where
      m (controller, ito) has the lower MR-STFT (ties count half);
    - ``eval.wins.<m>_vs_<do_nothing|random>`` (cells with a lower mean MR-STFT; m in
      controller, ito), ``eval.wins.<m>_vs_both``, ``eval.wins.significant.*``,
      ``eval.wins.seen.*``, ``eval.wins.unseen.*``, ``eval.wins.cells_<m>``;
    - ``eval.cells``, ``eval.n_per_cell``, ``eval.ito_budget``, ``eval.n_corpora``,
      ``eval.n_effects``, ``eval.n_methods``, ``eval.skipped_method_cells``, ``eval.wall_s``;
    - ``eval.cost.<method>.ms_per_clip`` / ``.renders_per_clip``;
    - ``eval.excluded.<metric>`` (only for metrics with excluded items).
    """
    summary = res.summary() if summary is None else summary
    out: dict[str, Any] = {}
    for r in summary.itertuples(index=False):
        if r.mean is None or not np.isfinite(r.mean):
            continue
        k = f"eval.{r.corpus}.{r.effect}.{r.method}.{r.metric}"
        out[k] = r.mean
        if r.metric in CI_METRICS:
            out[k + "_lo"], out[k + "_hi"] = r.lo, r.hi
    for metric in ("mrstft", "pesq", "param_mae"):
        if metric not in res.table or not np.isfinite(res.table[metric].to_numpy(float)).any():
            continue
        gm = res.group_means(metric)
        for r in gm.itertuples(index=False):
            v = getattr(r, metric)
            if r.corpus == "all":
                out[f"eval.{r.group}.{r.method}.{metric}"] = v
            else:
                out[f"eval.{r.corpus}.{r.group}.{r.method}.{metric}"] = v
    cells = res.table[["corpus", "effect"]].drop_duplicates()
    out["eval.cells"] = int(len(cells))
    out["eval.n_per_cell"] = int(res.meta.get("n_per_cell", 0))
    out["eval.ito_budget"] = int(res.meta.get("ito_budget", 0))
    out["eval.n_corpora"] = len(res.corpora)
    out["eval.n_effects"] = len(res.effects)
    out["eval.n_methods"] = len(res.methods)
    methods = set(res.methods)
    for method in ("controller", "ito"):
        if method not in methods:
            continue
        wt = res.wins(method, ("do_nothing", "random"))
        for other in ("do_nothing", "random"):
            col = f"vs_{other}_win"
            if col not in wt:
                continue
            w = wt[col].fillna(False).astype(bool)
            s = wt[f"vs_{other}_significant"].fillna(False).astype(bool)
            out[f"eval.wins.{method}_vs_{other}"] = int(w.sum())
            out[f"eval.wins.significant.{method}_vs_{other}"] = int(s.sum())
            out[f"eval.wins.seen.{method}_vs_{other}"] = int(w[wt.seen == True].sum())  # noqa: E712
            out[f"eval.wins.unseen.{method}_vs_{other}"] = int(w[wt.seen == False].sum())  # noqa: E712
        for r in wt.itertuples(index=False):
            for other in ("do_nothing", "random"):
                rate = getattr(r, f"vs_{other}_win_rate", None)
                if rate is not None and np.isfinite(rate):
                    out[f"eval.{r.corpus}.{r.effect}.{method}.win_rate_vs_{other}"] = float(rate)
        if "vs_do_nothing_win" in wt and "vs_random_win" in wt:
            both = wt["vs_do_nothing_win"].fillna(False).astype(bool) & wt["vs_random_win"].fillna(False).astype(bool)
            out[f"eval.wins.{method}_vs_both"] = int(both.sum())
        out[f"eval.wins.cells_{method}"] = int(len(wt))
    for r in res.cost_summary().itertuples(index=False):
        out[f"eval.cost.{r.method}.ms_per_clip"] = float(r.ms_per_clip)
        out[f"eval.cost.{r.method}.renders_per_clip"] = float(r.renders_per_clip)
    for m, n in res.excluded_counts().items():
        out[f"eval.excluded.{m}"] = int(n)
    out["eval.skipped_method_cells"] = len(res.skipped)
    out["eval.wall_s"] = float(res.meta.get("wall_s", 0.0))
    return out


# ---- discussion ----------------------------------------------------------------------------
def discussion_markdown(res: EvalResults, summary=None, metric: str = "mrstft") -> str:
    """A short discussion whose every number comes from ``res`` (for the notebook and the
    report fragment ``06_discussion``); the wording follows the results."""
    summary = res.summary() if summary is None else summary
    s = summary[summary.metric == metric]
    lines: list[str] = []
    cells = len(res.table[["corpus", "effect"]].drop_duplicates())
    mean = s.pivot_table(index=["corpus", "effect"], columns="method", values="mean")
    methods = set(res.methods)
    prof = res.meta.get("profile", "?")
    lines.append(f"**Discussion ({prof} profile, {res.meta.get('n_per_cell', '?')} clips per cell, "
                 f"{cells} cells).**")
    if "controller" in methods and "do_nothing" in mean:
        wt = res.wins("controller", ("do_nothing", "random"), metric)
        w_dn = int(wt["vs_do_nothing_win"].fillna(False).astype(bool).sum())
        w_r = int(wt["vs_random_win"].fillna(False).astype(bool).sum()) if "vs_random_win" in wt else 0
        sig = int(wt["vs_do_nothing_significant"].fillna(False).astype(bool).sum())
        seen_w = int(wt[wt.seen == True]["vs_do_nothing_win"].fillna(False).astype(bool).sum())  # noqa: E712
        n_seen = int((wt.seen == True).sum())  # noqa: E712
        lines.append(f"The controller has a lower mean {M.LABELS[metric]} than doing nothing in {w_dn} of "
                     f"{len(wt)} cells ({sig} significant at 95%), {seen_w} of {n_seen} on seen effects and "
                     f"{w_dn - seen_w} of {len(wt) - n_seen} on unseen ones; it beats random settings in "
                     f"{w_r} cells. The original study beat doing nothing in 12 of 27 cells.")
        rel = ((mean["controller"] - mean["do_nothing"]) / mean["do_nothing"]).dropna()
        if len(rel):
            best, worst = rel.idxmin(), rel.idxmax()
            lines.append(f"Relative to doing nothing, the controller's error changes by {100 * rel[best]:+.0f}% "
                         f"in its best cell ({best[1]}, {best[0]}) and by {100 * rel[worst]:+.0f}% in its worst "
                         f"({worst[1]}, {worst[0]}); negative is better.")
        gm = res.group_means(metric)
        g = gm[gm.corpus == "all"].pivot_table(index="group", columns="method", values=metric)
        if {"seen", "unseen"} <= set(g.index) and {"controller", "do_nothing"} <= set(g.columns):
            ds = g.loc["seen", "controller"] - g.loc["seen", "do_nothing"]
            du = g.loc["unseen", "controller"] - g.loc["unseen", "do_nothing"]
            better = "seen" if ds < du else "unseen"
            lines.append(f"Controller minus do-nothing, mean over cells: {ds:+.3f} on seen effects and "
                         f"{du:+.3f} on unseen effects, so the controller helps more on {better} effects "
                         "(the VAE encoder was trained on the seen ones only).")
        kinds = {"speech": [c for c in res.corpora if c in SPEECH_CORPORA],
                 "music": [c for c in res.corpora if c not in SPEECH_CORPORA]}
        if kinds["speech"] and kinds["music"]:
            d = (mean["controller"] - mean["do_nothing"]).dropna()
            dsp = d[d.index.get_level_values(0).isin(kinds["speech"])].mean()
            dmu = d[d.index.get_level_values(0).isin(kinds["music"])].mean()
            lines.append(f"By material: controller minus do-nothing {dsp:+.3f} on speech and {dmu:+.3f} on music.")
    if "ito" in methods and "controller" in methods:
        cs = res.cost_summary().set_index("method")
        i_m, c_m = mean["ito"].mean(), mean["controller"].mean()
        lines.append(f"The ITO baseline ({int(cs.loc['ito', 'renders_per_clip'])} renders per clip, "
                     f"{cs.loc['ito', 'ms_per_clip']:.0f} ms per clip) reaches a mean {M.LABELS[metric]} of "
                     f"{i_m:.3f} against the controller's {c_m:.3f} at {cs.loc['controller', 'ms_per_clip']:.1f} ms "
                     f"per clip: {'search beats' if i_m < c_m else 'the amortised controller beats'} "
                     f"{'amortised prediction' if i_m < c_m else 'per-clip search'} at this budget.")
    pm = summary[summary.metric == "param_mae"].pivot_table(index=["corpus", "effect"], columns="method", values="mean")
    if {"controller", "mean_params", "random"} <= set(pm.columns):
        lines.append(f"Parameter recovery (MAE of normalised settings): controller {pm['controller'].mean():.3f}, "
                     f"a constant middle setting {pm['mean_params'].mean():.3f}, random {pm['random'].mean():.3f}.")
    if "oracle" in mean:
        lines.append(f"The oracle (true settings) scores {mean['oracle'].mean():.3f} on average: the distance "
                     "left between the controller and this floor is what better settings could still gain.")
    exc = res.excluded_counts()
    tot = sum(exc.values())
    lines.append("No item was excluded." if tot == 0 else
                 "Excluded items (silent or non-finite targets, metric errors): " +
                 ", ".join(f"{k} {v}" for k, v in sorted(exc.items())) + ".")
    if res.skipped:
        sk = sorted({d["method"] for d in res.skipped})
        lines.append(f"{len(res.skipped)} method-cells could not run (missing artifacts): {', '.join(sk)}.")
    return "\n\n".join(lines)

"""The ITO budget curve: MR-STFT and cost of the per-clip search at several render budgets, from two starts.

The evaluation table scores ``ito`` (CMA-ES from the middle setting) and ``ito_amortised``
(CMA-ES refining the controller's prediction) at one budget each (``eval.ito_budget``). This
module asks what a larger budget buys: on a fixed, seeded subset of each cell's test examples
(``eval.ito_curve_clips`` per cell, every effect and corpus) both searches run at every budget
of ``eval.ito_curve_budgets`` and are scored by MR-STFT against the ground truth, with their
cost (wall ms and renders per clip). Do-nothing and the controller (best signal) are scored on
the same clips as references.

One trajectory for several budgets. :func:`~dafxlib.evaluation.methods.ito_search` sets its
CMA-ES population from the budget (``4 + 3 ln P``, at most a third of the budget): budgets
whose population is the same run the same generations with the same per-clip generators, so
the best-so-far of one run at the largest of them, read after ``budget // popsize``
generations, *is* the result of a separate run at each smaller one (:func:`search_plan`;
a test checks the equality). Budgets with another population (small ones) get their own run.
The cost of a budget read from a longer run is the wall time up to that generation.

Cost measured on the default profile (2 shared cores, 1-s clips): a candidate costs about
4 ms (render ~2 ms averaged over the nine effects, encoder pass ~2 ms), so the full curve
(12, 50, 200, 800 renders, both starts, 18 cells x 10 clips = 2 x 812 x 180 candidates) takes
~20 min, the whole default run's budget; the default profile therefore runs (12, 50) and the
paper profile the full curve. Results are stored per cell (atomic JSON under
``build/<profile>/eval/ito_budget``, keyed on everything that changes them), so an interrupted
or longer run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import metrics as M
from .. import paths, storage
from ..config import Profile, get_profile
from ..errors import ConfigError, MissingArtifactError
from ..pairs import Examples
from ..seeding import mix_seed, stable_hash
from ..threads import single_thread
from .methods import ITO_AMORTISED_SIGMA0, _render, ito_schedule, ito_search

#: the two searches of the curve, by their evaluation method names
STARTS: tuple[str, ...] = ("ito", "ito_amortised")
#: the references scored on the same clips
REFERENCES: tuple[str, ...] = ("do_nothing", "controller")
#: the smallest budget the curve accepts: the amortised start's render plus one CMA-ES generation of two
MIN_BUDGET = 3
_SIGMA0 = {"ito": 0.3, "ito_amortised": ITO_AMORTISED_SIGMA0}


def check_budgets(budgets: Sequence[Any]) -> tuple[int, ...]:
    """The budgets as ints, or ConfigError: a non-empty, strictly increasing list of integers >= 3."""
    vals = list(budgets) if not isinstance(budgets, (str, bytes)) else [budgets]
    if not vals:
        raise ConfigError("eval.ito_curve_budgets is empty; give renders per clip, e.g. (12, 50, 200, 800)")
    out = []
    for b in vals:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise ConfigError(f"eval.ito_curve_budgets: {b!r} is not an integer number of renders")
        if b < MIN_BUDGET:
            raise ConfigError(f"eval.ito_curve_budgets: {b} renders per clip is below the minimum {MIN_BUDGET}")
        out.append(int(b))
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ConfigError(f"eval.ito_curve_budgets must be strictly increasing, got {tuple(out)}")
    return tuple(out)


def _cma_budget(budget: int, amortised: bool) -> int:
    return budget - 1 if amortised else budget


def renders_at(budget: int, n_params: int, amortised: bool) -> int:
    """Renders per clip a search with ``budget`` spends (the amortised start's render included)."""
    lam, gens = ito_schedule(_cma_budget(budget, amortised), n_params)
    return int(amortised) + lam * gens


def search_plan(budgets: Sequence[int], n_params: int, amortised: bool) -> list[tuple[int, list[int]]]:
    """Runs that give every budget: ``[(run_budget, [budgets read from it]), ...]``.

    Budgets whose CMA-ES population is the same share one run at the largest of them; each
    is read after its own number of generations (:func:`renders_at`).
    """
    groups: dict[int, list[int]] = {}
    for b in check_budgets(budgets):
        lam, _ = ito_schedule(_cma_budget(b, amortised), n_params)
        groups.setdefault(lam, []).append(b)
    return [(max(g), sorted(g)) for g in groups.values()]


def subset_indices(n: int, k: int, seed: int, corpus: str, effect: str) -> np.ndarray:
    """A fixed, seeded choice of ``min(k, n)`` of a cell's ``n`` examples (sorted)."""
    if k < 1:
        raise ConfigError(f"eval.ito_curve_clips must be >= 1, got {k}")
    rng = np.random.default_rng(mix_seed(seed, "ito_curve", corpus, effect))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def _subset(es: Examples, idx: np.ndarray) -> Examples:
    return Examples(
        es.x[idx],
        es.y[idx],
        es.y_ref[idx],
        es.p[idx],
        np.asarray(es.clip_ids)[idx],
        es.effect,
        sample_rate=es.sample_rate,
        corpus=es.corpus,
        split=es.split,
    )


def _mrstft(y_hat: np.ndarray, es: Examples, tcache: dict) -> np.ndarray:
    vals, _ = M.compute_metrics(y_hat, es.y, es.sample_rate, metrics=["mrstft"], target_cache=tcache)
    return vals["mrstft"]


def curve_cell(
    es: Examples,
    pool,
    encoder,
    n_params: int,
    *,
    budgets: Sequence[int],
    controller=None,
    seed: int = 0,
) -> dict[str, list[dict]]:
    """The curve on one cell's (already chosen) examples: rows for ``points`` (start, budget,
    item, mrstft, objective), ``costs`` (start, budget, ms and renders per clip) and ``refs``
    (do-nothing and, with ``controller``, its prediction rendered). ``controller`` (an object
    with ``.predict(x, y_ref)``) is needed for the amortised start; without it only ``ito`` runs.
    Seeds: those of the evaluation's methods (``mix_seed(seed, start, corpus, effect)``)."""
    budgets = check_budgets(budgets)
    b = len(es)
    tcache: dict = {}
    base = {"corpus": es.corpus, "effect": es.effect}
    out: dict[str, list[dict]] = {"points": [], "costs": [], "refs": []}

    def ref_rows(method: str, vals: np.ndarray) -> None:
        for i in range(b):
            out["refs"].append(
                {**base, "method": method, "item": i, "clip_id": str(es.clip_ids[i]), "mrstft": float(vals[i])}
            )

    ref_rows("do_nothing", _mrstft(es.x, es, tcache))
    p0, t_pred = None, 0.0
    if controller is not None:
        t0 = time.perf_counter()
        p0 = np.clip(np.asarray(controller.predict(es.x, es.y_ref), np.float64), 0.0, 1.0)
        t_pred = time.perf_counter() - t0
        if p0.shape != (b, n_params):
            raise ConfigError(f"controller for {es.effect} predicted shape {p0.shape}, expected {(b, n_params)}")
        y_ctl, _ = _render(pool, es.x, p0)
        ref_rows("controller", _mrstft(y_ctl, es, tcache))
    for start in STARTS:
        amortised = start == "ito_amortised"
        if amortised and p0 is None:
            continue
        for run_budget, reads in search_plan(budgets, n_params, amortised):
            # renders -> every budget read at that point (two budgets can need the same renders)
            marks: dict[int, list[int]] = {}
            for bb in reads:
                marks.setdefault(renders_at(bb, n_params, amortised), []).append(bb)
            got: dict[int, tuple] = {}
            t0 = time.perf_counter()

            def keep(renders, bp, by, bf, marks=marks, got=got, t0=t0):
                for bb in marks.get(renders, ()):
                    got[bb] = (bp.copy(), by.copy(), bf.copy(), renders, time.perf_counter() - t0)

            ito_search(
                pool,
                encoder,
                es.x,
                es.y_ref,
                n_params,
                budget=run_budget,
                seed=mix_seed(seed, start, es.corpus, es.effect),
                sigma0=_SIGMA0[start],
                start=p0 if amortised else None,
                after_generation=keep,
            )
            for bb in reads:
                _, y_best, f_best, renders, secs = got[bb]
                secs += t_pred if amortised else 0.0
                vals = _mrstft(y_best, es, tcache)
                for i in range(b):
                    out["points"].append(
                        {
                            **base,
                            "start": start,
                            "budget": bb,
                            "item": i,
                            "clip_id": str(es.clip_ids[i]),
                            "mrstft": float(vals[i]),
                            "objective": float(f_best[i]),
                        }
                    )
                out["costs"].append(
                    {
                        **base,
                        "start": start,
                        "budget": bb,
                        "n": b,
                        "renders_per_clip": renders,
                        "ms_per_clip": 1000.0 * secs / b,
                        "run_budget": run_budget,
                    }
                )
    return out


@dataclass
class BudgetCurve:
    """Per-item points, per-cell costs, per-item references and metadata of one curve."""

    points: Any  # pandas DataFrame: corpus, effect, start, budget, item, clip_id, mrstft, objective
    costs: Any  # pandas DataFrame: corpus, effect, start, budget, n, renders_per_clip, ms_per_clip, run_budget
    refs: Any  # pandas DataFrame: corpus, effect, method, item, clip_id, mrstft
    meta: dict = field(default_factory=dict)

    def summary(self):
        """Per corpus (and ``all``), start and budget: mean over cells of the cell-mean MR-STFT,
        mean ms and renders per clip, cells; references as rows with ``budget`` 0."""
        import pandas as pd

        rows = []
        cm = self.points.groupby(["corpus", "effect", "start", "budget"], sort=False)["mrstft"].mean().reset_index()
        cc = self.costs
        rm = self.refs.groupby(["corpus", "effect", "method"], sort=False)["mrstft"].mean().reset_index()
        for corpus in [*dict.fromkeys(self.points["corpus"]), "all"]:
            sel = cm if corpus == "all" else cm[cm.corpus == corpus]
            sc = cc if corpus == "all" else cc[cc.corpus == corpus]
            for (start, budget), g in sel.groupby(["start", "budget"], sort=False):
                c = sc[(sc.start == start) & (sc.budget == budget)]
                rows.append(
                    {
                        "corpus": corpus,
                        "method": start,
                        "budget": int(budget),
                        "mrstft": float(g["mrstft"].mean()),
                        "ms_per_clip": float(c["ms_per_clip"].mean()),
                        "renders_per_clip": float(c["renders_per_clip"].mean()),
                        "cells": int(len(g)),
                    }
                )
            rsel = rm if corpus == "all" else rm[rm.corpus == corpus]
            for method, g in rsel.groupby("method", sort=False):
                rows.append(
                    {
                        "corpus": corpus,
                        "method": method,
                        "budget": 0,
                        "mrstft": float(g["mrstft"].mean()),
                        "ms_per_clip": np.nan,
                        "renders_per_clip": np.nan,
                        "cells": int(len(g)),
                    }
                )
        return pd.DataFrame(rows)

    def cells_beating(self, start: str, budget: int, method: str = "controller") -> int:
        """Cells where ``start`` at ``budget`` has a lower mean MR-STFT than reference ``method``."""
        a = self.points[(self.points.start == start) & (self.points.budget == budget)]
        a = a.groupby(["corpus", "effect"])["mrstft"].mean()
        r = self.refs[self.refs.method == method].groupby(["corpus", "effect"])["mrstft"].mean()
        j = a.index.intersection(r.index)
        return int((a.loc[j] < r.loc[j]).sum())


def number_entries(curve: BudgetCurve) -> dict[str, Any]:
    """``eval.ito_budget.*`` keys for numbers.json (no key has five dotted parts, the shape of a
    per-cell evaluation key):

    - ``eval.ito_budget.<corpus|all>.<start>.b<budget>.<mrstft|ms_per_clip|renders_per_clip>``;
    - the same under ``.min.`` and ``.max.`` for the smallest and largest budget (profile-free
      names for the report), and ``.max.cells_beating_controller``;
    - ``eval.ito_budget.<corpus|all>.ref.<do_nothing|controller>.mrstft``;
    - ``eval.ito_budget.budget.min`` / ``.max``, ``eval.ito_budget.n_budgets``,
      ``eval.ito_budget.clips_per_cell``, ``eval.ito_budget.cells``, ``eval.ito_budget.wall_s``.
    """
    s = curve.summary()
    budgets = sorted(int(b) for b in s[s.budget > 0]["budget"].unique())
    out: dict[str, Any] = {}
    names = {budgets[0]: "min", budgets[-1]: "max"} if budgets else {}
    for r in s.itertuples(index=False):
        if r.budget == 0:
            out[f"eval.ito_budget.{r.corpus}.ref.{r.method}.mrstft"] = r.mrstft
            continue
        for tag in [f"b{r.budget}", *([names[r.budget]] if r.budget in names else [])]:
            for k in ("mrstft", "ms_per_clip", "renders_per_clip"):
                out[f"eval.ito_budget.{r.corpus}.{r.method}.{tag}.{k}"] = float(getattr(r, k))
    if budgets:
        for start in dict.fromkeys(curve.points["start"]):
            out[f"eval.ito_budget.all.{start}.max.cells_beating_controller"] = curve.cells_beating(start, budgets[-1])
        out["eval.ito_budget.budget.min"], out["eval.ito_budget.budget.max"] = budgets[0], budgets[-1]
    out["eval.ito_budget.n_budgets"] = len(budgets)
    out["eval.ito_budget.clips_per_cell"] = int(curve.meta.get("clips_per_cell", 0))
    out["eval.ito_budget.cells"] = int(len(curve.points[["corpus", "effect"]].drop_duplicates()))
    out["eval.ito_budget.wall_s"] = float(curve.meta.get("wall_s", 0.0))
    return out


def curve_dir(profile: str):
    d = paths.build_dir(profile) / "eval" / "ito_budget"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_budget_curve(
    profile: str | Profile = "default",
    *,
    corpus=None,
    effects: Sequence[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = print,
) -> BudgetCurve:
    """The ITO budget curve of ``profile`` on every (corpus, effect) cell (see the module docstring).

    Needs the selected encoder (notebook 03) and the controllers (notebook 04); raises
    MissingArtifactError naming them. Each cell is stored when done and reused while its key
    (profile, budgets, clips, effect, artifacts) is unchanged; ``force`` recomputes.
    """
    import pandas as pd

    from ..e2e import best_signal, load_controller
    from ..effects import ALL, get_effect
    from ..models.encoder import load_selected_encoder
    from ..render import RenderPool
    from .results import _artifact_fingerprint
    from .sets import effect_fingerprint, eval_set, test_clip_groups

    prof = get_profile(profile) if isinstance(profile, str) else profile
    budgets = check_budgets(prof.eval.ito_curve_budgets)
    k = int(prof.eval.ito_curve_clips)
    effects = list(effects or ALL)
    encoder = load_selected_encoder(prof)
    groups = test_clip_groups(prof, corpus)
    arts = _artifact_fingerprint(prof.name)
    d = curve_dir(prof.name)
    parts: dict[str, list[dict]] = {"points": [], "costs": [], "refs": []}
    t_all, computed, cell_s = time.perf_counter(), 0, 0.0
    for e in effects:
        effect = get_effect(e, prof.effects.effect_set)
        fp = effect_fingerprint(effect, prof.data.sample_rate)
        try:
            controller = load_controller(prof, effect.key, best_signal(prof, effect.key), encoder=encoder)
        except MissingArtifactError as exc:
            raise MissingArtifactError(f"the ITO budget curve starts from the controller: {exc}") from exc
        todo = []
        for c in groups:
            key = stable_hash(
                [
                    prof.hash(),
                    budgets,
                    k,
                    c,
                    effect.key,
                    fp,
                    sorted(x.id for x in groups[c]),
                    arts,
                    ITO_AMORTISED_SIGMA0,
                ],
                16,
            )
            path = d / f"{c}_{effect.key}.json"
            got = None if force else storage.read_json(path)
            if got and got.get("key") == key:
                for name in parts:
                    parts[name] += got[name]
                cell_s += float(got.get("seconds", 0.0))
            else:
                todo.append((c, key, path))
        if not todo:
            continue
        with RenderPool(effect, prof.data.sample_rate, workers=prof.effects.workers) as pool:
            warm = np.zeros((max(1, prof.effects.workers), prof.half_samples), np.float32)
            warm[:, ::50] = 0.1
            pool.render(warm, np.full((len(warm), effect.n_params), 0.5))  # start-up is not a search's cost
            for c, key, path in todo:
                es = eval_set(prof, c, groups[c], effect.key, fingerprint=fp)
                sub = _subset(es, subset_indices(len(es), k, prof.seed, c, effect.key))
                t0 = time.perf_counter()
                with single_thread():
                    res = curve_cell(
                        sub, pool, encoder, effect.n_params, budgets=budgets, controller=controller, seed=prof.seed
                    )
                secs = time.perf_counter() - t0
                cell_s += secs
                storage.write_json(path, {"key": key, "seconds": round(secs, 3), **res})
                for name in parts:
                    parts[name] += res[name]
                computed += 1
                if log:
                    log(f"ITO budget curve: {c} {effect.key} done ({time.perf_counter() - t_all:.0f} s)")
    wall = time.perf_counter() - t_all
    # wall_s: the curve's compute time summed over cells (also when some were loaded from disk)
    meta = {"budgets": list(budgets), "clips_per_cell": k, "wall_s": round(cell_s, 2), "cells_computed": computed}
    curve = BudgetCurve(pd.DataFrame(parts["points"]), pd.DataFrame(parts["costs"]), pd.DataFrame(parts["refs"]), meta)
    if log:
        log(f"ITO budget curve: {len(effects) * len(groups)} cells ({computed} computed) in {wall:.1f} s")
    return curve


__all__ = [
    "BudgetCurve",
    "MIN_BUDGET",
    "REFERENCES",
    "STARTS",
    "check_budgets",
    "curve_cell",
    "curve_dir",
    "number_entries",
    "renders_at",
    "run_budget_curve",
    "search_plan",
    "subset_indices",
]

"""The evaluation stage function: load what notebooks 03-04 made, score every cell, store the results."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import metrics as M
from .. import progress as live
from ..config import Profile, get_profile
from ..errors import ConfigError, MissingArtifactError
from .cell import evaluate_cell
from .methods import METHODS, SIGNALS
from .results import EvalResults, cache_key, load_results, results_dir, save_results
from .sets import effect_fingerprint, eval_set, test_clip_groups


def _load_predictors(profile: Profile, effect_key: str, methods: Sequence[str], encoder=None):
    """Trained controllers by signal, and the best signal (None where none were trained)."""
    want = {m.split("_", 1)[1] for m in methods if m.startswith("controller_")}
    needs_best = "controller" in methods or "ito_amortised" in methods  # ito_amortised starts from it
    if needs_best:
        want |= set(SIGNALS)
    preds: dict[str, Any] = {}
    best: str | None = None
    if not want and "deepafx" not in methods:
        return preds, best
    try:
        from ..e2e import best_signal, load_controller
    except ImportError:
        return preds, best
    for sig in SIGNALS:
        if sig in want:
            try:
                preds[sig] = (
                    load_controller(profile, effect_key, sig, encoder=encoder)
                    if encoder is not None
                    else load_controller(profile, effect_key, sig)
                )
            except MissingArtifactError:
                pass
    if needs_best:
        try:
            best = best_signal(profile, effect_key)
        except MissingArtifactError:
            best = None
    if "ito_amortised" in methods and best in preds:
        preds["ito_amortised"] = preds[best]
    if "deepafx" in methods:  # the DeepAFx-ST-style chain controller, under its method name
        from ..e2e.deepafx import load_deepafx

        try:
            preds["deepafx"] = load_deepafx(profile, effect_key, encoder=encoder)
        except MissingArtifactError:
            pass
    return preds, best


#: methods that need no trained artifact (what ``eval.baselines_only`` scores)
NO_TRAINING: tuple[str, ...] = ("do_nothing", "random", "mean_params", "oracle")


def _load_trained(prof: Profile, fx: Mapping[str, Any], methods: Sequence[str], log) -> tuple[Any, dict]:
    """The encoder and each effect's controllers; MissingArtifactError listing every trained
    artifact a requested method needs and does not find (a partial evaluation is refused)."""
    encoder, gaps = None, []
    loaded: dict[str, tuple[Any, Any, np.ndarray | None]] = {}
    if {"ito", "ito_amortised", "deepafx"} & set(methods) or any(m.startswith("controller") for m in methods):
        try:
            from ..models.encoder import load_selected_encoder

            encoder = load_selected_encoder(prof)
        except MissingArtifactError:
            gaps.append("the selected encoder (notebook 03_beta_tuning)")
    missing_ctl = []
    for e, effect in fx.items():
        preds, best = _load_predictors(prof, effect.key, methods, encoder)
        loaded[e] = (preds, best, None)  # the knob mask is added below
        if "deepafx" in methods and "deepafx" not in preds:
            missing_ctl.append(f"{e} (deepafx)")
        if "ito_amortised" in methods and "ito_amortised" not in preds:
            missing_ctl.append(f"{e} (best controller, the start of ito_amortised)")
        if not any(m.startswith("controller") for m in methods):
            continue
        from ..e2e import signals_for

        trained = signals_for(prof, effect.key)
        want = [s for s in trained if f"controller_{s}" in methods or "controller" in methods]
        lost = [s for s in want if s not in preds]
        if lost or ("controller" in methods and best is None):
            missing_ctl.append(f"{e} ({', '.join(lost) or 'best signal'})")
    if any(m.startswith("controller") for m in methods):
        from ..e2e.identifiability import load_masks

        try:
            masks = load_masks(prof.name)
        except MissingArtifactError:
            gaps.append("the knob identifiability table (notebook 04_end_to_end)")
        else:
            loaded = {e: (preds, best, masks.get(e)) for e, (preds, best, _) in loaded.items()}
    if missing_ctl:
        more = f" and {len(missing_ctl) - 4} more" if len(missing_ctl) > 4 else ""
        gaps.append(
            f"the controllers of {len(missing_ctl)} effect(s) (notebook 04_end_to_end): "
            + "; ".join(missing_ctl[:4])
            + more
        )
    if gaps:
        raise MissingArtifactError(
            "the evaluation would be partial (methods scored on nothing): missing "
            + ", and ".join(gaps)
            + ". Run those notebooks first (./run_all.sh --from 03), or score only the baselines "
            "(do-nothing, random, mean settings, oracle) with --set eval.baselines_only=true"
        )
    return encoder, loaded


def run_evaluation(
    profile: str | Profile = "default",
    *,
    corpus=None,
    effects: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> EvalResults:
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

    from ..effects import ALL, SEEN, get_effect
    from ..render import RenderPool

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
    done_cells = 0
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
        preds, best, knob_mask = loaded[e]
        with RenderPool(effect, prof.data.sample_rate, workers=prof.effects.workers) as pool:
            warm = np.zeros((max(1, prof.effects.workers), prof.half_samples), np.float32)
            warm[:, ::50] = 0.1
            pool.render(warm, np.full((len(warm), effect.n_params), 0.5))  # start-up is not a method's cost
            for c in groups:
                es = eval_set(prof, c, groups[c], effect.key, fingerprint=prints[e])
                cr = evaluate_cell(
                    es,
                    pool,
                    effect.n_params,
                    methods,
                    predictors=preds,
                    best_signal=best,
                    encoder=encoder,
                    ito_budget=prof.eval.ito_budget,
                    seed=prof.seed,
                    workers=prof.effects.workers,
                    seen=effect.key in SEEN,
                    knob_mask=knob_mask,
                )
                rows += cr.rows
                costs += cr.costs
                skipped += cr.skipped
                for m, r in cr.report.items():
                    reports.setdefault(m, M.MetricReport()).merge(r)
                if bar is not None:
                    bar.update(1)
                done_cells += 1
                live.step("evaluation cells", done_cells, len(cells))
    if bar is not None:
        bar.close()
    meta = {
        "key": key,
        "profile": prof.name,
        "seed": prof.seed,
        "n_per_cell": prof.eval.n_per_cell,
        "ito_budget": prof.eval.ito_budget,
        "bootstrap": prof.eval.bootstrap,
        "methods": methods,
        "effects": effects,
        "corpora": list(groups),
        "wall_s": round(time.perf_counter() - t_all, 2),
        "mrstft_fft_sizes": M.mrstft_resolutions(prof.half_samples),
        "msd_fft_size": M.msd_fft_size(prof.half_samples),
        "sample_rate": prof.data.sample_rate,
        "test_clips": {c: len(v) for c, v in groups.items()},
    }
    res = EvalResults(
        pd.DataFrame(rows), pd.DataFrame(costs), {m: r.to_dict() for m, r in reports.items()}, skipped, meta
    )
    save_results(res, prof.name)
    if log:
        log(
            f"evaluation: {len(cells)} cells x {len(methods)} methods in {meta['wall_s']:.1f} s; "
            f"{len(skipped)} method-cells skipped"
        )
    return res

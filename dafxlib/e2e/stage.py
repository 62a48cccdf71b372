"""The end-to-end stage function: every effect's controllers trained, compared and summarised."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import progress as live
from ..config import Profile
from ..models.controller import ControllerFeatures, ControllerPredictor
from ..pairs import Examples
from ..threads import torch_threads
from .artifacts import _PREFERENCE, _profile, _write_best, encoder_fingerprint, signals_for
from .data import load_data, make_features
from .scoring import _render, score
from .train import TrainedController, train_controller


@dataclass
class EffectResult:
    """Everything notebook 04 shows for one effect."""

    effect_key: str
    seen: bool
    param_names: list[str]
    controllers: dict[str, TrainedController]
    #: test split: per method ("<signal>", "do_nothing", "random", "mean_params") per metric arrays
    test: dict[str, dict[str, np.ndarray]]
    #: test predictions per signal (n, P) and the true parameters
    p_hat: dict[str, np.ndarray]
    p_true: np.ndarray
    #: a few worked test examples: x, y_ref, y and y_hat per signal
    examples: dict[str, np.ndarray]
    timings: dict[str, float]

    def summary(self) -> dict[str, float]:
        out = {}
        for m, d in self.test.items():
            for k, v in d.items():
                out[f"{m}.{k}"] = float(np.nanmean(v))
        return out


def evaluate_test(
    profile: Profile,
    effect,
    test: Examples,
    predictors: Mapping[str, ControllerPredictor],
    *,
    seed: int,
    workers: int,
    n_examples: int = 2,
):
    """Score the controllers and the baselines on held-out clips (file-disjoint test split)."""
    sr = profile.data.sample_rate
    rng = np.random.default_rng([seed, 404, sum(map(ord, effect.key))])
    out: dict[str, dict[str, np.ndarray]] = {}
    p_hat: dict[str, np.ndarray] = {}
    y_hats: dict[str, np.ndarray] = {}
    for sig, pred in predictors.items():
        p = pred.predict_features(test.feature_matrix())
        y_hat = _render(effect, test.x, p, sr, workers)
        out[sig] = score(effect, test, p, sr, workers, y_hat=y_hat)
        p_hat[sig] = p
        y_hats[sig] = y_hat[:n_examples]
    out["do_nothing"] = score(effect, test, None, sr, y_hat=test.x)
    p_rand = rng.uniform(0, 1, size=test.p.shape)
    out["random"] = score(effect, test, p_rand, sr, workers)
    p_mean = np.full(test.p.shape, 0.5)
    out["mean_params"] = score(effect, test, p_mean, sr, workers)
    ex = {
        "x": test.x[:n_examples],
        "y_ref": test.y_ref[:n_examples],
        "y": test.y[:n_examples],
        "p_true": test.p[:n_examples],
    }
    for sig, y in y_hats.items():
        ex[f"y_hat_{sig}"] = y
        ex[f"p_hat_{sig}"] = p_hat[sig][:n_examples]
    return out, p_hat, ex


def run_effect(
    profile: Profile,
    effect_key: str,
    features: ControllerFeatures,
    fingerprint: str,
    *,
    progress: bool = True,
    workers: int | None = None,
    corpus: Any = None,
    log=print,
) -> EffectResult:
    """Data, every signal's controller, validation choice and the held-out test for one effect."""
    from ..effects import SEEN, get_effect

    cfg = profile.controller
    workers = profile.effects.workers if workers is None else int(workers)
    effect = get_effect(effect_key, profile.effects.effect_set)
    key = effect.key
    timings = {}
    t0 = time.perf_counter()
    train = load_data(profile, key, "train", cfg.n_train_per_effect, features, fingerprint=fingerprint, corpus=corpus)
    val = load_data(profile, key, "val", cfg.n_val_per_effect, features, fingerprint=fingerprint, corpus=corpus)
    test = load_data(profile, key, "test", cfg.n_test_per_effect, features, fingerprint=fingerprint, corpus=corpus)
    timings["data_s"] = time.perf_counter() - t0
    trained: dict[str, TrainedController] = {}
    for sig in signals_for(profile, key):
        t1 = time.perf_counter()
        tc = train_controller(
            profile,
            effect,
            sig,
            train,
            val,
            fingerprint=fingerprint,
            features=features,
            warm_start=trained.get("regression") if sig == "both" else None,
            progress=progress,
            workers=workers,
        )
        trained[sig] = tc
        timings[f"{sig}_s"] = time.perf_counter() - t1
        log(
            f"  {key:>9s} {sig:<10s} val MR-STFT {tc.val['mrstft']:.3f}  param MAE {tc.val['param_mae']:.3f}"
            f"  ({'reused' if tc.reused else f'{tc.wall_s:.1f} s'})"
        )
    _write_best(profile, key, {s: t.val["mrstft"] for s, t in trained.items()})
    t2 = time.perf_counter()
    test_scores, p_hat, ex = evaluate_test(
        profile, effect, test, {s: t.predictor for s, t in trained.items()}, seed=profile.seed, workers=workers
    )
    timings["test_s"] = time.perf_counter() - t2
    return EffectResult(
        effect_key=key,
        seen=key in SEEN,
        param_names=list(effect.param_names),
        controllers=trained,
        test=test_scores,
        p_hat=p_hat,
        p_true=test.p,
        examples=ex,
        timings=timings,
    )


def run_end_to_end(
    profile: Profile | str,
    encoder: Any = None,
    effects: Sequence[str] | None = None,
    *,
    progress: bool = False,
    level_fn: Any = None,
    log=print,
) -> dict[str, EffectResult]:
    """Notebook 04's pipeline for every effect (default: all nine); returns per-effect results."""
    profile = _profile(profile)
    with torch_threads(profile.controller.torch_threads):
        return _run_end_to_end(profile, encoder, effects, progress=progress, level_fn=level_fn, log=log)


def _run_end_to_end(
    profile: Profile, encoder: Any, effects: Sequence[str] | None, *, progress: bool, level_fn: Any, log
) -> dict[str, EffectResult]:
    from ..effects import ALL

    if encoder is None and "embedding" in profile.controller.features:
        from ..models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    features = make_features(profile, encoder, level_fn)
    fp = encoder_fingerprint(encoder, profile.data.sample_rate, profile.half_samples)
    from ..corpus import build_corpus

    corpus = build_corpus(profile)
    results = {}
    keys = list(effects or ALL)
    for i, key in enumerate(keys):
        live.step("controllers (effects)", i, len(keys))
        t = time.perf_counter()
        results[key] = run_effect(profile, key, features, fp, progress=progress, corpus=corpus, log=log)
        log(f"{key}: done in {time.perf_counter() - t:.1f} s")
    live.step("controllers (effects)", len(keys), len(keys))
    return results


def chosen_signal(result: EffectResult) -> str:
    """The signal with the lowest validation MR-STFT (ties: regression, both, audio)."""
    c = result.controllers
    return min(c, key=lambda s: (c[s].val["mrstft"], _PREFERENCE.index(s)))


def results_numbers(results: Mapping[str, EffectResult]) -> dict[str, float]:
    """Flat ``<effect>.<method>.<metric>`` means for :func:`dafxlib.provenance.record_numbers`."""
    out = {}
    for key, r in results.items():
        for method, d in r.test.items():
            for metric, v in d.items():
                out[f"{key}.{method}.{metric}"] = float(np.nanmean(v))
    return out


def beats_baselines(results: Mapping[str, EffectResult], signal: str | None = None) -> dict[str, dict[str, Any]]:
    """Per effect: does the chosen signal's controller beat do-nothing and random on test MR-STFT,
    and the constant-0.5 guess on parameter MAE? ``signal=None`` uses the validation choice."""
    out = {}
    for key, r in results.items():
        sig = signal or chosen_signal(r)
        if sig not in r.test:
            continue
        m = {k: float(np.nanmean(v)) for k, v in r.test[sig].items()}
        out[key] = {
            "signal": sig,
            "beats_do_nothing": m["mrstft"] < float(np.nanmean(r.test["do_nothing"]["mrstft"])),
            "beats_random": m["mrstft"] < float(np.nanmean(r.test["random"]["mrstft"])),
            "beats_mean_params_mae": m["param_mae"] < float(np.nanmean(r.test["mean_params"]["param_mae"])),
        }
    return out

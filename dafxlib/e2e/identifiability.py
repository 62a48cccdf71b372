"""Which knobs of an effect can be inferred from audio at all: each knob's audible sensitivity.

A controller sees only the clean input and an effected reference. A knob that does not change
the sound (a gate threshold below the signal, a feedback amount with the mix at dry) cannot be
inferred from them, and its parameter error is noise whatever the controller does. This module
measures, per knob, how much the sound moves when that knob alone is redrawn:

    d_ij = MR-STFT( effect(x_i, p_i with p_ij := u_ij),  y_i )        u_ij ~ U(0, 1)
    d_i  = MR-STFT( effect(x_i, p'_i),                   y_i )        p'_i ~ U(0, 1)^P

over held-out examples (x_i, y_i = effect(x_i, p_i)). A knob's *sensitivity* is
``mean_i d_ij / mean_i d_i``: the share of the sound change that redrawing every knob makes
which this knob makes on its own. Knobs below :data:`UNIDENTIFIABLE_BELOW` are called
unidentifiable; the evaluation reports the parameter error both over every knob and over the
identifiable ones only (the headline leaves the unidentifiable ones out, and says which).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import paths, storage
from ..errors import ConfigError, MissingArtifactError
from ..pairs import Examples
from ..seeding import derive_seed

#: a knob whose redraw moves the sound by less than this share of a redraw of every knob is
#: unidentifiable from (x, y_ref)
UNIDENTIFIABLE_BELOW = 0.05

#: artifact written by notebook 04 and read by the evaluation
ARTIFACT = "identifiable_knobs.json"


@dataclass
class KnobSensitivity:
    """Per-knob sensitivity of one effect (see the module docstring)."""

    effect: str
    knobs: list[str]
    sensitivity: np.ndarray  # (P,)
    audible_fraction: np.ndarray  # (P,) share of examples where the knob alone moves the sound
    reference: float  # mean MR-STFT change when every knob is redrawn
    n_examples: int
    threshold: float = UNIDENTIFIABLE_BELOW

    @property
    def identifiable(self) -> np.ndarray:
        return self.sensitivity >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            # a list, in the effect's parameter order (JSON objects are written with sorted keys)
            "knobs": [
                {
                    "name": k,
                    "sensitivity": float(s),
                    "audible_fraction": float(a),
                    "identifiable": bool(s >= self.threshold),
                }
                for k, s, a in zip(self.knobs, self.sensitivity, self.audible_fraction)
            ],
            "reference_mrstft": float(self.reference),
            "n_examples": int(self.n_examples),
            "threshold": float(self.threshold),
        }


def knob_sensitivity(
    effect,
    examples: Examples,
    sample_rate: int,
    *,
    seed: int,
    n: int | None = None,
    workers: int = 2,
    threshold: float = UNIDENTIFIABLE_BELOW,
) -> KnobSensitivity:
    """Measure every knob's sensitivity on (the first ``n`` of) ``examples``; see the module docstring.

    Costs (P + 1) renders and MR-STFT evaluations per example.
    """
    from ..metrics import compute_metrics
    from ..render import render_batch

    if not 0.0 < float(threshold) < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    m = len(examples) if n is None else min(int(n), len(examples))
    if m < 2:
        raise ConfigError(f"knob_sensitivity needs at least 2 examples, got {m}")
    x, y, p = examples.x[:m], examples.y[:m], np.asarray(examples.p[:m], np.float64)
    n_params = p.shape[1]
    if n_params != effect.n_params:
        raise ConfigError(f"examples hold {n_params} parameters, {effect.key} has {effect.n_params}")
    rng = np.random.default_rng(derive_seed(seed, "knob-sensitivity", effect.key))
    u = rng.uniform(0.0, 1.0, size=(m, n_params))
    p_all = rng.uniform(0.0, 1.0, size=(m, n_params))
    # one batch: every knob redrawn alone, then every knob redrawn together
    p_batch = np.concatenate([np.where(np.arange(n_params) == j, u, p) for j in range(n_params)] + [p_all])
    x_batch = np.concatenate([x] * (n_params + 1))
    y_hat = np.asarray(render_batch(effect, x_batch, p_batch, sample_rate, workers=workers, reuse=True).audio)
    vals, _ = compute_metrics(y_hat, np.concatenate([y] * (n_params + 1)), sample_rate, metrics=["mrstft"])
    d = np.asarray(vals["mrstft"], np.float64).reshape(n_params + 1, m)
    ref_each = d[-1]
    reference = float(np.nanmean(ref_each))
    if not np.isfinite(reference) or reference <= 0:
        raise ConfigError(f"{effect.key}: redrawing every knob does not change the sound; nothing to compare with")
    sens = np.nanmean(d[:-1], axis=1) / reference
    audible = np.mean(d[:-1] >= threshold * np.nanmedian(ref_each), axis=1)
    return KnobSensitivity(
        effect=effect.key,
        knobs=list(effect.param_names),
        sensitivity=sens,
        audible_fraction=audible,
        reference=reference,
        n_examples=m,
        threshold=float(threshold),
    )


def save(profile_name: str, results: Sequence[KnobSensitivity]) -> dict[str, Any]:
    """Write every effect's knob table to the :data:`ARTIFACT` (atomic); returns what was written."""
    doc = {r.effect: r.to_dict() for r in results}
    storage.write_json(paths.artifact_path(profile_name, ARTIFACT), doc)
    return doc


def load_masks(profile_name: str) -> dict[str, np.ndarray]:
    """Effect -> boolean mask of its identifiable knobs (in the effect's parameter order)."""
    p = paths.artifact_path(profile_name, ARTIFACT)
    if not p.exists():
        raise MissingArtifactError(f"{p} is missing: run notebook 04_end_to_end (it measures the knobs)")
    doc = storage.read_json(p)
    return {e: np.array([bool(k["identifiable"]) for k in d["knobs"]]) for e, d in doc.items()}


def masked_mae(p_hat: np.ndarray, p_true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-example mean absolute error over the knobs where ``mask`` is True (NaN if none are)."""
    ph, pt = np.atleast_2d(np.asarray(p_hat, np.float64)), np.atleast_2d(np.asarray(p_true, np.float64))
    mask = np.asarray(mask, bool)
    if ph.shape != pt.shape or mask.shape != (ph.shape[1],):
        raise ConfigError(f"masked_mae: shapes {ph.shape}, {pt.shape} and mask {mask.shape} do not fit")
    if not mask.any():
        return np.full(ph.shape[0], np.nan)
    return np.abs(ph - pt)[:, mask].mean(axis=1)


def summary_numbers(results: Mapping[str, KnobSensitivity]) -> dict[str, Any]:
    """Flat numbers for provenance: per effect and knob, sensitivity and identifiability."""
    out: dict[str, Any] = {}
    for e, r in results.items():
        out[f"{e}.n_identifiable"] = int(r.identifiable.sum())
        out[f"{e}.n_knobs"] = len(r.knobs)
        for k, s, a in zip(r.knobs, r.sensitivity, r.audible_fraction):
            out[f"{e}.{k}.sensitivity"] = float(s)
            out[f"{e}.{k}.audible_fraction"] = float(a)
    out["n_unidentifiable"] = int(sum((~r.identifiable).sum() for r in results.values()))
    out["n_knobs"] = int(sum(len(r.knobs) for r in results.values()))
    out["threshold"] = float(next(iter(results.values())).threshold) if results else UNIDENTIFIABLE_BELOW
    return out


def measure_knobs(profile, *, n: int = 48, corpus: Any = None, effects: Sequence[str] | None = None):
    """Every effect's knob sensitivities on its controller validation examples (never the test
    split), written to the :data:`ARTIFACT` for the evaluation; returns effect -> result."""
    from ..effects import ALL, get_effect
    from ..pairs import cached_examples

    out: dict[str, KnobSensitivity] = {}
    for key in effects or ALL:
        effect = get_effect(key, profile.effects.effect_set)
        val = cached_examples(profile, key, "val", profile.controller.n_val_per_effect, "controller", corpus=corpus)
        out[key] = knob_sensitivity(
            effect, val, profile.data.sample_rate, seed=profile.seed, n=n, workers=profile.effects.workers
        )
    save(profile.name, list(out.values()))
    return out

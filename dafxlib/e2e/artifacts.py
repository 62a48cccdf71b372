"""Trained-controller artifacts: names, encoder fingerprints, the best-signal table and loading."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .. import paths, storage
from ..config import Profile, get_profile
from ..errors import ConfigError, MissingArtifactError
from ..models.controller import ControllerFeatures, ControllerMLP, ControllerPredictor
from ..seeding import array_hash

SIGNALS = ("audio", "regression", "both")


#: tie-break order when two signals score the same on validation (simplest first)
_PREFERENCE = ("regression", "both", "audio")


MADE_BY = "04_end_to_end"


BEST_JSON = "controllers/best_signal.json"


#: bump when the artifact layout or the training procedure changes
FORMAT_VERSION = 3  # 2: levels through audio.rms_db / peak_db; 3: echo-peak and modulation-rate descriptors


def _profile(profile: Profile | str) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def signals_for(profile: Profile, effect_key: str) -> list[str]:
    """Signals trained for one effect, in training order (``regression`` before ``both``)."""
    cfg = profile.controller
    bad = [s for s in cfg.signals if s not in SIGNALS]
    if bad:
        raise ConfigError(f"controller.signals has unknown signal(s) {bad}; valid: {SIGNALS}")
    wanted = set(cfg.signals)
    abl = cfg.ablation_effects
    if abl is None or effect_key.lower() in {a.lower() for a in abl}:
        wanted.add("audio")
    return [s for s in ("regression", "both", "audio") if s in wanted]


def artifact_name(effect_key: str, signal: str) -> str:
    if signal not in SIGNALS:
        raise ConfigError(f"unknown controller signal {signal!r}; valid: {SIGNALS}")
    return f"controllers/{effect_key.lower()}_{signal}.pt"


def encoder_fingerprint(encoder: Any, sample_rate: int, n_samples: int) -> str:
    """Identity of a frozen encoder: hash of its weights when it exposes a ``state_dict``
    (itself or its ``model``), else of its embedding of a fixed probe (rounded)."""
    if encoder is None:
        return "none"
    for obj in (encoder, getattr(encoder, "model", None), getattr(encoder, "vae", None)):
        if obj is not None and hasattr(obj, "state_dict"):
            parts = [item for k, v in sorted(obj.state_dict().items()) for item in (k, v.detach().cpu().numpy())]
            return "w" + array_hash(*parts, n=11)
    rng = np.random.default_rng(12345)
    t = np.arange(n_samples) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n_samples)).astype(np.float32)[None]
    y = np.tanh(3 * x).astype(np.float32)
    emb = np.asarray(encoder.embed(x, y), dtype=np.float64)
    return "p" + array_hash(np.round(emb, 3), n=11)


def _update_best(profile: Profile, effect_key: str, signal: str, val_mrstft: float) -> None:
    def upd(d):
        d = dict(d)
        e = dict(d.get(effect_key, {}))
        scores = dict(e.get("val_mrstft", {}))
        scores[signal] = val_mrstft
        e["val_mrstft"] = scores
        e["signal"] = min(scores, key=lambda s: (scores[s], _PREFERENCE.index(s)))
        d[effect_key] = e
        return d

    storage.update_json(paths.artifact_path(profile.name, BEST_JSON), upd)


def _write_best(profile: Profile, effect_key: str, scores: Mapping[str, float]) -> None:
    """Replace the effect's entry with exactly these signals' validation MR-STFT."""

    def upd(d):
        d = dict(d)
        sc = {k: float(v) for k, v in scores.items()}
        d[effect_key] = {"val_mrstft": sc, "signal": min(sc, key=lambda s: (sc[s], _PREFERENCE.index(s)))}
        return d

    storage.update_json(paths.artifact_path(profile.name, BEST_JSON), upd)


def _predictor_from_blob(blob: Mapping[str, Any], features: ControllerFeatures | None) -> ControllerPredictor:
    model = ControllerMLP(**blob["model_config"])
    model.load_state_dict(blob["state_dict"])
    pred = ControllerPredictor(
        model,
        features,
        blob["effect_key"],
        blob["signal"],
        blob.get("param_names", ()),
        info={"hash": blob.get("hash"), "val": blob.get("val", {}), "encoder": blob.get("encoder")},
    )
    return pred


def load_checked_blob(profile: Profile, path, encoder: Any = None, what: str = "controller"):
    """A saved controller blob with the encoder its features need (the selected one when not given):
    (blob, encoder, feature blocks). An artifact trained on another encoder than the selected one
    raises MissingArtifactError (re-run notebook 04), or warns for an old artifact without weights' hash."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    blocks = tuple(blob.get("feature_blocks", profile.controller.features))
    if encoder is None and "embedding" in blocks:
        from ..models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    fp = encoder_fingerprint(encoder, profile.data.sample_rate, profile.half_samples) if encoder is not None else "none"
    stored = blob.get("encoder")
    if "embedding" in blocks and stored and stored != fp:
        msg = (
            f"{what} {path.name} was trained on encoder {stored}, but the selected encoder is {fp}; "
            f"re-run notebook {MADE_BY} (./run_all.sh --profile {profile.name} --only 04)"
        )
        if stored.startswith("w"):
            raise MissingArtifactError(msg)
        warnings.warn(msg, stacklevel=3)
    return blob, encoder, blocks


def load_controller(
    profile: Profile | str, effect_key: str, signal: str | None = None, *, encoder: Any = None, level_fn: Any = None
) -> ControllerPredictor:
    """The controller notebook 04 trained for ``effect_key`` with ``signal``
    (``None``: :func:`best_signal`). ``encoder`` defaults to ``load_selected_encoder(profile)``.

    Raises :class:`MissingArtifactError` when the artifact is missing or was trained on a
    different encoder than the one notebook 03 now selects (re-run notebook 04).
    """
    profile = _profile(profile)
    key = effect_key.lower()
    signal = signal or best_signal(profile, key)
    path = paths.require_artifact(profile.name, artifact_name(key, signal), made_by=MADE_BY)
    blob, encoder, blocks = load_checked_blob(profile, path, encoder)
    features = ControllerFeatures(encoder, profile.data.sample_rate, blocks=blocks, level_fn=level_fn)
    return _predictor_from_blob(blob, features)


def best_signal(profile: Profile | str, effect_key: str) -> str:
    """The signal with the lowest validation MR-STFT for ``effect_key`` (from notebook 04)."""
    profile = _profile(profile)
    path = paths.require_artifact(profile.name, BEST_JSON, made_by=MADE_BY)
    d = storage.read_json(path, {})
    key = effect_key.lower()
    if key not in d:
        raise MissingArtifactError(
            f"no controller was trained for effect {key!r} in profile {profile.name!r} "
            f"(have {sorted(d)}); run notebook {MADE_BY} first"
        )
    return d[key]["signal"]

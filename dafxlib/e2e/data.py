"""Controller training data: examples of one effect and split with their cached controller features."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import paths, storage
from ..config import Profile
from ..models.controller import ControllerFeatures
from ..pairs import Examples
from ..seeding import array_hash, stable_hash
from .artifacts import FORMAT_VERSION


def make_features(profile: Profile, encoder: Any, level_fn: Any = None) -> ControllerFeatures:
    return ControllerFeatures(encoder, profile.data.sample_rate, blocks=profile.controller.features, level_fn=level_fn)


def load_data(
    profile: Profile,
    effect_key: str,
    split: str,
    n: int,
    features: ControllerFeatures,
    *,
    fingerprint: str,
    tag: str = "controller",
    corpus: Any = None,
) -> Examples:
    """Examples from :func:`dafxlib.pairs.cached_examples` with their (cached) controller ``features``."""
    from ..pairs import cached_examples

    ex = cached_examples(profile, effect_key, split, n, tag, corpus=corpus)
    p = np.asarray(ex.p, dtype=np.float32)
    clip_ids = [str(c) for c in getattr(ex, "clip_ids", [])]
    ex_id = array_hash(p, "|".join(clip_ids))
    key = stable_hash(
        {
            "blocks": features.blocks,
            "encoder": fingerprint,
            "examples": ex_id,
            "sr": features.sample_rate,
            "v": FORMAT_VERSION,
        }
    )
    cache = paths.cache_dir(profile.name, "controller_features") / f"{effect_key}_{split}_{key}.npz"
    feats = None
    if cache.exists():
        try:
            feats = np.load(cache)["features"]
        except (OSError, ValueError, KeyError):
            feats = None
    if feats is None or feats.shape[0] != p.shape[0]:
        feats = features(ex.x, ex.y_ref)
        storage.save_npz(cache, features=feats)
    return dataclasses.replace(
        ex,
        x=np.asarray(ex.x, np.float32),
        y=np.asarray(ex.y, np.float32),
        y_ref=np.asarray(ex.y_ref, np.float32),
        p=p,
        split=split,
        features=np.asarray(feats, np.float32),
    )

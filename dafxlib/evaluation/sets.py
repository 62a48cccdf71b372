"""The fixed evaluation cells: file-disjoint test clips grouped by corpus, examples rendered once and cached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import paths, storage
from ..config import Profile
from ..errors import DatasetError
from ..pairs import Examples
from ..seeding import array_hash, mix_seed, stable_hash

SPEECH_CORPORA = ("speech", "vctk", "daps")


DATASET_NAMES = {"musdb18hq": "musdb18", "musdb18_hq": "musdb18", "musdb": "musdb18"}


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
        raise DatasetError(
            f"{len(both)} recording(s) are in the test split and in train/val, e.g. "
            f"{both[:3]}; rebuild the corpus (its split must be file-level)"
        )


def test_clip_groups(profile: Profile, corpus=None) -> dict[str, list[Any]]:
    """The test-split clips of each evaluation corpus (builds or loads the corpus)."""
    if corpus is None:
        from ..corpus import build_corpus

        corpus = build_corpus(profile)
    clips = list(corpus.clips)
    check_disjoint(clips)
    test = [c for c in clips if c.split == "test"]
    if not test:
        raise DatasetError(
            f"profile {profile.name!r}: the corpus has no test clips; check profile.data.split and the corpus size"
        )
    return corpus_groups(test, profile.data.corpus)


def effect_fingerprint(effect, sample_rate: int) -> str:
    """Hash of the effect's output on a fixed probe at three settings: a cache made with an
    older implementation of the effect is never reused."""
    rng = np.random.default_rng(1234)
    n = 4096
    probe = (0.2 * np.sin(2 * np.pi * 220.0 * np.arange(n) / sample_rate) + 0.05 * rng.standard_normal(n)).astype(
        np.float32
    )
    outs = [
        np.round(np.asarray(effect.process(probe, int(sample_rate), np.full(effect.n_params, v)), np.float64), 5)
        for v in (0.2, 0.5, 0.8)
    ]
    return array_hash(f"{effect.key}|{effect.param_names}", *outs)


def eval_set(
    profile: Profile,
    corpus_name: str,
    clips: Sequence[Any],
    effect_key: str,
    *,
    n: int | None = None,
    workers: int | None = None,
    make=None,
    fingerprint: str = "",
) -> Examples:
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
        return Examples(
            z["x"],
            z["y"],
            z["y_ref"],
            z["p"],
            z["clip_ids"],
            effect_key,
            sample_rate=sr,
            corpus=corpus_name,
            split="test",
        )
    if make is None:
        from ..pairs import make_examples as make
    from ..effects import get_effect

    effect = get_effect(effect_key, profile.effects.effect_set)
    ex = make(effect, list(clips), n, seed, sr, half, workers=workers or profile.effects.workers)
    es = Examples(
        np.asarray(ex.x, np.float32),
        np.asarray(ex.y, np.float32),
        np.asarray(ex.y_ref, np.float32),
        np.asarray(ex.p, np.float32),
        ex.clip_ids,
        effect_key,
        ex.param_names,
        sr,
        ex.kinds,
        ex.n_failed,
        list(ex.failures),
        corpus=corpus_name,
        split="test",
    )
    storage.save_npz(path, x=es.x, y=es.y, y_ref=es.y_ref, p=es.p, clip_ids=es.clip_ids)
    return es

"""The latent-control stage function: one plane per effect fitted in one process, with timings."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, MissingArtifactError
from .embed import SettingsEmbedding, embed_settings
from .fit import LatentPlane, fit_plane
from .quality import plane_quality


@dataclass
class LatentRun:
    """What :func:`fit_effects` returns: planes, embeddings, held-out sets, quality, timing."""

    planes: dict[str, LatentPlane]
    embeddings: dict[str, SettingsEmbedding]
    heldout: dict[str, SettingsEmbedding]
    quality: dict[str, dict[str, float]]
    clip_audio: dict[str, np.ndarray]  #: clip id -> mono half A used for embeddings / trends
    timing: dict[str, float]


def select_clips(corpus, split: str, n: int, half_samples: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` clips of a split (alternating speech and music), their half A: id -> audio."""
    rng = np.random.default_rng(seed)
    pools = [list(corpus.select(split=split, kind=k)) for k in ("speech", "music")]
    for p in pools:
        rng.shuffle(p)
    out: dict[str, np.ndarray] = {}
    i = 0
    while len(out) < n and any(pools):
        pool = pools[i % 2]
        if pool:
            c = pool.pop()
            out[c.id] = np.asarray(c.audio[:half_samples], dtype=np.float32)
        i += 1
    if not out:
        raise ConfigError(f"no clips in split {split!r}; rebuild the corpus (notebook 01)")
    return out


def fit_effects(
    profile,
    *,
    effect_keys: Sequence[str] | None = None,
    encoder=None,
    corpus=None,
    save: bool = True,
    log: Callable[[str], None] | None = print,
) -> LatentRun:
    """Embed, fit, evaluate and save the planes of ``effect_keys`` (default: profile.plane.effects
    or all nine) in one process, so UMAP's JIT is paid once."""
    from ..effects import ALL, get_effect

    cfg = profile.plane
    keys = list(effect_keys or cfg.effects or ALL)
    if encoder is None:
        from ..models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    if corpus is None:
        from ..corpus import build_corpus

        corpus = build_corpus(profile)
    sr, half = profile.data.sample_rate, profile.half_samples
    train = select_clips(corpus, "train", cfg.n_clips, half, profile.seed)
    test = select_clips(corpus, "test", cfg.n_clips, half, profile.seed + 1)
    workers = profile.effects.workers
    planes, embs, held, quality, timing = {}, {}, {}, {}, {}
    for j, key in enumerate(keys):
        t0 = time.perf_counter()
        eff = get_effect(key, profile.effects.effect_set)
        emb = embed_settings(
            eff,
            list(train.values()),
            encoder,
            cfg.n_settings,
            seed=profile.seed + 100 * j,
            sample_rate=sr,
            clip_ids=list(train),
            workers=workers,
        )
        ho = embed_settings(
            eff,
            list(test.values()),
            encoder,
            cfg.n_heldout,
            seed=profile.seed + 100 * j + 7,
            sample_rate=sr,
            clip_ids=list(test),
            workers=workers,
        )
        emb.effect_key = ho.effect_key = key  # artifacts are named by the key asked for
        t1 = time.perf_counter()
        plane = fit_plane(emb, n_neighbors=cfg.umap_neighbors, grid=cfg.grid, seed=profile.seed, n_epochs=cfg.n_epochs)
        t2 = time.perf_counter()
        q = plane_quality(
            plane,
            heldout=ho,
            effect=eff,
            audio=next(iter(train.values())),
            sample_rate=sr,
            seed=profile.seed,
            workers=workers,
        )
        if save:
            plane.save(profile.name)
        t3 = time.perf_counter()
        timing[key] = t3 - t0
        planes[key], embs[key], held[key], quality[key] = plane, emb, ho, q
        if log:
            log(
                f"{key:<10} embed {t1 - t0:5.1f} s  fit {t2 - t1:5.1f} s  quality {t3 - t2:5.1f} s  "
                f"smooth {q['smoothness']:.2f} cover {q['coverage']:.2f} "
                f"roundtrip {q['roundtrip_mae']:.3f} (baseline {q['roundtrip_mae_baseline']:.3f})"
            )
    return LatentRun(planes, embs, held, quality, train, timing)


def time_inverse_transform(plane: LatentPlane, *, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Wall time of UMAP's per-move ``inverse_transform`` (one point per call): the first
    call on this model and the median of ``repeats`` further calls, in ms."""
    if plane.model is None:
        raise MissingArtifactError("time_inverse_transform needs the plane's UMAP model")
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(repeats + 1):
        q = plane.points[rng.integers(len(plane.points))] + 0.01 * plane.extent
        t = time.perf_counter()
        plane.inverse_transform(q)
        times.append(time.perf_counter() - t)
    return {"first_ms": 1000 * times[0], "median_ms": 1000 * float(np.median(times[1:]))}

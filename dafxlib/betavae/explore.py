"""Looking into a trained VAE's latent: 2-D maps, interpolations, the volume check, parameter sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ..pairs import Examples
from ..spectrogram import NormStats
from . import probes


def umap_2d(z: np.ndarray, profile, *, n_neighbors: int = 15, seed: int | None = None) -> np.ndarray:
    """2-D UMAP of latents (deterministic for the profile seed).

    ``profile.vae.projection == "pca"`` uses the first two principal components instead
    (the smoke profile: umap-learn's numba compilation costs ~45 s per process).
    """
    import warnings

    z = np.asarray(z, np.float32)
    if len(z) < 4:
        raise DatasetError(f"UMAP needs at least 4 points, got {len(z)}")
    proj = getattr(profile.vae, "projection", "umap")
    if proj == "pca":
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc.astype(np.float64), full_matrices=False)
        out = zc @ vt[:2].T.astype(np.float32)
        return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if proj != "umap":
        raise ConfigError(f"vae.projection must be 'umap' or 'pca', got {proj!r}")
    import umap

    kw = {}
    if profile.vae.umap_epochs:
        kw["n_epochs"] = int(profile.vae.umap_epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        red = umap.UMAP(
            n_neighbors=min(n_neighbors, len(z) - 1),
            random_state=profile.seed if seed is None else seed,
            init="spectral" if len(z) > 10 else "random",
            **kw,
        )
        return red.fit_transform(z)


def render(effect_key: str, x: np.ndarray, p01: np.ndarray, profile) -> np.ndarray:
    """Render (B, N) clean audio through one effect at (B, P) normalised settings."""
    from ..effects import get_effect

    fx = get_effect(effect_key, profile.effects.effect_set)
    x = np.atleast_2d(np.asarray(x, np.float32))
    p01 = np.atleast_2d(np.asarray(p01, np.float64))
    if len(p01) == 1 and len(x) > 1:
        p01 = np.repeat(p01, len(x), 0)
    return np.stack([fx.process(a, profile.data.sample_rate, p) for a, p in zip(x, p01)])


def interpolate(
    encoder,
    pair_a: tuple[np.ndarray, np.ndarray],
    pair_b: tuple[np.ndarray, np.ndarray],
    steps: int = 7,
    n_iter: int = 32,
    audio: bool = True,
) -> dict[str, Any]:
    """Decode ``steps`` points on the line between the mean latents of two (x, y) pairs.

    Returns ``t``, ``z`` (steps, D), ``images`` (steps, 2, F, T) and, with ``audio``, Griffin-Lim
    audio (steps, 2, N) at a level interpolated between the two pairs' statistics.
    """
    imgs, stats = encoder.images(np.stack([pair_a[0], pair_b[0]]), np.stack([pair_a[1], pair_b[1]]))
    za, zb = encoder.embed_images(imgs)
    t = np.linspace(0.0, 1.0, steps)
    z = np.stack([(1 - a) * za + a * zb for a in t]).astype(np.float32)
    ta = torch.as_tensor(t, dtype=torch.float32)[:, None, None, None]
    clean = (1 - ta) * imgs[0:1, :1] + ta * imgs[1:2, :1]  # conditioned decoders: cross-faded clean image
    dec = encoder.decode(z, clean)
    out: dict[str, Any] = {"t": t, "z": z, "images": dec, "ends": imgs}
    if audio:
        tt = torch.as_tensor(t, dtype=torch.float32)[:, None]
        st = NormStats((1 - tt) * stats.mean[0] + tt * stats.mean[1], (1 - tt) * stats.std[0] + tt * stats.std[1])
        out["audio"] = encoder.to_audio(dec, st, n_iter=n_iter)
    return out


def volume_check(
    encoder,
    examples: Mapping[str, Examples],
    profile,
    *,
    gains_db: Sequence[float] = (-20, -10, 0, 10),
    n_clips: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Does the latent move with level? The same (x, y) pairs at several gains vs. the same
    clean clip under each seen effect (random settings).

    Returns mean pairwise latent distance within gain groups (``within``), within effect
    groups (``across``), their ``ratio`` (small = level hardly matters) and the per-gain
    latent shift from the 0 dB embedding (``shift_by_gain``).
    """
    rng = np.random.default_rng(seed)
    keys = list(examples)
    first = examples[keys[0]]
    n_clips = min(n_clips, len(first))
    idx = rng.choice(len(first), n_clips, replace=False)
    gains = 10 ** (np.asarray(gains_db, np.float64) / 20)
    gain_groups, effect_groups, shifts = [], [], []
    from ..effects import get_effect

    for i in idx:
        k = keys[int(rng.integers(len(keys)))]
        ex = examples[k]
        j = int(rng.integers(len(ex)))
        x, y = ex.x[j], ex.y[j]
        zs = encoder.embed(
            np.stack([x * g for g in gains]).astype(np.float32), np.stack([y * g for g in gains]).astype(np.float32)
        )
        gain_groups.append(zs)
        ref = zs[int(np.argmin(np.abs(np.asarray(gains_db))))]
        shifts.append(np.linalg.norm(zs - ref, axis=1))
        xc = first.x[i]
        ys = [
            render(e, xc, rng.uniform(size=(1, get_effect(e, profile.effects.effect_set).n_params)), profile)[0]
            for e in keys
        ]
        effect_groups.append(encoder.embed(np.stack([xc] * len(keys)), np.stack(ys)))
    res: dict[str, Any] = dict(probes.latent_distance_ratio(gain_groups, effect_groups))
    res["gains_db"] = list(map(float, gains_db))
    res["shift_by_gain"] = np.mean(shifts, 0).tolist()
    return res


def param_sweep_latents(
    encoder, effect_key: str, x: np.ndarray, profile, *, n_values: int = 20, base: float = 0.5
) -> dict[str, np.ndarray]:
    """For each parameter: sweep it over ``n_values`` in [0, 1] (others at ``base``) on clean
    clip ``x`` and embed -> {param name: (n_values, D) latents}."""
    from ..effects import get_effect

    fx = get_effect(effect_key, profile.effects.effect_set)
    vals = np.linspace(0.0, 1.0, n_values)
    out = {}
    for j, name in enumerate(fx.param_names):
        p = np.full((n_values, fx.n_params), base)
        p[:, j] = vals
        ys = render(effect_key, np.repeat(np.asarray(x, np.float32)[None], n_values, 0), p, profile)
        out[name] = encoder.embed(np.repeat(np.asarray(x, np.float32)[None], n_values, 0), ys)
    return out

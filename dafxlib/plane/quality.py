"""How good a control plane is: smoothness, coverage, round trip, descriptor trends along paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .embed import _RHO_KEYS, DESCRIPTORS, SettingsEmbedding, descriptors, render
from .fit import LatentPlane


def smoothness(plane: LatentPlane, *, n: int = 256, step: float = 0.01, seed: int = 0) -> float:
    """Median parameter change per unit move: ``||p(a + d) - p(a)||_2 / (|d| / extent)``.

    ``a`` are random support points, ``d`` steps of ``step x extent`` in random directions
    (the end point clamped). Units: L2 change of the normalised parameter vector per
    bounding-box diagonal. A knob that ramps 0 -> 1 straight across the plane scores about
    1; a decoder that jumps between unrelated settings scores far higher."""
    rng = np.random.default_rng(seed)
    grid = plane.dense_grid(64)
    a = grid[rng.integers(0, len(grid), n)]
    ang = rng.uniform(0, 2 * np.pi, n)
    b, _ = plane.clamp(a + step * plane.extent * np.stack([np.cos(ang), np.sin(ang)], 1))
    dist = np.linalg.norm(b - a, axis=1)
    ok = dist > 1e-9 * plane.extent
    dp = np.linalg.norm(plane.to_params(b[ok]) - plane.to_params(a[ok]), axis=1)
    return float(np.median(dp / (dist[ok] / plane.extent)))


def coverage(plane: LatentPlane, *, res: int = 64, bins: int = 10) -> dict[str, object]:
    """How much of each knob's [0,1] range the plane reaches.

    A ``res x res`` lattice inside the support is mapped to parameters; per parameter,
    ``occupancy`` = fraction of ``bins`` equal bins of [0,1] hit, ``range`` = max - min.
    Returns the means over parameters plus per-parameter lists."""
    p = plane.to_params(plane.dense_grid(res), clamp=False)
    occ = [len(np.unique(np.minimum((p[:, j] * bins).astype(int), bins - 1))) / bins for j in range(p.shape[1])]
    rng_ = list(p.max(axis=0) - p.min(axis=0))
    return {
        "coverage": float(np.mean(occ)),
        "coverage_range": float(np.mean(rng_)),
        "per_param": dict(zip(plane.param_names, occ)),
        "per_param_range": dict(zip(plane.param_names, rng_)),
    }


def roundtrip(plane: LatentPlane, heldout: SettingsEmbedding) -> dict[str, float]:
    """Held-out settings (on held-out clips) -> UMAP transform -> clamp -> decoder -> MAE.

    ``baseline_mae`` predicts the training settings' mean for every item (what a plane that
    knows nothing would score); ``clamped_frac`` is the share of held-out points outside the
    support."""
    pts = plane.transform(heldout.z)
    q, clamped = plane.clamp(pts)
    pred = plane.to_params(q, clamp=False)
    mae = float(np.abs(pred - heldout.params01).mean())
    base = float(np.abs(plane.params01.mean(axis=0) - heldout.params01).mean())
    return {
        "roundtrip_mae": mae,
        "roundtrip_mae_baseline": base,
        "clamped_frac": float(clamped.mean()),
        "n_heldout": int(len(heldout)),
    }


def polyline(waypoints: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points evenly spaced by arc length along the waypoints: (t (n,), points (n,2))."""
    w = np.asarray(waypoints, dtype=np.float64)
    seg = np.linalg.norm(np.diff(w, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return np.linspace(0, 1, n), np.repeat(w[:1], n, axis=0)
    s = np.linspace(0, cum[-1], n)
    pts = np.stack([np.interp(s, cum, w[:, 0]), np.interp(s, cum, w[:, 1])], 1)
    return s / cum[-1], pts


@dataclass
class PathProfile:
    """Parameters and descriptors of renders along a path on the plane."""

    t: np.ndarray  #: (n,) arc-length position 0..1
    points: np.ndarray  #: (n, 2) clamped plane points
    clamped: np.ndarray  #: (n,) bool
    params01: np.ndarray  #: (n, P)
    descriptors: dict[str, np.ndarray]  #: name -> (n,)
    waypoints: np.ndarray


def path_profile(
    plane: LatentPlane,
    effect,
    audio: np.ndarray,
    sample_rate: int,
    waypoints: Sequence[np.ndarray],
    *,
    n: int = 16,
    workers: int = 2,
) -> PathProfile:
    """Walk the polyline through ``waypoints``, decode, render ``audio`` and describe it."""
    t, pts = polyline(waypoints, n)
    q, clamped = plane.clamp(pts)
    p = plane.to_params(q, clamp=False)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    y, ok = render(effect, np.broadcast_to(audio, (n, audio.shape[0])), p, sample_rate, workers)
    desc = descriptors(y, sample_rate)
    for k in desc:
        desc[k] = np.where(ok, desc[k], np.nan)
    return PathProfile(t, q, clamped, p, desc, np.asarray(waypoints, dtype=np.float64))


def default_waypoints(plane: LatentPlane) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A, C, B for the A -> C -> B path: A and B near the two ends of the settings' main axis
    (2nd/98th percentile, so not outliers), C the setting farthest (90th pct.) from line AB."""
    x = plane.points - plane.center
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[0]
    a = plane.points[np.argsort(proj)[int(0.02 * (len(proj) - 1))]]
    b = plane.points[np.argsort(proj)[int(0.98 * (len(proj) - 1))]]
    ab = (b - a) / (np.linalg.norm(b - a) + 1e-12)
    perp = np.abs((plane.points - a) @ np.array([-ab[1], ab[0]]))
    c = plane.points[np.argsort(perp)[int(0.9 * (len(perp) - 1))]]
    return a, c, b


def descriptor_trends(
    plane: LatentPlane, effect, audio: np.ndarray, sample_rate: int, *, n: int = 12, workers: int = 2
) -> dict[str, dict]:
    """Spearman rho of each descriptor along a straight path across the plane.

    For each descriptor the path runs through the setting nearest the centre (so it starts
    on the support) along the direction in which that descriptor of the embedded settings
    grows fastest (least-squares plane fit), between the outermost support points on that
    line (stretches of it in gaps of the support are clamped). Each of ``n`` points is
    decoded to parameters and ``audio`` is rendered afresh; rho = Spearman(position,
    descriptor). |rho| = 1: the surface gives a monotonic control of that quality; a
    negative rho: the renders move against the settings' linear trend (a folded surface)."""
    from scipy.stats import spearmanr

    out = {}
    X = np.column_stack([np.ones(len(plane.points)), plane.points - plane.center])
    line = np.linspace(-plane.extent, plane.extent, 401)
    origin = plane.points[np.argmin(np.linalg.norm(plane.points - plane.center, axis=1))]
    for name in DESCRIPTORS:
        y = plane.descriptors.get(name)
        if y is None:
            continue
        coef, *_ = np.linalg.lstsq(X, np.asarray(y, dtype=np.float64), rcond=None)
        g = coef[1:]
        if not np.linalg.norm(g) > 0:
            out[name] = {"rho": float("nan"), "direction": [0.0, 0.0]}
            continue
        u = g / np.linalg.norm(g)
        cand = origin + line[:, None] * u
        ins = np.flatnonzero(plane.inside(cand))
        a, b = cand[ins[0]], cand[ins[-1]]
        prof = path_profile(plane, effect, audio, sample_rate, [a, b], n=n, workers=workers)
        v = prof.descriptors[name]
        ok = np.isfinite(v)
        rho = spearmanr(prof.t[ok], v[ok]).statistic if ok.sum() >= 3 and np.ptp(v[ok]) > 0 else float("nan")
        out[name] = {"rho": float(rho), "direction": u.tolist(), "profile": prof}
    return out


def latent_error(plane: LatentPlane) -> float:
    """Relative error of the grid latent path at the settings' own points:
    ``median ||to_latent(x_i) - z_i|| / median ||z_i - mean z||`` (0 = exact)."""
    zi = plane.to_latent(plane.points, clamp=False)
    spread = np.median(np.linalg.norm(plane.z - plane.z.mean(axis=0), axis=1)) + 1e-12
    return float(np.median(np.linalg.norm(zi - plane.z, axis=1)) / spread)


def plane_quality(
    plane: LatentPlane,
    *,
    heldout: SettingsEmbedding | None = None,
    effect=None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    seed: int = 0,
    workers: int = 2,
) -> dict[str, Any]:
    """All quality numbers of one plane as a flat dict (number keys under ``plane.<effect>``)."""
    cov = coverage(plane)
    q: dict[str, Any] = {
        "smoothness": smoothness(plane, seed=seed),
        "coverage": cov["coverage"],
        "coverage_range": cov["coverage_range"],
        "latent_rel_error": latent_error(plane),
        "decoder_loo_mae": float(plane.meta.get("decoder_loo_mae", np.nan)),
        "n_settings": int(len(plane.points)),
        "support_frac": float(plane.inside(plane.dense_grid(64, inside_only=False)).mean()),
    }
    if heldout is not None:
        q.update(roundtrip(plane, heldout))
    if effect is not None and audio is not None:
        if sample_rate is None:
            raise ConfigError("descriptor trends need sample_rate")
        for name, r in descriptor_trends(plane, effect, audio, sample_rate, workers=workers).items():
            q[_RHO_KEYS[name]] = r["rho"]
    return q


def quality_numbers(quality: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Flatten per-effect quality into ``<effect>.<metric>`` keys for ``record_numbers('plane', ...)``."""
    keep = (
        "smoothness",
        "coverage",
        "coverage_range",
        "roundtrip_mae",
        "roundtrip_mae_baseline",
        "latent_rel_error",
        "rho_centroid",
        "rho_lowfreq",
        "rho_rms",
        "clamped_frac",
    )
    return {f"{k}.{m}": v[m] for k, v in quality.items() for m in keep if m in v}

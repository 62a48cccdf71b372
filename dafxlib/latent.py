"""A 2-D control plane for an effect: UMAP of setting embeddings, mapped back to knobs.

Pipeline (the study's latent-control stage, notebook 05):

1. :func:`embed_settings` renders ``n_settings`` uniformly random settings of one effect on
   each of ``n_clips`` clean clips (half A) and embeds every (clean, effected) pair with the
   frozen selected encoder; a setting's point is the mean embedding over the clips, so the
   plane describes settings, not clips. Timbral descriptors of the renders (spectral
   centroid, low-frequency energy ratio, RMS; :mod:`dafxlib.metrics`) are kept too.
2. :func:`fit_plane` fits UMAP to 2-D once per effect and builds two maps back from it:

   - **plane -> latent**: ``inverse_transform`` evaluated ONCE on a ``grid x grid`` lattice
     (one batched call for the nodes inside the settings' convex hull; nodes outside, where
     UMAP's inverse is undefined, copy the nearest inside node) and bilinearly interpolated
     (:meth:`LatentPlane.to_latent`). One ``inverse_transform`` call costs seconds even for
     a single point (umap-learn re-triangulates the plane and re-compiles numba code on
     every call), so it is never called per move. This path is for *showing* the latent.
   - **plane -> parameters**: a kernel (Nadaraya-Watson) regression from plane points to the
     true normalised parameters of the embedded settings, Gaussian weights, bandwidth chosen
     by leave-one-out MAE (:class:`KernelDecoder`). It is smooth, deterministic, needs no
     training loop and evaluates one point in microseconds. **The widget uses this path**:
     the latent path would still need a latent -> parameters model (the controller takes
     audio, not a latent) and would add the grid's interpolation error on top.

   **Clamping.** The plane's *support* is the union of discs of radius
   ``support_radius`` (2 x the 90th percentile of nearest-neighbour distances between
   the embedded settings) around the settings' points. A point outside the support is
   pulled straight towards its nearest setting until it lies on that setting's disc
   (:meth:`LatentPlane.clamp`); the mapping is continuous and every embedded setting is
   inside. This is tighter than the convex hull, which would include UMAP's empty gaps
   between clusters where neither map has data.
3. :func:`plane_quality` measures, per effect: smoothness, coverage, round-trip error of
   held-out settings on held-out clips and monotonic descriptor trends along straight paths
   (definitions in the function docstrings).

UMAP's numba JIT (~10-45 s) is paid once per process: fit every effect in one process
(:func:`fit_effects`). Fitted planes are saved as artifacts ``latent/<effect>.npz`` (all
arrays the widget needs) and ``latent/<effect>.pkl`` (the UMAP model, for ``transform`` and
``inverse_transform``).
"""
from __future__ import annotations

import colorsys
import json
import pickle
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from . import io, paths
from .audio import as_float_audio
from .errors import ConfigError, EffectError, MissingArtifactError
from .threads import torch_threads

#: descriptor name -> short label used in number keys
DESCRIPTORS: tuple[str, ...] = ("centroid_hz", "lf_ratio", "rms_db")
DESCRIPTOR_LABELS = {"centroid_hz": "spectral centroid (Hz)", "lf_ratio": "low-frequency energy ratio",
                     "rms_db": "RMS (dBFS)"}
_RHO_KEYS = {"centroid_hz": "rho_centroid", "lf_ratio": "rho_lowfreq", "rms_db": "rho_rms"}
_CHUNK = 64


# ---- embeddings -------------------------------------------------------------------------
@dataclass
class SettingsEmbedding:
    """Embeddings of random settings of one effect (each averaged over the same clips)."""

    effect_key: str
    param_names: list[str]
    z: np.ndarray  #: (n, D) float32 mean embedding over clips
    params01: np.ndarray  #: (n, P) float32 true normalised parameters
    descriptors: dict[str, np.ndarray]  #: name -> (n,) mean over clips
    clip_ids: list[str]
    n_failed: int = 0  #: settings dropped because a render failed on some clip

    def __len__(self) -> int:
        return int(self.z.shape[0])


def descriptors(audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Brightness, depth and level of each row of ``audio`` (B, N): see :mod:`dafxlib.metrics`."""
    from . import metrics

    a = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return {"centroid_hz": metrics.spectral_centroid(a, sample_rate),
            "lf_ratio": metrics.low_frequency_ratio(a, sample_rate),
            "rms_db": metrics.rms_db(a)}


def render(effect, audios: np.ndarray, params01: np.ndarray, sample_rate: int, workers: int = 2):
    """Render each row of ``audios`` with the matching settings; returns (audio (B,N), ok (B,))."""
    from .render import render_batch

    res = render_batch(effect, np.ascontiguousarray(as_float_audio(audios, effect.name), dtype=np.float32),
                       np.ascontiguousarray(params01, dtype=np.float32), sample_rate, workers=workers, reuse=True)
    return np.asarray(res.audio, dtype=np.float32), np.asarray(res.ok, dtype=bool)


def embed_settings(effect, clips: Sequence[np.ndarray], encoder, n_settings: int, *, seed: int,
                   sample_rate: int, clip_ids: Sequence[str] | None = None, workers: int = 2,
                   params01: np.ndarray | None = None) -> SettingsEmbedding:
    """Embed ``n_settings`` uniform random settings of ``effect``, each on every clip.

    ``clips`` are mono clean signals (the clips' half A); ``encoder.embed(x, y)`` gives
    (B, D). A setting whose render fails on any clip is dropped and counted in ``n_failed``.
    Pass ``params01`` to embed given settings instead of random ones."""
    if len(clips) == 0:
        raise ConfigError("embed_settings needs at least one clip (profile.latent.n_clips >= 1)")
    if params01 is None:
        if n_settings < 1:
            raise ConfigError(f"n_settings must be >= 1, got {n_settings}")
        params01 = np.random.default_rng(seed).random((n_settings, effect.n_params))
    params01 = np.asarray(params01, dtype=np.float32)
    n = params01.shape[0]
    z_sum, ok_all = None, np.ones(n, dtype=bool)
    desc_sum = {k: np.zeros(n) for k in DESCRIPTORS}
    for clip in clips:
        clip = np.asarray(as_float_audio(clip, effect.name), dtype=np.float32).reshape(-1)  # int PCM scaled
        for s in range(0, n, _CHUNK * 4):
            p = params01[s:s + _CHUNK * 4]
            x = np.broadcast_to(clip, (p.shape[0], clip.shape[0]))
            y, ok = render(effect, x, p, sample_rate, workers)
            ok_all[s:s + p.shape[0]] &= ok
            xc = np.ascontiguousarray(x)
            with torch_threads(1):  # conv results depend on the thread count for some batch shapes
                emb = np.concatenate([np.asarray(encoder.embed(xc[i:i + _CHUNK], y[i:i + _CHUNK]),
                                                 dtype=np.float64) for i in range(0, p.shape[0], _CHUNK)])
            if z_sum is None:
                z_sum = np.zeros((n, emb.shape[1]))
            z_sum[s:s + p.shape[0]] += emb
            for k, v in descriptors(y, sample_rate).items():
                desc_sum[k][s:s + p.shape[0]] += v
    keep = ok_all & np.all(np.isfinite(z_sum), axis=1)
    if not keep.any():
        raise EffectError(f"{effect.name}: only {int(keep.sum())} of {n} settings rendered on every clip; "
                          "check the effect with dafxlib.render.render_batch")
    c = float(len(clips))
    return SettingsEmbedding(
        effect_key=effect.key, param_names=list(effect.param_names),
        z=(z_sum[keep] / c).astype(np.float32), params01=params01[keep],
        descriptors={k: v[keep] / c for k, v in desc_sum.items()},
        clip_ids=list(clip_ids) if clip_ids is not None else [f"clip{i}" for i in range(len(clips))],
        n_failed=int((~keep).sum()))


# ---- plane -> parameters ----------------------------------------------------------------
class KernelDecoder:
    """Nadaraya-Watson regression plane -> parameters with a Gaussian kernel.

    ``predict(q) = sum_i w_i p_i / sum_i w_i`` with ``w_i = exp(-|q - x_i|^2 / 2 h^2)``.
    The bandwidth ``h`` is the candidate multiple of the median nearest-neighbour distance
    with the lowest leave-one-out MAE on the training pairs."""

    MULTIPLES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

    def __init__(self, points: np.ndarray, params01: np.ndarray, bandwidth: float):
        self.points = np.asarray(points, dtype=np.float64)
        self.params01 = np.asarray(params01, dtype=np.float64)
        if not bandwidth > 0:
            raise ConfigError(f"bandwidth must be positive, got {bandwidth}")
        self.bandwidth = float(bandwidth)

    @classmethod
    def fit(cls, points: np.ndarray, params01: np.ndarray) -> "KernelDecoder":
        pts = np.asarray(points, dtype=np.float64)
        par = np.asarray(params01, dtype=np.float64)
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d2, np.inf)
        nn = np.sqrt(d2.min(axis=1))
        base = float(np.median(nn[np.isfinite(nn)])) or 1e-3
        best, best_err, errs = None, np.inf, {}
        for m in cls.MULTIPLES:
            h = base * m
            logw = -d2 / (2 * h * h)
            logw -= logw.max(axis=1, keepdims=True)
            w = np.exp(logw)
            pred = (w @ par) / w.sum(axis=1, keepdims=True)
            err = float(np.abs(pred - par).mean())
            errs[m] = err
            if err < best_err - 1e-12:
                best, best_err = h, err
        dec = cls(pts, par, best)
        dec.loo_mae = best_err
        dec.loo_curve = errs
        return dec

    def predict(self, q: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(q, dtype=np.float64))
        d2 = ((q[:, None, :] - self.points[None, :, :]) ** 2).sum(-1)
        logw = -d2 / (2 * self.bandwidth ** 2)
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        return np.clip((w @ self.params01) / w.sum(axis=1, keepdims=True), 0.0, 1.0)


# ---- the plane ----------------------------------------------------------------------------
@dataclass
class LatentPlane:
    """A fitted 2-D control plane of one effect (see the module docstring)."""

    effect_key: str
    param_names: list[str]
    points: np.ndarray  #: (n, 2) plane coordinates of the embedded settings
    z: np.ndarray  #: (n, D) their embeddings
    params01: np.ndarray  #: (n, P) their true parameters
    descriptors: dict[str, np.ndarray]
    grid_x: np.ndarray  #: (G,)
    grid_y: np.ndarray  #: (G,)
    grid_latent: np.ndarray  #: (G, G, D): [iy, ix] -> inverse_transform(grid_x[ix], grid_y[iy])
    support_radius: float
    bandwidth: float
    meta: dict = field(default_factory=dict)
    model: object | None = None  #: the fitted umap.UMAP (None when loaded without it)
    #: UMAP sees ``(z - z_center) / z_scale`` (one scalar: the geometry is unchanged, but
    #: umap-learn's inverse_transform, whose SGD step is scale-blind, gets unit-scale data)
    z_center: np.ndarray | None = None
    z_scale: float = 1.0

    def __post_init__(self):
        from scipy.spatial import cKDTree

        self._tree = cKDTree(self.points)
        self.decoder = KernelDecoder(self.points, self.params01, self.bandwidth)

    # geometry
    @property
    def lo(self) -> np.ndarray:
        return self.points.min(axis=0)

    @property
    def hi(self) -> np.ndarray:
        return self.points.max(axis=0)

    @property
    def extent(self) -> float:
        """Diagonal of the settings' bounding box: the unit of plane distances in metrics."""
        return float(np.linalg.norm(self.hi - self.lo))

    @property
    def center(self) -> np.ndarray:
        return self.points.mean(axis=0)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def _as_points(self, points) -> tuple[np.ndarray, bool]:
        q = np.asarray(points, dtype=np.float64)
        single = q.ndim == 1
        q = np.atleast_2d(q)
        if q.shape[-1] != 2 or q.ndim != 2:
            raise ConfigError(f"plane points must have shape (2,) or (n, 2), got {np.shape(points)}")
        if not np.all(np.isfinite(q)):
            raise ConfigError(f"plane points must be finite, got {q}")
        return q, single

    def inside(self, points) -> np.ndarray:
        q, _ = self._as_points(points)
        d, _ = self._tree.query(q)
        return d <= self.support_radius * (1 + 1e-9)

    def clamp(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Pull points outside the support onto it; returns (points (n,2), clamped (n,) bool)."""
        q, single = self._as_points(points)
        d, i = self._tree.query(q)
        out = q.copy()
        far = d > self.support_radius
        if far.any():
            nn = self.points[i[far]]
            out[far] = nn + (q[far] - nn) * (self.support_radius / d[far])[:, None]
        return (out[0], far[0]) if single else (out, far)

    def to_params(self, points, *, clamp: bool = True) -> np.ndarray:
        """Normalised parameters at plane points (clamped to the support first)."""
        q, single = self._as_points(points)
        if clamp:
            q, _ = self.clamp(q)
        p = self.decoder.predict(q)
        return p[0] if single else p

    def to_latent(self, points, *, clamp: bool = True) -> np.ndarray:
        """Latent at plane points: bilinear interpolation of the precomputed grid."""
        q, single = self._as_points(points)
        if clamp:
            q, _ = self.clamp(q)
        gx, gy, g = self.grid_x, self.grid_y, self.grid_latent
        fx = np.clip((q[:, 0] - gx[0]) / (gx[1] - gx[0]), 0, len(gx) - 1)
        fy = np.clip((q[:, 1] - gy[0]) / (gy[1] - gy[0]), 0, len(gy) - 1)
        ix = np.minimum(np.floor(fx).astype(int), len(gx) - 2)
        iy = np.minimum(np.floor(fy).astype(int), len(gy) - 2)
        wx = (fx - ix)[:, None]
        wy = (fy - iy)[:, None]
        z = ((1 - wy) * ((1 - wx) * g[iy, ix] + wx * g[iy, ix + 1])
             + wy * ((1 - wx) * g[iy + 1, ix] + wx * g[iy + 1, ix + 1]))
        return z[0] if single else z

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Plane points of new embeddings (needs the UMAP model: load with ``with_model=True``)."""
        if self.model is None:
            raise MissingArtifactError(f"plane {self.effect_key!r} was loaded without its UMAP model; "
                                       "use load_plane(..., with_model=True)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.transform(self._to_umap(z)), dtype=np.float64)

    def _to_umap(self, z) -> np.ndarray:
        c = 0.0 if self.z_center is None else self.z_center
        return ((np.asarray(z, dtype=np.float64) - c) / self.z_scale).astype(np.float32)

    def _from_umap(self, u) -> np.ndarray:
        c = 0.0 if self.z_center is None else self.z_center
        return np.asarray(u, dtype=np.float64) * self.z_scale + c

    def inverse_transform(self, points) -> np.ndarray:
        """UMAP's own inverse transform (slow: seconds per call; for timing and checks only)."""
        if self.model is None:
            raise MissingArtifactError(f"plane {self.effect_key!r} was loaded without its UMAP model")
        q, single = self._as_points(points)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = self._from_umap(self.model.inverse_transform(q))
        return z[0] if single else z

    def dense_grid(self, res: int = 64, *, inside_only: bool = True) -> np.ndarray:
        """A ``res x res`` lattice over the bounding box, optionally only its support points."""
        xs = np.linspace(self.lo[0], self.hi[0], res)
        ys = np.linspace(self.lo[1], self.hi[1], res)
        g = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        return g[self.inside(g)] if inside_only else g

    # persistence
    def save(self, profile_name: str) -> dict[str, str]:
        """Write ``latent/<effect>.npz`` (+ ``.pkl`` with the UMAP model) as artifacts."""
        npz = paths.artifact_path(profile_name, f"latent/{self.effect_key}.npz")
        npz.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"desc_{k}": v for k, v in self.descriptors.items()}
        io.save_npz(npz, points=self.points, z=self.z, params01=self.params01, grid_x=self.grid_x,
                    grid_y=self.grid_y, grid_latent=self.grid_latent,
                    scalars=np.array([self.support_radius, self.bandwidth, self.z_scale]),
                    z_center=self.z_center if self.z_center is not None else np.zeros(self.z.shape[1]),
                    meta=np.array(json.dumps({"effect_key": self.effect_key, "param_names": self.param_names,
                                              **self.meta}, default=str)), **arrays)
        out = {"npz": str(npz)}
        if self.model is not None:
            pkl = npz.with_suffix(".pkl")
            with io.atomic_path(pkl) as tmp:
                with open(tmp, "wb") as fh:
                    pickle.dump(self.model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            out["pkl"] = str(pkl)
        return out


def load_plane(profile_name: str, effect_key: str, *, with_model: bool = False) -> LatentPlane:
    """Load a plane notebook 05 saved; raises MissingArtifactError naming the notebook."""
    npz = paths.require_artifact(profile_name, f"latent/{effect_key}.npz", made_by="05_latent_control")
    with np.load(npz, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        desc = {k[5:]: f[k] for k in f.files if k.startswith("desc_")}
        r, bw, zs = (float(v) for v in f["scalars"])
        plane = LatentPlane(effect_key=meta.pop("effect_key"), param_names=meta.pop("param_names"),
                            points=f["points"], z=f["z"], params01=f["params01"], descriptors=desc,
                            grid_x=f["grid_x"], grid_y=f["grid_y"], grid_latent=f["grid_latent"],
                            support_radius=r, bandwidth=bw, meta=meta, z_center=f["z_center"], z_scale=zs)
    if with_model:
        pkl = paths.require_artifact(profile_name, f"latent/{effect_key}.pkl", made_by="05_latent_control")
        with open(pkl, "rb") as fh:
            plane.model = pickle.load(fh)
    return plane


def _umap(n_points: int, n_neighbors: int, seed: int, n_epochs: int | None, min_dist: float = 0.1):
    import umap

    if n_points < 4:
        raise ConfigError(f"UMAP needs at least 4 settings, got {n_points}; raise profile.latent.n_settings")
    k = max(2, min(int(n_neighbors), n_points - 1))
    return umap.UMAP(n_components=2, n_neighbors=k, min_dist=min_dist, random_state=seed,
                     transform_seed=seed, n_epochs=n_epochs, low_memory=True, n_jobs=1)


def _grid_inverse(model, pts: np.ndarray, lattice: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """inverse_transform of the lattice nodes inside the settings' convex hull in ONE call;
    nodes outside copy the nearest inside node (UMAP's inverse is undefined there: it
    falls back to an arbitrary simplex)."""
    from scipy.spatial import Delaunay, cKDTree

    inside = Delaunay(pts).find_simplex(lattice) >= 0
    if not inside.any():  # degenerate tiny hull: use the nodes nearest to the settings
        inside[np.unique(cKDTree(lattice).query(pts)[1])] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z_in = (np.asarray(model.inverse_transform(lattice[inside]), dtype=np.float64) * scale
                + center).astype(np.float32)
    out = np.empty((len(lattice), z_in.shape[1]), dtype=np.float32)
    out[inside] = z_in
    if (~inside).any():
        _, j = cKDTree(lattice[inside]).query(lattice[~inside])
        out[~inside] = z_in[j]
    return out


def fit_plane(emb: SettingsEmbedding, *, n_neighbors: int = 15, grid: int = 32, seed: int = 0,
              n_epochs: int | None = None, support_factor: float = 2.0) -> LatentPlane:
    """Fit UMAP to 2-D, the plane -> parameters decoder and the grid of inverse latents."""
    if grid < 2:
        raise ConfigError(f"latent grid must be >= 2, got {grid}")
    t0 = time.perf_counter()
    model = _umap(len(emb), n_neighbors, seed, n_epochs)
    center = emb.z.astype(np.float64).mean(axis=0)
    scale = float((emb.z - center).std()) or 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pts = np.asarray(model.fit_transform(((emb.z - center) / scale).astype(np.float32)), dtype=np.float64)
    t_fit = time.perf_counter() - t0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pts).query(pts, k=2)
    nn = d[:, 1]
    radius = float(support_factor * np.quantile(nn, 0.9)) or 1e-3
    dec = KernelDecoder.fit(pts, emb.params01)
    lo, hi = pts.min(axis=0) - radius, pts.max(axis=0) + radius
    gx, gy = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    lattice = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    t1 = time.perf_counter()
    gl = _grid_inverse(model, pts, lattice, center, scale)
    t_inv = time.perf_counter() - t1
    return LatentPlane(
        effect_key=emb.effect_key, param_names=list(emb.param_names), points=pts, z=emb.z,
        params01=emb.params01, descriptors=dict(emb.descriptors), grid_x=gx, grid_y=gy,
        grid_latent=gl.reshape(grid, grid, -1), support_radius=radius, bandwidth=dec.bandwidth,
        meta={"n_settings": len(emb), "n_failed": emb.n_failed, "clip_ids": emb.clip_ids,
              "n_neighbors": int(model.n_neighbors), "seed": seed, "n_epochs": n_epochs,
              "decoder_loo_mae": dec.loo_mae, "fit_s": t_fit, "grid_inverse_s": t_inv, "grid": grid},
        model=model, z_center=center, z_scale=scale)


def fit_joint(embs: Mapping[str, SettingsEmbedding], *, n_per_effect: int = 200, n_neighbors: int = 15,
              seed: int = 0, n_epochs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One UMAP of all effects' embeddings together: (points (n,2), effect labels (n,))."""
    rng = np.random.default_rng(seed)
    zs, labels = [], []
    for key, e in embs.items():
        idx = rng.permutation(len(e))[:n_per_effect]
        zs.append(e.z[idx])
        labels += [key] * len(idx)
    z = np.concatenate(zs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pts = _umap(len(z), n_neighbors, seed, n_epochs).fit_transform(z)
    return np.asarray(pts, dtype=np.float64), np.asarray(labels)


# ---- quality ------------------------------------------------------------------------------
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
    return {"coverage": float(np.mean(occ)), "coverage_range": float(np.mean(rng_)),
            "per_param": dict(zip(plane.param_names, occ)), "per_param_range": dict(zip(plane.param_names, rng_))}


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
    return {"roundtrip_mae": mae, "roundtrip_mae_baseline": base, "clamped_frac": float(clamped.mean()),
            "n_heldout": int(len(heldout))}


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


def path_profile(plane: LatentPlane, effect, audio: np.ndarray, sample_rate: int,
                 waypoints: Sequence[np.ndarray], *, n: int = 16, workers: int = 2) -> PathProfile:
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


def descriptor_trends(plane: LatentPlane, effect, audio: np.ndarray, sample_rate: int, *, n: int = 12,
                      workers: int = 2) -> dict[str, dict]:
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


def plane_quality(plane: LatentPlane, *, heldout: SettingsEmbedding | None = None, effect=None,
                  audio: np.ndarray | None = None, sample_rate: int | None = None, seed: int = 0,
                  workers: int = 2) -> dict[str, float]:
    """All quality numbers of one plane as a flat dict (number keys under ``latent.<effect>``)."""
    cov = coverage(plane)
    q = {"smoothness": smoothness(plane, seed=seed), "coverage": cov["coverage"],
         "coverage_range": cov["coverage_range"], "latent_rel_error": latent_error(plane),
         "decoder_loo_mae": float(plane.meta.get("decoder_loo_mae", np.nan)),
         "n_settings": int(len(plane.points)), "support_frac": float(plane.inside(plane.dense_grid(64, inside_only=False)).mean())}
    if heldout is not None:
        q.update(roundtrip(plane, heldout))
    if effect is not None and audio is not None:
        if sample_rate is None:
            raise ConfigError("descriptor trends need sample_rate")
        for name, r in descriptor_trends(plane, effect, audio, sample_rate, workers=workers).items():
            q[_RHO_KEYS[name]] = r["rho"]
    return q


# ---- domain colouring ---------------------------------------------------------------------
def domain_colors(plane: LatentPlane, points=None) -> np.ndarray:
    """HSV colour-wheel colours (n, 3) RGB: hue = angle around the settings' centre,
    saturation = distance from it (relative to the farthest setting), value = 0.95."""
    pts = plane.points if points is None else np.atleast_2d(np.asarray(points, dtype=np.float64))
    d = pts - plane.center
    rmax = np.linalg.norm(plane.points - plane.center, axis=1).max() + 1e-12
    hue = (np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi)) % 1.0
    sat = np.clip(np.linalg.norm(d, axis=1) / rmax, 0, 1) * 0.85 + 0.15
    return np.array([colorsys.hsv_to_rgb(h, s, 0.95) for h, s in zip(hue, sat)])


def domain_image(plane: LatentPlane, res: int = 128) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """An RGBA image (res, res, 4) of the colour wheel over the bounding box (transparent
    outside the support) and its extent (x0, x1, y0, y1) for ``imshow(origin='lower')``."""
    g = plane.dense_grid(res, inside_only=False)
    rgb = domain_colors(plane, g)
    alpha = plane.inside(g).astype(float)
    img = np.concatenate([rgb, alpha[:, None]], 1).reshape(res, res, 4)
    lo, hi = plane.lo, plane.hi
    return img, (lo[0], hi[0], lo[1], hi[1])


# ---- whole-profile driver -----------------------------------------------------------------
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


def fit_effects(profile, *, effect_keys: Sequence[str] | None = None, encoder=None, corpus=None,
                save: bool = True, log: Callable[[str], None] | None = print) -> LatentRun:
    """Embed, fit, evaluate and save the planes of ``effect_keys`` (default: profile.latent.effects
    or all nine) in one process, so UMAP's JIT is paid once."""
    from .effects import ALL, get_effect

    cfg = profile.latent
    keys = list(effect_keys or cfg.effects or ALL)
    if encoder is None:
        from .models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    if corpus is None:
        from .corpus import build_corpus

        corpus = build_corpus(profile)
    sr, half = profile.data.sample_rate, profile.half_samples
    train = select_clips(corpus, "train", cfg.n_clips, half, profile.seed)
    test = select_clips(corpus, "test", cfg.n_clips, half, profile.seed + 1)
    workers = profile.effects.workers
    planes, embs, held, quality, timing = {}, {}, {}, {}, {}
    for j, key in enumerate(keys):
        t0 = time.perf_counter()
        eff = get_effect(key, profile.effects.effect_set)
        emb = embed_settings(eff, list(train.values()), encoder, cfg.n_settings, seed=profile.seed + 100 * j,
                             sample_rate=sr, clip_ids=list(train), workers=workers)
        ho = embed_settings(eff, list(test.values()), encoder, cfg.n_heldout, seed=profile.seed + 100 * j + 7,
                            sample_rate=sr, clip_ids=list(test), workers=workers)
        emb.effect_key = ho.effect_key = key  # artifacts are named by the key asked for
        t1 = time.perf_counter()
        plane = fit_plane(emb, n_neighbors=cfg.umap_neighbors, grid=cfg.grid, seed=profile.seed,
                          n_epochs=cfg.n_epochs)
        t2 = time.perf_counter()
        q = plane_quality(plane, heldout=ho, effect=eff, audio=next(iter(train.values())), sample_rate=sr,
                          seed=profile.seed, workers=workers)
        if save:
            plane.save(profile.name)
        t3 = time.perf_counter()
        timing[key] = t3 - t0
        planes[key], embs[key], held[key], quality[key] = plane, emb, ho, q
        if log:
            log(f"{key:<10} embed {t1 - t0:5.1f} s  fit {t2 - t1:5.1f} s  quality {t3 - t2:5.1f} s  "
                f"smooth {q['smoothness']:.2f} cover {q['coverage']:.2f} "
                f"roundtrip {q['roundtrip_mae']:.3f} (baseline {q['roundtrip_mae_baseline']:.3f})")
    return LatentRun(planes, embs, held, quality, train, timing)


def quality_numbers(quality: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Flatten per-effect quality into ``<effect>.<metric>`` keys for ``record_numbers('latent', ...)``."""
    keep = ("smoothness", "coverage", "coverage_range", "roundtrip_mae", "roundtrip_mae_baseline",
            "latent_rel_error", "rho_centroid", "rho_lowfreq", "rho_rms", "clamped_frac")
    return {f"{k}.{m}": v[m] for k, v in quality.items() for m in keep if m in v}


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

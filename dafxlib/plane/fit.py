"""The control plane: UMAP to 2-D, the plane-to-latent grid, the plane-to-settings kernel decoder, clamping."""

from __future__ import annotations

import json
import pickle
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import paths, storage
from ..errors import ConfigError, MissingArtifactError
from .embed import SettingsEmbedding


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
        #: leave-one-out MAE of the chosen bandwidth, and per candidate multiple (set by :meth:`fit`)
        self.loo_mae = float("nan")
        self.loo_curve: dict[float, float] = {}

    @classmethod
    def fit(cls, points: np.ndarray, params01: np.ndarray) -> KernelDecoder:
        pts = np.asarray(points, dtype=np.float64)
        par = np.asarray(params01, dtype=np.float64)
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d2, np.inf)
        nn = np.sqrt(d2.min(axis=1))
        base = float(np.median(nn[np.isfinite(nn)])) or 1e-3
        best, best_err, errs = base, np.inf, {}
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
        logw = -d2 / (2 * self.bandwidth**2)
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        return np.clip((w @ self.params01) / w.sum(axis=1, keepdims=True), 0.0, 1.0)


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
    model: Any = None  #: the fitted umap.UMAP (None when loaded without it)
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
        z = (1 - wy) * ((1 - wx) * g[iy, ix] + wx * g[iy, ix + 1]) + wy * (
            (1 - wx) * g[iy + 1, ix] + wx * g[iy + 1, ix + 1]
        )
        return z[0] if single else z

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Plane points of new embeddings (needs the UMAP model: load with ``with_model=True``)."""
        if self.model is None:
            raise MissingArtifactError(
                f"plane {self.effect_key!r} was loaded without its UMAP model; use load_plane(..., with_model=True)"
            )
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
        storage.save_npz(
            npz,
            points=self.points,
            z=self.z,
            params01=self.params01,
            grid_x=self.grid_x,
            grid_y=self.grid_y,
            grid_latent=self.grid_latent,
            scalars=np.array([self.support_radius, self.bandwidth, self.z_scale]),
            z_center=self.z_center if self.z_center is not None else np.zeros(self.z.shape[1]),
            meta=np.array(
                json.dumps({"effect_key": self.effect_key, "param_names": self.param_names, **self.meta}, default=str)
            ),
            **arrays,
        )
        out = {"npz": str(npz)}
        if self.model is not None:
            pkl = npz.with_suffix(".pkl")
            with storage.atomic_path(pkl) as tmp:
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
        plane = LatentPlane(
            effect_key=meta.pop("effect_key"),
            param_names=meta.pop("param_names"),
            points=f["points"],
            z=f["z"],
            params01=f["params01"],
            descriptors=desc,
            grid_x=f["grid_x"],
            grid_y=f["grid_y"],
            grid_latent=f["grid_latent"],
            support_radius=r,
            bandwidth=bw,
            meta=meta,
            z_center=f["z_center"],
            z_scale=zs,
        )
    if with_model:
        pkl = paths.require_artifact(profile_name, f"latent/{effect_key}.pkl", made_by="05_latent_control")
        with open(pkl, "rb") as fh:
            plane.model = pickle.load(fh)
    return plane


def _umap(n_points: int, n_neighbors: int, seed: int, n_epochs: int | None, min_dist: float = 0.1):
    import umap

    if n_points < 4:
        raise ConfigError(f"UMAP needs at least 4 settings, got {n_points}; raise profile.plane.n_settings")
    k = max(2, min(int(n_neighbors), n_points - 1))
    return umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=min_dist,
        random_state=seed,
        transform_seed=seed,
        n_epochs=n_epochs,
        low_memory=True,
        n_jobs=1,
    )


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
        z_in = (np.asarray(model.inverse_transform(lattice[inside]), dtype=np.float64) * scale + center).astype(
            np.float32
        )
    out = np.empty((len(lattice), z_in.shape[1]), dtype=np.float32)
    out[inside] = z_in
    if (~inside).any():
        _, j = cKDTree(lattice[inside]).query(lattice[~inside])
        out[~inside] = z_in[j]
    return out


def fit_plane(
    emb: SettingsEmbedding,
    *,
    n_neighbors: int = 15,
    grid: int = 32,
    seed: int = 0,
    n_epochs: int | None = None,
    support_factor: float = 2.0,
) -> LatentPlane:
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
        effect_key=emb.effect_key,
        param_names=list(emb.param_names),
        points=pts,
        z=emb.z,
        params01=emb.params01,
        descriptors=dict(emb.descriptors),
        grid_x=gx,
        grid_y=gy,
        grid_latent=gl.reshape(grid, grid, -1),
        support_radius=radius,
        bandwidth=dec.bandwidth,
        meta={
            "n_settings": len(emb),
            "n_failed": emb.n_failed,
            "clip_ids": emb.clip_ids,
            "n_neighbors": int(model.n_neighbors),
            "seed": seed,
            "n_epochs": n_epochs,
            "decoder_loo_mae": dec.loo_mae,
            "fit_s": t_fit,
            "grid_inverse_s": t_inv,
            "grid": grid,
        },
        model=model,
        z_center=center,
        z_scale=scale,
    )


def fit_joint(
    embs: Mapping[str, SettingsEmbedding],
    *,
    n_per_effect: int = 200,
    n_neighbors: int = 15,
    seed: int = 0,
    n_epochs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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

"""The control plane: embeddings, UMAP fit, clamping, maps back, quality, persistence.

One tiny UMAP fit is shared by the module (numba's JIT costs ~10-45 s once per process);
the geometry tests build planes directly from synthetic points and need no UMAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import lfilter

from dafxlib import plane as control
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError, MissingArtifactError

SR = 8000
N = 2000


class ToyTone(Effect):
    """gain (dB) and a one-pole low-pass (cutoff): level and brightness, both smooth."""

    name = "ToyTone"

    def __init__(self):
        super().__init__(
            [ParamSpec("gain", -18.0, 0.0, -6.0, "dB"), ParamSpec("cutoff", 200.0, 3800.0, 1000.0, "Hz", "log")]
        )

    def _render(self, audio, sample_rate, raw):
        a = np.exp(-2 * np.pi * raw["cutoff"] / sample_rate)
        y = lfilter([1 - a], [1, -a], audio)
        return 10 ** (raw["gain"] / 20) * y


class Flaky(ToyTone):
    """Non-finite output whenever gain01 > 0.8 (a crashing plugin)."""

    name = "Flaky"

    def _render(self, audio, sample_rate, raw):
        y = super()._render(audio, sample_rate, raw)
        return y * np.nan if raw["gain"] > -18 + 0.8 * 18 else y


class BandEncoder:
    """Stand-in for AudioEncoder: log band energies of y and y - x, randomly projected."""

    dim = 6

    def __init__(self, seed=0):
        self.w = np.random.default_rng(seed).normal(size=(16, self.dim))

    def embed(self, x, y):
        x, y = np.atleast_2d(x), np.atleast_2d(y)
        fy = np.abs(np.fft.rfft(y, axis=1)) ** 2
        bands = np.array_split(np.arange(fy.shape[1]), 8)
        e = np.stack([np.log(fy[:, b].sum(1) + 1e-9) for b in bands], 1)
        fx = np.abs(np.fft.rfft(x, axis=1)) ** 2
        ex = np.stack([np.log(fx[:, b].sum(1) + 1e-9) for b in bands], 1)
        return (np.concatenate([e / 10, (e - ex) / 10], 1) @ self.w).astype(np.float32)


def clips(n=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SR
    return [
        (0.3 * rng.standard_normal(N) + 0.3 * np.sin(2 * np.pi * (150 + 100 * i) * t)).astype(np.float32)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def fitted():
    eff, enc = ToyTone(), BandEncoder()
    emb = control.embed_settings(eff, clips(2), enc, 90, seed=1, sample_rate=SR)
    ho = control.embed_settings(eff, clips(2, seed=5), enc, 20, seed=2, sample_rate=SR)
    plane = control.fit_plane(emb, n_neighbors=10, grid=6, seed=0, n_epochs=60)
    return eff, emb, ho, plane


def synthetic_plane(params_fn=None, n=200, seed=0, grid=5):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 10, (n, 2))
    p = np.clip(params_fn(pts), 0, 1) if params_fn else np.column_stack([pts[:, 0] / 10, pts[:, 1] / 10])
    z = np.column_stack([pts, pts.sum(1)])
    gx = np.linspace(-1, 11, grid)
    gy = np.linspace(-1, 11, grid)
    gl = np.stack(np.meshgrid(gx, gy), -1)
    gl = np.concatenate([gl, gl.sum(-1, keepdims=True)], -1)
    dec = control.KernelDecoder.fit(pts, p)
    return control.LatentPlane(
        "toy",
        [f"p{j}" for j in range(p.shape[1])],
        pts,
        z,
        p,
        {},
        gx,
        gy,
        gl,
        support_radius=1.0,
        bandwidth=dec.bandwidth,
    )


# ---- embeddings -------------------------------------------------------------------------
def test_embed_settings_shapes_and_determinism():
    eff, enc = ToyTone(), BandEncoder()
    a = control.embed_settings(eff, clips(2), enc, 12, seed=3, sample_rate=SR)
    b = control.embed_settings(eff, clips(2), enc, 12, seed=3, sample_rate=SR)
    assert a.z.shape == (12, enc.dim) and a.params01.shape == (12, 2)
    assert set(a.descriptors) == set(control.DESCRIPTORS)
    np.testing.assert_array_equal(a.z, b.z)
    c = control.embed_settings(eff, clips(2), enc, 12, seed=4, sample_rate=SR)
    assert not np.allclose(a.params01, c.params01)
    # louder settings measure louder (descriptors are of the renders, averaged over clips)
    lo = control.embed_settings(eff, clips(2), enc, 0, seed=0, sample_rate=SR, params01=np.array([[0.0, 0.5]]))
    hi = control.embed_settings(eff, clips(2), enc, 0, seed=0, sample_rate=SR, params01=np.array([[1.0, 0.5]]))
    assert hi.descriptors["rms_db"][0] == pytest.approx(lo.descriptors["rms_db"][0] + 18, abs=0.5)


def test_embed_settings_drops_failed_renders():
    p = np.array([[0.1, 0.5], [0.9, 0.5], [0.5, 0.2], [0.95, 0.1]])
    e = control.embed_settings(Flaky(), clips(1), BandEncoder(), 0, seed=0, sample_rate=SR, params01=p)
    assert e.n_failed == 2 and len(e) == 2
    np.testing.assert_allclose(e.params01, p[[0, 2]], atol=1e-6)
    assert np.all(np.isfinite(e.z))
    with pytest.raises(ConfigError):
        control.embed_settings(ToyTone(), [], BandEncoder(), 5, seed=0, sample_rate=SR)


# ---- decoder and geometry (no UMAP) -----------------------------------------------------
def test_kernel_decoder_recovers_smooth_field_and_stays_in_range():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (300, 2))
    p = np.column_stack([pts[:, 0], 0.5 + 0.4 * np.sin(3 * pts[:, 1])])
    dec = control.KernelDecoder.fit(pts, p)
    q = rng.uniform(0.2, 0.8, (50, 2))
    truth = np.column_stack([q[:, 0], 0.5 + 0.4 * np.sin(3 * q[:, 1])])
    assert np.abs(dec.predict(q) - truth).mean() < 0.05
    assert dec.loo_mae == min(dec.loo_curve.values())
    noise = control.KernelDecoder.fit(pts, rng.uniform(0, 1, (300, 2)))
    assert noise.bandwidth > dec.bandwidth  # nothing to learn: it averages widely
    far = noise.predict(np.array([[50.0, -50.0]]))
    assert np.all((far >= 0) & (far <= 1))


def test_clamp_keeps_inside_points_and_pulls_outside_ones_to_the_support():
    pl = synthetic_plane()
    q, c = pl.clamp(pl.points)
    assert not c.any() and np.allclose(q, pl.points)
    far = np.array([[30.0, 5.0], [5.0, -40.0]])
    q, c = pl.clamp(far)
    assert c.all()
    d = np.min(np.linalg.norm(q[:, None] - pl.points[None], axis=-1), axis=1)
    np.testing.assert_allclose(d, pl.support_radius, rtol=1e-6)
    assert pl.inside(q).all() and not pl.inside(far).any()
    single, flag = pl.clamp([30.0, 5.0])
    assert single.shape == (2,) and flag
    with pytest.raises(ConfigError):
        pl.clamp(np.zeros((3, 3)))
    with pytest.raises(ConfigError):
        pl.to_params([np.nan, 1.0])


def test_to_params_and_to_latent():
    pl = synthetic_plane()
    assert pl.to_params([5.0, 5.0]).shape == (2,)
    assert pl.to_params(pl.points[:7]).shape == (7, 2)
    np.testing.assert_allclose(pl.to_params([5.0, 2.0]), [0.5, 0.2], atol=0.05)
    # bilinear grid: exact at nodes, exact for this linear field anywhere on the grid
    node = np.array([pl.grid_x[2], pl.grid_y[3]])
    np.testing.assert_allclose(pl.to_latent(node, clamp=False), pl.grid_latent[3, 2])
    q = np.array([[1.3, 7.7], [4.2, 0.4]])
    np.testing.assert_allclose(pl.to_latent(q, clamp=False), np.column_stack([q, q.sum(1)]), atol=1e-9)
    assert control.latent_error(pl) < 1e-9


def test_quality_metrics_separate_good_and_bad_planes():
    good = synthetic_plane()
    flat = synthetic_plane(lambda x: np.full((len(x), 2), 0.45))
    rough = synthetic_plane(
        lambda x: np.column_stack([(np.sin(3 * x[:, 0]) + 1) / 2, (np.cos(3 * x[:, 1]) + 1) / 2]), n=600
    )
    assert control.coverage(good)["coverage"] >= 0.8
    assert control.coverage(flat)["coverage"] == pytest.approx(0.1)
    s_good, s_rough = control.smoothness(good), control.smoothness(rough)
    assert 0.5 < s_good < 3.0
    assert s_rough > 3 * s_good  # a knob that swings back and forth across the plane
    assert control.smoothness(good, seed=1) == pytest.approx(control.smoothness(good, seed=1))


def test_polyline_and_waypoints_and_domain_colours():
    t, pts = control.polyline([np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0])], 5)
    np.testing.assert_allclose(t, np.linspace(0, 1, 5))
    np.testing.assert_allclose(pts[[0, 2, 4]], [[0, 0], [1, 0], [1, 1]])
    pl = synthetic_plane()
    a, c, b = control.default_waypoints(pl)
    assert np.linalg.norm(b - a) > 0.6 * pl.extent
    col = control.domain_colors(pl)
    assert col.shape == (len(pl.points), 3) and col.min() >= 0 and col.max() <= 1
    east, west = control.domain_colors(pl, [pl.center + [3, 0], pl.center - [3, 0]])
    assert np.abs(east - west).sum() > 0.5
    img, ext = control.domain_image(pl, 16)
    assert img.shape == (16, 16, 4) and set(np.unique(img[..., 3])) <= {0.0, 1.0}


# ---- the fitted plane ---------------------------------------------------------------------
def test_fit_plane_geometry_and_grid(fitted):
    eff, emb, ho, pl = fitted
    assert pl.points.shape == (len(emb), 2) and np.all(np.isfinite(pl.points))
    assert pl.grid_latent.shape == (6, 6, BandEncoder.dim)
    assert pl.inside(pl.points).all()
    # the grid covers the support, so any clamped point interpolates inside it
    assert pl.grid_x[0] <= pl.lo[0] - pl.support_radius + 1e-9
    assert pl.grid_y[-1] >= pl.hi[1] + pl.support_radius - 1e-9
    assert pl.meta["grid_inverse_s"] > 0
    # the grid latent path is closer to the settings' own embeddings than their spread
    assert control.latent_error(pl) < 1.0
    # nodes outside the settings' convex hull copy an inside node's latent
    from scipy.spatial import Delaunay

    nodes = np.stack(np.meshgrid(pl.grid_x, pl.grid_y), -1).reshape(-1, 2)
    inside = Delaunay(pl.points).find_simplex(nodes) >= 0
    flat = pl.grid_latent.reshape(len(nodes), -1)
    assert inside.any() and (~inside).any()
    assert all(any(np.array_equal(flat[i], flat[j]) for j in np.flatnonzero(inside)) for i in np.flatnonzero(~inside))


def test_roundtrip_beats_the_mean_setting_and_trends_are_monotonic(fitted):
    eff, emb, ho, pl = fitted
    rt = control.roundtrip(pl, ho)
    assert rt["n_heldout"] == len(ho)
    assert rt["roundtrip_mae"] < 0.8 * rt["roundtrip_mae_baseline"]
    q = control.plane_quality(pl, heldout=ho, effect=eff, audio=clips(1)[0], sample_rate=SR)
    for k in ("smoothness", "coverage", "roundtrip_mae", "rho_centroid", "rho_lowfreq", "rho_rms"):
        assert k in q
    assert q["rho_rms"] > 0.8  # gain is learnt: a straight path gives a steadily louder render
    nums = control.quality_numbers({"toytone": q})
    assert nums["toytone.coverage"] == q["coverage"]


def test_save_load_roundtrip(fitted, tmp_path, monkeypatch):
    eff, emb, ho, pl = fitted
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    with pytest.raises(MissingArtifactError, match="05_latent_control"):
        control.load_plane("smoke", pl.effect_key)
    out = pl.save("smoke")
    assert out["npz"].endswith(f"latent/{pl.effect_key}.npz")
    back = control.load_plane("smoke", pl.effect_key)
    assert back.model is None and back.param_names == pl.param_names
    q = np.array([[0.1, 0.2], [3.0, -2.0]]) + pl.center
    np.testing.assert_allclose(back.to_params(q), pl.to_params(q))
    np.testing.assert_allclose(back.to_latent(q), pl.to_latent(q), rtol=1e-6)
    with pytest.raises(MissingArtifactError):
        back.transform(emb.z[:2])
    full = control.load_plane("smoke", pl.effect_key, with_model=True)
    np.testing.assert_allclose(full.transform(ho.z[:3]), pl.transform(ho.z[:3]), atol=1e-6)


def test_inverse_transform_timing_and_joint_fit(fitted):
    eff, emb, ho, pl = fitted
    t = control.time_inverse_transform(pl, repeats=1)
    assert t["first_ms"] > 0 and t["median_ms"] > 0
    pts, labels = control.fit_joint({"a": emb, "b": ho}, n_per_effect=15, n_neighbors=5, n_epochs=30)
    assert pts.shape == (30, 2) and list(labels).count("b") == 15


# ---- determinism ---------------------------------------------------------------------------
def test_plane_and_quality_are_bit_identical_under_threads_workers_and_load():
    """Embeddings, UMAP plane, grid and every quality number are bit-identical with 1 or 2 torch
    threads, 1 or 2 render workers, uneven item timing and another thread drawing from numpy's
    global RNG (the embeddings used to change with the torch thread count)."""
    from test_robustness import SETTINGS, _Slow, _tiny_encoder, _tone, _under

    sr, n = 8000, 4096
    enc = _tiny_encoder(sr, n)
    fx = _Slow()
    clip = _tone(n / sr, sr)[:n]
    held = _tone(n / sr, sr, seed=3)[:n]

    def plane(workers, jitter):
        fx.jitter = jitter
        emb = control.embed_settings(fx, [clip], enc, 40, seed=1, sample_rate=sr, workers=workers)
        ho = control.embed_settings(fx, [held], enc, 10, seed=2, sample_rate=sr, workers=workers)
        pl = control.fit_plane(emb, n_neighbors=8, grid=3, seed=0, n_epochs=30)
        q = control.plane_quality(pl, heldout=ho, effect=fx, audio=clip, sample_rate=sr, seed=0, workers=workers)
        return emb.z, pl.points, pl.grid_latent, q

    a, b = (_under(*s, plane) for s in SETTINGS)
    for u, v in zip(a[:3], b[:3]):
        assert np.array_equal(u, v)
    assert json.dumps(a[3], sort_keys=True) == json.dumps(b[3], sort_keys=True)

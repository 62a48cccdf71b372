"""Metrics: known values, agreement with auraloss, silence and failure handling, PESQ range."""

from __future__ import annotations

import numpy as np
import pytest

from dafxlib import metrics as M
from dafxlib.errors import AudioError

SR = 16_000


def speechlike(n_items: int = 3, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voiced, syllable-modulated harmonic signal with a little noise (speech-like for PESQ)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    out = []
    for i in range(n_items):
        f0 = 110 + 30 * i + 15 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        env = np.clip(np.sin(2 * np.pi * 3.5 * t + i), 0, None) ** 1.5
        out.append(0.2 * voiced * env + 0.003 * rng.standard_normal(t.size))
    return np.asarray(out, np.float32)


def test_identical_signals_score_zero():
    x = speechlike()
    vals, rep = M.compute_metrics(x, x, SR, params_hat=np.full((3, 4), 0.3), params_true=np.full((3, 4), 0.3))
    for name in ("mrstft", "msd", "sce", "rms", "lufs", "param_mae"):
        assert np.allclose(vals[name], 0.0, atol=1e-6), name
    assert np.all(vals["pesq"] > 4.4)  # PESQ of a signal against itself is near the ceiling
    assert rep.n_excluded() == 0 and not rep.floored and rep.n_items == 3


def test_mrstft_matches_auraloss_with_the_study_settings():
    import auraloss
    import torch

    x = speechlike(2)
    y = np.tanh(4 * x) * 0.5
    sizes = M.mrstft_resolutions(x.shape[1])
    assert sizes == [32, 128, 512, 2048, 8192]  # 32768 dropped for a 16000-sample clip
    ref = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes,
        hop_sizes=[s // 2 for s in sizes],
        win_lengths=sizes,
        w_sc=0.0,
        w_phs=0.0,
        w_lin_mag=1.0,
        w_log_mag=1.0,
    )
    per_item = M.mrstft(y, x)
    for i in range(2):
        want = ref(torch.from_numpy(y[i : i + 1, None]), torch.from_numpy(x[i : i + 1, None])).item()
        assert per_item[i] == pytest.approx(want, rel=1e-5)
    assert np.all(per_item > 0.1)


def test_metrics_grow_with_the_distortion():
    x = speechlike(2)
    mild, strong = np.tanh(2 * x) / 2, np.tanh(20 * x) / 2
    a, _ = M.compute_metrics(mild, x, SR, metrics=["mrstft", "msd"])
    b, _ = M.compute_metrics(strong, x, SR, metrics=["mrstft", "msd"])
    assert np.all(b["mrstft"] > a["mrstft"]) and np.all(b["msd"] > a["msd"])


def test_level_errors_known_values():
    x = speechlike(2)
    vals, _ = M.compute_metrics(0.5 * x, x, SR, metrics=["rms", "lufs"])
    assert np.allclose(vals["rms"], 20 * np.log10(2), atol=1e-3)  # 6.02 dB
    assert np.allclose(vals["lufs"], 20 * np.log10(2), atol=0.05)


def test_spectral_centroid_of_a_sine_is_its_frequency():
    t = np.arange(SR) / SR
    sines = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (500.0, 2000.0)]).astype(np.float32)
    c = M.spectral_centroid(sines, SR)
    assert c[0] == pytest.approx(500, rel=0.05) and c[1] == pytest.approx(2000, rel=0.05)
    err, _ = M.compute_metrics(sines[1:], sines[:1], SR, metrics=["sce"])
    assert err["sce"][0] == pytest.approx(1500, rel=0.05)


def test_timbral_descriptors():
    t = np.arange(SR) / SR
    low = (0.3 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    d = M.timbral_descriptors(np.stack([low, high]), SR)
    assert d["lf_ratio"][0] > 0.95 and d["lf_ratio"][1] < 0.05
    assert d["centroid_hz"][0] < d["centroid_hz"][1]
    assert d["rms_db"][0] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.01)
    assert set(d) == {"centroid_hz", "lf_ratio", "rms_db", "loudness_lufs"}


def test_param_mae_known_value():
    ph = np.array([[0.0, 1.0], [0.5, 0.5]])
    pt = np.array([[0.5, 0.5], [0.5, 0.25]])
    assert np.allclose(M.param_mae(ph, pt), [0.5, 0.125])
    with pytest.raises(AudioError):
        M.param_mae(ph, pt[:, :1])


def test_silence_and_failures_are_excluded_or_floored_never_nan_silently():
    x = speechlike(5)
    est = np.tanh(3 * x) / 2
    tgt = x.copy()
    est[1] = 0.0  # silent estimate: kept, scored at the floor
    est[2, 100] = np.nan  # non-finite estimate: excluded
    tgt[3] = 0.0  # silent target: excluded
    tgt[4, 7] = np.inf  # non-finite target: excluded
    vals, rep = M.compute_metrics(est, tgt, SR, params_hat=np.zeros((5, 2)), params_true=np.ones((5, 2)))
    for name, v in vals.items():
        assert np.all(np.isfinite(v[[0, 1]])), name
        assert np.all(np.isnan(v[[2, 3, 4]])), name
        assert rep.excluded[name] == {"non-finite estimate": 1, "silent target": 1, "non-finite target": 1}
    for name in ("sce", "rms", "lufs", "pesq"):
        assert rep.floored[name] == 1
    assert vals["pesq"][1] == M.PESQ_FLOOR
    assert vals["rms"][1] > 40  # a silent output is penalised, not excused
    assert vals["mrstft"][1] > vals["mrstft"][0]
    assert rep.n_excluded("mrstft") == 3 and "silent target" in rep.summary()
    assert M.nanmean_valid(vals["mrstft"]) == pytest.approx(np.mean(vals["mrstft"][:2]))
    assert M.nanmean_valid(np.full(3, np.nan)) is None


def test_strict_helper_raises_on_silence():
    x = speechlike(1)
    with pytest.raises(AudioError, match="silent target"):
        M.mrstft(x, np.zeros_like(x))


def test_short_clips_exclude_lufs_and_pesq_with_a_reason():
    x = speechlike(2, seconds=0.2)
    vals, rep = M.compute_metrics(x * 0.5, x, SR, metrics=["lufs", "pesq", "rms"])
    assert np.all(np.isnan(vals["lufs"])) and np.all(np.isnan(vals["pesq"]))
    assert "too short for LUFS" in next(iter(rep.excluded["lufs"]))
    assert np.all(np.isfinite(vals["rms"]))


def test_pesq_on_speechlike_signal_in_range_and_ordered():
    x = speechlike(2, seconds=2.0)
    rng = np.random.default_rng(1)
    light = x + 0.003 * rng.standard_normal(x.shape).astype(np.float32)
    heavy = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    a, _ = M.compute_metrics(light, x, SR, metrics=["pesq"], workers=2)
    b, _ = M.compute_metrics(heavy, x, SR, metrics=["pesq"])
    assert np.all((a["pesq"] >= 1.0) & (a["pesq"] <= 4.65))
    assert np.all((b["pesq"] >= 1.0) & (b["pesq"] <= 4.65))
    assert np.all(a["pesq"] > b["pesq"])
    # 24 kHz input is resampled to 16 kHz first
    from scipy.signal import resample_poly

    x24 = resample_poly(x, 3, 2, axis=1).astype(np.float32)
    c, _ = M.compute_metrics(x24, x24, 24_000, metrics=["pesq"])
    assert np.all(c["pesq"] > 4.4)


def test_target_cache_reuses_and_guards():
    x = speechlike(2)
    cache: dict = {}
    a, _ = M.compute_metrics(0.5 * x, x, SR, metrics=["rms", "sce"], target_cache=cache)
    b, _ = M.compute_metrics(0.5 * x, x, SR, metrics=["rms", "sce"])
    assert np.allclose(a["rms"], b["rms"]) and np.allclose(a["sce"], b["sce"])
    assert "rms_db" in cache and "centroid" in cache
    with pytest.raises(AudioError, match="different target"):
        M.compute_metrics(x, 0.5 * x, SR, metrics=["rms"], target_cache=cache)


def test_bad_input_raises_typed_errors():
    x = speechlike(2)
    with pytest.raises(AudioError, match="same shape"):
        M.compute_metrics(x[:, :100], x, SR)
    with pytest.raises(AudioError, match="unknown metric"):
        M.compute_metrics(x, x, SR, metrics=["snr"])
    with pytest.raises(AudioError):
        M.compute_metrics(x, x, SR, metrics=["param_mae"])  # no parameters given

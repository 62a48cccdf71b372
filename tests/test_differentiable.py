"""The differentiable EQ + compressor chain and the DeepAFx-ST-style controller trained through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dafxlib.config import get_profile
from dafxlib.effects import differentiable as D
from dafxlib.errors import AudioError, EffectError

SR = 16_000
IDX = {c.name: i for i, c in enumerate(D.CHAIN_PARAMS)}


def setting(**raw) -> torch.Tensor:
    """The flat (identity) setting with the named knobs at raw values, as a (1, P) batch."""
    p = D.flat_params().clone()
    for k, v in raw.items():
        p[IDX[k]] = D.CHAIN_PARAMS[IDX[k]].to_norm(v)
    return p[None]


def level_db(a: torch.Tensor) -> float:
    return float(10 * torch.log10(a.pow(2).mean()))


def bursts(b: int = 2, n: int = 8192, seed: int = 0) -> torch.Tensor:
    """Noise with loud and quiet stretches (so a compressor attacks and releases)."""
    g = torch.Generator().manual_seed(seed)
    env = torch.where((torch.arange(n) // 1024) % 2 == 0, 0.5, 0.02)
    return torch.randn(b, n, generator=g) * env


# ---- the EQ ---------------------------------------------------------------------------------
def test_flat_settings_are_the_identity():
    x = bursts()
    y = D.DiffChain(SR)(x, D.flat_params().expand(2, -1))
    assert torch.allclose(y, x, atol=1e-5)


def test_eq_gains_land_where_they_are_set():
    p = setting(low_shelf_db=-12.0, peak2_hz=1000.0, peak2_db=9.0, high_shelf_db=6.0, high_shelf_hz=6000.0)
    n_fft = 16_000  # 1 Hz bins
    h = 20 * torch.log10(D.eq_response(p, SR, n_fft).abs()[0])
    assert abs(float(h[5]) + 12) < 0.5  # below the low shelf
    assert abs(float(h[1000]) - 9) < 0.5  # at the peak
    assert abs(float(h[7900]) - 6) < 0.5  # near Nyquist, above the high shelf
    assert abs(float(h[300])) < 3 and abs(float(h[3000]) - 9) > 3  # the peak is local


# ---- the compressor -------------------------------------------------------------------------
@pytest.mark.parametrize("rms_db", [-40.0, -6.0])
def test_compressor_reduces_level_above_threshold_only(rms_db):
    t = torch.arange(SR) / SR
    x = (10 ** (rms_db / 20) * np.sqrt(2) * torch.sin(2 * np.pi * 440 * t))[None].float()
    p = setting(threshold_db=-20.0, ratio=4.0, attack_ms=2.0, release_ms=50.0)
    y = D.DiffChain(SR)(x, p)
    tail = slice(SR // 2, None)  # settled
    got = level_db(y[0, tail])
    print(f"compressor: in {rms_db} dB -> out {got:.2f} dB")
    if rms_db < -20:
        assert abs(got - rms_db) < 0.05  # below the threshold (and its knee): untouched
    else:
        want = -20 + (rms_db + 20) / 4  # static curve above the knee
        assert abs(got - want) < 0.5 and got < rms_db - 8


def test_makeup_gain_is_a_level_shift():
    x = bursts()
    y = D.DiffChain(SR)(x, setting(makeup_db=6.0).expand(2, -1))
    assert torch.allclose(y, x * 10 ** (6 / 20), atol=1e-5)


# ---- gradients ------------------------------------------------------------------------------
def test_gradients_reach_every_parameter():
    x = bursts(2, 8192)
    p = setting(
        low_shelf_db=4.0,
        peak1_db=-5.0,
        peak2_db=6.0,
        peak3_db=-3.0,
        high_shelf_db=3.0,
        threshold_db=-30.0,
        ratio=4.0,
        attack_ms=5.0,
        release_ms=60.0,
        makeup_db=3.0,
    ).expand(2, -1)
    p = p.clone().requires_grad_(True)
    y = D.DiffChain(SR)(x, p)
    target = D.DiffChain(SR)(x, D.flat_params().expand(2, -1))
    # a spectral loss (the phase-sensitive L1 alone can leave EQ frequencies nearly flat)
    loss = (torch.stft(y, 512, window=torch.hann_window(512), return_complex=True).abs() + 1e-5).log().sub(
        (torch.stft(target, 512, window=torch.hann_window(512), return_complex=True).abs() + 1e-5).log()
    ).abs().mean() + (y - target).abs().mean()
    loss.backward()
    g = p.grad.abs().sum(0)
    assert torch.isfinite(p.grad).all()
    dead = [D.PARAM_NAMES[i] for i in range(D.N_PARAMS) if not g[i] > 1e-7]
    assert not dead, f"no gradient reaches {dead}"


def test_the_chain_fits_a_known_target():
    """Recover an EQ + compressor setting from its output: 300 Adam steps on the settings cut the
    audio loss by at least 10x (measured here: about 60x)."""
    from dafxlib.e2e.train import audio_loss_fn

    torch.manual_seed(0)
    x = bursts(4, 8192, seed=1)
    chain = D.DiffChain(SR)
    true = setting(
        low_shelf_db=-6.0,
        peak2_hz=1200.0,
        peak2_db=8.0,
        high_shelf_db=-6.0,
        threshold_db=-25.0,
        ratio=5.0,
        makeup_db=4.0,
    ).expand(4, -1)
    with torch.no_grad():
        y = chain(x, true)
    logits = torch.zeros(1, D.N_PARAMS, requires_grad=True)  # every knob at 0.5
    opt = torch.optim.Adam([logits], lr=0.05)
    loss_fn = audio_loss_fn((256, 1024), 0.5)

    def loss_at() -> torch.Tensor:
        y_hat = chain(x, torch.sigmoid(logits).expand(4, -1))
        return loss_fn(y_hat[:, None], y[:, None]) + (y_hat - y).abs().mean()

    with torch.no_grad():
        first = float(loss_at())
    for _ in range(300):
        opt.zero_grad()
        loss = loss_at()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_at())
    print(f"fit: loss {first:.4f} -> {last:.4f}")
    assert last < first / 10, (first, last)


# ---- bad input ------------------------------------------------------------------------------
def test_bad_input_raises_typed_errors():
    chain = D.DiffChain(SR)
    x = bursts(2, 4096)
    ok = D.flat_params().expand(2, -1)
    with pytest.raises(AudioError):
        chain(x[0], ok)  # 1-D audio
    with pytest.raises(AudioError):
        chain(x[:, :10], ok)  # too short
    with pytest.raises(EffectError):
        chain(x, ok[:, :5])  # wrong number of settings
    with pytest.raises(EffectError):
        chain(x, ok[:1])  # batch mismatch
    with pytest.raises(EffectError):
        chain(x, ok + 0.7)  # outside [0, 1]
    with pytest.raises(EffectError):
        chain(x, ok - 0.7)
    bad = x.clone()
    bad[0, 5] = float("nan")
    with pytest.raises(AudioError):
        chain(bad, ok)
    with pytest.raises(AudioError):
        D.DiffChain(4000)
    with pytest.raises(AudioError):
        chain(x.numpy(), ok)


# ---- the stage: artifact, reuse, loading, evaluation method -----------------------------------
def _examples(n: int, seed: int):
    from dafxlib.pairs import Examples

    rng = np.random.default_rng(seed)
    sr, half = 24_000, 4096
    x = (rng.standard_normal((n, half)) * 0.1).astype(np.float32)
    y = (0.5 * x).astype(np.float32)  # a -6 dB gain: within the chain's reach
    return Examples(
        x,
        y,
        y.copy(),
        rng.random((n, 2)).astype(np.float32),
        [f"c{i}" for i in range(n)],
        "overdrive",
        ("a", "b"),
        sr,
        corpus="speech",
        features=np.concatenate(
            [20 * np.log10(np.std(x, 1, keepdims=True)), 20 * np.log10(np.std(y, 1, keepdims=True))], 1
        ).astype(np.float32),
    )


def test_deepafx_trains_saves_reuses_loads_and_evaluates(tmp_path, monkeypatch):
    from dafxlib.e2e import deepafx
    from dafxlib.evaluation.methods import run_method

    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    prof = get_profile("smoke", {"controller.features": ["level"], "deepafx.epochs": 3})
    train, val = _examples(24, 0), _examples(8, 1)
    pred, blob, reused = deepafx.train_deepafx(prof, "overdrive", train, val, fingerprint="none")
    assert not reused and blob["steps"] == 9 and (tmp_path / "smoke" / "artifacts" / "controllers").exists()
    hist = [h["val_loss"] for h in blob["history"]]
    assert min(hist[1:]) < hist[0]  # training lowered the validation loss from the identity start
    again, blob2, reused2 = deepafx.train_deepafx(prof, "overdrive", train, val, fingerprint="none")
    assert reused2 and blob2["hash"] == blob["hash"]
    (tmp_path / "smoke" / "artifacts" / deepafx.artifact_name("overdrive")).unlink()
    _, blob3, reused3 = deepafx.train_deepafx(prof, "overdrive", train, val, fingerprint="none")
    assert not reused3 and all(torch.equal(blob3["state_dict"][k], v) for k, v in blob["state_dict"].items())
    loaded = deepafx.load_deepafx(
        prof,
        "overdrive",
        level_fn=lambda x, y: np.concatenate(
            [20 * np.log10(np.std(x, 1, keepdims=True)), 20 * np.log10(np.std(y, 1, keepdims=True))], 1
        ),
    )
    p = loaded.predict(val.x, val.y_ref)
    assert p.shape == (8, D.N_PARAMS) and np.allclose(p, pred.predict_features(val.features), atol=1e-6)
    out = run_method("deepafx", val, None, 2, predictors={"deepafx": loaded})
    assert out.p_hat is None and out.renders == 0 and out.y_hat.shape == val.x.shape
    from dafxlib.errors import MissingArtifactError

    with pytest.raises(MissingArtifactError):
        run_method("deepafx", val, None, 2, predictors={})
    with pytest.raises(MissingArtifactError):
        deepafx.load_deepafx(prof, "delay")

"""Controller MLP, features, training signals, artifacts (round trip, reuse, resume)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dafxlib.config import get_profile
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError, MissingArtifactError
from dafxlib.models.controller import ControllerFeatures, ControllerMLP, descriptor_features, descriptor_names

SR = 8000
HALF = 2000


class ToyGainTone(Effect):
    """Output gain and a one-pole low-pass: both audible in level / spectrum descriptors."""

    name = "ToyGainTone"

    def __init__(self):
        super().__init__([ParamSpec("gain_db", -18.0, 6.0, 0.0, "dB"), ParamSpec("tone", 0.05, 0.95, 0.5)])

    def _render(self, audio, sample_rate, raw):
        a = raw["tone"]
        out = np.empty_like(audio)
        acc = 0.0
        for i, v in enumerate(audio):  # one-pole low-pass (short clips only)
            acc = a * acc + (1 - a) * v
            out[i] = acc
        return out * 10 ** (raw["gain_db"] / 20)


class StandInEncoder:
    """Tests only: a fixed random projection of log band energies of (x, y)."""

    mode = "joint"
    dim = 6

    def __init__(self):
        self.w = np.random.default_rng(0).standard_normal((32, self.dim)).astype(np.float32) / 4

    def embed(self, x, y):
        def bands(a):
            s = np.abs(np.fft.rfft(a, axis=1)) ** 2
            return np.log10(np.stack([b.sum(1) for b in np.array_split(s, 16, axis=1)], 1) + 1e-8)

        return np.concatenate([bands(x), bands(y)], 1) @ self.w


def level_fn(x, y):
    r = lambda a: 20 * np.log10(np.sqrt((a.astype(np.float64) ** 2).mean(1)) + 1e-8)  # noqa: E731
    return np.stack([r(x), r(y)], 1)


def _clips(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(2 * HALF) / SR
    f = rng.uniform(100, 1500, (n, 1))
    a = 0.3 * np.sign(np.sin(2 * np.pi * f * t)) * rng.uniform(0.3, 1.0, (n, 1)) + 0.03 * rng.standard_normal(
        (n, 2 * HALF)
    )
    return a.astype(np.float32)


def _data(effect, features, split, n, seed):
    from dafxlib.pairs import Examples

    clips = _clips(n, seed)
    p = np.random.default_rng(seed + 1).uniform(0, 1, (n, effect.n_params)).astype(np.float32)
    wet = np.stack([effect.process(c, SR, q) for c, q in zip(clips, p)])
    x, y, y_ref = clips[:, :HALF], wet[:, :HALF], wet[:, HALF:]
    return Examples(
        x,
        y,
        y_ref,
        p,
        np.array([f"{split}{i}" for i in range(n)]),
        effect.key,
        split=split,
        features=features(x, y_ref),
    )


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("DAFX_OUTPUT_DIR", str(tmp_path / "out"))
    return get_profile(
        "smoke",
        {
            "data.sample_rate": SR,
            "data.half_seconds": HALF / SR,
            "controller.hidden": 32,
            "controller.regression_epochs": 6,
            "controller.spsa_epochs": 1,
            "controller.batch_size": 32,
            "controller.spsa_batch_size": 16,
            "controller.spsa_n_train": 32,
            "controller.lr": 1e-2,
            "effects.workers": 2,
        },
    )


def test_mlp_shapes_and_initial_outputs_near_half():
    m = ControllerMLP(20, 4, hidden=16)
    feats = torch.randn(7, 20) * 30 + 5
    m.set_standardisation(feats)
    p = m(feats)
    assert p.shape == (7, 4)
    assert torch.all((p - 0.5).abs() < 0.01)
    assert torch.all(m.head.bias == 0)
    p.sum().backward()
    assert m.body[0].weight.grad is not None and m.body[0].weight.grad.abs().sum() > 0
    torch.testing.assert_close(m.feat_mean, feats.mean(0))
    with pytest.raises(ConfigError):
        m(torch.randn(3, 19))
    with pytest.raises(ConfigError):
        ControllerMLP(0, 3)


def test_features_blocks_and_level_sensitivity():
    enc = StandInEncoder()
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((3, HALF))).astype(np.float32)
    y = np.tanh(3 * x)
    f = ControllerFeatures(enc, SR, level_fn=level_fn)
    out = f(x, y)
    nd = len(descriptor_names())
    assert out.shape == (3, enc.dim + 2 + 3 * nd)
    # normalisation must not hide level: halving y_ref lowers its RMS descriptor by 6 dB
    d1, d2 = descriptor_features(y, SR), descriptor_features(0.5 * y, SR)
    i = descriptor_names().index("rms_db")
    np.testing.assert_allclose(d2[:, i] - d1[:, i], 20 * np.log10(0.5), atol=1e-3)
    with pytest.raises(ConfigError):
        ControllerFeatures(enc, SR, blocks=("embedding", "mfcc"))
    with pytest.raises(ConfigError):
        ControllerFeatures(None, SR, blocks=("embedding",))
    only_desc = ControllerFeatures(None, SR, blocks=("descriptors",))
    assert only_desc(x, y).shape == (3, 3 * nd)


def test_signals_for_profiles():
    from dafxlib.e2e import signals_for

    d = get_profile("default")
    # the SPSA-only "audio" signal (the study's method) runs on every effect
    assert signals_for(d, "overdrive") == ["regression", "both", "audio"]
    assert signals_for(d, "delay") == ["regression", "both", "audio"]
    assert signals_for(get_profile("default", {"controller.ablation_effects": '["overdrive"]'}), "delay") == [
        "regression",
        "both",
    ]
    assert signals_for(get_profile("paper"), "leslie") == ["regression", "both", "audio"]
    with pytest.raises(ConfigError):
        signals_for(get_profile("default", {"controller.signals": ["magic"]}), "delay")


def test_regression_round_trip_reuse_and_resume(profile):
    from dafxlib import e2e

    eff = ToyGainTone()
    enc = StandInEncoder()
    feats = ControllerFeatures(enc, SR, level_fn=level_fn)
    fp = e2e.encoder_fingerprint(enc, SR, HALF)
    train, val = _data(eff, feats, "train", 64, 1), _data(eff, feats, "val", 24, 2)
    tc = e2e.train_controller(profile, eff, "regression", train, val, fingerprint=fp, features=feats, progress=False)
    assert not tc.reused and tc.artifact.exists()
    # it learned: better than the constant-0.5 guess on held-out parameters
    const = np.abs(val.p - 0.5).mean()
    assert tc.val["param_mae"] < 0.8 * const, (tc.val, const)
    assert any("train_loss" in r for r in tc.history) and any("val_loss" in r for r in tc.history)
    # round trip through the artifact
    pred = e2e.load_controller(profile, eff.key, "regression", encoder=enc, level_fn=level_fn)
    p1 = pred.predict(val.x, val.y_ref)
    np.testing.assert_allclose(p1, tc.predictor.predict_features(val.features), atol=1e-6)
    assert p1.shape == (24, 2) and p1.min() >= 0 and p1.max() <= 1
    assert e2e.best_signal(profile, eff.key) == "regression"
    # same configuration: the artifact is reused, no training
    again = e2e.train_controller(profile, eff, "regression", train, val, fingerprint=fp, features=feats, progress=False)
    assert again.reused
    # artifact lost after the run finished: the finished Lightning run is reused (resume path)
    tc.artifact.unlink()
    resumed = e2e.train_controller(
        profile, eff, "regression", train, val, fingerprint=fp, features=feats, progress=False
    )
    assert not resumed.reused
    np.testing.assert_allclose(resumed.predictor.predict_features(val.features), p1, atol=1e-6)
    # a different encoder makes the stored controller stale
    with pytest.warns(UserWarning, match="re-run notebook"):

        class Other(StandInEncoder):
            def embed(self, x, y):
                return super().embed(x, y) + 1.0

        e2e.load_controller(profile, eff.key, "regression", encoder=Other(), level_fn=level_fn)
    with pytest.raises(MissingArtifactError):
        e2e.load_controller(profile, eff.key, "audio", encoder=enc, level_fn=level_fn)


def test_both_signal_fine_tunes_with_spsa_and_never_worsens_validation(profile):
    from dafxlib import e2e

    prof = get_profile(profile, {"controller.regression_epochs": 2, "controller.spsa_epochs": 2})
    eff = ToyGainTone()
    feats = ControllerFeatures(None, SR, blocks=("level", "descriptors"), level_fn=level_fn)
    train, val = _data(eff, feats, "train", 32, 3), _data(eff, feats, "val", 16, 4)
    reg = e2e.train_controller(prof, eff, "regression", train, val, fingerprint="none", features=feats, progress=False)
    both = e2e.train_controller(
        prof, eff, "both", train, val, fingerprint="none", features=feats, warm_start=reg, progress=False
    )
    assert both.spsa["renders_per_example_per_step"] == 2 * prof.controller.spsa_perturbations
    assert both.spsa["backward_steps"] == 2 * 2  # 2 epochs x 32/16 batches
    # the kept weights are the best on the validation audio loss, warm start included
    from torch.utils.data import DataLoader

    from dafxlib.e2e.train import _eval_loss, _lightning_module_class, _tensors
    from dafxlib.render import RenderPool
    from dafxlib.spsa import EffectLayer

    Module = _lightning_module_class()
    loader = DataLoader(_tensors(val, True), batch_size=16)
    with RenderPool(eff, SR, workers=2) as pool:
        layer = EffectLayer(eff, SR, pool=pool)
        cfg = prof.controller
        losses = {
            name: _eval_loss(
                Module(
                    tc.predictor.model,
                    "audio",
                    1e-3,
                    layer=layer,
                    loss_fft_sizes=cfg.loss_fft_sizes,
                    loss_hop_fraction=cfg.loss_hop_fraction,
                ),
                loader,
            )
            for name, tc in (("regression", reg), ("both", both))
        }
    assert losses["both"] <= losses["regression"] + 1e-6, losses
    val_losses = [r["val_loss"] for r in both.history if "val_loss" in r]
    blob = torch.load(both.artifact, weights_only=False)
    assert (
        blob["signal"] == "both"
        and blob["spsa"]["renders_per_example_per_step"] == 2 * get_profile(profile).controller.spsa_perturbations
    )
    best = e2e.best_signal(prof, eff.key)
    assert best in ("regression", "both")
    assert len(val_losses) == 3 and both.history[0]["epoch"] == -1  # warm start + 2 epochs
    with pytest.raises(ConfigError):
        e2e.train_controller(prof, eff, "both", train, val, fingerprint="none", features=feats)


def test_descriptors_find_the_echo_time_and_the_modulation_rate():
    from dafxlib.models.controller import descriptor_features, descriptor_names

    sr = 24_000
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, sr))).astype(np.float32)
    y = x.copy()
    d = int(0.123 * sr)
    y[:, d:] += 0.7 * x[:, :-d]  # one echo at 123 ms
    t = np.arange(sr) / sr
    y[1] *= (1.0 + 0.8 * np.sin(2 * np.pi * 4.0 * t)).astype(np.float32)  # tremolo at 4 Hz on clip 1
    names = descriptor_names()
    f = descriptor_features(y, sr)
    assert f.shape == (2, len(names))
    assert 2 ** f[0, names.index("acf_peak_lag_log2s")] == pytest.approx(0.123, abs=0.001)
    assert f[0, names.index("acf_peak")] > 0.3
    # the second peak is another lag, not the first one's neighbour
    assert abs(f[0, names.index("acf_peak2_lag_log2s")] - f[0, names.index("acf_peak_lag_log2s")]) > 0.02
    assert 2 ** f[1, names.index("env_mod_peak_log2hz")] == pytest.approx(4.0, rel=0.1)
    assert f[1, names.index("env_mod_peak")] > f[0, names.index("env_mod_peak")]

"""Stage functions checked by value: a tiny VAE run learns, a known method scores a known number."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dafxlib import evaluation as ev
from dafxlib.config import get_profile
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError
from dafxlib.pairs import Examples

SR, HALF = 16_000, 8_000


class Gain(Effect):
    """One knob: a gain of -12..+12 dB, linear in the normalised setting (0.5 = 0 dB)."""

    name = "Gain"

    def __init__(self):
        super().__init__([ParamSpec("gain_db", -12.0, 12.0, 0.0, "dB")])

    def _render(self, audio, sr, raw):
        return audio * 10 ** (raw["gain_db"] / 20)


class SerialPool:
    def __init__(self, effect):
        self.effect = effect

    def render(self, audios, params):
        out = np.stack([self.effect.process(a, SR, p) for a, p in zip(audios, params)])
        return SimpleNamespace(audio=out, ok=np.ones(len(out), bool), failed=[])


def test_known_methods_score_known_numbers():
    """With a pure gain, every error has a closed form: the middle setting renders x itself, so its
    RMS error is exactly |gain(p)| in dB and its parameter error |p - 0.5|; the oracle scores 0."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * HALF) / SR
    clips = np.stack(
        [(0.2 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size)) for f in (220, 330, 440, 550)]
    )
    clips = clips.astype(np.float32)
    p = np.array([[0.1], [0.4], [0.75], [1.0]], np.float32)
    fx = Gain()
    wet = np.stack([fx.process(c, SR, q) for c, q in zip(clips, p)])
    es = Examples(
        clips[:, :HALF],
        wet[:, :HALF],
        wet[:, HALF:],
        p,
        np.array([f"c{i}" for i in range(4)]),
        "gain",
        sample_rate=SR,
        corpus="speech",
    )
    cr = ev.evaluate_cell(es, SerialPool(fx), 1, ["do_nothing", "mean_params", "oracle"], seed=0, pesq=False)
    df = pd.DataFrame(cr.rows).sort_values("item")
    gain_db = np.abs(24.0 * (p[:, 0] - 0.5))
    mean_rows = df[df.method == "mean_params"]
    np.testing.assert_allclose(mean_rows["rms"].to_numpy(), gain_db, atol=1e-3)
    np.testing.assert_allclose(mean_rows["param_mae"].to_numpy(), np.abs(p[:, 0] - 0.5), atol=1e-6)
    np.testing.assert_allclose(df[df.method == "do_nothing"]["rms"].to_numpy(), gain_db, atol=1e-3)
    oracle = df[df.method == "oracle"]
    assert np.all(oracle["rms"] < 1e-4) and np.all(oracle["mrstft"] < 1e-4)
    # the middle setting renders x unchanged: its MR-STFT equals do-nothing's, item by item
    np.testing.assert_allclose(
        mean_rows["mrstft"].to_numpy(), df[df.method == "do_nothing"]["mrstft"].to_numpy(), rtol=1e-5
    )


@pytest.mark.slow
def test_tiny_vae_training_run_lowers_its_losses(tmp_path, monkeypatch):
    """The VAE stage function on a tiny two-effect dataset: validation loss falls from the first epoch."""
    from dafxlib import betavae
    from dafxlib.pairs import Examples, PairSpecDataset
    from dafxlib.spectrogram import Spectrogrammer

    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    prof = get_profile(
        "smoke",
        {
            "data.sample_rate": SR,
            "data.half_seconds": HALF / SR,
            "vae.epochs": 6,
            "vae.latent_dim": 4,
            "vae.base_channels": 4,
            "vae.batch_size": 16,
            "vae.lr": 3e-3,
        },
    )
    rng = np.random.default_rng(1)
    t = np.arange(HALF) / SR
    x = np.stack([0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) for _ in range(48)]).astype(np.float32)
    sets = {}
    for key, fn in (
        ("drive", lambda a, g: np.tanh(g * 8 * a)),
        ("tremolo", lambda a, g: a * (1 + g * np.sin(2 * np.pi * 6 * t)) / 2),
    ):
        g = rng.uniform(0.2, 1.0, (48, 1)).astype(np.float32)
        y = fn(x, g).astype(np.float32)
        sets[key] = Examples(x, y, y, g, np.array([f"{key}{i}" for i in range(48)]), key, ("g",), SR)
    sp = Spectrogrammer(prof.spec, SR, HALF)
    train = {k: e.subset(np.arange(40)) for k, e in sets.items()}
    val = {k: e.subset(np.arange(40, 48)) for k, e in sets.items()}
    data = betavae.VAEData(
        prof, sp, train, val, PairSpecDataset(list(train.values()), sp), PairSpecDataset(list(val.values()), sp)
    )
    run = betavae.train_vae(prof, data, progress=False)
    hist = pd.DataFrame(run.fit.history)
    val_loss = hist.dropna(subset=["val_loss"]).groupby("epoch")["val_loss"].last()
    assert len(val_loss) == 6
    assert val_loss.iloc[-1] < 0.8 * val_loss.iloc[0], val_loss.to_dict()
    z = run.encoder.embed(x[:8], sets["drive"].y[:8])
    assert z.shape == (8, 4) and np.all(np.isfinite(z))
    # a shorter run continued to 6 epochs is the 6-epoch run itself (the sweep's final training)
    cfg3 = {**run.config, "epochs": 3}
    other = dict(run.config, epochs=6)
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build2"))  # a fresh build: nothing to reuse
    short2 = betavae.train_vae(prof, data, cfg3, progress=False)
    continued = betavae.train_vae(prof, data, other, progress=False, continue_from=short2)
    assert continued.fit.resumed and not continued.fit.reused
    assert len(pd.DataFrame(continued.fit.history).dropna(subset=["val_loss"]).groupby("epoch")) == 6
    for k, v in run.module.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), continued.module.state_dict()[k].numpy(), err_msg=k)
    with pytest.raises(ConfigError, match="not a shorter run"):
        betavae.train_vae(prof, data, dict(other, beta=0.5), progress=False, continue_from=short2)

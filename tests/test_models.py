"""dafxlib.models.vae and dafxlib.models.encoder: shapes, losses, deterministic embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dafxlib.config import get_profile
from dafxlib.errors import AudioError, ConfigError, MissingArtifactError
from dafxlib.models.encoder import AudioEncoder, level_features, load_selected_encoder
from dafxlib.models.vae import SpecVAE, VAEModule, kl_divergence, vae_loss
from dafxlib.spectrogram import Spectrogrammer

SHAPE = (32, 16)


@pytest.mark.parametrize("mode", ["joint", "siamese"])
@pytest.mark.parametrize("head,condition", [("flatten", False), ("stats", True)])
def test_vae_shapes(mode, head, condition):
    torch.manual_seed(0)
    m = SpecVAE(SHAPE, latent_dim=6, base_channels=4, mode=mode, head=head, condition=condition)
    x = torch.randn(3, 2, *SHAPE)
    recon, mu, logvar, z = m(x)
    assert recon.shape == x.shape and mu.shape == (3, 6) and logvar.shape == (3, 6) and z.shape == (3, 6)
    r2, mu2, _, z2 = m.eval()(x, sample=False)
    assert torch.equal(z2, mu2)


def test_siamese_halves_encode_each_channel_alone():
    torch.manual_seed(0)
    m = SpecVAE(SHAPE, latent_dim=6, base_channels=4, mode="siamese").eval()
    x = torch.randn(2, 2, *SHAPE)
    mu, _ = m.encode(x)
    x2 = x.clone()
    x2[:, 1] = torch.randn(2, *SHAPE)  # change only the effected channel
    mu2, _ = m.encode(x2)
    torch.testing.assert_close(mu[:, :3], mu2[:, :3])  # clean half unchanged
    assert not torch.allclose(mu[:, 3:], mu2[:, 3:])
    # the shared encoder: swapping channels swaps the halves
    mu3, _ = m.encode(x.flip(1))
    torch.testing.assert_close(mu3, torch.cat([mu[:, 3:], mu[:, :3]], 1))


def test_stats_head_and_conditioned_decoder():
    torch.manual_seed(0)
    m = SpecVAE((32, 48), latent_dim=4, base_channels=4, head="stats", condition=True).eval()
    x = torch.randn(2, 2, 32, 48)
    mu, _ = m.encode(x)
    assert mu.shape == (2, 4)
    z = torch.zeros(2, 4)
    a = m.decode(z, x[:, :1])
    b = m.decode(z, x[:, :1] * 0)
    assert a.shape == (2, 2, 32, 48) and not torch.allclose(a, b)
    with pytest.raises(ConfigError):
        m.decode(z)


def test_vae_rejects_bad_config():
    with pytest.raises(ConfigError):
        SpecVAE((30, 16), 4, 4)
    with pytest.raises(ConfigError):
        SpecVAE(SHAPE, 5, 4, mode="siamese")
    with pytest.raises(ConfigError):
        SpecVAE(SHAPE, 4, 4, mode="parallel")
    with pytest.raises(ConfigError):
        SpecVAE(SHAPE, 4, 4).encode(torch.zeros(1, 1, *SHAPE))
    with pytest.raises(ConfigError):
        SpecVAE(SHAPE, 4, 4, head="attention")


def test_loss_reductions():
    recon = torch.zeros(2, 2, 4, 4)
    target = torch.ones(2, 2, 4, 4)
    mu = torch.ones(2, 3)
    logvar = torch.zeros(2, 3)
    l_sum, r_sum, k_sum = vae_loss(recon, target, mu, logvar, beta=0.5, reduction="sum")
    l_mean, r_mean, k_mean = vae_loss(recon, target, mu, logvar, beta=0.5, reduction="mean")
    assert float(r_sum) == pytest.approx(32.0) and float(r_mean) == pytest.approx(1.0)
    assert float(k_sum) == pytest.approx(1.5) and float(k_mean) == pytest.approx(0.5)
    assert float(l_sum) == pytest.approx(32.75) and float(l_mean) == pytest.approx(1.25)
    assert float(kl_divergence(torch.zeros(1, 2), torch.zeros(1, 2)).sum()) == 0.0
    with pytest.raises(ConfigError):
        vae_loss(recon, target, mu, logvar, 1.0, reduction="max")


def test_module_training_step_runs_and_learns():
    torch.manual_seed(0)
    mod = VAEModule(SHAPE, latent_dim=4, base_channels=4, beta=1e-3, beta_schedule="constant", lr=1e-2)
    f = torch.linspace(0, 3, SHAPE[0])[:, None]
    t = torch.linspace(0, 3, SHAPE[1])[None, :]
    a = torch.rand(8, 2, 1, 1) * 2 + 0.5
    x = torch.sin(a * f) * torch.cos(t / a)  # smooth, learnable images
    opt = mod.configure_optimizers()
    losses = []
    for _ in range(30):
        recon, mu, lv, _ = mod.vae(x)
        loss, _, _ = vae_loss(recon, x, mu, lv, 1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-5:]) < 0.5 * losses[0]
    # weights depend on init_seed only, not on the global RNG
    torch.manual_seed(123)
    a = VAEModule(SHAPE, latent_dim=4, base_channels=4, init_seed=7)
    torch.manual_seed(456)
    b = VAEModule(SHAPE, latent_dim=4, base_channels=4, init_seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def _encoder(mode="joint"):
    p = get_profile("smoke")
    sp = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    torch.manual_seed(0)
    return AudioEncoder(SpecVAE(sp.shape, 6, 4, mode, head="stats", condition=True), sp, name="t"), p


@pytest.mark.parametrize("mode", ["joint", "siamese"])
def test_encoder_mean_embedding_is_deterministic(mode, tmp_path):
    enc, p = _encoder(mode)
    g = np.random.default_rng(0)
    x = (g.normal(size=(5, p.half_samples)) * 0.1).astype(np.float32)
    y = np.tanh(3 * x).astype(np.float32)
    e1 = enc.embed(x, y)
    e2 = enc.embed(x, y, batch_size=2)
    assert e1.shape == (5, 6) and e1.dtype == np.float32
    np.testing.assert_allclose(e1, e2, atol=1e-5)
    assert enc.dim == 6 and enc.mode == mode
    # level: a gain on the pair hardly moves the embedding
    e3 = enc.embed(4 * x, 4 * y)
    np.testing.assert_allclose(e1, e3, atol=1e-3)
    # saved and loaded: same embeddings
    enc.save(tmp_path / "enc.pt", extra={"note": "x"})
    back = AudioEncoder.load(tmp_path / "enc.pt")
    np.testing.assert_allclose(back.embed(x, y), e1, atol=1e-6)
    assert back.info["note"] == "x"


def test_encoder_bad_input():
    enc, p = _encoder()
    with pytest.raises(AudioError):
        enc.embed(np.zeros((2, p.half_samples)), np.zeros((3, p.half_samples)))


def test_level_features():
    x = np.full((2, 1000), 0.1, np.float32)
    y = np.full((2, 1000), 0.01, np.float32)
    f = level_features(x, y)
    assert f.shape == (2, 4)
    np.testing.assert_allclose(f[0], [-20, -40, -20, -20], atol=1e-4)
    assert level_features(x, np.zeros_like(y))[0, 1] == -100.0


def test_load_selected_encoder_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    with pytest.raises(MissingArtifactError, match="03_beta_tuning"):
        load_selected_encoder(get_profile("smoke"))

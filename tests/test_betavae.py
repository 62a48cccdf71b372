"""dafxlib.betavae.probes (what a latent holds) and the sweep selection rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dafxlib.betavae import config_name, select_config, sweep_configs
from dafxlib.betavae.probes import (
    active_units,
    latent_distance_ratio,
    latent_variances,
    mi_summary,
    mutual_information,
    probe,
    reconstruction_stats,
)
from dafxlib.config import get_profile
from dafxlib.errors import ConfigError, DatasetError
from dafxlib.models.vae import SpecVAE


def test_active_units_counts_varying_dims():
    g = np.random.default_rng(0)
    mu = np.stack([g.normal(size=200), g.normal(size=200) * 0.05, np.zeros(200), g.normal(size=200) * 0.2], 1)
    assert active_units(mu) == 2  # var 1 and 0.04 pass; 0.0025 and 0 do not
    assert latent_variances(mu).shape == (4,)
    assert active_units(mu, threshold=0.001) == 3
    with pytest.raises(DatasetError):
        active_units(np.zeros((1, 3)))


def test_probe_separable_and_random():
    g = np.random.default_rng(0)
    centers = {"a": [3, 0], "b": [-3, 0], "c": [0, 3]}

    def make(n):
        z = np.concatenate([g.normal(size=(n, 2)) * 0.5 + c for c in centers.values()])
        return z, np.repeat(list(centers), n)

    ztr, ytr = make(40)
    zte, yte = make(20)
    res = probe(ztr, ytr, zte, yte)
    assert res.accuracy > 0.95 and res.classes == ["a", "b", "c"] and res.confusion.sum() == 60
    assert res.chance == pytest.approx(1 / 3) and res.per_class()["a"] > 0.9
    noise = probe(g.normal(size=(120, 2)), ytr, g.normal(size=(60, 2)), yte)
    assert noise.accuracy < 0.6
    with pytest.raises(DatasetError):
        probe(ztr, ["a"] * len(ztr), zte, yte)
    with pytest.raises(DatasetError):
        probe(ztr, ytr, zte, np.repeat(["a", "b", "z"], 20))


def test_mutual_information_finds_the_informative_dim():
    g = np.random.default_rng(0)
    p = g.uniform(size=(300, 2))
    z = np.stack([np.sin(3 * p[:, 0]), g.normal(size=300), p[:, 1] ** 2 + 0.01 * g.normal(size=300)], 1)
    mi = mutual_information(z, p)
    assert mi.shape == (3, 2)
    assert mi[:, 0].argmax() == 0 and mi[:, 1].argmax() == 2
    assert mi[1].max() < 0.1
    s = mi_summary(mi, ["a", "b"])
    assert s["a"] == pytest.approx(mi[0, 0]) and s["mean"] == pytest.approx((s["a"] + s["b"]) / 2)
    with pytest.raises(DatasetError):
        mutual_information(z[:3], p[:3])
    with pytest.raises(ConfigError):
        mi_summary(mi, ["a"])


def test_reconstruction_stats():
    torch.manual_seed(0)
    vae = SpecVAE((16, 16), 4, 2)
    imgs = torch.randn(6, 2, 16, 16)
    out = reconstruction_stats(vae, imgs, labels=["x", "x", "y", "y", "y", "y"], batch_size=4)
    assert out["recon"] > 0 and out["kl"] >= 0
    assert out["recon"] == pytest.approx((2 * out["recon_x"] + 4 * out["recon_y"]) / 6, rel=1e-5)
    assert vae.training  # mode restored


def test_latent_distance_ratio():
    same = [np.array([[0, 0], [0.1, 0]]), np.array([[1, 1], [1, 1.1]])]
    other = [np.array([[0, 0], [1, 0], [0, 1]])]
    r = latent_distance_ratio(same, other)
    assert r["within"] == pytest.approx(0.1)
    assert r["across"] == pytest.approx((1 + 1 + np.sqrt(2)) / 3)
    assert r["ratio"] < 0.1
    with pytest.raises(DatasetError):
        latent_distance_ratio([np.zeros((1, 2))], other)


def test_sweep_configs_staged_and_full():
    p = get_profile("default")
    s1 = sweep_configs(p)
    assert len(s1) == len(p.sweep.betas)
    assert {c["latent_dim"] for c in s1} == {p.sweep.base_latent_dim}
    assert {c["mode"] for c in s1} == {p.sweep.modes[0]}
    assert {1e-4, 0.05, 2.0} <= {c["beta"] for c in s1}
    s2 = sweep_configs(p, stage=2, chosen=s1[1])
    assert [c["mode"] for c in s2] == list(p.sweep.modes[1:]) and all(c["beta"] == s1[1]["beta"] for c in s2)
    s3 = sweep_configs(p, stage=3, chosen=s2[0])
    assert all(c["mode"] == s2[0]["mode"] and c["beta"] == s1[1]["beta"] for c in s3)
    assert {c["latent_dim"] for c in s3} == set(p.sweep.latent_dims) - {p.sweep.base_latent_dim}
    full = get_profile("default", {"sweep.grid": "full"})
    n = len(full.sweep.betas) * len(full.sweep.latent_dims) * len(full.sweep.modes)
    configs = sweep_configs(full)
    assert len(configs) == n and len({config_name(c) for c in configs}) == n
    assert sweep_configs(full, stage=2, chosen=s1[0]) == []
    with pytest.raises(ConfigError):
        sweep_configs(p, stage=2)
    with pytest.raises(ConfigError):
        sweep_configs(get_profile("default", {"sweep.grid": "random"}))


def test_config_name_is_key_safe():
    import re

    for b in (1e-4, 0.05, 2.0, 10.0):
        n = config_name({"mode": "joint", "beta": b, "latent_dim": 16})
        assert re.fullmatch(r"[a-z0-9_]+", n), n


def test_select_config_rule():
    t = pd.DataFrame(
        {"recon": [0.10, 0.11, 0.30, 0.12], "probe_seen": [0.90, 0.95, 0.99, 0.95], "active_units": [10, 6, 3, 9]},
        index=["a", "b", "c", "d"],
    )
    name, reason = select_config(t, recon_tolerance=0.25)
    assert name == "d"  # c too poor a reconstruction; b and d tie on probe, d has more active units
    assert "d" in reason
    name, _ = select_config(t, recon_tolerance=5.0)
    assert name == "c"
    with pytest.raises(DatasetError):
        select_config(t.iloc[:0])

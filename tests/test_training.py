"""dafxlib.training: beta schedules, fit, exact resume after a mid-epoch kill, determinism."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dafxlib.errors import ConfigError
from dafxlib.training import EpochSampler, beta_at, fit, make_loader, read_log


# ---- beta schedules -----------------------------------------------------------------
def test_beta_constant():
    assert beta_at(0.0, "constant", 0.5) == 0.5
    assert beta_at(7.3, "constant", 0.5, warmup_epochs=3) == 0.5


def test_beta_warmup_linear():
    assert beta_at(0.0, "warmup", 2.0, warmup_epochs=4) == 0.0
    assert beta_at(1.0, "warmup", 2.0, warmup_epochs=4) == pytest.approx(0.5)
    assert beta_at(4.0, "linear", 2.0, warmup_epochs=4) == pytest.approx(2.0)
    assert beta_at(10.0, "warmup", 2.0, warmup_epochs=4) == pytest.approx(2.0)
    assert beta_at(0.0, "warmup", 2.0, warmup_epochs=0) == 2.0


def test_beta_cyclic():
    vals = [beta_at(e, "cyclic", 1.0, cycle_epochs=4) for e in (0, 1, 2, 3, 4, 5)]
    assert vals == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5])


def test_beta_bad_inputs():
    with pytest.raises(ConfigError):
        beta_at(1.0, "sigmoid", 1.0)
    with pytest.raises(ConfigError):
        beta_at(1.0, "cyclic", 1.0)
    with pytest.raises(ConfigError):
        beta_at(1.0, "constant", -1.0)


# ---- sampler ------------------------------------------------------------------------
def test_epoch_sampler_order_depends_on_seed_and_epoch():
    s = EpochSampler(10, seed=3)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    assert sorted(a) == list(range(10)) and a != b
    s.set_epoch(0)
    assert list(s) == a
    s.skip = 4
    assert list(s) == a[4:]
    assert list(s) == a  # skip applies once


# ---- fit ----------------------------------------------------------------------------
class SimulatedKill(RuntimeError):
    pass


class TinyNet(pl.LightningModule):
    """Noisy regression: uses the global RNG (dropout) so RNG restore matters."""

    def __init__(self, fail_at_step: int | None = None):
        super().__init__()
        self.save_hyperparameters({"width": 8})
        g = torch.Generator().manual_seed(0)
        self.l1 = torch.nn.Linear(4, 8)
        self.l2 = torch.nn.Linear(8, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.drop = torch.nn.Dropout(0.2)
        self.fail_at_step = fail_at_step

    def forward(self, x):
        return self.l2(self.drop(torch.tanh(self.l1(x))))

    def training_step(self, batch, idx):
        if self.fail_at_step is not None and self.global_step == self.fail_at_step:
            raise SimulatedKill(f"killed at step {self.global_step}")
        x, y = batch
        loss = torch.mean((self(x) - y) ** 2)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, idx):
        x, y = batch
        self.log("val_loss", torch.mean((self(x) - y) ** 2), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _data():
    g = np.random.default_rng(0)
    x = torch.tensor(g.normal(size=(70, 4)), dtype=torch.float32)
    y = x.sum(1, keepdim=True) ** 2 * 0.1
    return TensorDataset(x, y)


def _loaders():
    ds = _data()
    return make_loader(ds, 8, seed=1), make_loader(ds, 16, seed=1, shuffle=False)


def _params(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_fit_runs_logs_and_reuses(tmp_path):
    tr, va = _loaders()
    m = TinyNet()
    res = fit(m, tr, va, tmp_path / "run", 2, seed=0, ckpt_every_n_steps=3, progress=False)
    assert not res.reused and res.steps == 2 * 9 and res.epochs == 2
    rows = read_log(tmp_path / "run")
    train = [r for r in rows if "train_loss" in r]
    val = [r for r in rows if "val_loss" in r]
    assert len(train) == 18 and len(val) == 2
    assert [r["step"] for r in train] == list(range(1, 19))
    assert (tmp_path / "run" / "last.ckpt").exists() and (tmp_path / "run" / "final.ckpt").exists()
    assert math.isfinite(res.epochs_per_minute) and res.epochs_per_minute > 0
    # a second call reuses the finished run and loads its weights
    m2 = TinyNet()
    res2 = fit(m2, tr, va, tmp_path / "run", 2, seed=0, progress=False)
    assert res2.reused and torch.equal(_params(m2), _params(m))
    assert res2.final_metrics["val_loss"] == pytest.approx(res.final_metrics["val_loss"])
    # a different configuration in the same folder does not reuse it
    res3 = fit(TinyNet(), tr, va, tmp_path / "run", 1, seed=0, progress=False)
    assert not res3.reused and res3.steps == 9
    assert (tmp_path / "run" / "stale" / res.config_hash / "final.ckpt").exists()


def test_fit_deterministic_for_seed(tmp_path):
    a, b, c = TinyNet(), TinyNet(), TinyNet()
    fit(a, *_loaders(), tmp_path / "a", 2, seed=5, progress=False)
    fit(b, *_loaders(), tmp_path / "b", 2, seed=5, progress=False)
    fit(c, *_loaders(), tmp_path / "c", 2, seed=6, progress=False)
    assert torch.equal(_params(a), _params(b))
    assert not torch.equal(_params(a), _params(c))


@pytest.mark.parametrize("kill_at", [5, 9, 13])
def test_killed_mid_epoch_then_resumed_matches_uninterrupted(tmp_path, kill_at):
    ref = TinyNet()
    fit(ref, *_loaders(), tmp_path / "ref", 3, seed=2, ckpt_every_n_steps=2, progress=False)

    killed = TinyNet(fail_at_step=kill_at)
    with pytest.raises(SimulatedKill):
        fit(killed, *_loaders(), tmp_path / "run", 3, seed=2, ckpt_every_n_steps=2, progress=False)
    assert (tmp_path / "run" / "last.ckpt").exists()
    assert not (tmp_path / "run" / "final.ckpt").exists()

    again = TinyNet()  # fresh process state: new module, new loaders
    res = fit(again, *_loaders(), tmp_path / "run", 3, seed=2, ckpt_every_n_steps=2, progress=False)
    assert res.resumed and res.steps == 27
    assert torch.allclose(_params(again), _params(ref), atol=1e-6)
    ref_rows, rows = read_log(tmp_path / "ref"), read_log(tmp_path / "run")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    np.testing.assert_allclose(
        [r.get("train_loss", r.get("val_loss")) for r in rows],
        [r.get("train_loss", r.get("val_loss")) for r in ref_rows],
        rtol=1e-5,
    )


def test_fit_bad_args(tmp_path):
    with pytest.raises(ConfigError):
        fit(TinyNet(), *_loaders(), tmp_path, 0, seed=0)
    with pytest.raises(ConfigError):
        fit(TinyNet(), *_loaders(), tmp_path, 1, seed=0, ckpt_every_n_steps=0)

"""One ``runtime.device`` setting puts every network on the GPU when there is one (faked here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dafxlib import training
from dafxlib.config import get_profile
from dafxlib.errors import ConfigError
from dafxlib.models import encoder as encoder_mod
from dafxlib.models.encoder import AudioEncoder
from dafxlib.models.vae import SpecVAE
from dafxlib.spectrogram import Spectrogrammer


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_device_follows_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="sees no GPU"):
        training.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training.resolve_device("auto") == torch.device("cuda")
    assert training.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError):
        training.resolve_device("tpu")


def test_profile_field_defaults_auto_and_is_checked():
    p = get_profile("paper")
    assert p.runtime.device == "auto" and p.runtime.strategy == "auto" and p.runtime.num_nodes == 1
    assert get_profile("default", {"runtime.device": "cpu"}).hash() == get_profile("default").hash()
    with pytest.raises(ConfigError, match="runtime.device"):
        get_profile("default", {"runtime.device": "gpu0"})
    with pytest.raises(ConfigError, match="runtime.strategy"):
        get_profile("default", {"runtime.strategy": "horovod"})


def test_trainer_options(fake_gpu):
    gpu = training.trainer_options(get_profile("paper").runtime)
    assert gpu == {"accelerator": "gpu", "devices": "auto", "strategy": "auto", "num_nodes": 1}
    p = get_profile(
        "paper", {"runtime.device": "cpu", "runtime.devices": "2", "runtime.strategy": "ddp", "runtime.num_nodes": "3"}
    )
    assert training.trainer_options(p.runtime) == {
        "accelerator": "cpu",
        "devices": 2,
        "strategy": "ddp",
        "num_nodes": 3,
    }
    assert training.trainer_options(p.runtime, accelerator="gpu")["accelerator"] == "gpu"
    assert training.trainer_options(None) == {}


class _Stop(Exception):
    pass


def test_vae_training_and_its_encoder_go_to_the_device(fake_gpu, monkeypatch, tmp_path):
    """train_vae hands the profile's device to Lightning and puts the encoder it returns there."""
    from dafxlib import betavae

    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    p = get_profile("smoke")
    sp = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    ds = TensorDataset(torch.zeros(4, 2, *sp.shape), torch.zeros(4, dtype=torch.long))
    data = SimpleNamespace(spectrogrammer=sp, effects=["overdrive"], train_ds=ds, val_ds=ds)
    seen = {}

    def fake_fit(module, train_loader, val_loader, run_dir, epochs, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(training, "fit", fake_fit)
    with pytest.raises(_Stop):
        betavae.train_vae(p, data, progress=False)
    assert seen["accelerator"] == "gpu" and seen["devices"] == "auto" and seen["strategy"] == "auto"
    # the encoder wrapper follows the same setting ("meta" stands in for a GPU: no memory, no CUDA)
    vae = SpecVAE(sp.shape, 4, 2)
    enc = AudioEncoder.from_module(SimpleNamespace(vae=vae), sp, device="meta")
    assert enc.device == torch.device("meta") and next(enc.vae.parameters()).device.type == "meta"


def test_load_selected_encoder_uses_the_profile_device(fake_gpu, monkeypatch, tmp_path):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    p = get_profile("smoke")
    sp = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    torch.manual_seed(0)
    AudioEncoder(SpecVAE(sp.shape, 4, 2), sp, name="t").save(
        encoder_mod.paths.artifact_path(p.name, encoder_mod.SELECTED_CKPT)
    )
    encoder_mod.storage.write_json(encoder_mod.paths.artifact_path(p.name, encoder_mod.SELECTED_JSON), {})
    asked = []
    real_load = AudioEncoder.load.__func__

    def load(cls, path, device="cpu"):
        asked.append(torch.device(device))
        return real_load(cls, path, device="cpu")  # this machine has no GPU: build it on the CPU

    monkeypatch.setattr(AudioEncoder, "load", classmethod(load))
    encoder_mod.load_selected_encoder(p)
    encoder_mod.load_selected_encoder(get_profile("smoke", {"runtime.device": "cpu"}))
    encoder_mod.load_selected_encoder(p, device="cpu")  # an explicit device still wins
    assert asked == [torch.device("cuda"), torch.device("cpu"), torch.device("cpu")]


def test_fit_hands_the_setting_to_the_trainer(monkeypatch, tmp_path):
    """A real (tiny) fit on the CPU: the Trainer gets and uses the accelerator of the setting."""
    import lightning.pytorch as pl

    made = []

    class Recording(pl.Trainer):
        def __init__(self, **kw):
            made.append((kw, self))
            super().__init__(**kw)

    monkeypatch.setattr(pl, "Trainer", Recording)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def training_step(self, batch, idx):
            return torch.mean((self.lin(batch[0]) - batch[1]) ** 2)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    g = np.random.default_rng(0)
    ds = TensorDataset(torch.tensor(g.normal(size=(8, 3)), dtype=torch.float32), torch.zeros(8, 1))
    res = training.fit(
        Net(),
        training.make_loader(ds, 4, seed=0),
        None,
        tmp_path / "run",
        1,
        seed=0,
        progress=False,
        **training.trainer_options(get_profile("smoke").runtime),
    )
    kw, trainer = made[0]
    assert kw["accelerator"] == "cpu" and kw["devices"] == 1 and kw["num_nodes"] == 1
    assert type(trainer.accelerator).__name__ == "CPUAccelerator" and res.steps == 2

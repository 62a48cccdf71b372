"""Training under Lightning's DDP strategy with 2 CPU processes (gloo): steps, checkpoints, resume.

Each case runs a small script in a fresh interpreter: the ``ddp`` strategy starts the second
process by re-running the script (as it does for ``python train.py`` or ``torchrun``), which a
pytest process cannot do for itself. The model and data are tiny; the cost is the start of
the processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch
    import lightning.pytorch as pl
    from torch.utils.data import TensorDataset
    from dafxlib.config import get_profile
    from dafxlib.training import fit, make_loader, read_log, trainer_options

    run_dir, out, kill_at, strategy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"width": 8})
            g = torch.Generator().manual_seed(0)
            self.l1, self.l2 = torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)

        def training_step(self, batch, idx):
            if self.global_step == kill_at:  # every rank stops at the same step, as a killed job does
                raise RuntimeError(f"killed at step {self.global_step}")
            x, y = batch
            loss = torch.mean((self.l2(torch.tanh(self.l1(x))) - y) ** 2)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            if self.global_rank == 0:  # which process runs the loop
                with open(os.path.join(run_dir, "pid.txt"), "w") as fh:
                    fh.write(str(os.getpid()))
            return loss

        def validation_step(self, batch, idx):
            x, y = batch
            self.log("val_loss", torch.mean((self.l2(torch.tanh(self.l1(x))) - y) ** 2), on_epoch=True,
                     sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    g = np.random.default_rng(0)
    x = torch.tensor(g.normal(size=(64, 4)), dtype=torch.float32)
    ds = TensorDataset(x, x.sum(1, keepdim=True) ** 2 * 0.1)
    profile = get_profile("smoke", {"runtime.device": "cpu", "runtime.devices": "2", "runtime.strategy": strategy})
    net = Net()
    init = [float(v) for p in net.parameters() for v in p.detach().flatten()]
    try:
        res = fit(net, make_loader(ds, 8, seed=1), make_loader(ds, 16, seed=1, shuffle=False), run_dir, 2, seed=0,
                  ckpt_every_n_steps=2, progress=False, num_threads=1, **trainer_options(profile.runtime))
    except RuntimeError as e:
        if "killed at step" not in str(e):
            raise
        res = None
    if os.environ.get("LOCAL_RANK", "0") == "0":
        info = {"killed": res is None, "init": init}
        if res is not None:
            info.update(steps=res.steps, epochs=res.epochs, resumed=res.resumed, reused=res.reused,
                        world_size=int(torch.distributed.get_world_size()) if torch.distributed.is_initialized()
                        else None, pid=os.getpid(), run_pid=int(open(os.path.join(run_dir, "pid.txt")).read()),
                        weights=[float(v) for p in net.parameters() for v in p.detach().flatten()],
                        log_steps=[r["step"] for r in read_log(run_dir) if "train_loss" in r])
        with open(out, "w") as fh:
            json.dump(info, fh)
""")


def _run(tmp_path: Path, name: str, run_dir: Path, kill_at: int = -1, strategy: str = "ddp") -> dict:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, str(script), str(run_dir), str(out), str(kill_at), strategy],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if not out.exists():
        pytest.fail(
            f"DDP run {name} wrote no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return json.loads(out.read_text())


@pytest.mark.slow
def test_ddp_two_cpu_processes_steps_checkpoints_and_resume(tmp_path):
    # 64 examples, batch 8, 2 processes: each rank sees 32 per epoch -> 4 steps/epoch, 8 in 2 epochs.
    # Reference: an uninterrupted run with ddp_notebook (what a Jupyter kernel allows: forked
    # workers; the loop runs in the children, fit still reports steps, log and trained weights)
    nb = _run(tmp_path, "nb", tmp_path / "nb", strategy="ddp_notebook")
    assert nb["run_pid"] != nb["pid"]  # really trained in another process
    assert nb["steps"] == 8 and nb["epochs"] == 2 and not nb["resumed"] and not nb["reused"]
    assert nb["log_steps"] == list(range(1, 9))
    for f in ("last.ckpt", "final.ckpt", "run.json", "log.csv"):
        assert (tmp_path / "nb" / f).is_file(), f
    meta = json.loads((tmp_path / "nb" / "run.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 8
    assert max(abs(a - b) for a, b in zip(nb["weights"], nb["init"])) > 1e-3  # it did train

    # strategy "ddp" (the script is re-run as rank 1), killed mid-epoch 2 after the checkpoint
    # of step 6, then the same command resumes from last.ckpt
    part = _run(tmp_path, "part", tmp_path / "part", kill_at=7)
    assert part["killed"] and (tmp_path / "part" / "last.ckpt").is_file()
    assert not (tmp_path / "part" / "final.ckpt").exists()
    resumed = _run(tmp_path, "resumed", tmp_path / "part")
    assert resumed["world_size"] == 2 and resumed["run_pid"] == resumed["pid"]
    assert resumed["resumed"] and resumed["steps"] == 8 and resumed["epochs"] == 2
    assert resumed["log_steps"] == list(range(1, 9))
    assert (tmp_path / "part" / "final.ckpt").is_file()
    # resumed under DDP, the run ends exactly where the uninterrupted one does
    assert resumed["weights"] == pytest.approx(nb["weights"], abs=1e-6)

"""Generic training on PyTorch Lightning: checkpoint, resume, CSV log, determinism.

:func:`fit` trains any ``LightningModule`` into a run folder and is safe to kill:

- ``run_dir/last.ckpt`` is written every ``ckpt_every_n_steps`` optimiser steps and at
  every epoch end (Lightning writes a temporary file, which is then renamed: a kill never
  leaves a half-written checkpoint);
- a later call with the same configuration resumes from ``last.ckpt``, mid-epoch included;
  with loaders from :func:`make_loader` on one device the resumed run reaches exactly the
  state an uninterrupted run reaches (the data order is a function of seed and epoch; the
  batches already seen and the RNG states are stored in the checkpoint). Other loaders
  resume with Lightning's own (approximate) mid-epoch semantics;
- ``run_dir/log.csv`` holds one row per training step (``epoch, step`` and every metric the
  module logged, e.g. ``train_loss``) and one row per validation (``val_*`` metrics);
- when the run already finished with the same configuration hash, :func:`fit` loads the
  final weights into ``module`` and returns at once (notebook 03 reuses notebook 02's run).

The engine is Lightning's ``Trainer``: ``accelerator="auto"`` uses a GPU when present and
``devices``/``strategy`` scale to several without code changes. CPU training uses every
core (``torch.set_num_threads(os.cpu_count())``; ``num_threads`` overrides). On a machine
shared with other busy processes, set ``OMP_WAIT_POLICY=PASSIVE`` before Python starts:
spinning OpenMP threads otherwise slow small models down many times.

Also here: KL-weight schedules (:func:`beta_at`) for constant, linear warm-up and cyclic beta.
"""

from __future__ import annotations

import contextlib
import csv
import io as _stdio
import logging
import math
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from . import storage
from .errors import ConfigError, CorruptFileError, TrainingDivergedError
from .seeding import stable_hash
from .threads import set_torch_threads

__all__ = [
    "fit",
    "FitResult",
    "make_loader",
    "EpochSampler",
    "beta_at",
    "config_hash",
    "read_log",
    "load_checkpoint",
    "BETA_SCHEDULES",
    "LR_SETTINGS",
    "resolve_device",
    "trainer_options",
]

BETA_SCHEDULES = ("constant", "warmup", "linear", "cyclic")

LAST = "last.ckpt"
FINAL = "final.ckpt"
RUN_JSON = "run.json"
LOG_CSV = "log.csv"
#: the profile setting a diverging run of each module should change (fit's ``lr_setting``)
LR_SETTINGS = {"VAEModule": "vae.lr", "ControllerModule": "controller.lr (controller.spsa_lr when fine-tuning)"}


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load`` of a checkpoint, or CorruptFileError naming the file to delete."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated zip, bad pickle, wrong file
        raise CorruptFileError(
            f"checkpoint {path} is damaged and cannot be read ({type(exc).__name__}: {str(exc)[:120]}); "
            f"delete it and run again: training restarts from the start of this run"
        ) from exc


def _non_finite_weights(module) -> str | None:
    """Name of the first parameter holding NaN or inf, or None."""
    for name, t in module.named_parameters():
        if not bool(torch.isfinite(t.detach()).all()):
            return name
    return None


# ---------------------------------------------------------------------------------------
# beta schedules
# ---------------------------------------------------------------------------------------
def beta_at(
    epoch_float: float, schedule: str, beta: float, warmup_epochs: float = 0.0, cycle_epochs: float = 0.0
) -> float:
    """KL weight at a (fractional) epoch.

    - ``constant``: ``beta`` throughout;
    - ``warmup`` (alias ``linear``): rises linearly from 0 to ``beta`` over ``warmup_epochs``,
      then stays (RAVE-style warm-up);
    - ``cyclic``: cyclical annealing (Fu et al. 2019): every ``cycle_epochs`` the weight restarts
      at 0, rises linearly to ``beta`` over the first half of the cycle and holds for the second.
      ``cycle_epochs <= 0`` falls back to ``warmup_epochs`` as the cycle length.
    """
    if schedule not in BETA_SCHEDULES:
        raise ConfigError(f"unknown beta schedule {schedule!r}; valid: {', '.join(BETA_SCHEDULES)}")
    if beta < 0 or not math.isfinite(beta):
        raise ConfigError(f"beta must be a finite value >= 0, got {beta}")
    e = max(0.0, float(epoch_float))
    if schedule == "constant":
        return float(beta)
    if schedule in ("warmup", "linear"):
        if warmup_epochs <= 0:
            return float(beta)
        return float(beta * min(1.0, e / warmup_epochs))
    cycle = cycle_epochs if cycle_epochs > 0 else warmup_epochs
    if cycle <= 0:
        raise ConfigError("the cyclic beta schedule needs cycle_epochs > 0 (or warmup_epochs > 0)")
    t = (e % cycle) / cycle
    return float(beta * min(1.0, t / 0.5))


# ---------------------------------------------------------------------------------------
# resumable data loading
# ---------------------------------------------------------------------------------------
class EpochSampler(Sampler[int]):
    """Index order that is a pure function of ``(seed, epoch)``; can skip a prefix once.

    Lightning calls :meth:`set_epoch` before each epoch; :func:`fit` sets ``skip`` when it
    resumes mid-epoch so the remaining indices are exactly those an uninterrupted run sees.
    Under distributed training (several processes, e.g. Lightning's DDP) each process takes
    its own share, rank ``r`` of ``W`` every ``W``-th index from ``r`` of the epoch's order
    (padded by its first indices to a multiple of ``W``, as torch's DistributedSampler does),
    and ``skip`` counts that process's own indices, so resume stays exact there too.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle = int(n), int(seed), bool(shuffle)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self) -> Iterator[int]:
        idx = self.order(self.epoch)
        rank, world = self._rank_world()
        if world > 1:
            total = math.ceil(self.n / world) * world
            idx = np.concatenate([idx, np.resize(idx, total - self.n)])[rank:total:world]
        skip, self.skip = self.skip, 0
        return iter(idx[skip:].tolist())

    def __len__(self) -> int:
        return math.ceil(self.n / self._rank_world()[1])


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = False,
    num_workers: int = 0,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader whose order depends only on ``(seed, epoch)`` (exact resume in :func:`fit`)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ConfigError("make_loader: the dataset is empty")
    g = torch.Generator()
    g.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(n, seed, shuffle),
        drop_last=drop_last,
        num_workers=num_workers,
        generator=g,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


def _epoch_sampler(loader: Any) -> EpochSampler | None:
    for s in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if isinstance(s, EpochSampler):
            return s
    return None


# ---------------------------------------------------------------------------------------
# configuration identity
# ---------------------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit hash of a JSON-able configuration."""
    return stable_hash(_jsonable(config))


# ---------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------
def _np_state_to_plain(state) -> list:
    name, keys, pos, has_gauss, cached = state
    return [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _np_state_from_plain(plain) -> tuple:
    name, keys, pos, has_gauss, cached = plain
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _diverged(run_dir: Path, what: str, where: str, lr_setting: str | None, lr: Any) -> TrainingDivergedError:
    last = run_dir / LAST
    kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
    setting = lr_setting or "the learning rate"
    now = f", now {lr:g}" if isinstance(lr, (int, float)) else ""
    return TrainingDivergedError(
        f"training diverged at {where}: {what}. Lower {setting}{now} (e.g. ten times smaller) and run again; "
        f"{kept} (a changed setting starts a new run)"
    )


def resolve_device(setting: str = "auto") -> torch.device:
    """The torch device for a profile's ``runtime.device``: ``"auto"`` is CUDA when torch sees a
    GPU, else the CPU; asking for ``"cuda"`` or ``"mps"`` where there is none is a ConfigError."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"runtime.device='cuda' but torch {torch.__version__} sees no GPU (CUDA build: "
            f"{torch.version.cuda or 'no'}); install CUDA torch (README) or set runtime.device=auto"
        )
    if setting == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("runtime.device='mps' but this torch has no usable MPS backend; set runtime.device=auto")
    if setting not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"runtime.device must be 'auto', 'cpu', 'cuda' or 'mps', got {setting!r}")
    return torch.device(setting)


def trainer_options(runtime: Any = None, accelerator: str | None = None) -> dict[str, Any]:
    """:func:`fit`'s ``accelerator``, ``devices``, ``strategy`` and ``num_nodes`` for a profile's
    ``runtime`` section (a :class:`~dafxlib.config.RuntimeConfig`); ``accelerator`` overrides
    the device setting. None gives fit's defaults (Lightning's "auto")."""
    if runtime is None:
        return {} if accelerator is None else {"accelerator": accelerator}
    acc = accelerator or {"cuda": "gpu", "cpu": "cpu", "mps": "mps"}[resolve_device(runtime.device).type]
    devices = runtime.devices if runtime.devices is not None else ("auto" if acc == "gpu" else 1)
    return {"accelerator": acc, "devices": devices, "strategy": runtime.strategy, "num_nodes": int(runtime.num_nodes)}


def _epoch_progress(max_epochs: int):
    """A callback that reports finished epochs to the runner's live line (:mod:`dafxlib.progress`)."""
    import lightning.pytorch as pl

    from . import progress

    class _EpochProgress(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            progress.step("epochs", int(trainer.current_epoch), max_epochs)

        def on_train_epoch_end(self, trainer, pl_module):
            progress.step("epochs", int(trainer.current_epoch) + 1, max_epochs)

    return _EpochProgress()


def _make_callbacks(run_dir: Path, ckpt_every: int | None, lr_setting: str | None = None, lr: Any = None):
    import lightning.pytorch as pl

    class _Checkpointer(pl.Callback):
        """Atomic ``last.ckpt`` every N steps and at epoch end; resume bookkeeping."""

        def __init__(self):
            self.rows: list[dict[str, Any]] = []

        # -- what goes into the checkpoint
        def state_dict(self) -> dict[str, Any]:
            return {"rows": list(self.rows)}

        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            loop = trainer.fit_loop.epoch_loop
            checkpoint["dafx_resume"] = {
                "epoch": int(trainer.current_epoch),
                "processed": int(loop.batch_progress.current.processed),
                "world_size": int(trainer.world_size),
                "num_batches": int(trainer.num_training_batches) if math.isfinite(trainer.num_training_batches) else -1,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": _np_state_to_plain(np.random.get_state()),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                },
            }

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.rows = list(state.get("rows", []))

        def on_load_checkpoint(self, trainer, pl_module, checkpoint):
            info = checkpoint.get("dafx_resume")
            if not info:
                return
            rng = info["rng"]
            torch.set_rng_state(rng["torch"])
            np.random.set_state(_np_state_from_plain(rng["numpy"]))
            random.setstate(rng["python"])
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            # position the sampler before Lightning creates the first iterator
            sampler = getattr(self, "_sampler", None)
            if sampler is not None:
                nb = info["num_batches"]
                if nb > 0 and info["processed"] >= nb:
                    sampler.set_epoch(info["epoch"] + 1)
                    sampler.skip = 0
                else:
                    sampler.set_epoch(info["epoch"])
                    bs = getattr(self, "_batch_size", None) or 1
                    # each process skips its own share (EpochSampler deals indices per rank);
                    # resumed on another number of processes the position is approximate
                    saved, now = int(info.get("world_size", 1)), int(trainer.world_size)
                    sampler.skip = info["processed"] * bs * saved // max(now, 1)

        # -- writing
        def _save(self, trainer):
            bad = _non_finite_weights(trainer.lightning_module)
            if bad is not None:  # never overwrite the last good checkpoint with broken weights
                raise _diverged(
                    run_dir,
                    f"weight {bad} is NaN or inf",
                    f"epoch {trainer.current_epoch}, step {trainer.global_step}",
                    lr_setting,
                    lr,
                )
            tmp = run_dir / f".{LAST}.tmp"
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                os.replace(tmp, run_dir / LAST)
                self._write_log()

        def _write_log(self):
            cols: list[str] = []
            for r in self.rows:
                cols += [k for k in r if k not in cols]
            buf = _stdio.StringIO()
            w = csv.DictWriter(buf, fieldnames=cols)
            w.writeheader()
            w.writerows(self.rows)
            storage.write_text(run_dir / LOG_CSV, buf.getvalue())

        @staticmethod
        def _metrics(trainer, val: bool) -> dict[str, float]:
            out = {}
            for k, v in trainer.callback_metrics.items():
                if k.startswith("val") != val:
                    continue
                try:
                    out[k] = float(v)
                except (TypeError, ValueError):
                    continue
            return out

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
                raise _diverged(
                    run_dir,
                    f"the training loss is {float(loss.detach().reshape(-1)[0])}",
                    f"epoch {trainer.current_epoch}, step {trainer.global_step}",
                    lr_setting,
                    lr,
                )
            row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
            row.update(self._metrics(trainer, val=False))
            self.rows.append(row)
            if ckpt_every and trainer.global_step % ckpt_every == 0:
                self._save(trainer)

        def on_validation_epoch_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
            row.update(self._metrics(trainer, val=True))
            self.rows.append(row)

        def on_train_epoch_end(self, trainer, pl_module):
            self._save(trainer)

    return _Checkpointer()


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` did. ``history`` rows come from ``run_dir/log.csv``."""

    run_dir: Path
    checkpoint: Path
    config_hash: str
    epochs: int
    steps: int
    wall_s: float
    #: True when a finished run was found and reused (no training happened; ``wall_s`` and
    #: ``trained_epochs`` are then those of the run that trained it)
    reused: bool
    #: True when training continued from an interrupted run's ``last.ckpt``
    resumed: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    final_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def epochs_per_minute(self) -> float:
        """Training speed of the last training session (a reused run reports its own)."""
        if self.wall_s <= 0 or self.trained_epochs <= 0:
            return float("nan")
        return self.trained_epochs / (self.wall_s / 60.0)

    trained_epochs: float = 0.0

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of ``run_dir/log.csv`` as dicts of floats (empty cells dropped)."""
    p = Path(run_dir) / LOG_CSV
    if not p.exists():
        return []
    rows = []
    with open(p, newline="") as fh:
        for r in csv.DictReader(fh):
            row = {}
            for k, v in r.items():
                if v in ("", None):
                    continue
                fv = float(v)
                row[k] = int(fv) if k in ("epoch", "step") else fv
            rows.append(row)
    return rows


@contextlib.contextmanager
def _quiet(resumable: bool = False):
    """Silence Lightning's banner lines and hint warnings during fit."""
    names = ["lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning"]
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*isinstance.*treespec.*")
        warnings.filterwarnings("ignore", message=".*GPU available.*")
        warnings.filterwarnings("ignore", message=".*litlogger.*")
        if resumable:  # fit positions EpochSampler loaders itself: mid-epoch resume is exact
            warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        try:
            yield
        finally:
            for n, lv in old.items():
                logging.getLogger(n).setLevel(lv)


def _trained_in_child_processes(trainer) -> bool:
    """True when the strategy ran the training loop in processes it started (ddp_spawn, ddp_notebook)."""
    try:
        from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    except ImportError:
        return False
    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def _final_metrics(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in history:
        for k, v in r.items():
            if k not in ("epoch", "step"):
                out[k] = float(v)
    return out


def fit(
    module,
    train_loader,
    val_loader,
    run_dir: str | os.PathLike,
    max_epochs: int,
    *,
    seed: int,
    ckpt_every_n_steps: int | None = 200,
    progress: bool = True,
    accelerator: str = "auto",
    devices: Any = "auto",
    strategy: Any = "auto",
    num_nodes: int = 1,
    config: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
    gradient_clip_val: float | None = None,
    precision: Any = None,
    deterministic: bool | str = True,
    log_every_n_steps: int = 1,
    num_threads: int | None = None,
    lr_setting: str | None = None,
) -> FitResult:
    """Train ``module`` (a ``LightningModule``) into ``run_dir``; resume or reuse when possible.

    ``config`` identifies the run (default: ``module.hparams``); its hash, ``max_epochs`` and
    ``seed`` form the run's identity. A finished run with the same identity is reused (final
    weights loaded into ``module``); an unfinished one is resumed from ``last.ckpt``; a folder
    holding a different run is moved aside to ``run_dir/stale/<hash>/``.
    ``val_loader`` may be None. Use :func:`make_loader` for exact mid-epoch resume.
    Returns a :class:`FitResult`; the trained weights are in ``module`` afterwards.
    A non-finite training loss or weight stops training with :class:`TrainingDivergedError`
    naming ``lr_setting`` (default from :data:`LR_SETTINGS` by module class); ``last.ckpt`` is
    never overwritten with broken weights. A damaged checkpoint raises CorruptFileError naming it.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    if int(max_epochs) < 1:
        raise ConfigError(f"max_epochs must be >= 1, got {max_epochs}")
    if ckpt_every_n_steps is not None and int(ckpt_every_n_steps) < 1:
        raise ConfigError(f"ckpt_every_n_steps must be >= 1 or None, got {ckpt_every_n_steps}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = dict(config) if config is not None else dict(getattr(module, "hparams", {}) or {})
    ident = {
        "module": type(module).__name__,
        "config": _jsonable(cfg),
        "max_epochs": int(max_epochs),
        "seed": int(seed),
    }
    h = config_hash(ident)
    meta = storage.read_json(run_dir / RUN_JSON, None)

    if meta is not None and meta.get("hash") != h:
        stale = run_dir / "stale" / str(meta.get("hash", "unknown"))
        stale.mkdir(parents=True, exist_ok=True)
        for name in (LAST, FINAL, RUN_JSON, LOG_CSV):
            if (run_dir / name).exists():
                os.replace(run_dir / name, stale / name)
        meta = None

    final = run_dir / FINAL
    if meta is not None and meta.get("status") == "done" and final.exists():
        state = load_checkpoint(final)
        module.load_state_dict(state["state_dict"])
        history = read_log(run_dir)
        return FitResult(
            run_dir=run_dir,
            checkpoint=final,
            config_hash=h,
            epochs=int(meta.get("epochs", max_epochs)),
            steps=int(meta.get("steps", 0)),
            wall_s=float(meta.get("wall_s", 0.0)),
            reused=True,
            resumed=False,
            history=history,
            final_metrics=_final_metrics(history),
            trained_epochs=float(meta.get("trained_epochs", 0.0)),
        )

    set_torch_threads(num_threads or None)
    pl.seed_everything(int(seed), workers=True, verbose=False)
    last = run_dir / LAST
    resumed = last.exists()
    if not resumed:
        for name in (LOG_CSV,):
            if (run_dir / name).exists():
                (run_dir / name).unlink()
    # temp files of writes a killed run left behind (fit is the only writer of its run folder)
    storage.remove_temp_files(run_dir, (RUN_JSON, LOG_CSV, LAST, FINAL))
    storage.write_json(run_dir / RUN_JSON, {**ident, "hash": h, "status": "running"})

    lr_setting = lr_setting or LR_SETTINGS.get(type(module).__name__)
    lr = (getattr(module, "hparams", None) or {}).get("lr", cfg.get("lr"))
    ckpt_cb = _make_callbacks(run_dir, ckpt_every_n_steps, lr_setting, lr)
    ckpt_cb._sampler = _epoch_sampler(train_loader)
    ckpt_cb._batch_size = getattr(train_loader, "batch_size", None)
    start_step = 0
    if resumed:
        start_step = int(load_checkpoint(last).get("global_step", 0))

    trainer_kw: dict[str, Any] = dict(
        max_epochs=int(max_epochs),
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=int(num_nodes),
        callbacks=[ckpt_cb, _epoch_progress(int(max_epochs)), *callbacks],
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),  # a caller's best-weights keeper
        enable_progress_bar=bool(progress),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=deterministic,
        default_root_dir=str(run_dir),
        log_every_n_steps=log_every_n_steps,
        gradient_clip_val=gradient_clip_val,
    )
    if precision is not None:
        trainer_kw["precision"] = precision
    if ckpt_cb._sampler is not None and (val_loader is None or _epoch_sampler(val_loader) is not None):
        trainer_kw["use_distributed_sampler"] = False  # EpochSampler shares the data out itself, resumably
    if val_loader is None:
        trainer_kw["limit_val_batches"] = 0
    t0 = time.perf_counter()
    old_sigint = signal.getsignal(signal.SIGINT)
    try:
        with _quiet(resumable=ckpt_cb._sampler is not None):
            trainer = pl.Trainer(**trainer_kw)
            trainer.fit(
                module,
                train_dataloaders=train_loader,
                val_dataloaders=val_loader,
                ckpt_path=str(last) if resumed else None,
            )
    except SystemExit as exc:  # Lightning turns Ctrl-C / kernel interrupt into sys.exit(1)
        raise KeyboardInterrupt(f"training interrupted; call fit again to resume from {last}") from exc
    finally:
        if threading.current_thread() is threading.main_thread() and old_sigint is not None:
            signal.signal(signal.SIGINT, old_sigint)  # Lightning leaves SIGINT ignored
    wall = time.perf_counter() - t0
    steps = int(trainer.global_step)
    epochs_done = int(trainer.current_epoch)
    n_batches = trainer.num_training_batches
    if _trained_in_child_processes(trainer):
        # ddp_spawn / ddp_notebook: the loop ran in worker processes; Lightning copied the
        # weights back, rank 0's worker wrote last.ckpt and log.csv at the last epoch end
        ck = load_checkpoint(last)
        info = ck.get("dafx_resume") or {}
        steps, n_batches = int(ck.get("global_step", 0)), int(info.get("num_batches", -1))
        epochs_done = int(info.get("epoch", 0)) + int(0 < n_batches <= int(info.get("processed", 0)))
        ckpt_cb.rows = []
    trained_epochs = ((steps - start_step) / n_batches) if math.isfinite(n_batches) and n_batches > 0 else 0.0

    bad = _non_finite_weights(module)
    if bad is not None:
        raise _diverged(run_dir, f"weight {bad} is NaN or inf", f"the end (step {steps})", lr_setting, lr)
    if trainer.is_global_zero:
        if ckpt_cb.rows:
            ckpt_cb._write_log()
        storage.torch_save(
            {
                "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                "config": ident,
                "hash": h,
                "epochs": epochs_done,
                "steps": steps,
            },
            final,
        )
        storage.write_json(
            run_dir / RUN_JSON,
            {
                **ident,
                "hash": h,
                "status": "done",
                "epochs": epochs_done,
                "steps": steps,
                "wall_s": round(wall, 3),
                "trained_epochs": round(trained_epochs, 4),
            },
        )
    history = read_log(run_dir)
    return FitResult(
        run_dir=run_dir,
        checkpoint=final,
        config_hash=h,
        epochs=epochs_done,
        steps=steps,
        wall_s=wall,
        reused=False,
        resumed=resumed,
        history=history,
        final_metrics=_final_metrics(history),
        trained_epochs=trained_epochs,
    )

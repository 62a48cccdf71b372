"""Training one controller with one signal (regression, audio through SPSA, or both) on Lightning."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import paths, storage
from ..config import Profile
from ..errors import ConfigError, EffectError
from ..models.controller import ControllerFeatures, ControllerMLP, ControllerPredictor
from ..pairs import Examples
from ..seeding import stable_hash
from ..spsa import EffectLayer
from ..threads import threads_callback, torch_threads
from .artifacts import FORMAT_VERSION, SIGNALS, _predictor_from_blob, _update_best, artifact_name
from .scoring import score


def _lightning_module_class():
    import lightning.pytorch as pl

    class ControllerModule(pl.LightningModule):
        """Trains a :class:`ControllerMLP` by parameter regression or by audio loss via SPSA."""

        def __init__(
            self,
            model: ControllerMLP,
            mode: str,
            lr: float,
            layer: EffectLayer | None = None,
            l1_weight: float = 1.0,
            weight_decay: float = 0.0,
            loss_fft_sizes=(512, 1024, 2048),
            loss_hop_fraction: float | None = 0.25,
        ):
            super().__init__()
            if mode not in ("regression", "audio"):
                raise ConfigError(f"training mode must be 'regression' or 'audio', got {mode!r}")
            if mode == "audio" and layer is None:
                raise ConfigError("audio-loss training needs an EffectLayer")
            self.model = model
            self.mode = mode
            self.lr = float(lr)
            self.weight_decay = float(weight_decay)
            self.l1_weight = float(l1_weight)
            self.layer: Any
            object.__setattr__(self, "layer", layer)  # not a submodule: no state, holds a pool
            self.audio_loss: Any = audio_loss_fn(loss_fft_sizes, loss_hop_fraction)

        def _loss(self, batch, train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            feats, p = batch[0], batch[1]
            pred = self.model(feats)
            mae = (pred - p).abs().mean().detach()
            if self.mode == "regression":
                loss = torch.nn.functional.mse_loss(pred, p)
                return loss, {"param_mae": mae}
            x, y = batch[2], batch[3]
            if train:
                y_hat = self.layer(x, pred)
            else:
                with torch.no_grad():
                    y_hat = self.layer(x, pred.detach())
            spec = self.audio_loss(y_hat[:, None], y[:, None])
            l1 = (y_hat - y).abs().mean()
            return spec + self.l1_weight * l1, {"param_mae": mae, "mrstft_loss": spec.detach()}

        def training_step(self, batch, batch_idx):
            loss, extra = self._loss(batch, train=True)
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
            for k, v in extra.items():
                self.log(f"train_{k}", v, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch, batch_idx):
            loss, extra = self._loss(batch, train=False)
            n = batch[0].shape[0]
            # sync_dist: under DDP each process validates its own share; the logged value is their mean
            self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=n, sync_dist=True)
            for k, v in extra.items():
                self.log(f"val_{k}", v, on_epoch=True, batch_size=n, sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    return ControllerModule


def audio_loss_fn(fft_sizes: Sequence[int] = (512, 1024, 2048), hop_fraction: float | None = 0.25):
    """The study's training loss on audio: auraloss ``MultiResolutionSTFTLoss`` (spectral
    convergence + log magnitude) at ``fft_sizes`` with window = FFT and hop = ``hop_fraction`` x
    FFT. ``hop_fraction=None`` gives auraloss' defaults (FFT 1024/2048/512, hops of ~1/8.5
    window), four times the cost on a CPU for nearly the same gradient direction."""
    import auraloss

    if hop_fraction is None:
        return auraloss.freq.MultiResolutionSTFTLoss()
    if not 0 < hop_fraction <= 1:
        raise ConfigError(f"loss hop fraction must be in (0, 1], got {hop_fraction}")
    sizes = [int(f) for f in fft_sizes]
    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[max(1, int(f * hop_fraction)) for f in sizes], win_lengths=sizes
    )


def _best_weights_callback(run_dir: Path, name: str, initial_loss: float | None):
    """Lightning's ModelCheckpoint keeping the weights with the lowest ``val_loss`` as ``<name>.ckpt``.

    ``initial_loss`` (a warm start's validation loss) is the score to beat: when no epoch beats
    it no file is written and the warm start stays the best. The callback's state travels in
    the run's checkpoints, so a resumed run keeps comparing against the true best.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    cb = ModelCheckpoint(
        dirpath=run_dir,
        filename=name,
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_weights_only=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    if initial_loss is not None and math.isfinite(initial_loss):
        cb.best_model_score = torch.tensor(float(initial_loss))
    return cb


def _best_weights(path: Path) -> dict[str, torch.Tensor]:
    """The controller network's weights from a best-weights checkpoint of the Lightning module."""
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k.removeprefix("model."): v for k, v in sd.items() if k.startswith("model.")}


def _tensors(data: Examples, with_audio: bool):
    from torch.utils.data import TensorDataset

    t = [torch.from_numpy(np.ascontiguousarray(data.features)), torch.from_numpy(np.ascontiguousarray(data.p))]
    if with_audio:
        t += [torch.from_numpy(np.ascontiguousarray(data.x)), torch.from_numpy(np.ascontiguousarray(data.y))]
    return TensorDataset(*t)


def _eval_loss(module, loader) -> float:
    """Mean validation loss of ``module`` over ``loader`` (no gradient)."""
    return _eval_losses(module, loader)[0]


def _eval_losses(module, loader) -> tuple[float, float]:
    """Mean validation loss and its MR-STFT part (NaN in regression) of ``module`` over ``loader``."""
    tot, spec, n = 0.0, 0.0, 0
    module.eval()
    with torch.no_grad():
        for batch in loader:
            loss, extra = module._loss(batch, train=False)
            tot += float(loss) * batch[0].shape[0]
            spec += float(extra.get("mrstft_loss", math.nan)) * batch[0].shape[0]
            n += batch[0].shape[0]
    module.train()
    return tot / max(n, 1), spec / max(n, 1)


@dataclass
class TrainedController:
    effect_key: str
    signal: str
    predictor: ControllerPredictor
    artifact: Path
    history: list[dict[str, Any]]
    val: dict[str, float]
    wall_s: float
    reused: bool
    steps: int = 0
    spsa: dict[str, float] = field(default_factory=dict)


def _relevant_config(cfg, signal: str) -> dict[str, Any]:
    """The ControllerConfig fields that change what a run of ``signal`` trains (its identity)."""
    d = asdict(cfg)
    for k in ("signals", "ablation_effects", "n_test_per_effect", "ckpt_every_n_steps", "torch_threads"):
        d.pop(k)
    if signal == "regression":
        d = {k: v for k, v in d.items() if not k.startswith(("spsa_", "loss_")) and k != "l1_weight"}
    return d


def _new_model(in_dim: int, n_params: int, profile: Profile, seed: int) -> ControllerMLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ControllerMLP(in_dim, n_params, hidden=profile.controller.hidden, n_hidden=profile.controller.n_hidden)


def train_controller(
    profile: Profile,
    effect,
    signal: str,
    train: Examples,
    val: Examples,
    *,
    fingerprint: str,
    features: ControllerFeatures | None = None,
    warm_start: TrainedController | None = None,
    progress: bool = True,
    workers: int | None = None,
    seed: int | None = None,
) -> TrainedController:
    """Train (or reuse) the controller of one effect with one signal; writes its artifact.

    ``regression`` needs nothing else; ``both`` needs ``warm_start`` (the regression result);
    ``audio`` trains from scratch through SPSA. The artifact is reused when the identity
    (configuration, data, encoder fingerprint, seed, warm start) is unchanged.
    """
    with torch_threads(profile.controller.torch_threads):
        return _train_controller(
            profile,
            effect,
            signal,
            train,
            val,
            fingerprint=fingerprint,
            features=features,
            warm_start=warm_start,
            progress=progress,
            workers=workers,
            seed=seed,
        )


def _train_controller(
    profile: Profile,
    effect,
    signal: str,
    train: Examples,
    val: Examples,
    *,
    fingerprint: str,
    features: ControllerFeatures | None,
    warm_start: TrainedController | None,
    progress: bool,
    workers: int | None,
    seed: int | None,
) -> TrainedController:
    import lightning  # noqa: F401  (fail early with a clear import error)

    from ..training import fit, make_loader, read_log, trainer_options

    cfg = profile.controller
    key = effect.key
    if signal not in SIGNALS:
        raise ConfigError(f"unknown controller signal {signal!r}; valid: {SIGNALS}")
    if signal == "both" and warm_start is None:
        raise ConfigError("signal 'both' needs the 'regression' controller as warm start")
    if train.p.shape[1] != effect.n_params:
        raise EffectError(
            f"{effect.name}: training data has {train.p.shape[1]} parameters, the effect {effect.n_params}"
        )
    seed = profile.seed if seed is None else int(seed)
    workers = profile.effects.workers if workers is None else int(workers)
    sr = profile.data.sample_rate
    ident = {
        "v": FORMAT_VERSION,
        "effect": key,
        "effect_set": profile.effects.effect_set,
        "signal": signal,
        "controller": _relevant_config(cfg, signal),
        "train": train.identity(),
        "val": val.identity(),
        "encoder": fingerprint,
        "seed": seed,
        "sr": sr,
        "warm": warm_start.predictor.info.get("hash") if warm_start else None,
    }
    h = stable_hash(ident)
    art = paths.artifact_path(profile.name, artifact_name(key, signal))
    feats_obj = features or (warm_start.predictor.features if warm_start else None)
    if art.exists():
        blob = torch.load(art, map_location="cpu", weights_only=False)
        if blob.get("hash") == h:
            pred = _predictor_from_blob(blob, feats_obj)
            _update_best(profile, key, signal, float(blob.get("val", {}).get("mrstft", math.inf)))
            return TrainedController(
                key,
                signal,
                pred,
                art,
                blob.get("history", []),
                blob.get("val", {}),
                float(blob.get("wall_s", 0.0)),
                True,
                int(blob.get("steps", 0)),
                blob.get("spsa", {}),
            )

    t0 = time.perf_counter()
    model = _new_model(train.feature_matrix().shape[1], effect.n_params, profile, seed)
    if warm_start is not None:
        model.load_state_dict(warm_start.predictor.model.state_dict())
    else:
        model.set_standardisation(train.feature_matrix())
    mode = "regression" if signal == "regression" else "audio"
    epochs = cfg.regression_epochs if mode == "regression" else cfg.spsa_epochs
    # fine-tuning takes its own (smaller) step; SPSA from scratch its own; regression the base one
    lr = {"both": cfg.spsa_lr, "audio": cfg.spsa_audio_lr, "regression": cfg.lr}[signal]
    run_dir = paths.cache_dir(profile.name, "controller_runs", f"{key}_{signal}")
    best_name = f"best_{h}"
    best_path = run_dir / f"{best_name}.ckpt"
    bs = cfg.batch_size
    train_set = train
    if mode == "audio":
        bs = cfg.spsa_batch_size
        if cfg.spsa_n_train is not None and cfg.spsa_n_train < len(train):
            idx = np.sort(np.random.default_rng([seed, 77]).choice(len(train), cfg.spsa_n_train, replace=False))
            train_set = train.subset(idx)
    train_loader = make_loader(_tensors(train_set, mode == "audio"), bs, seed=seed, shuffle=True)
    val_loader = make_loader(_tensors(val, mode == "audio"), max(bs, 64), seed=seed, shuffle=False)
    Module = _lightning_module_class()
    spsa_stats: dict[str, float] = {}

    warm_rows: list[dict[str, Any]] = []

    def run(layer):
        module = Module(
            model,
            mode,
            lr,
            layer=layer,
            l1_weight=cfg.l1_weight,
            loss_fft_sizes=cfg.loss_fft_sizes,
            loss_hop_fraction=cfg.loss_hop_fraction,
        )
        initial_loss = None
        if mode == "audio":
            # the start of the budget curve; a warm start also competes with the fine-tuned
            # epochs for "best on validation"
            start_loss, start_spec = _eval_losses(module, val_loader)
            warm_rows.append({"epoch": -1, "step": 0, "val_loss": start_loss, "val_mrstft_loss": start_spec})
            if warm_start is not None:
                initial_loss = start_loss
        cb = _best_weights_callback(run_dir, best_name, initial_loss)
        res = fit(
            module,
            train_loader,
            val_loader,
            run_dir,
            epochs,
            seed=seed,
            progress=progress,
            config=ident,
            callbacks=[cb, threads_callback(cfg.torch_threads)],
            ckpt_every_n_steps=cfg.ckpt_every_n_steps,
            **trainer_options(profile.runtime),
        )
        return res

    if mode == "audio":
        from ..render import shared_pool

        with contextlib.nullcontext(shared_pool(effect, sr, workers=workers)) as pool:  # kept open for later calls
            layer = EffectLayer(
                effect,
                sr,
                pool=pool,
                epsilon=cfg.spsa_epsilon,
                schedule=cfg.spsa_schedule,
                n_perturbations=cfg.spsa_perturbations,
                seed=seed,
            )
            res = run(layer)
            if layer.backward_steps:
                spsa_stats = {
                    "batch_size": bs,
                    "n_perturbations": layer.n_perturbations,
                    "renders_per_example_per_step": layer.renders_per_example_per_step,
                    "backward_steps": layer.backward_steps,
                    "renders": layer.renders_forward + layer.renders_perturbation,
                    "render_seconds": layer.render_seconds,
                    "failed_renders": layer.failed_renders,
                }
    else:
        res = run(None)
    # Lightning's ModelCheckpoint saves the first epoch whatever ``best_model_score`` says (it
    # has no top-k entry yet), so the warm start is compared with the logged epochs here
    epoch_vals = [r["val_loss"] for r in read_log(run_dir) if "val_loss" in r and r.get("epoch", 0) >= 0]
    warm_wins = (
        warm_start is not None and bool(warm_rows) and (not epoch_vals or min(epoch_vals) >= warm_rows[0]["val_loss"])
    )
    if warm_start is not None and (warm_wins or not best_path.exists()):
        # no epoch beat the warm start on validation: keep it
        model.load_state_dict(warm_start.predictor.model.state_dict())
    elif best_path.exists():
        model.load_state_dict(_best_weights(best_path))
    model.eval()
    pred = ControllerPredictor(model, feats_obj, key, signal, effect.param_names)
    p_val = pred.predict_features(val.feature_matrix())
    sc = score(effect, val, p_val, sr, workers)
    val_scores = {"mrstft": float(np.nanmean(sc["mrstft"])), "param_mae": float(np.mean(sc["param_mae"]))}
    history = warm_rows + read_log(run_dir)
    wall = time.perf_counter() - t0
    blob = {
        "format": FORMAT_VERSION,
        "hash": h,
        "ident": ident,
        "effect_key": key,
        "signal": signal,
        "param_names": list(effect.param_names),
        "model_config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_blocks": list(feats_obj.blocks) if feats_obj else list(cfg.features),
        "encoder": fingerprint,
        "val": val_scores,
        "history": history,
        "wall_s": wall,
        "steps": int(res.steps),
        "spsa": spsa_stats,
    }
    storage.torch_save(blob, art)
    pred.info = {"hash": h, "val": val_scores, "encoder": fingerprint}
    _update_best(profile, key, signal, val_scores["mrstft"])
    return TrainedController(key, signal, pred, art, history, val_scores, wall, False, int(res.steps), spsa_stats)


def budget_curve(tc: TrainedController) -> list[dict[str, float]]:
    """Validation audio loss of an SPSA run against its budget, one row per validation point.

    Rows ``{step, renders, val_loss, val_mrstft}`` from the run's log (the training loss on the
    validation split after each epoch; ``step`` 0 is the warm start of ``both`` or the untrained
    start of ``audio``, when logged). ``renders`` counts the training renders up to that step:
    ``step x batch x (1 + 2 K)`` (forward plus two per perturbation). Empty for regression."""
    if tc.signal == "regression" or not tc.spsa:
        return []
    b = float(tc.spsa.get("batch_size", math.nan))
    per_ex = 1.0 + float(tc.spsa.get("renders_per_example_per_step", 2.0))
    rows = []
    for r in tc.history:
        if "val_loss" not in r:
            continue
        step = int(r.get("step", 0)) if r.get("epoch", 0) >= 0 else 0
        rows.append(
            {
                "step": step,
                "renders": step * b * per_ex,
                "val_loss": float(r["val_loss"]),
                "val_mrstft": float(r.get("val_mrstft_loss", math.nan)),
            }
        )
    return sorted(rows, key=lambda r: r["step"])


def budget_curves(results: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, float]]]]:
    """:func:`budget_curve` of every SPSA controller: ``{effect: {signal: rows}}`` for results
    with a ``controllers`` mapping (notebook 04's :class:`~dafxlib.e2e.stage.EffectResult`)."""
    return {
        key: {s: budget_curve(tc) for s, tc in r.controllers.items() if s != "regression"} for key, r in results.items()
    }


def budget_numbers(curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]) -> dict[str, float]:
    """Per effect and SPSA signal: steps, training renders, the validation loss at the start and
    at the end, and the best over the run relative to the start (< 1: SPSA improved on its start)."""
    out: dict[str, float] = {}
    for key, per in curves.items():
        for sig, rows in per.items():
            if not rows:
                continue
            v = [r["val_loss"] for r in rows]
            out[f"{key}.{sig}.steps"] = float(rows[-1]["step"])
            out[f"{key}.{sig}.renders"] = float(rows[-1]["renders"])
            out[f"{key}.{sig}.val_loss_start"] = float(v[0])
            out[f"{key}.{sig}.val_loss_end"] = float(v[-1])
            out[f"{key}.{sig}.best_over_start"] = float(min(v) / v[0]) if v[0] else math.nan
    return out


def spsa_targets(results: Mapping[str, Any]) -> dict[str, float]:
    """Issue 13's SPSA targets on test MR-STFT, counted over the effects where each signal ran:
    ``both`` at least 5% better than regression; ``audio`` better than do-nothing and at most
    15% worse than regression. Also the mean ratios to regression."""
    both, audio = [], []
    for r in results.values():
        m = {s: float(np.nanmean(d["mrstft"])) for s, d in r.test.items()}
        if "both" in m and "regression" in m:
            both.append(m["both"] / m["regression"])
        if "audio" in m and "regression" in m:
            audio.append((m["audio"] / m["regression"], m["audio"] < m["do_nothing"]))
    return {
        "n_both": len(both),
        "n_both_5pct_better": int(sum(b <= 0.95 for b in both)),
        "both_over_regression_mean": float(np.mean(both)) if both else math.nan,
        "n_audio": len(audio),
        "n_audio_beats_do_nothing": int(sum(a[1] for a in audio)),
        "n_audio_within_15pct": int(sum(a[0] <= 1.15 for a in audio)),
        "audio_over_regression_mean": float(np.mean([a[0] for a in audio])) if audio else math.nan,
    }

"""End-to-end controller training (notebook 04): one controller per effect, three signals.

Signals (``ControllerConfig.signals`` plus the ``audio`` ablation on ``ablation_effects``):

- ``regression``: mean-squared error between predicted and true normalised parameters of
  the generated pairs. Cheap: the encoder is frozen, so features of (x, y_ref) are
  computed once per dataset (and cached on disk).
- ``audio``: the study's objective, MR-STFT (auraloss ``MultiResolutionSTFTLoss``) + L1 between
  ``effect(x, p_hat)`` and the target ``y``, with gradients through the black-box effect from
  SPSA (:class:`dafxlib.spsa.EffectLayer`, two renders per example per step, in parallel).
- ``both``: the ``regression`` model as warm start, then ``audio`` fine-tuning.

Within a run the weights with the lowest validation loss are kept (for ``both`` this includes
the warm start itself, so fine-tuning can never make the validation loss worse). After a run
the controller is scored on the validation split with the reported MR-STFT
(:func:`dafxlib.metrics.mrstft`); :func:`best_signal` picks the lowest per effect.

Artifacts: ``controllers/<effect>_<signal>.pt`` (weights, feature spec, encoder fingerprint,
scores, history) and ``controllers/best_signal.json``; read them with :func:`load_controller`.
Runs (Lightning checkpoints, CSV logs) live under ``cache/controller_runs/``; a re-run with the
same configuration reuses finished artifacts and resumes interrupted runs (through
:func:`dafxlib.training.fit`; a resumed SPSA run draws fresh perturbations, so it is not
bit-identical to an uninterrupted one).

Threads: the controller is a small MLP, so training and scoring run with
``ControllerConfig.torch_threads`` torch threads (1 by default; on a busy 2-core machine two
threads made these tiny ops many times slower). The render pool's workers are separate.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from . import io, paths
from .config import Profile, get_profile
from .errors import ConfigError, EffectError, MissingArtifactError
from .models.controller import ControllerFeatures, ControllerMLP, ControllerPredictor
from .seeding import array_hash, stable_hash
from .spsa import EffectLayer
from .threads import threads_callback, torch_threads

SIGNALS = ("audio", "regression", "both")
#: tie-break order when two signals score the same on validation (simplest first)
_PREFERENCE = ("regression", "both", "audio")
MADE_BY = "04_end_to_end"
BEST_JSON = "controllers/best_signal.json"
#: bump when the artifact layout or the training procedure changes
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------
# configuration helpers
# ---------------------------------------------------------------------------------------
def _profile(profile: Profile | str) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def signals_for(profile: Profile, effect_key: str) -> list[str]:
    """Signals trained for one effect, in training order (``regression`` before ``both``)."""
    cfg = profile.controller
    bad = [s for s in cfg.signals if s not in SIGNALS]
    if bad:
        raise ConfigError(f"controller.signals has unknown signal(s) {bad}; valid: {SIGNALS}")
    wanted = set(cfg.signals)
    abl = cfg.ablation_effects
    if abl is None or effect_key.lower() in {a.lower() for a in abl}:
        wanted.add("audio")
    return [s for s in ("regression", "both", "audio") if s in wanted]


def artifact_name(effect_key: str, signal: str) -> str:
    if signal not in SIGNALS:
        raise ConfigError(f"unknown controller signal {signal!r}; valid: {SIGNALS}")
    return f"controllers/{effect_key.lower()}_{signal}.pt"


def encoder_fingerprint(encoder: Any, sample_rate: int, n_samples: int) -> str:
    """Identity of a frozen encoder: hash of its weights when it exposes a ``state_dict``
    (itself or its ``model``), else of its embedding of a fixed probe (rounded)."""
    if encoder is None:
        return "none"
    for obj in (encoder, getattr(encoder, "model", None), getattr(encoder, "vae", None)):
        if obj is not None and hasattr(obj, "state_dict"):
            parts = [item for k, v in sorted(obj.state_dict().items()) for item in (k, v.detach().cpu().numpy())]
            return "w" + array_hash(*parts, n=11)
    rng = np.random.default_rng(12345)
    t = np.arange(n_samples) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n_samples)).astype(np.float32)[None]
    y = np.tanh(3 * x).astype(np.float32)
    emb = np.asarray(encoder.embed(x, y), dtype=np.float64)
    return "p" + array_hash(np.round(emb, 3), n=11)


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
@dataclass
class ControllerData:
    """Examples of one effect and split, with their controller features."""

    effect_key: str
    split: str
    x: np.ndarray
    y: np.ndarray
    y_ref: np.ndarray
    p: np.ndarray
    features: np.ndarray
    clip_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx) -> "ControllerData":
        idx = np.asarray(idx)
        return ControllerData(self.effect_key, self.split, self.x[idx], self.y[idx], self.y_ref[idx], self.p[idx],
                              self.features[idx], [self.clip_ids[i] for i in idx] if self.clip_ids else [])

    def identity(self) -> str:
        f32 = np.float32
        return array_hash(self.p.astype(f32), self.x[:, ::101].astype(f32), self.features.astype(f32))


def make_features(profile: Profile, encoder: Any, level_fn: Any = None) -> ControllerFeatures:
    return ControllerFeatures(encoder, profile.data.sample_rate, blocks=profile.controller.features,
                              level_fn=level_fn)


def load_data(profile: Profile, effect_key: str, split: str, n: int, features: ControllerFeatures,
              *, fingerprint: str, tag: str = "controller", corpus: Any = None) -> ControllerData:
    """Examples from :func:`dafxlib.pairs.cached_examples` plus cached controller features."""
    from .pairs import cached_examples

    ex = cached_examples(profile, effect_key, split, n, tag, corpus=corpus)
    p = np.asarray(ex.p, dtype=np.float32)
    clip_ids = [str(c) for c in getattr(ex, "clip_ids", [])]
    ex_id = array_hash(p, "|".join(clip_ids))
    key = stable_hash({"blocks": features.blocks, "encoder": fingerprint, "examples": ex_id,
                 "sr": features.sample_rate, "v": FORMAT_VERSION})
    cache = paths.cache_dir(profile.name, "controller_features") / f"{effect_key}_{split}_{key}.npz"
    feats = None
    if cache.exists():
        try:
            feats = np.load(cache)["features"]
        except (OSError, ValueError, KeyError):
            feats = None
    if feats is None or feats.shape[0] != p.shape[0]:
        feats = features(ex.x, ex.y_ref)
        io.save_npz(cache, features=feats)
    return ControllerData(effect_key=effect_key, split=split, x=np.asarray(ex.x, np.float32),
                          y=np.asarray(ex.y, np.float32), y_ref=np.asarray(ex.y_ref, np.float32), p=p,
                          features=np.asarray(feats, np.float32), clip_ids=clip_ids)


# ---------------------------------------------------------------------------------------
# the Lightning module
# ---------------------------------------------------------------------------------------
def _lightning_module_class():
    import lightning.pytorch as pl

    class ControllerModule(pl.LightningModule):
        """Trains a :class:`ControllerMLP` by parameter regression or by audio loss via SPSA."""

        def __init__(self, model: ControllerMLP, mode: str, lr: float, layer: EffectLayer | None = None,
                     l1_weight: float = 1.0, weight_decay: float = 0.0, loss_fft_sizes=(512, 1024, 2048),
                     loss_hop_fraction: float | None = 0.25):
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
            object.__setattr__(self, "layer", layer)  # not a submodule: no state, holds a pool
            self.audio_loss = audio_loss_fn(loss_fft_sizes, loss_hop_fraction)

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
            self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=n)
            for k, v in extra.items():
                self.log(f"val_{k}", v, on_epoch=True, batch_size=n)

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
    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[max(1, int(f * hop_fraction)) for f in sizes],
                                                 win_lengths=sizes)


def _best_weights_callback(run_dir: Path, name: str, initial_loss: float | None):
    """Lightning's ModelCheckpoint keeping the weights with the lowest ``val_loss`` as ``<name>.ckpt``.

    ``initial_loss`` (a warm start's validation loss) is the score to beat: when no epoch beats
    it no file is written and the warm start stays the best. The callback's state travels in
    the run's checkpoints, so a resumed run keeps comparing against the true best.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    cb = ModelCheckpoint(dirpath=run_dir, filename=name, monitor="val_loss", mode="min", save_top_k=1,
                         save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)
    if initial_loss is not None and math.isfinite(initial_loss):
        cb.best_model_score = torch.tensor(float(initial_loss))
    return cb


def _best_weights(path: Path) -> dict[str, torch.Tensor]:
    """The controller network's weights from a best-weights checkpoint of the Lightning module."""
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k.removeprefix("model."): v for k, v in sd.items() if k.startswith("model.")}


def _tensors(data: ControllerData, with_audio: bool):
    from torch.utils.data import TensorDataset

    t = [torch.from_numpy(np.ascontiguousarray(data.features)), torch.from_numpy(np.ascontiguousarray(data.p))]
    if with_audio:
        t += [torch.from_numpy(np.ascontiguousarray(data.x)), torch.from_numpy(np.ascontiguousarray(data.y))]
    return TensorDataset(*t)


def _eval_loss(module, loader) -> float:
    """Mean validation loss of ``module`` over ``loader`` (no gradient)."""
    tot, n = 0.0, 0
    module.eval()
    with torch.no_grad():
        for batch in loader:
            loss, _ = module._loss(batch, train=False)
            tot += float(loss) * batch[0].shape[0]
            n += batch[0].shape[0]
    module.train()
    return tot / max(n, 1)


# ---------------------------------------------------------------------------------------
# training one controller
# ---------------------------------------------------------------------------------------
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
        return ControllerMLP(in_dim, n_params, hidden=profile.controller.hidden,
                             n_hidden=profile.controller.n_hidden)


def _render(effect, x: np.ndarray, p: np.ndarray, sample_rate: int, workers: int) -> np.ndarray:
    from .render import render_batch

    return np.asarray(render_batch(effect, x, p, sample_rate, workers=workers, reuse=True).audio, dtype=np.float32)


def score(effect, data: ControllerData, p_hat: np.ndarray, sample_rate: int, workers: int = 2,
          y_hat: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-example reported MR-STFT of effect(x, p_hat) against y, and parameter MAE."""
    from .metrics import compute_metrics, param_mae

    if y_hat is None:
        y_hat = _render(effect, data.x, p_hat, sample_rate, workers)
    vals, _ = compute_metrics(y_hat, data.y, sample_rate, metrics=["mrstft"])
    out = {"mrstft": vals["mrstft"]}
    if p_hat is not None:
        out["param_mae"] = param_mae(p_hat, data.p)
    return out


def train_controller(profile: Profile, effect, signal: str, train: ControllerData, val: ControllerData, *,
                     fingerprint: str, features: ControllerFeatures | None = None,
                     warm_start: TrainedController | None = None, progress: bool = True,
                     workers: int | None = None, seed: int | None = None) -> TrainedController:
    """Train (or reuse) the controller of one effect with one signal; writes its artifact.

    ``regression`` needs nothing else; ``both`` needs ``warm_start`` (the regression result);
    ``audio`` trains from scratch through SPSA. The artifact is reused when the identity
    (configuration, data, encoder fingerprint, seed, warm start) is unchanged.
    """
    with torch_threads(profile.controller.torch_threads):
        return _train_controller(profile, effect, signal, train, val, fingerprint=fingerprint, features=features,
                                 warm_start=warm_start, progress=progress, workers=workers, seed=seed)


def _train_controller(profile: Profile, effect, signal: str, train: ControllerData, val: ControllerData, *,
                      fingerprint: str, features: ControllerFeatures | None, warm_start: TrainedController | None,
                      progress: bool, workers: int | None, seed: int | None) -> TrainedController:
    import lightning  # noqa: F401  (fail early with a clear import error)

    from .training import fit, make_loader, read_log, trainer_options

    cfg = profile.controller
    key = effect.key
    if signal not in SIGNALS:
        raise ConfigError(f"unknown controller signal {signal!r}; valid: {SIGNALS}")
    if signal == "both" and warm_start is None:
        raise ConfigError("signal 'both' needs the 'regression' controller as warm start")
    if train.p.shape[1] != effect.n_params:
        raise EffectError(f"{effect.name}: training data has {train.p.shape[1]} parameters, "
                          f"the effect {effect.n_params}")
    seed = profile.seed if seed is None else int(seed)
    workers = profile.effects.workers if workers is None else int(workers)
    sr = profile.data.sample_rate
    ident = {"v": FORMAT_VERSION, "effect": key, "effect_set": profile.effects.effect_set, "signal": signal,
             "controller": _relevant_config(cfg, signal), "train": train.identity(), "val": val.identity(),
             "encoder": fingerprint, "seed": seed, "sr": sr,
             "warm": warm_start.predictor.info.get("hash") if warm_start else None}
    h = stable_hash(ident)
    art = paths.artifact_path(profile.name, artifact_name(key, signal))
    feats_obj = features or (warm_start.predictor.features if warm_start else None)
    if art.exists():
        blob = torch.load(art, map_location="cpu", weights_only=False)
        if blob.get("hash") == h:
            pred = _predictor_from_blob(blob, feats_obj)
            _update_best(profile, key, signal, float(blob.get("val", {}).get("mrstft", math.inf)))
            return TrainedController(key, signal, pred, art, blob.get("history", []), blob.get("val", {}),
                                     float(blob.get("wall_s", 0.0)), True, int(blob.get("steps", 0)),
                                     blob.get("spsa", {}))

    t0 = time.perf_counter()
    model = _new_model(train.features.shape[1], effect.n_params, profile, seed)
    if warm_start is not None:
        model.load_state_dict(warm_start.predictor.model.state_dict())
    else:
        model.set_standardisation(train.features)
    mode = "regression" if signal == "regression" else "audio"
    epochs = cfg.regression_epochs if mode == "regression" else cfg.spsa_epochs
    lr = cfg.spsa_lr if signal == "both" else cfg.lr  # fine-tuning takes the smaller step
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
        module = Module(model, mode, lr, layer=layer, l1_weight=cfg.l1_weight, loss_fft_sizes=cfg.loss_fft_sizes,
                        loss_hop_fraction=cfg.loss_hop_fraction)
        initial_loss = None
        if warm_start is not None:
            # the warm start competes with the fine-tuned epochs for "best on validation"
            initial_loss = _eval_loss(module, val_loader)
            warm_rows.append({"epoch": -1, "step": 0, "val_loss": initial_loss})
        cb = _best_weights_callback(run_dir, best_name, initial_loss)
        res = fit(module, train_loader, val_loader, run_dir, epochs, seed=seed, progress=progress,
                  config=ident, callbacks=[cb, threads_callback(cfg.torch_threads)],
                  ckpt_every_n_steps=cfg.ckpt_every_n_steps, **trainer_options(profile.runtime))
        return res

    if mode == "audio":
        from .render import shared_pool

        with contextlib.nullcontext(shared_pool(effect, sr, workers=workers)) as pool:  # kept open for later calls
            layer = EffectLayer(effect, sr, pool=pool, epsilon=cfg.spsa_epsilon, schedule=cfg.spsa_schedule,
                                seed=seed)
            res = run(layer)
            if layer.backward_steps:
                spsa_stats = {"renders_per_example_per_step": layer.renders_per_example_per_step,
                              "backward_steps": layer.backward_steps,
                              "renders": layer.renders_forward + layer.renders_perturbation,
                              "render_seconds": layer.render_seconds, "failed_renders": layer.failed_renders}
    else:
        res = run(None)
    if best_path.exists():
        model.load_state_dict(_best_weights(best_path))
    elif warm_start is not None:  # no epoch beat the warm start on validation: keep it
        model.load_state_dict(warm_start.predictor.model.state_dict())
    model.eval()
    pred = ControllerPredictor(model, feats_obj, key, signal, effect.param_names)
    p_val = pred.predict_features(val.features)
    sc = score(effect, val, p_val, sr, workers)
    val_scores = {"mrstft": float(np.nanmean(sc["mrstft"])), "param_mae": float(np.mean(sc["param_mae"]))}
    history = warm_rows + read_log(run_dir)
    wall = time.perf_counter() - t0
    blob = {"format": FORMAT_VERSION, "hash": h, "ident": ident, "effect_key": key, "signal": signal,
            "param_names": list(effect.param_names), "model_config": model.config(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "feature_blocks": list(feats_obj.blocks) if feats_obj else list(cfg.features),
            "encoder": fingerprint, "val": val_scores, "history": history, "wall_s": wall,
            "steps": int(res.steps), "spsa": spsa_stats}
    io.torch_save(blob, art)
    pred.info = {"hash": h, "val": val_scores, "encoder": fingerprint}
    _update_best(profile, key, signal, val_scores["mrstft"])
    return TrainedController(key, signal, pred, art, history, val_scores, wall, False, int(res.steps), spsa_stats)


def _update_best(profile: Profile, effect_key: str, signal: str, val_mrstft: float) -> None:
    def upd(d):
        d = dict(d)
        e = dict(d.get(effect_key, {}))
        scores = dict(e.get("val_mrstft", {}))
        scores[signal] = val_mrstft
        e["val_mrstft"] = scores
        e["signal"] = min(scores, key=lambda s: (scores[s], _PREFERENCE.index(s)))
        d[effect_key] = e
        return d

    io.update_json(paths.artifact_path(profile.name, BEST_JSON), upd)


def _write_best(profile: Profile, effect_key: str, scores: Mapping[str, float]) -> None:
    """Replace the effect's entry with exactly these signals' validation MR-STFT."""
    def upd(d):
        d = dict(d)
        sc = {k: float(v) for k, v in scores.items()}
        d[effect_key] = {"val_mrstft": sc, "signal": min(sc, key=lambda s: (sc[s], _PREFERENCE.index(s)))}
        return d

    io.update_json(paths.artifact_path(profile.name, BEST_JSON), upd)


def _predictor_from_blob(blob: Mapping[str, Any], features: ControllerFeatures | None) -> ControllerPredictor:
    model = ControllerMLP(**blob["model_config"])
    model.load_state_dict(blob["state_dict"])
    pred = ControllerPredictor(model, features, blob["effect_key"], blob["signal"], blob.get("param_names", ()),
                               info={"hash": blob.get("hash"), "val": blob.get("val", {}),
                                     "encoder": blob.get("encoder")})
    return pred


# ---------------------------------------------------------------------------------------
# loading what notebook 04 wrote
# ---------------------------------------------------------------------------------------
def load_controller(profile: Profile | str, effect_key: str, signal: str | None = None, *,
                    encoder: Any = None, level_fn: Any = None) -> ControllerPredictor:
    """The controller notebook 04 trained for ``effect_key`` with ``signal``
    (``None``: :func:`best_signal`). ``encoder`` defaults to ``load_selected_encoder(profile)``.

    Raises :class:`MissingArtifactError` when the artifact is missing or was trained on a
    different encoder than the one notebook 03 now selects (re-run notebook 04).
    """
    profile = _profile(profile)
    key = effect_key.lower()
    signal = signal or best_signal(profile, key)
    path = paths.require_artifact(profile.name, artifact_name(key, signal), made_by=MADE_BY)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    blocks = tuple(blob.get("feature_blocks", profile.controller.features))
    if encoder is None and "embedding" in blocks:
        from .models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    fp = encoder_fingerprint(encoder, profile.data.sample_rate, profile.half_samples) if encoder is not None else "none"
    stored = blob.get("encoder")
    if "embedding" in blocks and stored and stored != fp:
        msg = (f"controller {path.name} was trained on encoder {stored}, but the selected encoder is {fp}; "
               f"re-run notebook {MADE_BY} (./run_all.sh --profile {profile.name} --only 04)")
        if stored.startswith("w"):
            raise MissingArtifactError(msg)
        warnings.warn(msg)
    features = ControllerFeatures(encoder, profile.data.sample_rate, blocks=blocks, level_fn=level_fn)
    return _predictor_from_blob(blob, features)


def best_signal(profile: Profile | str, effect_key: str) -> str:
    """The signal with the lowest validation MR-STFT for ``effect_key`` (from notebook 04)."""
    profile = _profile(profile)
    path = paths.require_artifact(profile.name, BEST_JSON, made_by=MADE_BY)
    d = io.read_json(path, {})
    key = effect_key.lower()
    if key not in d:
        raise MissingArtifactError(f"no controller was trained for effect {key!r} in profile {profile.name!r} "
                                   f"(have {sorted(d)}); run notebook {MADE_BY} first")
    return d[key]["signal"]


# ---------------------------------------------------------------------------------------
# one effect, all its signals, and the held-out test
# ---------------------------------------------------------------------------------------
@dataclass
class EffectResult:
    """Everything notebook 04 shows for one effect."""

    effect_key: str
    seen: bool
    param_names: list[str]
    controllers: dict[str, TrainedController]
    #: test split: per method ("<signal>", "do_nothing", "random", "mean_params") per metric arrays
    test: dict[str, dict[str, np.ndarray]]
    #: test predictions per signal (n, P) and the true parameters
    p_hat: dict[str, np.ndarray]
    p_true: np.ndarray
    #: a few worked test examples: x, y_ref, y and y_hat per signal
    examples: dict[str, np.ndarray]
    timings: dict[str, float]

    def summary(self) -> dict[str, float]:
        out = {}
        for m, d in self.test.items():
            for k, v in d.items():
                out[f"{m}.{k}"] = float(np.nanmean(v))
        return out


def evaluate_test(profile: Profile, effect, test: ControllerData, predictors: Mapping[str, ControllerPredictor],
                  *, seed: int, workers: int, n_examples: int = 2):
    """Score the controllers and the baselines on held-out clips (file-disjoint test split)."""
    sr = profile.data.sample_rate
    rng = np.random.default_rng([seed, 404, sum(map(ord, effect.key))])
    out: dict[str, dict[str, np.ndarray]] = {}
    p_hat: dict[str, np.ndarray] = {}
    y_hats: dict[str, np.ndarray] = {}
    for sig, pred in predictors.items():
        p = pred.predict_features(test.features)
        y_hat = _render(effect, test.x, p, sr, workers)
        out[sig] = score(effect, test, p, sr, workers, y_hat=y_hat)
        p_hat[sig] = p
        y_hats[sig] = y_hat[:n_examples]
    out["do_nothing"] = score(effect, test, None, sr, y_hat=test.x)
    p_rand = rng.uniform(0, 1, size=test.p.shape)
    out["random"] = score(effect, test, p_rand, sr, workers)
    p_mean = np.full(test.p.shape, 0.5)
    out["mean_params"] = score(effect, test, p_mean, sr, workers)
    ex = {"x": test.x[:n_examples], "y_ref": test.y_ref[:n_examples], "y": test.y[:n_examples],
          "p_true": test.p[:n_examples]}
    for sig, y in y_hats.items():
        ex[f"y_hat_{sig}"] = y
        ex[f"p_hat_{sig}"] = p_hat[sig][:n_examples]
    return out, p_hat, ex


def run_effect(profile: Profile, effect_key: str, features: ControllerFeatures, fingerprint: str, *,
               progress: bool = True, workers: int | None = None, corpus: Any = None, log=print) -> EffectResult:
    """Data, every signal's controller, validation choice and the held-out test for one effect."""
    from .effects import SEEN, get_effect

    cfg = profile.controller
    workers = profile.effects.workers if workers is None else int(workers)
    effect = get_effect(effect_key, profile.effects.effect_set)
    key = effect.key
    timings = {}
    t0 = time.perf_counter()
    train = load_data(profile, key, "train", cfg.n_train_per_effect, features, fingerprint=fingerprint,
                      corpus=corpus)
    val = load_data(profile, key, "val", cfg.n_val_per_effect, features, fingerprint=fingerprint,
                      corpus=corpus)
    test = load_data(profile, key, "test", cfg.n_test_per_effect, features, fingerprint=fingerprint,
                      corpus=corpus)
    timings["data_s"] = time.perf_counter() - t0
    trained: dict[str, TrainedController] = {}
    for sig in signals_for(profile, key):
        t1 = time.perf_counter()
        tc = train_controller(profile, effect, sig, train, val, fingerprint=fingerprint, features=features,
                              warm_start=trained.get("regression") if sig == "both" else None,
                              progress=progress, workers=workers)
        trained[sig] = tc
        timings[f"{sig}_s"] = time.perf_counter() - t1
        log(f"  {key:>9s} {sig:<10s} val MR-STFT {tc.val['mrstft']:.3f}  param MAE {tc.val['param_mae']:.3f}"
            f"  ({'reused' if tc.reused else f'{tc.wall_s:.1f} s'})")
    _write_best(profile, key, {s: t.val["mrstft"] for s, t in trained.items()})
    t2 = time.perf_counter()
    test_scores, p_hat, ex = evaluate_test(profile, effect, test, {s: t.predictor for s, t in trained.items()},
                                           seed=profile.seed, workers=workers)
    timings["test_s"] = time.perf_counter() - t2
    return EffectResult(effect_key=key, seen=key in SEEN, param_names=list(effect.param_names),
                        controllers=trained, test=test_scores, p_hat=p_hat, p_true=test.p, examples=ex,
                        timings=timings)


def run_end_to_end(profile: Profile | str, encoder: Any = None, effects: Sequence[str] | None = None, *,
                   progress: bool = False, level_fn: Any = None, log=print) -> dict[str, EffectResult]:
    """Notebook 04's pipeline for every effect (default: all nine); returns per-effect results."""
    profile = _profile(profile)
    with torch_threads(profile.controller.torch_threads):
        return _run_end_to_end(profile, encoder, effects, progress=progress, level_fn=level_fn, log=log)


def _run_end_to_end(profile: Profile, encoder: Any, effects: Sequence[str] | None, *, progress: bool,
                    level_fn: Any, log) -> dict[str, EffectResult]:
    from .effects import ALL

    if encoder is None and "embedding" in profile.controller.features:
        from .models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    features = make_features(profile, encoder, level_fn)
    fp = encoder_fingerprint(encoder, profile.data.sample_rate, profile.half_samples)
    from .corpus import build_corpus

    corpus = build_corpus(profile)
    results = {}
    for key in effects or ALL:
        t = time.perf_counter()
        results[key] = run_effect(profile, key, features, fp, progress=progress, corpus=corpus, log=log)
        log(f"{key}: done in {time.perf_counter() - t:.1f} s")
    return results


def chosen_signal(result: "EffectResult") -> str:
    """The signal with the lowest validation MR-STFT (ties: regression, both, audio)."""
    c = result.controllers
    return min(c, key=lambda s: (c[s].val["mrstft"], _PREFERENCE.index(s)))


def results_numbers(results: Mapping[str, EffectResult]) -> dict[str, float]:
    """Flat ``<effect>.<method>.<metric>`` means for :func:`dafxlib.report.record_numbers`."""
    out = {}
    for key, r in results.items():
        for method, d in r.test.items():
            for metric, v in d.items():
                out[f"{key}.{method}.{metric}"] = float(np.nanmean(v))
    return out


def beats_baselines(results: Mapping[str, EffectResult], signal: str | None = None) -> dict[str, dict[str, bool]]:
    """Per effect: does the chosen signal's controller beat do-nothing and random on test MR-STFT,
    and the constant-0.5 guess on parameter MAE? ``signal=None`` uses the validation choice."""
    out = {}
    for key, r in results.items():
        sig = signal or chosen_signal(r)
        if sig not in r.test:
            continue
        m = {k: float(np.nanmean(v)) for k, v in r.test[sig].items()}
        out[key] = {"signal": sig,
                    "beats_do_nothing": m["mrstft"] < float(np.nanmean(r.test["do_nothing"]["mrstft"])),
                    "beats_random": m["mrstft"] < float(np.nanmean(r.test["random"]["mrstft"])),
                    "beats_mean_params_mae": m["param_mae"] < float(np.nanmean(r.test["mean_params"]["param_mae"]))}
    return out


# ---------------------------------------------------------------------------------------
# SPSA timing: serial vs parallel renders
# ---------------------------------------------------------------------------------------
def spsa_benchmark(profile: Profile, effect_key: str = "overdrive", *, batch_size: int | None = None,
                   steps: int = 3, workers: Iterable[int] = (1, 2), seed: int | None = None) -> dict[str, Any]:
    """Time full SPSA training steps (forward render, loss, 2B perturbation renders, update)
    with render pools of 1 and 2 workers on random clips. Returns per-worker timings and the
    counted renders per example per step."""
    with torch_threads(profile.controller.torch_threads):
        return _spsa_benchmark(profile, effect_key, batch_size=batch_size, steps=steps, workers=workers, seed=seed)


def _spsa_benchmark(profile: Profile, effect_key: str, *, batch_size: int | None, steps: int,
                    workers: Iterable[int], seed: int | None) -> dict[str, Any]:
    from .effects import get_effect
    from .render import RenderPool

    seed = profile.seed if seed is None else int(seed)
    effect = get_effect(effect_key, profile.effects.effect_set)
    sr, n = profile.data.sample_rate, profile.half_samples
    b = batch_size or profile.controller.spsa_batch_size
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 800, (b, 1)) * t) * rng.uniform(0.3, 1, (b, 1))
         + 0.02 * rng.standard_normal((b, n))).astype(np.float32)
    y = np.stack([effect.process(a, sr, rng.uniform(0, 1, effect.n_params)) for a in x]).astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = audio_loss_fn(profile.controller.loss_fft_sizes, profile.controller.loss_hop_fraction)
    out: dict[str, Any] = {"effect": effect.key, "batch_size": b, "steps": steps, "per_workers": {}}
    for w in workers:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            logits = torch.zeros(b, effect.n_params, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=1e-2)
        with RenderPool(effect, sr, workers=w) as pool:
            layer = EffectLayer(effect, sr, pool=pool, epsilon=profile.controller.spsa_epsilon, seed=seed)
            times = []
            for i in range(steps + 1):  # the first step warms the pool up and is not timed
                t0 = time.perf_counter()
                y_hat = layer(xt, torch.sigmoid(logits))
                loss = loss_fn(y_hat[:, None], yt[:, None]) + (y_hat - yt).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i == 0:
                    layer.reset_counters()
                else:
                    times.append(time.perf_counter() - t0)
            step_s = float(np.mean(times))
            renders = layer.renders_forward + layer.renders_perturbation
            out["per_workers"][int(w)] = {
                "step_seconds": step_s, "render_seconds_per_step": layer.render_seconds / steps,
                "renders_per_step": renders / steps, "renders_per_second": renders / layer.render_seconds,
                "renders_per_example_per_step": layer.renders_per_example_per_step,
                "forward_renders_per_example_per_step": layer.renders_forward / (steps * b)}
    ws = sorted(out["per_workers"])
    first, last = out["per_workers"][ws[0]], out["per_workers"][ws[-1]]
    out["parallel_speedup"] = first["step_seconds"] / last["step_seconds"]
    out["render_speedup"] = first["render_seconds_per_step"] / last["render_seconds_per_step"]
    out["renders_per_example_per_step"] = last["renders_per_example_per_step"]
    out["forward_renders_per_example_per_step"] = last["forward_renders_per_example_per_step"]
    out["step_seconds"] = last["step_seconds"]
    out["renders_per_second"] = last["renders_per_second"]
    return out

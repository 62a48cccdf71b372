"""Notebooks 02 and 03 in library form: VAE data, training runs, evaluation, the sweep.

- :func:`load_vae_data`: cached examples of the four seen effects (train / val splits) and
  their spectrogram datasets.
- :func:`vae_config` / :func:`config_name` / :func:`train_vae`: one VAE run per
  configuration under ``build/<profile>/runs/vae/<name>_<hash>`` via
  :func:`dafxlib.training.fit` (so a finished run is reused: notebook 03 reuses notebook
  02's run when the configuration matches).
- :func:`load_probe_data` / :func:`evaluate_run`: recon, KL, active units, probes
  (seen and unseen effects), mutual information (definitions in :mod:`dafxlib.analysis`).
- :func:`sweep_configs`, :func:`select_config`, :data:`SELECTION_RULE`,
  :func:`save_selected`: notebook 03's sweep and the ``selected_model.json`` artifact.
- Helpers for figures: :func:`umap_2d`, :func:`interpolate`, :func:`volume_check`,
  :func:`param_sweep_latents`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import analysis, io, paths
from . import progress as live
from .errors import ConfigError, DatasetError
from .pairs import Examples, PairSpecDataset, cached_examples
from .seeding import derive_seed
from .spectrogram import NormStats, Spectrogrammer

__all__ = ["VAEData", "ProbeData", "VAERun", "load_vae_data", "load_probe_data", "vae_config",
           "config_name", "train_vae", "embed_examples", "evaluate_run", "sweep_configs",
           "select_config", "SELECTION_RULE", "save_selected", "run_sweep", "SweepResult", "umap_2d", "interpolate",
           "volume_check", "param_sweep_latents", "render"]

SELECTION_RULE = (
    "Among configurations whose validation reconstruction error is within {tol:.0%} of the "
    "best one, pick the highest seen-effect probe accuracy (logistic regression, held-out clips); "
    "ties (within 0.5 percentage points) go to more active latent units, then to lower "
    "reconstruction error.")


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
@dataclass
class VAEData:
    profile: Any
    spectrogrammer: Spectrogrammer
    train: dict[str, Examples]
    val: dict[str, Examples]
    train_ds: PairSpecDataset
    val_ds: PairSpecDataset

    @property
    def effects(self) -> list[str]:
        return list(self.train)

    def summary(self) -> dict[str, int]:
        out = {"n_train": len(self.train_ds), "n_val": len(self.val_ds)}
        out["n_failed"] = int(sum(e.n_failed for e in [*self.train.values(), *self.val.values()]))
        return out


def _corpus(profile, corpus=None):
    if corpus is not None:
        return corpus
    from .corpus import build_corpus

    return build_corpus(profile)


def _seen() -> tuple[str, ...]:
    from .effects import SEEN

    return SEEN


def _unseen() -> tuple[str, ...]:
    from .effects import UNSEEN

    return UNSEEN


def load_vae_data(profile, *, corpus=None, effects: Sequence[str] | None = None) -> VAEData:
    """Seen-effect examples (train/val splits, rendered once and cached) and their datasets."""
    corpus = _corpus(profile, corpus)
    keys = tuple(effects or _seen())
    v = profile.vae
    train = {k: cached_examples(profile, k, "train", v.n_train_per_effect, "vae", corpus=corpus) for k in keys}
    val = {k: cached_examples(profile, k, "val", v.n_val_per_effect, "vae", corpus=corpus) for k in keys}
    sp = Spectrogrammer(profile.spec, profile.data.sample_rate, profile.half_samples)
    return VAEData(profile, sp, train, val, PairSpecDataset(list(train.values()), sp),
                   PairSpecDataset(list(val.values()), sp))


@dataclass
class ProbeData:
    """Examples for probes and MI: seen effects on held-out clips, unseen on train/test clips."""

    seen_test: dict[str, Examples]
    unseen_train: dict[str, Examples] = field(default_factory=dict)
    unseen_test: dict[str, Examples] = field(default_factory=dict)


def load_probe_data(profile, *, corpus=None, unseen: bool = True) -> ProbeData:
    corpus = _corpus(profile, corpus)
    n = profile.sweep.n_probe_per_effect
    seen = {k: cached_examples(profile, k, "test", n, "probe", corpus=corpus) for k in _seen()}
    ut, us = {}, {}
    if unseen:
        ut = {k: cached_examples(profile, k, "train", n, "probe", corpus=corpus) for k in _unseen()}
        us = {k: cached_examples(profile, k, "test", n, "probe", corpus=corpus) for k in _unseen()}
    return ProbeData(seen, ut, us)


# ---------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------
def vae_config(profile, **changes: Any) -> dict[str, Any]:
    """The VAE training configuration of a profile (``profile.vae``) with ``changes`` applied."""
    v = profile.vae
    cfg = {"mode": v.mode, "latent_dim": v.latent_dim, "base_channels": v.base_channels,
           "beta": v.beta, "beta_schedule": v.beta_schedule, "warmup_epochs": v.warmup_epochs,
           "cycle_epochs": v.cycle_epochs, "reduction": v.reduction, "lr": v.lr,
           "epochs": v.epochs, "batch_size": v.batch_size, "encoder_head": v.encoder_head,
           "decoder_condition": v.decoder_condition, "lr_schedule": v.lr_schedule}
    unknown = sorted(set(changes) - set(cfg))
    if unknown:
        raise ConfigError(f"unknown VAE config key(s) {unknown}; valid: {sorted(cfg)}")
    cfg.update(changes)
    return cfg


def _fmt(x: float) -> str:
    s = f"{x:g}".replace("-", "m").replace("+", "").replace(".", "p")
    return s


def config_name(cfg: Mapping[str, Any]) -> str:
    """Short key-safe name, e.g. ``joint_b0p05_z16`` (used in number keys and run folders)."""
    return f"{cfg['mode']}_b{_fmt(cfg['beta'])}_z{cfg['latent_dim']}"


@dataclass
class VAERun:
    name: str
    config: dict[str, Any]
    module: Any
    encoder: Any
    fit: Any

    def history(self):
        return self.fit.history_frame()


def train_vae(profile, data: VAEData, cfg: Mapping[str, Any] | None = None, *, progress: bool = True,
              accelerator: str | None = None) -> VAERun:
    """Train (or reuse) one VAE configuration on ``data``; returns the run with its encoder."""
    from .models.encoder import AudioEncoder
    from .models.vae import VAEModule
    from .training import fit, make_loader, resolve_device, trainer_options

    cfg = dict(cfg or vae_config(profile))
    name = config_name(cfg)
    module = VAEModule(shape=data.spectrogrammer.shape, latent_dim=cfg["latent_dim"],
                       base_channels=cfg["base_channels"], mode=cfg["mode"], beta=cfg["beta"],
                       beta_schedule=cfg["beta_schedule"], warmup_epochs=cfg["warmup_epochs"],
                       cycle_epochs=cfg["cycle_epochs"], reduction=cfg["reduction"], lr=cfg["lr"],
                       init_seed=derive_seed(profile.seed, "vae-init", name),
                       head=cfg["encoder_head"], condition=cfg["decoder_condition"],
                       lr_schedule=cfg["lr_schedule"])
    ident = {"cfg": cfg, "spec": profile.to_dict()["spec"], "data": profile.to_dict()["data"],
             "effect_set": profile.effects.effect_set, "effects": data.effects,
             "n_train": len(data.train_ds), "n_val": len(data.val_ds), "seed": profile.seed}
    from .training import config_hash

    run_dir = paths.build_dir(profile.name) / "runs" / "vae" / f"{name}_{config_hash(ident)}"
    train_loader = make_loader(data.train_ds, cfg["batch_size"], seed=profile.seed, drop_last=False)
    val_loader = make_loader(data.val_ds, 64, seed=profile.seed, shuffle=False)
    res = fit(module, train_loader, val_loader, run_dir, cfg["epochs"], seed=profile.seed,
              ckpt_every_n_steps=profile.vae.ckpt_every_n_steps, progress=progress,
              config=ident, **trainer_options(profile.runtime, accelerator))
    module.cpu().eval()
    enc = AudioEncoder.from_module(module, data.spectrogrammer, name=name, info={"config": cfg},
                                   device=resolve_device(profile.runtime.device))
    return VAERun(name, cfg, module, enc, res)


# ---------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------
def embed_examples(encoder, examples: Mapping[str, Examples], source: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Mean latents of (x, y) (or (x, y_ref)) for several effects -> (Z, effect labels)."""
    zs, labels = [], []
    for k, ex in examples.items():
        zs.append(encoder.embed(ex.x, getattr(ex, source)))
        labels += [k] * len(ex)
    if not zs:
        raise DatasetError("embed_examples: no examples")
    return np.concatenate(zs), np.array(labels)


def evaluate_run(run: VAERun, data: VAEData, probe_data: ProbeData, *, seed: int = 0) -> dict[str, float]:
    """recon, kl, active_units, probe_seen, probe_unseen, mi_mean and per-parameter MI."""
    enc = run.encoder
    out: dict[str, float] = {}
    rs = analysis.reconstruction_stats(enc.vae, data.val_ds.images, labels=[data.effects[i] for i in data.val_ds.labels])
    out["recon"], out["kl"] = rs["recon"], rs["kl"]
    if "recon_effected" in rs:
        out["recon_effected"] = rs["recon_effected"]
    z_tr = enc.embed_images(data.train_ds.images)
    y_tr = np.array([data.effects[i] for i in data.train_ds.labels])
    out["active_units"] = analysis.active_units(z_tr)
    z_te, y_te = embed_examples(enc, probe_data.seen_test)
    pr = analysis.probe(z_tr, y_tr, z_te, y_te, seed=seed)
    out["probe_seen"] = pr.accuracy
    for k, acc in pr.per_class().items():
        out[f"probe_seen_{k}"] = acc
    if probe_data.unseen_train:
        zu_tr, yu_tr = embed_examples(enc, probe_data.unseen_train)
        zu_te, yu_te = embed_examples(enc, probe_data.unseen_test)
        out["probe_unseen"] = analysis.probe(zu_tr, yu_tr, zu_te, yu_te, seed=seed).accuracy
    mis = []
    for k, ex in probe_data.seen_test.items():
        z = z_te[y_te == k]
        summ = analysis.mi_summary(analysis.mutual_information(z, ex.p, seed=seed), ex.param_names)
        for pname, v in summ.items():
            if pname != "mean":
                out[f"mi_{k}_{_key(pname)}"] = v
        mis.append(summ["mean"])
    out["mi_mean"] = float(np.mean(mis))
    return out


def _key(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s.lower()).strip("_")


# ---------------------------------------------------------------------------------------
# sweep + selection
# ---------------------------------------------------------------------------------------
def sweep_configs(profile, *, stage: int = 1, chosen: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Configurations of one stage of the sweep.

    ``grid="full"``: every beta x latent size x mode, all in stage 1. ``grid="staged"``
    (cheaper): stage 1 = every beta with the first mode at ``base_latent_dim``; stage 2 = the
    other modes at the stage-1 choice's beta; stage 3 = the other latent sizes at the
    choice so far (``chosen``: its mode and beta).
    """
    s = profile.sweep
    for m in s.modes:
        if m not in ("joint", "siamese"):
            raise ConfigError(f"sweep.modes: unknown mode {m!r}")
    if s.grid not in ("staged", "full"):
        raise ConfigError(f"sweep.grid must be 'staged' or 'full', got {s.grid!r}")
    if not s.betas or not s.modes or not s.latent_dims:
        raise ConfigError("sweep.betas, sweep.modes and sweep.latent_dims must not be empty")
    base = dict(epochs=s.epochs)
    if s.grid == "full":
        if stage != 1:
            return []
        return [vae_config(profile, mode=m, beta=float(b), latent_dim=int(z), **base)
                for m in s.modes for z in s.latent_dims for b in s.betas]
    if stage == 1:
        return [vae_config(profile, mode=s.modes[0], beta=float(b), latent_dim=int(s.base_latent_dim), **base)
                for b in s.betas]
    if chosen is None:
        raise ConfigError(f"stage {stage} of the sweep needs the previous stage's choice")
    if stage == 2:
        return [vae_config(profile, mode=m, beta=float(chosen["beta"]), latent_dim=int(s.base_latent_dim), **base)
                for m in s.modes[1:]]
    if stage == 3:
        return [vae_config(profile, mode=chosen["mode"], beta=float(chosen["beta"]), latent_dim=int(z), **base)
                for z in s.latent_dims if int(z) != int(s.base_latent_dim)]
    return []


def select_config(table, recon_tolerance: float = 0.25) -> tuple[str, str]:
    """Apply :data:`SELECTION_RULE` to a DataFrame indexed by config name -> (name, reason)."""
    if len(table) == 0:
        raise DatasetError("select_config: empty sweep table")
    best_recon = float(table["recon"].min())
    ok = table[table["recon"] <= best_recon * (1 + recon_tolerance)]
    top = float(ok["probe_seen"].max())
    tied = ok[ok["probe_seen"] >= top - 0.005]
    tied = tied.sort_values(["active_units", "recon"], ascending=[False, True])
    name = str(tied.index[0])
    reason = (f"{len(ok)} of {len(table)} configs have recon within {recon_tolerance:.0%} of the best "
              f"({best_recon:.4f}); highest probe_seen {top:.3f}; {len(tied)} tied -> {name} "
              f"({int(tied.iloc[0]['active_units'])} active units, recon {float(tied.iloc[0]['recon']):.4f})")
    return name, reason


@dataclass
class SweepResult:
    """The sweep's table (one row per config name), runs, stage-1 choice and final selection."""

    table: Any
    runs: dict[str, VAERun]
    stage1_choice: str
    selected: str
    reason: str
    wall_s: float


def _row(run: VAERun, metrics: Mapping[str, float]) -> dict[str, Any]:
    c = run.config
    return {"mode": c["mode"], "beta": float(c["beta"]), "latent_dim": int(c["latent_dim"]),
            **metrics, "epochs": int(c["epochs"]), "train_s": float(run.fit.wall_s),
            "epochs_per_minute": float(run.fit.epochs_per_minute), "reused": bool(run.fit.reused)}


def run_sweep(profile, data: VAEData, probe_data: ProbeData, *, progress: bool = True,
              log=print) -> SweepResult:
    """Train and evaluate every sweep configuration (reusing finished runs), then select.

    Stages 1-3 of :func:`sweep_configs` (one stage for ``grid="full"``), each built on the
    selection so far; the selection rule (:data:`SELECTION_RULE`) is applied to the whole table.
    """
    import time

    import pandas as pd

    t0 = time.perf_counter()
    runs: dict[str, VAERun] = {}
    rows: dict[str, dict[str, Any]] = {}

    def do(cfgs):
        for cfg in cfgs:
            name = config_name(cfg)
            if name in runs:
                continue
            live.step("sweep configurations", len(runs))
            run = train_vae(profile, data, cfg, progress=progress)
            runs[name] = run
            live.step("sweep configurations", len(runs))
            rows[name] = _row(run, evaluate_run(run, data, probe_data, seed=profile.seed))
            r = rows[name]
            log(f"{name:24s} recon {r['recon']:.4f}  kl {r['kl']:8.2f}  active {r['active_units']:2d}  "
                f"probe seen {r['probe_seen']:.3f} unseen {r.get('probe_unseen', float('nan')):.3f}  "
                f"{'(reused)' if run.fit.reused else f'{run.fit.wall_s:.0f} s'}")

    tol = profile.sweep.recon_tolerance
    do(sweep_configs(profile, stage=1))
    choice1, _ = select_config(pd.DataFrame.from_dict(rows, orient="index"), tol)
    if profile.sweep.grid == "staged":
        do(sweep_configs(profile, stage=2, chosen=runs[choice1].config))
        choice2, _ = select_config(pd.DataFrame.from_dict(rows, orient="index"), tol)
        do(sweep_configs(profile, stage=3, chosen=runs[choice2].config))
    table = pd.DataFrame.from_dict(rows, orient="index")
    selected, reason = select_config(table, profile.sweep.recon_tolerance)
    return SweepResult(table, runs, choice1, selected, reason, time.perf_counter() - t0)


def save_selected(profile, run: VAERun, metrics: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """Write the selected encoder and ``selected_model.json`` (read by load_selected_encoder)."""
    from .models.encoder import SELECTED_CKPT, SELECTED_JSON

    run.encoder.save(paths.artifact_path(profile.name, SELECTED_CKPT),
                     extra={"metrics": dict(metrics), "selection": reason})
    meta = {"name": run.name, "config": run.config, "checkpoint": SELECTED_CKPT,
            "metrics": {k: (float(v) if v is not None else None) for k, v in metrics.items()},
            "rule": SELECTION_RULE.format(tol=profile.sweep.recon_tolerance), "reason": reason,
            "run_dir": str(run.fit.run_dir), "profile": profile.name, "seed": profile.seed}
    io.write_json(paths.artifact_path(profile.name, SELECTED_JSON), meta)
    return meta


# ---------------------------------------------------------------------------------------
# figure helpers
# ---------------------------------------------------------------------------------------
def umap_2d(z: np.ndarray, profile, *, n_neighbors: int = 15, seed: int | None = None) -> np.ndarray:
    """2-D UMAP of latents (deterministic for the profile seed).

    ``profile.vae.projection == "pca"`` uses the first two principal components instead
    (the smoke profile: umap-learn's numba compilation costs ~45 s per process).
    """
    import warnings

    z = np.asarray(z, np.float32)
    if len(z) < 4:
        raise DatasetError(f"UMAP needs at least 4 points, got {len(z)}")
    proj = getattr(profile.vae, "projection", "umap")
    if proj == "pca":
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc.astype(np.float64), full_matrices=False)
        out = zc @ vt[:2].T.astype(np.float32)
        return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if proj != "umap":
        raise ConfigError(f"vae.projection must be 'umap' or 'pca', got {proj!r}")
    import umap

    kw = {}
    if profile.vae.umap_epochs:
        kw["n_epochs"] = int(profile.vae.umap_epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        red = umap.UMAP(n_neighbors=min(n_neighbors, len(z) - 1), random_state=profile.seed if seed is None else seed,
                        init="spectral" if len(z) > 10 else "random", **kw)
        return red.fit_transform(z)


def render(effect_key: str, x: np.ndarray, p01: np.ndarray, profile) -> np.ndarray:
    """Render (B, N) clean audio through one effect at (B, P) normalised settings."""
    from .effects import get_effect

    fx = get_effect(effect_key, profile.effects.effect_set)
    x = np.atleast_2d(np.asarray(x, np.float32))
    p01 = np.atleast_2d(np.asarray(p01, np.float64))
    if len(p01) == 1 and len(x) > 1:
        p01 = np.repeat(p01, len(x), 0)
    return np.stack([fx.process(a, profile.data.sample_rate, p) for a, p in zip(x, p01)])


def interpolate(encoder, pair_a: tuple[np.ndarray, np.ndarray], pair_b: tuple[np.ndarray, np.ndarray],
                steps: int = 7, n_iter: int = 32, audio: bool = True) -> dict[str, Any]:
    """Decode ``steps`` points on the line between the mean latents of two (x, y) pairs.

    Returns ``t``, ``z`` (steps, D), ``images`` (steps, 2, F, T) and, with ``audio``, Griffin-Lim
    audio (steps, 2, N) at a level interpolated between the two pairs' statistics.
    """
    imgs, stats = encoder.images(np.stack([pair_a[0], pair_b[0]]), np.stack([pair_a[1], pair_b[1]]))
    za, zb = encoder.embed_images(imgs)
    t = np.linspace(0.0, 1.0, steps)
    z = np.stack([(1 - a) * za + a * zb for a in t]).astype(np.float32)
    ta = torch.as_tensor(t, dtype=torch.float32)[:, None, None, None]
    clean = (1 - ta) * imgs[0:1, :1] + ta * imgs[1:2, :1]  # conditioned decoders: cross-faded clean image
    dec = encoder.decode(z, clean)
    out: dict[str, Any] = {"t": t, "z": z, "images": dec, "ends": imgs}
    if audio:
        tt = torch.as_tensor(t, dtype=torch.float32)[:, None]
        st = NormStats((1 - tt) * stats.mean[0] + tt * stats.mean[1], (1 - tt) * stats.std[0] + tt * stats.std[1])
        out["audio"] = encoder.to_audio(dec, st, n_iter=n_iter)
    return out


def volume_check(encoder, examples: Mapping[str, Examples], profile, *, gains_db: Sequence[float] = (-20, -10, 0, 10),
                 n_clips: int = 8, seed: int = 0) -> dict[str, Any]:
    """Does the latent move with level? The same (x, y) pairs at several gains vs. the same
    clean clip under each seen effect (random settings).

    Returns mean pairwise latent distance within gain groups (``within``), within effect
    groups (``across``), their ``ratio`` (small = level hardly matters) and the per-gain
    latent shift from the 0 dB embedding (``shift_by_gain``).
    """
    rng = np.random.default_rng(seed)
    keys = list(examples)
    first = examples[keys[0]]
    n_clips = min(n_clips, len(first))
    idx = rng.choice(len(first), n_clips, replace=False)
    gains = 10 ** (np.asarray(gains_db, np.float64) / 20)
    gain_groups, effect_groups, shifts = [], [], []
    from .effects import get_effect

    for i in idx:
        k = keys[int(rng.integers(len(keys)))]
        ex = examples[k]
        j = int(rng.integers(len(ex)))
        x, y = ex.x[j], ex.y[j]
        zs = encoder.embed(np.stack([x * g for g in gains]).astype(np.float32),
                           np.stack([y * g for g in gains]).astype(np.float32))
        gain_groups.append(zs)
        ref = zs[int(np.argmin(np.abs(np.asarray(gains_db))))]
        shifts.append(np.linalg.norm(zs - ref, axis=1))
        xc = first.x[i]
        ys = [render(e, xc, rng.uniform(size=(1, get_effect(e, profile.effects.effect_set).n_params)), profile)[0]
              for e in keys]
        effect_groups.append(encoder.embed(np.stack([xc] * len(keys)), np.stack(ys)))
    res = analysis.latent_distance_ratio(gain_groups, effect_groups)
    res["gains_db"] = list(map(float, gains_db))
    res["shift_by_gain"] = np.mean(shifts, 0).tolist()
    return res


def param_sweep_latents(encoder, effect_key: str, x: np.ndarray, profile, *, n_values: int = 20,
                        base: float = 0.5) -> dict[str, np.ndarray]:
    """For each parameter: sweep it over ``n_values`` in [0, 1] (others at ``base``) on clean
    clip ``x`` and embed -> {param name: (n_values, D) latents}."""
    from .effects import get_effect

    fx = get_effect(effect_key, profile.effects.effect_set)
    vals = np.linspace(0.0, 1.0, n_values)
    out = {}
    for j, name in enumerate(fx.param_names):
        p = np.full((n_values, fx.n_params), base)
        p[:, j] = vals
        ys = render(effect_key, np.repeat(np.asarray(x, np.float32)[None], n_values, 0), p, profile)
        out[name] = encoder.embed(np.repeat(np.asarray(x, np.float32)[None], n_values, 0), ys)
    return out

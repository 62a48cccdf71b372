"""Notebook 03's staged sweep over beta, latent size and encoding, its selection rule and the selected-model artifact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import paths, storage
from .. import progress as live
from ..errors import ConfigError, DatasetError
from .data import ProbeData, VAEData
from .evaluate import evaluate_run
from .train import VAERun, config_name, train_vae, vae_config

SELECTION_RULE = (
    "Among configurations whose validation reconstruction error is within {tol:.0%} of the "
    "best one, pick the highest seen-effect probe accuracy (logistic regression, held-out clips); "
    "ties (within 0.5 percentage points) go to more active latent units, then to lower "
    "reconstruction error."
)


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
        return [
            vae_config(profile, mode=m, beta=float(b), latent_dim=int(z), **base)
            for m in s.modes
            for z in s.latent_dims
            for b in s.betas
        ]
    if stage == 1:
        return [
            vae_config(profile, mode=s.modes[0], beta=float(b), latent_dim=int(s.base_latent_dim), **base)
            for b in s.betas
        ]
    if chosen is None:
        raise ConfigError(f"stage {stage} of the sweep needs the previous stage's choice")
    if stage == 2:
        return [
            vae_config(profile, mode=m, beta=float(chosen["beta"]), latent_dim=int(s.base_latent_dim), **base)
            for m in s.modes[1:]
        ]
    if stage == 3:
        return [
            vae_config(profile, mode=chosen["mode"], beta=float(chosen["beta"]), latent_dim=int(z), **base)
            for z in s.latent_dims
            if int(z) != int(s.base_latent_dim)
        ]
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
    reason = (
        f"{len(ok)} of {len(table)} configs have recon within {recon_tolerance:.0%} of the best "
        f"({best_recon:.4f}); highest probe_seen {top:.3f}; {len(tied)} tied -> {name} "
        f"({int(tied.iloc[0]['active_units'])} active units, recon {float(tied.iloc[0]['recon']):.4f})"
    )
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
    return {
        "mode": c["mode"],
        "beta": float(c["beta"]),
        "latent_dim": int(c["latent_dim"]),
        **metrics,
        "epochs": int(c["epochs"]),
        "train_s": float(run.fit.wall_s),
        "epochs_per_minute": float(run.fit.epochs_per_minute),
        "reused": bool(run.fit.reused),
    }


def run_sweep(profile, data: VAEData, probe_data: ProbeData, *, progress: bool = True, log=print) -> SweepResult:
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
            log(
                f"{name:24s} recon {r['recon']:.4f}  kl {r['kl']:8.2f}  active {r['active_units']:2d}  "
                f"probe seen {r['probe_seen']:.3f} unseen {r.get('probe_unseen', float('nan')):.3f}  "
                f"{'(reused)' if run.fit.reused else f'{run.fit.wall_s:.0f} s'}"
            )

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


def final_run(profile, data: VAEData, probe_data: ProbeData, sweep: SweepResult, *, progress: bool = False):
    """The selected configuration trained for ``vae.epochs``; returns (run, its metrics).

    The sweep compares configurations after ``sweep.epochs`` (half of notebook 02's training in
    the default profile: ranking them is what the sweep is for); the one it selects is then
    continued from its last checkpoint to ``vae.epochs`` (:func:`train_vae` ``continue_from``:
    the same weights as a from-scratch run of that length, tested), or, when it is notebook 02's
    own configuration, notebook 02's finished run is reused. Its metrics are measured again.
    """
    sel = sweep.runs[sweep.selected]
    want = int(profile.vae.epochs)
    if int(sel.config["epochs"]) >= want:
        return sel, {k: v for k, v in sweep.table.loc[sweep.selected].items()}
    cfg = {**sel.config, "epochs": want}
    start = sel if cfg.get("lr_schedule") == "constant" else None
    run = train_vae(profile, data, cfg, progress=progress, continue_from=start)
    return run, evaluate_run(run, data, probe_data, seed=profile.seed)


def save_selected(profile, run: VAERun, metrics: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """Write the selected encoder and ``selected_model.json`` (read by load_selected_encoder)."""
    from ..models.encoder import SELECTED_CKPT, SELECTED_JSON

    run.encoder.save(
        paths.artifact_path(profile.name, SELECTED_CKPT), extra={"metrics": dict(metrics), "selection": reason}
    )
    meta = {
        "name": run.name,
        "config": run.config,
        "checkpoint": SELECTED_CKPT,
        "metrics": {k: (float(v) if v is not None else None) for k, v in metrics.items()},
        "rule": SELECTION_RULE.format(tol=profile.sweep.recon_tolerance),
        "reason": reason,
        "run_dir": str(run.fit.run_dir),
        "profile": profile.name,
        "seed": profile.seed,
    }
    storage.write_json(paths.artifact_path(profile.name, SELECTED_JSON), meta)
    return meta

"""One VAE configuration trained, or reused when finished, through the Lightning training engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import paths
from ..errors import ConfigError
from ..seeding import derive_seed
from .data import VAEData


def _start_from(run_dir, earlier: VAERun, cfg: Mapping[str, Any]) -> None:
    """Seed ``run_dir`` with ``earlier``'s last checkpoint and log (see ``continue_from``)."""
    import shutil

    from ..training import LAST, LOG_CSV, RUN_JSON

    same = {k: v for k, v in earlier.config.items() if k != "epochs"} == {k: v for k, v in cfg.items() if k != "epochs"}
    if not same or int(earlier.config["epochs"]) > int(cfg["epochs"]):
        raise ConfigError(
            f"continue_from: run {earlier.name} ({earlier.config['epochs']} epochs) is not a shorter run of this configuration"
        )
    if cfg.get("lr_schedule") != "constant":
        raise ConfigError("continue_from needs lr_schedule='constant' (a cosine schedule depends on the total epochs)")
    if (run_dir / RUN_JSON).exists() or (run_dir / LAST).exists():
        return  # this run was started (or finished) before: fit resumes or reuses it
    src = earlier.fit.run_dir
    if not (src / LAST).exists():
        raise ConfigError(f"continue_from: {src} holds no {LAST} to continue from")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (LAST, LOG_CSV):
        if (src / name).exists():
            tmp = run_dir / f".{name}.tmp"
            shutil.copyfile(src / name, tmp)
            tmp.replace(run_dir / name)


def vae_config(profile, **changes: Any) -> dict[str, Any]:
    """The VAE training configuration of a profile (``profile.vae``) with ``changes`` applied."""
    v = profile.vae
    cfg = {
        "mode": v.mode,
        "latent_dim": v.latent_dim,
        "base_channels": v.base_channels,
        "beta": v.beta,
        "beta_schedule": v.beta_schedule,
        "warmup_epochs": v.warmup_epochs,
        "cycle_epochs": v.cycle_epochs,
        "reduction": v.reduction,
        "lr": v.lr,
        "epochs": v.epochs,
        "batch_size": v.batch_size,
        "encoder_head": v.encoder_head,
        "decoder_condition": v.decoder_condition,
        "lr_schedule": v.lr_schedule,
    }
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


def train_vae(
    profile,
    data: VAEData,
    cfg: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
    accelerator: str | None = None,
    continue_from: VAERun | None = None,
) -> VAERun:
    """Train (or reuse) one VAE configuration on ``data``; returns the run with its encoder.

    ``continue_from``: a finished run of the same configuration with fewer epochs; a new run
    starts from its last checkpoint instead of from scratch. The first epochs of a run do not
    depend on how many follow (same initial weights, per-epoch shuffles, beta warm-up and a
    constant learning rate), so the result equals a from-scratch run of ``cfg["epochs"]``
    (tested); a cosine learning rate, which depends on the total, is refused.
    """
    from ..models.encoder import AudioEncoder
    from ..models.vae import VAEModule
    from ..training import fit, make_loader, resolve_device, trainer_options

    cfg = dict(cfg or vae_config(profile))
    name = config_name(cfg)
    module = VAEModule(
        shape=data.spectrogrammer.shape,
        latent_dim=cfg["latent_dim"],
        base_channels=cfg["base_channels"],
        mode=cfg["mode"],
        beta=cfg["beta"],
        beta_schedule=cfg["beta_schedule"],
        warmup_epochs=cfg["warmup_epochs"],
        cycle_epochs=cfg["cycle_epochs"],
        reduction=cfg["reduction"],
        lr=cfg["lr"],
        init_seed=derive_seed(profile.seed, "vae-init", name),
        head=cfg["encoder_head"],
        condition=cfg["decoder_condition"],
        lr_schedule=cfg["lr_schedule"],
    )
    ident = {
        "cfg": cfg,
        "spec": profile.to_dict()["spec"],
        "data": profile.to_dict()["data"],
        "effect_set": profile.effects.effect_set,
        "effects": data.effects,
        "n_train": len(data.train_ds),
        "n_val": len(data.val_ds),
        "seed": profile.seed,
    }
    from ..training import config_hash

    run_dir = paths.build_dir(profile.name) / "runs" / "vae" / f"{name}_{config_hash(ident)}"
    if continue_from is not None:
        _start_from(run_dir, continue_from, cfg)
    train_loader = make_loader(data.train_ds, cfg["batch_size"], seed=profile.seed, drop_last=False)
    val_loader = make_loader(data.val_ds, 64, seed=profile.seed, shuffle=False)
    res = fit(
        module,
        train_loader,
        val_loader,
        run_dir,
        cfg["epochs"],
        seed=profile.seed,
        ckpt_every_n_steps=profile.vae.ckpt_every_n_steps,
        progress=progress,
        config=ident,
        **trainer_options(profile.runtime, accelerator),
    )
    module.cpu().eval()
    enc = AudioEncoder.from_module(
        module, data.spectrogrammer, name=name, info={"config": cfg}, device=resolve_device(profile.runtime.device)
    )
    return VAERun(name, cfg, module, enc, res)

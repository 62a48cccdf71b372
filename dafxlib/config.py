"""Profiles: one named object sets every knob of the pipeline.

A profile is a tree of frozen dataclasses. ``get_profile("default", {"vae.epochs": 3})``
resolves a name plus dotted-key overrides; unknown names or keys raise
:class:`ConfigError` listing what is valid. Papermill passes ``PROFILE`` and
``OVERRIDES`` into each notebook's ``parameters`` cell and the notebook calls
:func:`get_profile` (through :func:`dafxlib.report.start_notebook`).

The three profiles (DESIGN.md section 3):

- ``smoke``   the whole pipeline in a few minutes on 2 CPU cores; values meaningless.
- ``default`` embedded corpus, portable effects, meaningful results on a 2-core laptop.
- ``paper``   the study's datasets, STFT (n_fft 4096, hop 1024), mda effects, GPU scale.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Mapping

from .errors import ConfigError
from .seeding import stable_hash


@dataclass(frozen=True)
class DataConfig:
    """Corpus and example geometry."""

    sample_rate: int = 24_000
    #: length of one half (A or B) of a clip, in seconds; a clip is two halves
    half_seconds: float = 1.0
    #: "embedded" (espeak-ng speech + synthesised music) or "paper" (VCTK/DAPS/MUSDB18-HQ)
    corpus: str = "embedded"
    n_speech: int = 120
    n_music: int = 120
    #: file-level split fractions (train, val, test)
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    #: where real datasets live for the paper profile (None: <build>/datasets)
    dataset_root: str | None = None
    #: optional user folder of audio files evaluated as an extra corpus
    user_folder: str | None = None
    #: kind ("speech" or "music") given to the clips of ``user_folder``
    user_kind: str = "speech"
    #: clips are loudness-normalised to target_lufs +- lufs_spread (uniform, seeded, per clip)
    target_lufs: float = -23.0
    lufs_spread: float = 3.0
    #: fraction of the speech clips from voices/speakers never used for training (test only):
    #: held-out espeak-ng accents+voices (embedded) or DAPS (paper)
    unseen_speech_fraction: float = 0.2


@dataclass(frozen=True)
class EffectsConfig:
    #: "portable" (pip only) or "mda" (Debian's mda-lv2 plugins)
    effect_set: str = "portable"
    workers: int = 2


@dataclass(frozen=True)
class SpecConfig:
    """Spectrogram representation (dafxlib.spectrogram)."""

    n_fft: int = 512
    hop: int = 256
    #: magnitude compression: power-law exponent (the study's 0.3)
    power: float = 0.3
    #: "power" or "log"
    compression: str = "power"
    #: keep the lowest ``n_bins`` frequency bins (None: all n_fft//2+1)
    n_bins: int | None = 256
    #: per-image normalisation: "pair" (one mean/std over clean+effected: a gain on the
    #: pair vanishes, the effect's own level change stays) or "channel"
    norm: str = "pair"
    #: time frames are padded to a multiple of this (the conv VAE halves time 4 times)
    frame_multiple: int = 16


@dataclass(frozen=True)
class VAEConfig:
    """Spectrogram beta-VAE (dafxlib.models.vae; notebook 02) and its default run.

    Defaults tuned on the default profile (2 shared CPU cores): base_channels 8 and latent 32
    gave the best effect probe per second of training (16 channels: same probe, 2x slower).
    """

    mode: str = "joint"  # "joint" or "siamese"
    latent_dim: int = 32
    base_channels: int = 8
    #: encoder head: "flatten" (whole feature map) or "stats" (mean/std over time)
    encoder_head: str = "stats"
    #: decoder sees the clean image too (the latent then carries the effect, not the content)
    decoder_condition: bool = True
    beta: float = 0.005
    beta_schedule: str = "warmup"  # constant | warmup | cyclic
    warmup_epochs: int = 3
    reduction: str = "mean"  # "sum" or "mean"
    epochs: int = 14
    batch_size: int = 32
    lr: float = 2e-3
    #: "constant" or "cosine" (annealed per step to 5 % of lr over the run)
    lr_schedule: str = "constant"
    #: training examples per seen effect (rendered once, cached)
    n_train_per_effect: int = 400
    n_val_per_effect: int = 80
    #: cycle length of the "cyclic" beta schedule (0: use warmup_epochs)
    cycle_epochs: float = 0.0
    #: checkpoint every N optimiser steps (and at every epoch end)
    ckpt_every_n_steps: int = 50
    #: UMAP optimisation epochs for latent figures (None: umap-learn's default)
    umap_epochs: int | None = None
    #: 2-D projection of latent figures: "umap" or "pca" (smoke: skips umap's ~45 s numba compile)
    projection: str = "umap"


@dataclass(frozen=True)
class SweepConfig:
    """Notebook 03: beta / latent size / joint-vs-siamese sweep."""

    betas: tuple[float, ...] = (1e-4, 0.005, 0.05, 2.0)
    latent_dims: tuple[int, ...] = (16, 32)
    modes: tuple[str, ...] = ("joint", "siamese")
    #: equal to vae.epochs so notebook 02's run is reused as one of the sweep's
    epochs: int = 14
    #: held-out examples per effect used for probes / MI
    n_probe_per_effect: int = 100
    #: "staged": every beta with modes[0] at ``base_latent_dim``, then the other modes at the
    #: chosen beta, then the other latent sizes at the choice; "full": every combination
    grid: str = "staged"
    base_latent_dim: int = 32
    #: selection rule: among configs whose recon is within this fraction of the best,
    #: highest seen-effect probe accuracy (ties: more active units, then lower recon)
    recon_tolerance: float = 0.25


@dataclass(frozen=True)
class ControllerConfig:
    """Notebook 04: the end-to-end controller (dafxlib.e2e)."""

    hidden: int = 256
    n_hidden: int = 2
    #: controller inputs: "embedding" (frozen encoder), "level" (level_features), "descriptors"
    features: tuple[str, ...] = ("embedding", "level", "descriptors")
    #: which training signals to run: "audio" (SPSA only), "regression", "both"
    signals: tuple[str, ...] = ("regression", "both")
    #: effects on which the ablation "audio" (SPSA only) signal runs (None: all)
    ablation_effects: tuple[str, ...] | None = ("overdrive", "ringmod", "ambience")
    n_train_per_effect: int = 1000
    n_val_per_effect: int = 100
    #: held-out (test split, file-disjoint) examples per effect scored in notebook 04
    n_test_per_effect: int = 100
    regression_epochs: int = 30
    #: audio-loss (SPSA) epochs over ``spsa_n_train`` examples, batches of ``spsa_batch_size``
    spsa_epochs: int = 4
    spsa_n_train: int | None = 320
    spsa_batch_size: int = 16
    batch_size: int = 32
    lr: float = 1e-3
    #: fine-tuning ("both") step: Adam moves every weight by ~lr per step whatever the gradient
    #: size, so noisy SPSA gradients need a small one near the regression optimum
    spsa_lr: float = 3e-5
    spsa_epsilon: float = 0.05
    #: None/"constant" or "decay" (Spall's c / (k+1)^0.101)
    spsa_schedule: str = "constant"
    #: audio training loss: auraloss MR-STFT at these FFT sizes, hop = fraction x FFT
    loss_fft_sizes: tuple[int, ...] = (512, 1024, 2048)
    loss_hop_fraction: float | None = 0.25
    #: weight of the time-domain L1 term next to MR-STFT in the audio loss
    l1_weight: float = 1.0
    ckpt_every_n_steps: int = 50
    #: torch intra-op threads while controllers train and score (the MLP is tiny: on a shared
    #: 2-core CPU one thread is several times faster than two); None keeps fit's choice
    torch_threads: int | None = 1


@dataclass(frozen=True)
class LatentConfig:
    """Notebook 05: the UMAP control plane (dafxlib.latent)."""

    #: random settings embedded per effect (each rendered on every one of n_clips train clips;
    #: the encoder costs ~10-20 ms per pair on 2 CPU cores, so settings x clips x 9 effects
    #: sets notebook 05's wall time)
    n_settings: int = 360
    n_clips: int = 1
    #: grid x grid lattice of one batched UMAP inverse_transform (the latent path)
    grid: int = 24
    umap_neighbors: int = 15
    #: held-out settings (rendered on held-out test clips) for the round-trip error
    n_heldout: int = 40
    #: UMAP optimisation epochs (None: umap-learn's default, 500 for small data)
    n_epochs: int | None = None
    #: effect keys to fit (None: all nine)
    effects: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EvalConfig:
    #: fixed test examples per (corpus, effect) cell, shared by every method
    n_per_cell: int = 40
    #: renders per clip allowed to the inference-time optimisation baseline (CMA-ES);
    #: kept modest so notebook 06 stays within minutes on 2 cores
    ito_budget: int = 12
    #: bootstrap resamples for the 95% intervals
    bootstrap: int = 1000


@dataclass(frozen=True)
class Profile:
    name: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    spec: SpecConfig = field(default_factory=SpecConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def half_samples(self) -> int:
        return int(round(self.data.half_seconds * self.data.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self, *sections: str) -> str:
        """Stable short hash of the given sections (all when none) plus the seed, for cache keys."""
        d = self.to_dict()
        payload = {k: d[k] for k in (sections or [k for k in d if k != "name"])}
        payload["seed"] = self.seed
        return stable_hash(payload)


_SMOKE = Profile(
    name="smoke",
    data=DataConfig(half_seconds=0.5, n_speech=10, n_music=10),
    spec=SpecConfig(n_fft=256, hop=128, n_bins=64),
    vae=VAEConfig(latent_dim=8, base_channels=4, epochs=2, batch_size=16, warmup_epochs=1,
                  n_train_per_effect=24, n_val_per_effect=8, umap_epochs=30,
                  projection="pca"),
    sweep=SweepConfig(betas=(1e-4, 2.0), latent_dims=(8,), modes=("joint", "siamese"),
                      epochs=1, n_probe_per_effect=12, base_latent_dim=8),
    controller=ControllerConfig(hidden=32, n_train_per_effect=24, n_val_per_effect=8,
                                n_test_per_effect=8, regression_epochs=2, spsa_epochs=1,
                                spsa_n_train=8, spsa_batch_size=8, batch_size=8,
                                ablation_effects=("overdrive",)),
    latent=LatentConfig(n_settings=60, n_clips=1, grid=8, umap_neighbors=8, n_heldout=12,
                        n_epochs=60, effects=("overdrive", "ringmod", "ambience")),
    eval=EvalConfig(n_per_cell=4, ito_budget=8, bootstrap=50),
)

_DEFAULT = Profile(name="default")

_PAPER = Profile(
    name="paper",
    data=DataConfig(half_seconds=65_536 / 24_000, corpus="paper", n_speech=5000, n_music=5000),
    effects=EffectsConfig(effect_set="mda", workers=8),
    # 2048 of the 2049 bins (drops Nyquist) so the conv VAE can halve it four times
    spec=SpecConfig(n_fft=4096, hop=1024, n_bins=2048),
    vae=VAEConfig(latent_dim=32, base_channels=32, epochs=100, batch_size=32,
                  n_train_per_effect=5000, n_val_per_effect=500, ckpt_every_n_steps=500),
    sweep=SweepConfig(betas=(1e-4, 1e-3, 0.005, 0.05, 0.5, 2.0, 10.0), latent_dims=(8, 16, 32, 64),
                      epochs=40, n_probe_per_effect=1000, base_latent_dim=32),
    controller=ControllerConfig(hidden=512, signals=("audio", "regression", "both"),
                                ablation_effects=None, n_train_per_effect=5000,
                                n_val_per_effect=500, n_test_per_effect=500, regression_epochs=100,
                                spsa_epochs=30, spsa_n_train=None, spsa_batch_size=32,
                                loss_hop_fraction=None, torch_threads=None),
    latent=LatentConfig(n_settings=1000, n_clips=5, grid=64, n_heldout=100),
    eval=EvalConfig(n_per_cell=1000, ito_budget=200, bootstrap=2000),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _DEFAULT, _PAPER)}


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Convert an override (often a string from the command line) to the field's type."""
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            if current is not None:
                raise ConfigError(f"override {key}={value!r}: cannot parse as {type(current).__name__}")
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if current is not None and value is not None and type(value) is not type(current):
        raise ConfigError(f"override {key}={value!r}: expected {type(current).__name__}")
    return value


def valid_keys(profile: Profile | None = None) -> list[str]:
    """Every dotted key an override may name."""
    profile = profile or _DEFAULT
    keys = []
    for f in fields(profile):
        sub = getattr(profile, f.name)
        if is_dataclass(sub):
            keys += [f"{f.name}.{g.name}" for g in fields(sub)]
        elif f.name != "name":
            keys.append(f.name)
    return keys


def apply_overrides(profile: Profile, overrides: Mapping[str, Any] | None) -> Profile:
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        if key not in valid_keys(profile):
            raise ConfigError(
                f"unknown override key {key!r}; valid keys are: " + ", ".join(valid_keys(profile))
            )
        if len(parts) == 1:
            profile = replace(profile, **{key: _coerce(value, getattr(profile, key), key)})
        else:
            section = getattr(profile, parts[0])
            new = _coerce(value, getattr(section, parts[1]), key)
            profile = replace(profile, **{parts[0]: replace(section, **{parts[1]: new})})
    return profile


def get_profile(name: str | Profile = "default", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Resolve a profile by name plus dotted-key overrides."""
    if isinstance(name, Profile):
        return apply_overrides(name, overrides)
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; valid profiles are: {', '.join(PROFILES)}")
    return apply_overrides(PROFILES[name], overrides)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Parse ``["vae.epochs=3", ...]`` from a command line."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out

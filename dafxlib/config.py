"""Profiles: one named object sets every knob of the pipeline.

A profile is a tree of frozen dataclasses. ``get_profile("default", {"vae.epochs": 3})``
resolves a name plus dotted-key overrides; unknown names or keys raise
:class:`ConfigError` listing what is valid. Papermill passes ``PROFILE`` and
``OVERRIDES`` into each notebook's ``parameters`` cell and the notebook calls
:func:`get_profile` (through :func:`dafxlib.provenance.start_notebook`).

The three profiles:

- ``smoke``   the whole pipeline in a few minutes on 2 CPU cores; values meaningless.
- ``default`` embedded corpus, meaningful results on a 2-core laptop; the study's mda effects
  where the plugins are found, else the portable stand-ins (``effects.effect_set = "auto"``).
- ``paper``   the study's datasets, STFT (n_fft 4096, hop 1024), mda effects, GPU scale.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from . import paths
from .errors import ConfigError
from .seeding import stable_hash

#: sample rates every public entry accepts (effects, render, metrics, profiles): 8 kHz is the
#: lowest rate PESQ and the effects are meaningful at, and a rate typed in kHz (24 for 24000)
#: is refused up front instead of crashing a plugin or a C library
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 768_000
#: effect sets dafxlib.effects provides
EFFECT_SETS: tuple[str, ...] = ("portable", "mda")
#: what ``effects.effect_set`` accepts: a set, or "auto" (resolved when the profile is made)
EFFECT_SET_CHOICES: tuple[str, ...] = ("auto", *EFFECT_SETS)


def _c(default: Any, **rules: Any) -> Any:
    """A field with its constraints beside it (checked by :func:`validate` after overrides).

    Rules: ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive) for numbers or each item of a
    tuple; ``choices`` for a string or each item of a tuple; ``nonempty`` for tuples; ``sum``
    (the items must add up to it); ``folder`` (an existing directory). None, where the type
    allows it, skips the rules.
    """
    return field(default=default, metadata=rules)


@dataclass(frozen=True)
class DataConfig:
    """Corpus and example geometry."""

    sample_rate: int = _c(24_000, min=MIN_SAMPLE_RATE, max=MAX_SAMPLE_RATE)
    #: length of one half (A or B) of a clip, in seconds; a clip is two halves
    half_seconds: float = _c(1.0, gt=0.0, max=60.0)
    #: "embedded" (espeak-ng speech + synthesised music) or "paper" (VCTK/DAPS/MUSDB18-HQ)
    corpus: str = _c("embedded", choices=("embedded", "paper"))
    n_speech: int = _c(120, min=0)
    n_music: int = _c(120, min=0)
    #: file-level split fractions (train, val, test)
    split: tuple[float, float, float] = _c((0.7, 0.1, 0.2), min=0.0, sum=1.0)
    #: where real datasets live for the paper profile (None: <build>/datasets)
    dataset_root: str | None = None
    #: optional user folder of audio files evaluated as an extra corpus
    user_folder: str | None = _c(None, folder=True)
    #: kind ("speech" or "music") given to the clips of ``user_folder``
    user_kind: str = _c("speech", choices=("speech", "music"))
    #: clips are loudness-normalised to target_lufs +- lufs_spread (uniform, seeded, per clip)
    target_lufs: float = _c(-23.0, min=-70.0, max=0.0)
    lufs_spread: float = _c(3.0, min=0.0, max=20.0)
    #: fraction of the speech clips from voices/speakers never used for training (test only):
    #: held-out espeak-ng accents+voices (embedded) or DAPS (paper)
    unseen_speech_fraction: float = _c(0.2, min=0.0, lt=1.0)


@dataclass(frozen=True)
class EffectsConfig:
    #: "portable" (pip only), "mda" (Debian's mda-lv2 plugins, the study's), or "auto": mda where
    #: the plugins are found (``paths.mda_found``), else portable. A resolved profile always holds
    #: a concrete set (:func:`resolve_effect_set`), so cache keys and numbers name the set used.
    effect_set: str = _c("auto", choices=EFFECT_SET_CHOICES)
    workers: int = _c(2, min=1)


@dataclass(frozen=True)
class SpecConfig:
    """Spectrogram representation (dafxlib.spectrogram)."""

    n_fft: int = _c(512, min=16)
    hop: int = _c(256, min=1)
    #: magnitude compression: power-law exponent (the study's 0.3)
    power: float = _c(0.3, gt=0.0)
    #: "power" or "log"
    compression: str = _c("power", choices=("power", "log"))
    #: keep the lowest ``n_bins`` frequency bins (None: all n_fft//2+1)
    n_bins: int | None = _c(256, min=1)
    #: per-image normalisation: "pair" (one mean/std over clean+effected: a gain on the
    #: pair vanishes, the effect's own level change stays) or "channel"
    norm: str = _c("pair", choices=("pair", "channel"))
    #: time frames are padded to a multiple of this (the conv VAE halves time 4 times)
    frame_multiple: int = _c(16, min=1)


@dataclass(frozen=True)
class VAEConfig:
    """Spectrogram beta-VAE (dafxlib.models.vae; notebook 02) and its default run.

    Defaults tuned on the default profile (2 shared CPU cores): base_channels 8 and latent 32
    gave the best effect probe per second of training (16 channels: same probe, 2x slower).
    """

    mode: str = _c("joint", choices=("joint", "siamese"))  # "joint" or "siamese"
    latent_dim: int = _c(32, min=1)
    base_channels: int = _c(8, min=1)
    #: encoder head: "flatten" (whole feature map) or "stats" (mean/std over time)
    encoder_head: str = _c("stats", choices=("flatten", "stats"))
    #: decoder sees the clean image too (the latent then carries the effect, not the content)
    decoder_condition: bool = True
    beta: float = _c(0.005, min=0.0)
    beta_schedule: str = _c("warmup", choices=("constant", "warmup", "cyclic"))  # constant | warmup | cyclic
    warmup_epochs: int = _c(3, min=0)
    reduction: str = _c("mean", choices=("sum", "mean"))  # "sum" or "mean"
    epochs: int = _c(14, min=1)
    batch_size: int = _c(32, min=1)
    lr: float = _c(2e-3, gt=0.0)
    #: "constant" or "cosine" (annealed per step to 5 % of lr over the run)
    lr_schedule: str = _c("constant", choices=("constant", "cosine"))
    #: training examples per seen effect (rendered once, cached)
    n_train_per_effect: int = _c(400, min=1)
    n_val_per_effect: int = _c(80, min=1)
    #: cycle length of the "cyclic" beta schedule (0: use warmup_epochs)
    cycle_epochs: float = _c(0.0, min=0.0)
    #: checkpoint every N optimiser steps (and at every epoch end)
    ckpt_every_n_steps: int = _c(50, min=1)
    #: UMAP optimisation epochs for latent figures (None: umap-learn's default)
    umap_epochs: int | None = _c(None, min=1)
    #: 2-D projection of latent figures: "umap" or "pca" (smoke: skips umap's ~45 s numba compile)
    projection: str = _c("umap", choices=("umap", "pca"))
    #: notebooks 02/03's data: "always" stream from the on-disk cache (memory flat in the number of
    #: examples), "never" (everything in memory), "auto" (stream above ~2 GB; dafxlib.betavae.data)
    stream_data: str = _c("auto", choices=("auto", "always", "never"))


@dataclass(frozen=True)
class SweepConfig:
    """Notebook 03: beta / latent size / joint-vs-siamese sweep."""

    betas: tuple[float, ...] = _c((1e-4, 0.005, 0.05, 2.0), min=0.0, nonempty=True)
    latent_dims: tuple[int, ...] = _c((16, 32), min=1, nonempty=True)
    modes: tuple[str, ...] = _c(("joint", "siamese"), choices=("joint", "siamese"), nonempty=True)
    #: epochs after which the configurations are compared (half of vae.epochs: the sweep ranks
    #: them); the selected one is then continued to vae.epochs, or notebook 02's run is reused
    #: when it is that configuration (dafxlib.betavae.final_run)
    epochs: int = _c(7, min=1)
    #: held-out examples per effect used for probes / MI
    n_probe_per_effect: int = _c(100, min=1)
    #: "staged": every beta with modes[0] at ``base_latent_dim``, then the other modes at the
    #: chosen beta, then the other latent sizes at the choice; "full": every combination
    grid: str = _c("staged", choices=("staged", "full"))
    base_latent_dim: int = _c(32, min=1)
    #: selection rule: among configs whose recon is within this fraction of the best,
    #: highest seen-effect probe accuracy (ties: more active units, then lower recon)
    recon_tolerance: float = _c(0.25, min=0.0)


@dataclass(frozen=True)
class ControllerConfig:
    """Notebook 04: the end-to-end controller (dafxlib.e2e)."""

    hidden: int = _c(256, min=1)
    n_hidden: int = _c(2, min=1)
    #: controller inputs: "embedding" (frozen encoder), "level" (level_features), "descriptors"
    features: tuple[str, ...] = _c(
        ("embedding", "level", "descriptors"), choices=("embedding", "level", "descriptors"), nonempty=True
    )
    #: which training signals to run: "audio" (SPSA only), "regression", "both"
    signals: tuple[str, ...] = _c(("regression", "both"), choices=("audio", "regression", "both"), nonempty=True)
    #: effects on which the ablation "audio" (SPSA only) signal runs (None: all nine; issue 13
    #: asks whether SPSA alone gets within 15% of regression on every effect: ~+20 s per effect
    #: on 2 cores at the default SPSA budget)
    ablation_effects: tuple[str, ...] | None = None
    n_train_per_effect: int = _c(1000, min=1)
    n_val_per_effect: int = _c(100, min=1)
    #: held-out (test split, file-disjoint) examples per effect scored in notebook 04
    n_test_per_effect: int = _c(100, min=1)
    regression_epochs: int = _c(30, min=1)
    #: audio-loss (SPSA) epochs over ``spsa_n_train`` examples, batches of ``spsa_batch_size``
    spsa_epochs: int = _c(6, min=0)
    spsa_n_train: int | None = _c(320, min=1)
    spsa_batch_size: int = _c(16, min=1)
    batch_size: int = _c(32, min=1)
    lr: float = _c(1e-3, gt=0.0)
    #: fine-tuning ("both") step: Adam moves every weight by ~lr per step whatever the gradient
    #: size; with K = 4 perturbations averaged the gradient is good enough for 1e-3 (3e-5 left
    #: the regression model unchanged in 80 steps); the best-on-validation weights are kept
    spsa_lr: float = _c(1e-3, gt=0.0)
    #: SPSA from scratch ("audio"): its own step (the regression lr by default)
    spsa_audio_lr: float = _c(3e-3, gt=0.0)
    spsa_epsilon: float = _c(0.03, gt=0.0, max=0.5)
    #: Rademacher perturbations averaged per example per SPSA step (2 renders each, all in one
    #: pool call); the loss is evaluated once per step whatever this is (dafxlib.spsa)
    spsa_perturbations: int = _c(4, min=1)
    #: None/"constant" or "decay" (Spall's c / (k+1)^0.101)
    spsa_schedule: str = _c("constant", choices=("constant", "decay"))
    #: audio training loss: auraloss MR-STFT at these FFT sizes, hop = fraction x FFT; two
    #: resolutions at half-window hops cost ~1/7 of (512, 1024, 2048) at quarter hops on a CPU
    #: (the loss dominated an SPSA step); the evaluation's MR-STFT metric is unchanged
    loss_fft_sizes: tuple[int, ...] = _c((512, 2048), min=16, nonempty=True)
    loss_hop_fraction: float | None = _c(0.5, gt=0.0, max=1.0)
    #: weight of the time-domain L1 term next to MR-STFT in the audio loss
    l1_weight: float = _c(1.0, min=0.0)
    ckpt_every_n_steps: int = _c(50, min=1)
    #: torch intra-op threads while controllers train and score (the MLP is tiny: on a shared
    #: 2-core CPU one thread is several times faster than two); None keeps fit's choice
    torch_threads: int | None = _c(1, min=1)


@dataclass(frozen=True)
class DeepAFxConfig:
    """Notebook 04: the DeepAFx-ST-style comparison (dafxlib.e2e.deepafx): a controller on the same
    features sets a differentiable EQ + compressor (dafxlib.effects.differentiable), trained by
    autodiff on the black-box controllers' training examples."""

    epochs: int = _c(2, min=1)
    batch_size: int = _c(32, min=1)
    lr: float = _c(3e-3, gt=0.0)
    #: the loss sees a random crop of this many samples per example (None: the whole clip); the
    #: chain always runs on the whole clip
    crop_samples: int | None = _c(8192, min=256)
    #: auraloss MR-STFT at these FFT sizes, hop = fraction x FFT (cheaper than the controllers' loss)
    loss_fft_sizes: tuple[int, ...] = _c((256, 1024), min=16, nonempty=True)
    loss_hop_fraction: float = _c(0.5, gt=0.0, max=1.0)
    l1_weight: float = _c(1.0, min=0.0)
    #: the compressor's control rate: level detection and gain smoothing in frames of this many samples
    compressor_hop: int = _c(64, min=1)


@dataclass(frozen=True)
class PlaneConfig:
    """Notebook 05: the UMAP control plane (dafxlib.plane)."""

    #: random settings embedded per effect (each rendered on every one of n_clips train clips;
    #: the encoder costs ~10-20 ms per pair on 2 CPU cores, so settings x clips x 9 effects
    #: sets notebook 05's wall time)
    n_settings: int = _c(360, min=4)
    n_clips: int = _c(1, min=1)
    #: grid x grid lattice of one batched UMAP inverse_transform (the latent path)
    grid: int = _c(24, min=2)
    umap_neighbors: int = _c(15, min=2)
    #: held-out settings (rendered on held-out test clips) for the round-trip error
    n_heldout: int = _c(40, min=1)
    #: UMAP optimisation epochs (None: umap-learn's default, 500 for small data)
    n_epochs: int | None = _c(None, min=1)
    #: effect keys to fit (None: all nine)
    effects: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EvalConfig:
    #: fixed test examples per (corpus, effect) cell, shared by every method
    n_per_cell: int = _c(40, min=1)
    #: renders per clip allowed to the inference-time optimisation baseline (CMA-ES);
    #: kept modest so notebook 06 stays within minutes on 2 cores
    ito_budget: int = _c(12, min=1)
    #: the ITO budget curve (dafxlib.evaluation.budget, notebook 06): renders per clip, ascending,
    #: each searched from 0.5 and from the controller's prediction; the full curve to 800 costs
    #: ~20 min on 2 cores (~4 ms per candidate: a render and an encoder pass), so the default run
    #: stops at 200 (~5 min) and the paper profile runs to 800 (see the module)
    ito_curve_budgets: tuple[int, ...] = _c((12, 50, 200), min=3, nonempty=True)
    #: test clips per cell the curve searches (a fixed, seeded subset of the cell's examples)
    ito_curve_clips: int = _c(10, min=1)
    #: bootstrap resamples for the 95% intervals
    bootstrap: int = _c(1000, min=1)
    #: score only the methods that need no trained artifact (do-nothing, random, mean
    #: settings, oracle); otherwise a method that cannot run is an error, never a silent gap
    baselines_only: bool = False


@dataclass(frozen=True)
class RuntimeConfig:
    """Where the networks run; not part of a run's identity (:meth:`Profile.hash` leaves it out)."""

    #: every network (VAE training, the frozen encoder, the controller, the ITO search's encoder
    #: passes): "auto" = CUDA when torch sees a GPU, else the CPU; or "cpu", "cuda", "mps"
    device: str = _c("auto", choices=("auto", "cpu", "cuda", "mps"))
    #: Lightning's training strategy: "auto" (one device), "ddp" (one process per device,
    #: launched by Lightning or torchrun), "ddp_spawn", "ddp_notebook" (inside Jupyter)
    strategy: str = _c("auto", choices=("auto", "ddp", "ddp_spawn", "ddp_notebook"))
    #: devices per machine for training (None: all the accelerator has; 1 on the CPU)
    devices: int | None = _c(None, min=1)
    #: machines taking part in training (several: launch one copy per machine, see the README)
    num_nodes: int = _c(1, min=1)


@dataclass(frozen=True)
class Profile:
    name: str
    seed: int = _c(0, min=0)
    data: DataConfig = field(default_factory=DataConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    spec: SpecConfig = field(default_factory=SpecConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    deepafx: DeepAFxConfig = field(default_factory=DeepAFxConfig)
    plane: PlaneConfig = field(default_factory=PlaneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def half_samples(self) -> int:
        return int(round(self.data.half_seconds * self.data.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self, *sections: str) -> str:
        """Stable short hash of the given sections (all but ``runtime`` when none) plus the seed, for
        cache keys: where a run computes does not change what it computes."""
        d = self.to_dict()
        payload = {k: d[k] for k in (sections or [k for k in d if k not in ("name", "runtime")])}
        payload["seed"] = self.seed
        return stable_hash(payload)


_SMOKE = Profile(
    name="smoke",
    # the tests' whole-pipeline run: the portable set on every machine (the mda set has its own tests)
    effects=EffectsConfig(effect_set="portable"),
    data=DataConfig(half_seconds=0.5, n_speech=10, n_music=10),
    spec=SpecConfig(n_fft=256, hop=128, n_bins=64),
    vae=VAEConfig(
        latent_dim=8,
        base_channels=4,
        epochs=2,
        batch_size=16,
        warmup_epochs=1,
        n_train_per_effect=24,
        n_val_per_effect=8,
        umap_epochs=30,
        projection="pca",
    ),
    sweep=SweepConfig(
        betas=(1e-4, 2.0),
        latent_dims=(8,),
        modes=("joint", "siamese"),
        epochs=1,
        n_probe_per_effect=12,
        base_latent_dim=8,
    ),
    controller=ControllerConfig(
        hidden=32,
        n_train_per_effect=24,
        n_val_per_effect=8,
        n_test_per_effect=8,
        regression_epochs=2,
        spsa_epochs=1,
        spsa_n_train=8,
        spsa_batch_size=8,
        batch_size=8,
        ablation_effects=("overdrive",),
    ),
    deepafx=DeepAFxConfig(batch_size=8, crop_samples=4096),
    plane=PlaneConfig(
        n_settings=60,
        n_clips=1,
        grid=8,
        umap_neighbors=8,
        n_heldout=12,
        n_epochs=60,
        effects=("overdrive", "ringmod", "ambience"),
    ),
    eval=EvalConfig(n_per_cell=4, ito_budget=8, bootstrap=50, ito_curve_budgets=(6, 12), ito_curve_clips=2),
)

_DEFAULT = Profile(name="default")

_PAPER = Profile(
    name="paper",
    data=DataConfig(half_seconds=65_536 / 24_000, corpus="paper", n_speech=5000, n_music=5000),
    effects=EffectsConfig(effect_set="mda", workers=8),
    # 2048 of the 2049 bins (drops Nyquist) so the conv VAE can halve it four times
    spec=SpecConfig(n_fft=4096, hop=1024, n_bins=2048),
    vae=VAEConfig(
        latent_dim=32,
        base_channels=32,
        epochs=100,
        batch_size=32,
        n_train_per_effect=5000,
        n_val_per_effect=500,
        ckpt_every_n_steps=500,
        # streams at its real sizes anyway; "always" makes the small fixture runs take the same path
        stream_data="always",
    ),
    sweep=SweepConfig(
        betas=(1e-4, 1e-3, 0.005, 0.05, 0.5, 2.0, 10.0),
        latent_dims=(8, 16, 32, 64),
        epochs=40,
        n_probe_per_effect=1000,
        base_latent_dim=32,
    ),
    controller=ControllerConfig(
        hidden=512,
        signals=("audio", "regression", "both"),
        ablation_effects=None,
        n_train_per_effect=5000,
        n_val_per_effect=500,
        n_test_per_effect=500,
        regression_epochs=100,
        spsa_epochs=30,
        spsa_n_train=None,
        spsa_batch_size=32,
        loss_hop_fraction=None,
        torch_threads=None,
    ),
    plane=PlaneConfig(n_settings=1000, n_clips=5, grid=64, n_heldout=100),
    eval=EvalConfig(n_per_cell=1000, ito_budget=200, bootstrap=2000, ito_curve_budgets=(12, 50, 200, 800)),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _DEFAULT, _PAPER)}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _parse(value: Any, tp: Any, key: str) -> Any:
    """``value`` converted to the annotated type ``tp``; ConfigError when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if isinstance(value, str) and str in others:
            return value  # a string where a string is allowed stays a string ("null" is a name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(
                    f"override {key}={value!r}: expected {_type_name(tp)} (write null for None)"
                ) from None
            if value is None:
                return None
        for a in others:
            try:
                return _parse(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"override {key}={value!r}: expected {_type_name(tp)}")
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"override {key}={value!r}: expected a string, got {type(value).__name__}")
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"override {key}={value!r}: cannot parse as {_type_name(tp)}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"override {key}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"override {key}={value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"override {key}={value!r}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"override {key}={value!r}: must be a finite number")
        return float(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"override {key}={value!r}: expected a list like [a, b]")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"override {key}={list(value)!r}: expected {len(args)} values, got {len(value)}")
        return tuple(_parse(v, a, key) for v, a in zip(value, args, strict=True))
    raise ConfigError(f"override {key}: unsupported field type {_type_name(tp)}")  # pragma: no cover


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert an override (often a string from the command line) to the field's annotated type."""
    try:
        return _parse(value, tp, key)
    except ConfigError as exc:
        if isinstance(value, str) and repr(value) not in str(exc):  # e.g. 1e400, parsed to inf
            raise ConfigError(f"{exc} (given as {value!r})") from None
        raise


def _check_rules(key: str, value: Any, rules: Mapping[str, Any]) -> None:
    """Raise ConfigError when ``value`` breaks one of the field's declared constraints."""
    if value is None or not rules:
        return
    items = list(value) if isinstance(value, tuple) else [value]
    if isinstance(value, tuple) and rules.get("nonempty") and not items:
        raise ConfigError(f"{key}: needs at least one value, got an empty list")
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not math.isfinite(v):
                raise ConfigError(f"{key}={v!r}: must be a finite number")
            if "min" in rules and v < rules["min"]:
                raise ConfigError(f"{key}={v!r}: must be >= {rules['min']}")
            if "max" in rules and v > rules["max"]:
                raise ConfigError(f"{key}={v!r}: must be <= {rules['max']}")
            if "gt" in rules and not v > rules["gt"]:
                raise ConfigError(f"{key}={v!r}: must be > {rules['gt']}")
            if "lt" in rules and not v < rules["lt"]:
                raise ConfigError(f"{key}={v!r}: must be < {rules['lt']}")
        if "choices" in rules and v not in rules["choices"]:
            raise ConfigError(f"{key}={v!r}: must be one of " + ", ".join(repr(c) for c in rules["choices"]))
    if "sum" in rules and abs(sum(items) - rules["sum"]) > 1e-6:
        raise ConfigError(
            f"{key}={list(items)!r}: the values must add up to {rules['sum']}, they add up to {sum(items):g}"
        )
    if rules.get("folder"):
        folder = Path(str(value)).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"{key}={value!r}: no such folder ({folder.resolve()}); give the path of a folder "
                "of audio files, or leave the override out to use no user folder"
            )


def validate(profile: Profile) -> Profile:
    """Check every field of ``profile`` against its declared constraints (ConfigError naming it)."""
    for f in fields(profile):
        sub = getattr(profile, f.name)
        if is_dataclass(sub):
            for g in fields(sub):
                _check_rules(f"{f.name}.{g.name}", getattr(sub, g.name), g.metadata)
        else:
            _check_rules(f.name, sub, f.metadata)
    split = profile.data.split
    if split[0] <= 0 or split[2] <= 0:
        raise ConfigError(f"data.split={list(split)!r}: the train (first) and test (last) fractions must be > 0")
    return profile


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a profile dataclass."""
    return typing.get_type_hints(cls)


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
        if parts[0] == "latent" and key not in valid_keys(profile):
            raise ConfigError(
                f"override {key!r}: the UMAP control plane's section is now called 'plane' "
                f"(use plane.{'.'.join(parts[1:])}); 'latent' always means the VAE latent"
            )
        if key not in valid_keys(profile):
            raise ConfigError(f"unknown override key {key!r}; valid keys are: " + ", ".join(valid_keys(profile)))
        if len(parts) == 1:
            profile = replace(profile, **{key: _coerce(value, _hints(Profile)[key], key)})
        else:
            section = getattr(profile, parts[0])
            new = _coerce(value, _hints(type(section))[parts[1]], key)
            profile = replace(profile, **{parts[0]: replace(section, **{parts[1]: new})})
    return validate(resolve_effect_set(profile))


def effect_set_reason(requested: str) -> tuple[str, str]:
    """The concrete effect set for ``requested`` and why: ("mda", "...") or ("portable", "...")."""
    if requested != "auto":
        return requested, "chosen by the profile or an override"
    if paths.mda_found():
        return "mda", f"auto: the study's mda plugins were found at {paths.mda_bundle()}"
    return "portable", (
        "auto: the mda plugins were not found (./run_all.sh --setup-only tries to get them), "
        "so the portable stand-ins are used"
    )


def resolve_effect_set(profile: Profile) -> Profile:
    """``profile`` with an ``auto`` effect set replaced by the set this machine can run."""
    if profile.effects.effect_set != "auto":
        return profile
    chosen, _ = effect_set_reason("auto")
    return replace(profile, effects=replace(profile.effects, effect_set=chosen))


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

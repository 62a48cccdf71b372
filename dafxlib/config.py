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


@dataclass(frozen=True)
class VAEConfig:
    mode: str = "joint"  # "joint" or "siamese"
    latent_dim: int = 16
    base_channels: int = 16
    beta: float = 0.05
    beta_schedule: str = "warmup"  # constant | warmup | cyclic
    warmup_epochs: int = 3
    reduction: str = "mean"  # "sum" or "mean"
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    #: training examples per seen effect (rendered once, cached)
    n_train_per_effect: int = 400
    n_val_per_effect: int = 80


@dataclass(frozen=True)
class SweepConfig:
    """Notebook 03: beta / latent size / joint-vs-siamese sweep."""

    betas: tuple[float, ...] = (1e-4, 0.05, 2.0)
    latent_dims: tuple[int, ...] = (8, 16)
    modes: tuple[str, ...] = ("joint", "siamese")
    epochs: int = 8
    #: held-out examples per effect used for probes / MI
    n_probe_per_effect: int = 100


@dataclass(frozen=True)
class ControllerConfig:
    hidden: int = 256
    #: which training signals to run: "audio" (SPSA only), "regression", "both"
    signals: tuple[str, ...] = ("regression", "both")
    #: effects on which the ablation "audio" (SPSA only) signal runs (None: all)
    ablation_effects: tuple[str, ...] | None = ("overdrive", "ringmod", "ambience")
    n_train_per_effect: int = 600
    n_val_per_effect: int = 60
    regression_epochs: int = 30
    spsa_epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    spsa_lr: float = 3e-4
    spsa_epsilon: float = 0.05


@dataclass(frozen=True)
class LatentConfig:
    n_settings: int = 600
    n_clips: int = 3
    grid: int = 32
    umap_neighbors: int = 15


@dataclass(frozen=True)
class EvalConfig:
    n_per_cell: int = 40
    #: renders per clip allowed to the inference-time optimisation baseline
    ito_budget: int = 60
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
        import hashlib

        d = self.to_dict()
        payload = {k: d[k] for k in (sections or [k for k in d if k != "name"])}
        payload["seed"] = self.seed
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


_SMOKE = Profile(
    name="smoke",
    data=DataConfig(half_seconds=0.5, n_speech=10, n_music=10),
    spec=SpecConfig(n_fft=256, hop=128, n_bins=64),
    vae=VAEConfig(latent_dim=8, base_channels=8, epochs=2, batch_size=16, warmup_epochs=1,
                  n_train_per_effect=24, n_val_per_effect=8),
    sweep=SweepConfig(betas=(1e-4, 2.0), latent_dims=(8,), modes=("joint", "siamese"),
                      epochs=1, n_probe_per_effect=12),
    controller=ControllerConfig(hidden=32, n_train_per_effect=24, n_val_per_effect=8,
                                regression_epochs=2, spsa_epochs=1, batch_size=8,
                                ablation_effects=("overdrive",)),
    latent=LatentConfig(n_settings=60, n_clips=1, grid=8, umap_neighbors=8),
    eval=EvalConfig(n_per_cell=4, ito_budget=8, bootstrap=50),
)

_DEFAULT = Profile(name="default")

_PAPER = Profile(
    name="paper",
    data=DataConfig(half_seconds=65_536 / 24_000, corpus="paper", n_speech=5000, n_music=5000),
    effects=EffectsConfig(effect_set="mda", workers=8),
    spec=SpecConfig(n_fft=4096, hop=1024, n_bins=None),
    vae=VAEConfig(latent_dim=32, base_channels=32, epochs=100, batch_size=32,
                  n_train_per_effect=5000, n_val_per_effect=500),
    sweep=SweepConfig(betas=(1e-4, 1e-3, 0.05, 0.5, 2.0, 10.0), latent_dims=(8, 16, 32, 64),
                      epochs=40, n_probe_per_effect=1000),
    controller=ControllerConfig(hidden=512, signals=("audio", "regression", "both"),
                                ablation_effects=None, n_train_per_effect=5000,
                                n_val_per_effect=500, regression_epochs=100, spsa_epochs=30),
    latent=LatentConfig(n_settings=1000, n_clips=5, grid=64),
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

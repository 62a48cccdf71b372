"""The frozen encoder other stages use: audio pair -> mean latent, plus level features.

:class:`AudioEncoder` bundles a trained :class:`~dafxlib.models.vae.SpecVAE` with the
:class:`~dafxlib.spectrogram.Spectrogrammer` it was trained with. ``embed(x, y)`` turns a
batch of (clean, effected) audio into normalised spectrogram pairs and returns the
encoder's *mean* (no sampling, eval mode: deterministic).

Notebook 03 saves the selected model with :meth:`AudioEncoder.save` and writes
``selected_model.json``; :func:`load_selected_encoder` reads both.

Per-image normalisation removes absolute level from the images, so stages that need it
(the controller: output-gain knobs) add :func:`level_features`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import paths, storage
from ..audio import peak_db, rms_db
from ..errors import AudioError, ConfigError, MissingArtifactError
from ..spectrogram import NormStats, Spectrogrammer
from .vae import SpecVAE

__all__ = [
    "AudioEncoder",
    "load_selected_encoder",
    "level_features",
    "LEVEL_FEATURES",
    "SELECTED_JSON",
    "SELECTED_CKPT",
]

SELECTED_JSON = "selected_model.json"
SELECTED_CKPT = "selected_encoder.pt"
LEVEL_FEATURES = ("rms_db_x", "rms_db_y", "rms_db_diff", "peak_db_diff")


def _batch(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise AudioError(f"{name}: expected (batch, samples) audio, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise AudioError(f"{name}: audio contains NaN or inf")
    return a


def level_features(x: Any, y: Any) -> np.ndarray:
    """(B, 4) float32: RMS dB of x, RMS dB of y, their difference, peak-dB difference.

    The levels the spectrogram normalisation hides (:func:`dafxlib.audio.rms_db` and
    :func:`~dafxlib.audio.peak_db`, float64, the one silence floor).
    """
    x, y = _batch(x, "x"), _batch(y, "y")
    if x.shape[0] != y.shape[0]:
        raise AudioError(f"x and y batch sizes differ: {x.shape[0]} vs {y.shape[0]}")

    rx, ry = np.asarray(rms_db(x, axis=1)), np.asarray(rms_db(y, axis=1))
    px, py = np.asarray(peak_db(x, axis=1)), np.asarray(peak_db(y, axis=1))
    return np.stack([rx, ry, ry - rx, py - px], 1).astype(np.float32)


class AudioEncoder:
    """A frozen VAE encoder usable on audio: ``embed(x, y) -> (B, dim)`` mean latents."""

    def __init__(
        self,
        vae: SpecVAE,
        spectrogrammer: Spectrogrammer,
        *,
        name: str = "",
        info: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ):
        if tuple(vae.shape) != tuple(spectrogrammer.shape):
            raise ConfigError(f"VAE shape {vae.shape} does not match the spectrogram shape {spectrogrammer.shape}")
        self.vae = vae.to(device).eval()
        for p in self.vae.parameters():
            p.requires_grad_(False)
        self.spectrogrammer = spectrogrammer
        self.name = name
        self.info = dict(info or {})
        self.device = torch.device(device)

    # -- facts
    @property
    def dim(self) -> int:
        return self.vae.latent_dim

    @property
    def mode(self) -> str:
        return self.vae.mode

    @property
    def sample_rate(self) -> int:
        return self.spectrogrammer.sample_rate

    @property
    def n_samples(self) -> int:
        return self.spectrogrammer.n_samples

    def __repr__(self) -> str:
        return f"<AudioEncoder {self.name or ''} mode={self.mode} dim={self.dim} sr={self.sample_rate}>"

    # -- embedding
    def images(self, x: Any, y: Any) -> tuple[torch.Tensor, NormStats]:
        return self.spectrogrammer.images(_batch(x, "x"), _batch(y, "y"))

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Mean latents of normalised (B, 2, F, T) images."""
        out = []
        for s in range(0, images.shape[0], batch_size):
            mu, _ = self.vae.encode(images[s : s + batch_size].float().to(self.device))
            out.append(mu.cpu())
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def posterior(self, images: torch.Tensor, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) of normalised images, each (B, dim)."""
        mus, lvs = [], []
        for s in range(0, images.shape[0], batch_size):
            mu, lv = self.vae.encode(images[s : s + batch_size].float().to(self.device))
            mus.append(mu.cpu())
            lvs.append(lv.cpu())
        return torch.cat(mus).numpy(), torch.cat(lvs).numpy()

    def embed(self, x: Any, y: Any, batch_size: int = 64) -> np.ndarray:
        """(B, N) clean and (B, N) effected audio -> (B, dim) float32 mean embedding."""
        x, y = _batch(x, "x"), _batch(y, "y")
        if x.shape != y.shape:
            raise AudioError(f"x and y shapes differ: {x.shape} vs {y.shape}")
        out = []
        for s in range(0, x.shape[0], batch_size):
            im, _ = self.spectrogrammer.images(x[s : s + batch_size], y[s : s + batch_size])
            out.append(self.embed_images(im, batch_size))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def decode(self, z: Any, clean: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dim) latents -> normalised (B, 2, F, T) images.

        A decoder conditioned on the clean image (``vae.condition``) needs ``clean``:
        (B, 1, F, T) or (1, 1, F, T) (broadcast), normalised like the training images.
        """
        z = torch.as_tensor(np.asarray(z, np.float32)).reshape(-1, self.dim).to(self.device)
        if self.vae.condition:
            if clean is None:
                raise ConfigError("this encoder's decoder is conditioned on the clean image: pass clean=")
            clean = clean.float().to(self.device)
            if clean.shape[0] == 1 and z.shape[0] > 1:
                clean = clean.expand(z.shape[0], *clean.shape[1:])
        else:
            clean = None
        return self.vae.decode(z, clean).cpu()

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decode the mean latent of each image: (B, 2, F, T) -> (B, 2, F, T)."""
        return self.decode(self.embed_images(images), images[:, :1])

    def to_audio(self, images: torch.Tensor, stats: NormStats, n_iter: int = 32) -> np.ndarray:
        """Griffin-Lim audio (B, 2, N) for listening; ``stats`` restores the level."""
        return self.spectrogrammer.to_audio(images, stats, n_iter=n_iter)

    # -- persistence
    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        v = self.vae
        storage.torch_save(
            {
                "state_dict": {k: t.detach().cpu() for k, t in v.state_dict().items()},
                "vae": {
                    "shape": list(v.shape),
                    "latent_dim": v.latent_dim,
                    "base_channels": v.base_channels,
                    "mode": v.mode,
                    "head": v.head,
                    "condition": v.condition,
                },
                "spec": asdict(self.spectrogrammer.spec),
                "sample_rate": self.sample_rate,
                "n_samples": self.n_samples,
                "name": self.name,
                "info": {**self.info, **dict(extra or {})},
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> AudioEncoder:
        from ..config import SpecConfig

        blob = torch.load(path, map_location="cpu", weights_only=False)
        spec_d = dict(blob["spec"])
        spec = SpecConfig(**{k: v for k, v in spec_d.items() if k in SpecConfig.__dataclass_fields__})
        v = blob["vae"]
        vae = SpecVAE(
            tuple(v["shape"]),
            v["latent_dim"],
            v["base_channels"],
            v["mode"],
            v.get("head", "flatten"),
            v.get("condition", False),
        )
        vae.load_state_dict(blob["state_dict"])
        sp = Spectrogrammer(spec, blob["sample_rate"], blob["n_samples"])
        return cls(vae, sp, name=blob.get("name", ""), info=blob.get("info", {}), device=device)

    @classmethod
    def from_module(
        cls,
        module,
        spectrogrammer: Spectrogrammer,
        name: str = "",
        info: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> AudioEncoder:
        """Wrap a trained :class:`~dafxlib.models.vae.VAEModule` (its VAE is copied) on ``device``."""
        import copy

        return cls(copy.deepcopy(module.vae).cpu(), spectrogrammer, name=name, info=info, device=device)


def load_selected_encoder(profile, device: str | torch.device | None = None) -> AudioEncoder:
    """The encoder notebook 03 selected for ``profile`` (raises MissingArtifactError if absent),
    on ``device`` (default: the profile's ``runtime.device``, i.e. the GPU when there is one)."""
    meta_path = paths.require_artifact(profile.name, SELECTED_JSON, made_by="03_beta_tuning")
    meta = storage.read_json(meta_path, {})
    ckpt = paths.artifact_path(profile.name, meta.get("checkpoint", SELECTED_CKPT))
    if not ckpt.exists():
        raise MissingArtifactError(
            f"{SELECTED_JSON} names {ckpt}, which is missing; re-run notebook "
            f"03_beta_tuning for profile {profile.name!r}"
        )
    if device is None:
        from ..training import resolve_device

        device = resolve_device(profile.runtime.device)
    enc = AudioEncoder.load(ckpt, device=str(device))
    if enc.sample_rate != profile.data.sample_rate or enc.n_samples != profile.half_samples:
        raise ConfigError(
            f"the selected encoder works on {enc.n_samples} samples at {enc.sample_rate} Hz, "
            f"profile {profile.name!r} has {profile.half_samples} at {profile.data.sample_rate} Hz;"
            f" re-run notebook 03_beta_tuning with this profile"
        )
    enc.info.setdefault("selection", meta)
    return enc

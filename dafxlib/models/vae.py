"""Convolutional beta-VAE over (clean, effected) spectrogram pairs.

Two modes (as in the study):

- ``joint``: the clean and effected images are stacked as 2 input channels; one encoder
  sees both, so it can encode *what changed* directly.
- ``siamese``: one shared 1-channel encoder embeds the clean and the effected image
  separately; each branch yields ``latent_dim // 2`` dimensions and the two are
  concatenated (clean first), so both modes have the same total latent size.

In both modes one decoder maps the whole latent back to both channels (B, 2, F, T).
(In siamese mode this is the only place where the two halves meet.)

Encoder: four stride-2 4x4 convolutions (channels c, 2c, 4c, 4c with
``c = base_channels``), BatchNorm and LeakyReLU, then a linear layer to the Gaussian's
mean and log-variance. ``head="flatten"`` feeds it the whole final feature map (the study's
design); ``head="stats"`` feeds it the mean and standard deviation over time of every
(channel, frequency) row, so the embedding describes the pair's spectral statistics rather
than where events happen, and (x, y_ref) pairs, whose halves are not time-aligned, embed
like (x, y) pairs.

Decoder: the mirror image with transposed convolutions and a linear output (the targets
are per-image normalised). ``condition=True`` also gives it the *clean* image, U-Net style
(clean-image features added at every scale plus a scaled copy at the output): the decoder
then has the source's content for free and the latent is pushed to encode what the effect
did. Without conditioning, a small latent mostly encodes the content of the two
spectrograms and effects are hard to tell apart from it (in development runs on the default
profile a logistic effect probe on the unconditioned model stayed below 0.5 on 4 effects).
Input height and width must be multiples of 16 (the Spectrogrammer pads time).

Loss (:func:`vae_loss`): Gaussian reconstruction (squared error) + ``beta`` * KL to N(0, I),
with an explicit ``reduction``:

- ``"sum"``: squared error summed over pixels and channels, KL summed over latent dims,
  both averaged over the batch (the ELBO per example);
- ``"mean"``: squared error averaged over pixels and channels, KL averaged over latent
  dims, both averaged over the batch. A "mean" beta equals a "sum" beta of
  ``beta * n_pixels / latent_dim`` (0.05 -> ~150 for 2x256x96 images and 16 dims): a strong
  bottleneck.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from ..errors import ConfigError
from ..training import beta_at

__all__ = ["SpecVAE", "VAEModule", "vae_loss", "kl_divergence", "MODES", "REDUCTIONS"]

MODES = ("joint", "siamese")
HEADS = ("flatten", "stats")
REDUCTIONS = ("sum", "mean")
N_DOWN = 4


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int, last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)]
    if not last:
        layers += [nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def _channels(base: int) -> list[int]:
    return [base, 2 * base, 4 * base, 4 * base]


class _Encoder(nn.Module):
    """Conv stack + head. ``head="flatten"``: linear layer on the whole feature map;
    ``head="stats"``: mean and std over time of each (channel, frequency) feature row
    (content timing is discarded, the pair need not be time-aligned)."""

    def __init__(self, in_ch: int, base: int, shape: tuple[int, int], out_dim: int, head: str = "flatten"):
        super().__init__()
        ch = _channels(base)
        self.convs = nn.Sequential(*[_block(a, b) for a, b in zip([in_ch] + ch[:-1], ch)])
        h, w = shape[0] >> N_DOWN, shape[1] >> N_DOWN
        self.head_kind = head
        n_in = ch[-1] * h * w if head == "flatten" else ch[-1] * h * 2
        self.head = nn.Linear(n_in, 2 * out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x)
        if self.head_kind == "stats":
            h = torch.cat([h.mean(-1), h.std(-1, correction=0)], dim=-1)
        mu, logvar = self.head(h.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class _Decoder(nn.Module):
    """Latent -> (B, 2, F, T).

    With ``condition`` the decoder also sees the clean image, U-Net style: a small conv stack
    computes clean-image features at every scale of the decoder (1/16 ... 1/2), which are
    added to the decoder's feature maps, and the full-resolution clean image, scaled per output
    channel, is added to the output. The latent then need not carry the source's content,
    only what the effect did to it.
    """

    def __init__(self, out_ch: int, base: int, shape: tuple[int, int], latent_dim: int, condition: bool = False):
        super().__init__()
        ch = _channels(base)
        self.h, self.w = shape[0] >> N_DOWN, shape[1] >> N_DOWN
        self.c0 = ch[-1]
        self.condition = condition
        self.fc = nn.Sequential(nn.Linear(latent_dim, ch[-1] * self.h * self.w), nn.LeakyReLU(0.2))
        rev = ch[::-1]
        self.ups = nn.ModuleList([_up(a, b) for a, b in zip(rev[:-1], rev[1:])])
        self.last = _up(rev[-1], out_ch, last=True)
        if condition:
            self.cond = nn.ModuleList([_block(a, b) for a, b in zip([1] + ch[:-1], ch)])
            self.skip = nn.Parameter(torch.full((1, out_ch, 1, 1), 0.5))

    def forward(self, z: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor:
        y = self.fc(z).view(-1, self.c0, self.h, self.w)
        if not self.condition:
            for up in self.ups:
                y = up(y)
            return self.last(y)
        if clean is None:
            raise ConfigError("this VAE's decoder is conditioned on the clean image: pass clean=")
        feats, c = [], clean
        for blk in self.cond:
            c = blk(c)
            feats.append(c)  # scales 1/2, 1/4, 1/8, 1/16
        y = y + feats[-1]
        for up, f in zip(self.ups, feats[-2::-1]):
            y = up(y) + f
        return self.last(y) + self.skip * clean


class SpecVAE(nn.Module):
    """Conv beta-VAE on (B, 2, F, T) normalised spectrogram pairs; see the module docstring."""

    def __init__(
        self,
        shape: tuple[int, int],
        latent_dim: int = 16,
        base_channels: int = 16,
        mode: str = "joint",
        head: str = "flatten",
        condition: bool = False,
    ):
        super().__init__()
        if head not in HEADS:
            raise ConfigError(f"unknown encoder head {head!r}; valid: {', '.join(HEADS)}")
        if mode not in MODES:
            raise ConfigError(f"unknown VAE mode {mode!r}; valid: {', '.join(MODES)}")
        f, t = int(shape[0]), int(shape[1])
        m = 1 << N_DOWN
        if f % m or t % m or f < m or t < m:
            raise ConfigError(
                f"spectrogram shape {shape} must be multiples of {m} (set spec.n_bins and "
                f"spec.frame_multiple accordingly)"
            )
        if latent_dim < 1 or (mode == "siamese" and latent_dim % 2):
            raise ConfigError(f"latent_dim={latent_dim} must be >= 1 (and even in siamese mode)")
        if base_channels < 1:
            raise ConfigError(f"base_channels must be >= 1, got {base_channels}")
        self.shape, self.latent_dim, self.mode = (f, t), int(latent_dim), mode
        self.base_channels = int(base_channels)
        self.head, self.condition = head, bool(condition)
        if mode == "joint":
            self.encoder = _Encoder(2, base_channels, (f, t), latent_dim, head)
        else:
            self.encoder = _Encoder(1, base_channels, (f, t), latent_dim // 2, head)
        self.decoder = _Decoder(2, base_channels, (f, t), latent_dim, self.condition)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 2, F, T) -> (mu, logvar), each (B, latent_dim)."""
        if images.ndim != 4 or images.shape[1] != 2 or tuple(images.shape[2:]) != self.shape:
            raise ConfigError(f"expected images (B, 2, {self.shape[0]}, {self.shape[1]}), got {tuple(images.shape)}")
        if self.mode == "joint":
            return self.encoder(images)
        b = images.shape[0]
        both = torch.cat([images[:, :1], images[:, 1:]], dim=0)  # clean batch, then effected batch
        mu, logvar = self.encoder(both)
        return (torch.cat([mu[:b], mu[b:]], dim=1), torch.cat([logvar[:b], logvar[b:]], dim=1))

    def decode(self, z: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent_dim) -> (B, 2, F, T); ``clean`` (B, 1, F, T) when the decoder is conditioned."""
        return self.decoder(z, clean)

    def forward(self, images: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None):
        """Returns (reconstruction, mu, logvar, z); ``sample=False`` decodes the mean."""
        mu, logvar = self.encode(images)
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + eps * torch.exp(0.5 * logvar)
        else:
            z = mu
        return self.decode(z, images[:, :1] if self.condition else None), mu, logvar, z


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example and dimension, shape (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(
    recon: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
    reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction term, KL term); see the module docstring for ``reduction``."""
    if reduction not in REDUCTIONS:
        raise ConfigError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
    se = (recon - target).pow(2).flatten(1)
    kl = kl_divergence(mu, logvar)
    if reduction == "sum":
        rec, klt = se.sum(1).mean(), kl.sum(1).mean()
    else:
        rec, klt = se.mean(1).mean(), kl.mean(1).mean()
    return rec + beta * klt, rec, klt


class VAEModule(pl.LightningModule):
    """Lightning wrapper: beta schedule, Adam (constant or cosine-annealed learning rate, per
    step down to 5 % of ``lr``), logs train/val ``loss``, ``recon``, ``kl``.

    Batches are tensors (B, 2, F, T) or tuples whose first item is. Weights are
    initialised from ``init_seed`` (independent of global RNG state).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        latent_dim: int = 16,
        base_channels: int = 16,
        mode: str = "joint",
        beta: float = 0.05,
        beta_schedule: str = "warmup",
        warmup_epochs: float = 3,
        cycle_epochs: float = 0,
        reduction: str = "mean",
        lr: float = 2e-3,
        init_seed: int = 0,
        head: str = "flatten",
        condition: bool = False,
        lr_schedule: str = "constant",
    ):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
        beta_at(0.0, beta_schedule, beta, warmup_epochs, cycle_epochs)  # validates
        if lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; valid: 'constant', 'cosine'")
        self.save_hyperparameters()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(init_seed))
            self.vae = SpecVAE((int(shape[0]), int(shape[1])), latent_dim, base_channels, mode, head, condition)

    def current_beta(self, batch_idx: int = 0) -> float:
        hp: Any = self.hparams
        n = self.trainer.num_training_batches if self._trainer is not None else 0
        frac = batch_idx / n if n and n != float("inf") else 0.0
        return beta_at(self.current_epoch + frac, hp.beta_schedule, hp.beta, hp.warmup_epochs, hp.cycle_epochs)

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def training_step(self, batch, batch_idx):
        x = self._images(batch).float()
        recon, mu, logvar, _ = self.vae(x)
        beta = self.current_beta(batch_idx)
        loss, rec, kl = vae_loss(recon, x, mu, logvar, beta, self.hparams.reduction)
        self.log_dict(
            {"train_loss": loss, "train_recon": rec, "train_kl": kl, "beta": float(beta)},
            on_step=True,
            on_epoch=False,
            batch_size=x.shape[0],
        )
        return loss

    def validation_step(self, batch, batch_idx):
        x = self._images(batch).float()
        recon, mu, logvar, _ = self.vae(x, sample=False)
        loss, rec, kl = vae_loss(recon, x, mu, logvar, self.hparams.beta, self.hparams.reduction)
        self.log_dict(
            {"val_loss": loss, "val_recon": rec, "val_kl": kl},
            on_step=False,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=True,
        )  # DDP: mean over processes

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_schedule == "constant" or self._trainer is None:
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=self.hparams.lr * 0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

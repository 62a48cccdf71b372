"""What a trained VAE latent holds: active units, effect probes, parameter MI, ELBO terms.

Definitions used in the report (notebook 03):

- **active units**: latent dimensions whose posterior *mean* varies across examples,
  ``Var_x[mu_d(x)] > 0.01`` (Burda et al. 2016); collapsed dimensions carry no information.
- **probe accuracy**: a logistic-regression classifier (standardised inputs) predicts the
  effect from mean latents. Seen effects: trained on latents of *train-split* clips, tested
  on latents of held-out *test-split* clips. Unseen effects (never in VAE training): the same
  protocol on their own latents (train clips -> test clips). Chance is 1 / n_effects.
- **mutual information**: ``sklearn.feature_selection.mutual_info_regression`` (k-NN
  estimator, nats) between each latent dimension and each normalised parameter, within one
  effect. A parameter's MI is the **maximum over latent dimensions** (how well the single
  best dimension tracks the knob); ``mi_mean`` averages that over parameters (and effects).
- **recon / kl**: on validation images, the mean squared error per pixel of the decoded
  *mean* latent (normalised units; 1.0 = predicting the image mean) and the KL to the prior
  in nats per example (summed over dimensions). ``recon_clean`` / ``recon_effected`` split
  the error by channel (a decoder conditioned on the clean image makes the first trivial).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DatasetError

__all__ = [
    "ACTIVE_THRESHOLD",
    "latent_variances",
    "active_units",
    "ProbeResult",
    "probe",
    "mutual_information",
    "mi_summary",
    "reconstruction_stats",
    "latent_distance_ratio",
]

ACTIVE_THRESHOLD = 0.01


def latent_variances(mu: np.ndarray) -> np.ndarray:
    """Variance across examples of each mean-latent dimension, (D,)."""
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2 or mu.shape[0] < 2:
        raise DatasetError(f"need (N >= 2, D) mean latents, got shape {mu.shape}")
    return mu.var(axis=0)


def active_units(mu: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Number of dimensions with ``Var[mu_d] > threshold``."""
    return int((latent_variances(mu) > threshold).sum())


@dataclass
class ProbeResult:
    accuracy: float
    classes: list[str]
    #: rows: true class, columns: predicted class (counts)
    confusion: np.ndarray
    n_train: int
    n_test: int

    @property
    def chance(self) -> float:
        return 1.0 / max(1, len(self.classes))

    def per_class(self) -> dict[str, float]:
        tot = self.confusion.sum(1)
        return {c: float(self.confusion[i, i] / tot[i]) if tot[i] else float("nan") for i, c in enumerate(self.classes)}


def probe(
    z_train: np.ndarray,
    y_train: Sequence | np.ndarray,
    z_test: np.ndarray,
    y_test: Sequence | np.ndarray,
    *,
    seed: int = 0,
    C: float = 1.0,
) -> ProbeResult:
    """Logistic-regression effect probe: fit on (z_train, y_train), score on the test set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z_train, z_test = np.asarray(z_train, np.float64), np.asarray(z_test, np.float64)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(z_train) != len(ytr) or len(z_test) != len(yte):
        raise DatasetError("probe: latents and labels have different lengths")
    classes = sorted(set(ytr.tolist()))
    if len(classes) < 2:
        raise DatasetError(f"probe needs at least two classes in training, got {classes}")
    unknown = sorted(set(yte.tolist()) - set(classes))
    if unknown:
        raise DatasetError(f"probe: test labels {unknown} never occur in training")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    clf.fit(z_train, ytr)
    pred = clf.predict(z_test)
    idx = {c: i for i, c in enumerate(classes)}
    conf = np.zeros((len(classes), len(classes)), int)
    for t, p in zip(yte, pred):
        conf[idx[t], idx[p]] += 1
    return ProbeResult(float((pred == yte).mean()), [str(c) for c in classes], conf, len(z_train), len(z_test))


def mutual_information(z: np.ndarray, params: np.ndarray, *, seed: int = 0, n_neighbors: int = 3) -> np.ndarray:
    """MI (nats) between each latent dim and each parameter: (D, P) matrix."""
    from sklearn.feature_selection import mutual_info_regression

    z, params = np.asarray(z, np.float64), np.asarray(params, np.float64)
    if params.ndim != 2 or len(z) != len(params):
        raise DatasetError(f"need z (N, D) and params (N, P) with equal N, got {z.shape} and {params.shape}")
    if len(z) <= n_neighbors + 1:
        raise DatasetError(f"mutual_information needs more than {n_neighbors + 1} examples, got {len(z)}")
    out = np.zeros((z.shape[1], params.shape[1]))
    for j in range(params.shape[1]):
        out[:, j] = mutual_info_regression(z, params[:, j], n_neighbors=n_neighbors, random_state=seed)
    return out


def mi_summary(mi: np.ndarray, param_names: Sequence[str]) -> dict[str, float]:
    """Per-parameter MI (max over latent dims) plus their mean under ``"mean"``."""
    mi = np.asarray(mi)
    if mi.shape[1] != len(param_names):
        raise ConfigError(f"mi has {mi.shape[1]} parameter columns, got {len(param_names)} names")
    per = {str(n): float(mi[:, j].max()) for j, n in enumerate(param_names)}
    per["mean"] = float(np.mean([per[str(n)] for n in param_names])) if len(param_names) else float("nan")
    return per


@torch.no_grad()
def reconstruction_stats(vae, images: Any, labels: Sequence | None = None, batch_size: int = 64) -> dict[str, float]:
    """Mean per-pixel squared error of the mean-latent reconstruction and KL (nats/example).

    ``vae`` is a :class:`~dafxlib.models.vae.SpecVAE` (put in eval mode here). ``images``: a
    (B, 2, F, T) tensor or anything sliced like one (``shape[0]``, ``images[s:e]``, e.g. the
    per-batch :class:`dafxlib.betavae.data.SpecImages`): one batch is held at a time. With
    ``labels``, ``recon_<label>`` per group is added.
    """
    from ..models.vae import kl_divergence

    was = vae.training
    vae.eval()
    dev = next(vae.parameters()).device
    errs, kls = [], []
    for s in range(0, images.shape[0], batch_size):
        x = images[s : s + batch_size].float().to(dev)
        recon, mu, logvar, _ = vae(x, sample=False)
        errs.append((recon - x).pow(2).flatten(2).mean(2).cpu())  # (B, channels)
        kls.append(kl_divergence(mu, logvar).sum(1).cpu())
    vae.train(was)
    per_ch, kl = torch.cat(errs).numpy(), torch.cat(kls).numpy()
    err = per_ch.mean(1)
    out = {"recon": float(err.mean()), "kl": float(kl.mean())}
    if per_ch.shape[1] == 2:
        out["recon_clean"], out["recon_effected"] = (float(v) for v in per_ch.mean(0))
    if labels is not None:
        labs = np.asarray(labels)
        for lab in sorted(set(labs.tolist())):
            out[f"recon_{lab}"] = float(err[labs == lab].mean())
    return out


def latent_distance_ratio(groups_same: Sequence[np.ndarray], groups_other: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean pairwise latent distance within ``groups_same`` (e.g. one pair at several gains)
    versus within ``groups_other`` (e.g. one clip under several effects), and their ratio."""

    def mean_pdist(groups):
        ds = []
        for g in groups:
            g = np.asarray(g, np.float64)
            for i in range(len(g)):
                for j in range(i + 1, len(g)):
                    ds.append(np.linalg.norm(g[i] - g[j]))
        if not ds:
            raise DatasetError("latent_distance_ratio: every group needs at least two members")
        return float(np.mean(ds))

    same, other = mean_pdist(groups_same), mean_pdist(groups_other)
    return {"within": same, "across": other, "ratio": same / other if other > 0 else float("inf")}

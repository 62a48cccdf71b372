"""One VAE run measured: reconstruction, KL, active units, effect probes and parameter mutual information."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import DatasetError
from ..pairs import Examples
from . import probes
from .data import ProbeData, VAEData
from .train import VAERun


def _key(s: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in s.lower()).strip("_")


#: examples read and embedded at a time (a multiple of the encoder's batch of 64, so the
#: batches and the latents are those of one call over the whole set)
EMBED_CHUNK = 1024


def embed_examples(encoder, examples: Mapping[str, Examples], source: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Mean latents of (x, y) (or (x, y_ref)) for several effects -> (Z, effect labels).

    The audio is read :data:`EMBED_CHUNK` examples at a time (it may stay on disk,
    :meth:`dafxlib.pairs.Examples.load`), so only the latents grow with the number of examples."""
    zs, labels = [], []
    for k, ex in examples.items():
        other = getattr(ex, source)
        for s in range(0, len(ex), EMBED_CHUNK):
            zs.append(encoder.embed(ex.x[s : s + EMBED_CHUNK], other[s : s + EMBED_CHUNK]))
        labels += [k] * len(ex)
    if not zs:
        raise DatasetError("embed_examples: no examples")
    return np.concatenate(zs), np.array(labels)


def evaluate_run(run: VAERun, data: VAEData, probe_data: ProbeData, *, seed: int = 0) -> dict[str, float]:
    """recon, kl, active_units, probe_seen, probe_unseen, mi_mean and per-parameter MI."""
    enc = run.encoder
    out: dict[str, float] = {}
    rs = probes.reconstruction_stats(enc.vae, data.val_ds.images, labels=[data.effects[i] for i in data.val_ds.labels])
    out["recon"], out["kl"] = rs["recon"], rs["kl"]
    if "recon_effected" in rs:
        out["recon_effected"] = rs["recon_effected"]
    z_tr = enc.embed_images(data.train_ds.images)
    y_tr = np.array([data.effects[i] for i in data.train_ds.labels])
    out["active_units"] = probes.active_units(z_tr)
    z_te, y_te = embed_examples(enc, probe_data.seen_test)
    pr = probes.probe(z_tr, y_tr, z_te, y_te, seed=seed)
    out["probe_seen"] = pr.accuracy
    for k, acc in pr.per_class().items():
        out[f"probe_seen_{k}"] = acc
    if probe_data.unseen_train:
        zu_tr, yu_tr = embed_examples(enc, probe_data.unseen_train)
        zu_te, yu_te = embed_examples(enc, probe_data.unseen_test)
        out["probe_unseen"] = probes.probe(zu_tr, yu_tr, zu_te, yu_te, seed=seed).accuracy
    mis = []
    for k, ex in probe_data.seen_test.items():
        z = z_te[y_te == k]
        summ = probes.mi_summary(probes.mutual_information(z, ex.p, seed=seed), ex.param_names)
        for pname, v in summ.items():
            if pname != "mean":
                out[f"mi_{k}_{_key(pname)}"] = v
        mis.append(summ["mean"])
    out["mi_mean"] = float(np.mean(mis))
    return out

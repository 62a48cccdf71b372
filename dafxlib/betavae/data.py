"""VAE training and probe data: cached examples of the seen (and unseen) effects and their spectrogram datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..pairs import Examples, PairSpecDataset, cached_examples
from ..spectrogram import Spectrogrammer


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
    from ..corpus import build_corpus

    return build_corpus(profile)


def _seen() -> tuple[str, ...]:
    from ..effects import SEEN

    return SEEN


def _unseen() -> tuple[str, ...]:
    from ..effects import UNSEEN

    return UNSEEN


def load_vae_data(profile, *, corpus=None, effects: Sequence[str] | None = None) -> VAEData:
    """Seen-effect examples (train/val splits, rendered once and cached) and their datasets."""
    corpus = _corpus(profile, corpus)
    keys = tuple(effects or _seen())
    v = profile.vae
    train = {k: cached_examples(profile, k, "train", v.n_train_per_effect, "vae", corpus=corpus) for k in keys}
    val = {k: cached_examples(profile, k, "val", v.n_val_per_effect, "vae", corpus=corpus) for k in keys}
    sp = Spectrogrammer(profile.spec, profile.data.sample_rate, profile.half_samples)
    return VAEData(
        profile, sp, train, val, PairSpecDataset(list(train.values()), sp), PairSpecDataset(list(val.values()), sp)
    )


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

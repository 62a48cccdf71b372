"""VAE training and probe data: cached examples of the seen (and unseen) effects and their spectrogram datasets.

By default the examples stay on disk (:meth:`dafxlib.pairs.Examples.load` with ``lazy=True``:
rows read on demand) and :class:`StreamingPairDataset` computes each batch's spectrogram
images when the batch is asked for, so memory does not grow with the number of examples
(at the paper's sizes, 5,000 examples per effect, the images and audio held in memory took
about 45-50 GB). The images are the same, to the bit, as :class:`dafxlib.pairs.PairSpecDataset`
computes and stores (the STFT and the per-image normalisation do not depend on the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError
from ..pairs import Examples, PairSpecDataset, cached_examples
from ..spectrogram import NormStats, Spectrogrammer


class SpecImages:
    """The images of a :class:`StreamingPairDataset`, computed when indexed.

    Stands in for the stored image tensor: ``shape``, ``len`` and indexing by an int, a slice
    or an index sequence (a tensor of ``dtype`` back), so code that walks images in batches
    (``images[s : s + 64]``) keeps one batch in memory. ``materialise()`` computes them all.
    """

    def __init__(self, ds: StreamingPairDataset):
        self._ds = ds

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._ds), *self._ds.item_shape)

    @property
    def dtype(self) -> torch.dtype:
        return self._ds.dtype

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, key: Any) -> torch.Tensor:
        n = len(self._ds)
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if int(key) < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"image {int(key)} out of range for {n} images")
            return self._ds.batch_images([i])[0]
        if isinstance(key, slice):
            return self._ds.batch_images(np.arange(n)[key])
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._ds.batch_images(idx.reshape(-1))

    def materialise(self, chunk: int = 128) -> torch.Tensor:
        """Every image in one tensor (memory grows with the number of examples: tests, small sets)."""
        n = len(self._ds)
        return torch.cat([self[s : s + chunk] for s in range(0, n, chunk)]) if n else self[0:0]


class StreamingPairDataset(Dataset):
    """Normalised (clean x, effected y) images of lists of :class:`Examples`, computed per batch.

    Same items as :class:`dafxlib.pairs.PairSpecDataset` (``(image (2, F, T) float32, effect
    index int64)``, the image rounded through ``dtype`` as that class stores it), same
    ``effects``, ``labels``, ``params``, ``clip_ids`` and ``stats``, but nothing proportional to
    the audio or the images is held: the examples may be on-disk row readers and each image is
    computed when its batch is asked for (``__getitems__``, one STFT call per effect in the
    batch). ``images`` is a :class:`SpecImages` view; ``stats`` is computed on first use
    (only the statistics are kept).
    """

    def __init__(
        self,
        examples: Sequence[Examples],
        spectrogrammer: Spectrogrammer,
        *,
        source: str = "y",
        dtype: torch.dtype = torch.float16,
    ):
        if not examples:
            raise DatasetError("StreamingPairDataset needs at least one Examples set")
        if source not in ("y", "y_ref"):
            raise DatasetError(f"source must be 'y' or 'y_ref', got {source!r}")
        self.spectrogrammer = spectrogrammer
        self.dtype = dtype
        self.examples = list(examples)
        self.effects = [e.effect for e in self.examples]
        self._x = [e.x for e in self.examples]
        self._other = [getattr(e, source) for e in self.examples]
        sizes = [len(e) for e in self.examples]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.labels = torch.as_tensor(np.repeat(np.arange(len(sizes)), sizes), dtype=torch.int64)
        self.params = [row for ex in self.examples for row in ex.p]
        self.clip_ids = np.concatenate([ex.clip_ids for ex in self.examples])
        self.item_shape = (2, *spectrogrammer.shape)
        self._stats: NormStats | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def batch_images(self, indices: Any) -> torch.Tensor:
        """Images of the items ``indices`` (in that order), (n, 2, F, T) of ``dtype``."""
        return self._compute(indices)[0]

    def _compute(self, indices: Any) -> tuple[torch.Tensor, NormStats]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"item index out of range for {n} items")
        out = torch.empty((idx.size, *self.item_shape), dtype=self.dtype)
        means = torch.empty((idx.size, 1 if self.spectrogrammer.norm == "pair" else 2))
        stds = torch.empty_like(means)
        which = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(which):
            pos = np.flatnonzero(which == k)
            local = idx[pos] - self._starts[k]
            im, st = self.spectrogrammer.images(self._rows(self._x[k], local), self._rows(self._other[k], local))
            out[torch.as_tensor(pos)] = im.to(self.dtype)
            means[torch.as_tensor(pos)] = st.mean
            stds[torch.as_tensor(pos)] = st.std
        return out, NormStats(means, stds)

    @staticmethod
    def _rows(a: Any, local: np.ndarray) -> np.ndarray:
        if local.size and np.array_equal(local, np.arange(local[0], local[0] + local.size)):
            return np.asarray(a[int(local[0]) : int(local[0]) + local.size])  # one contiguous read
        return np.asarray(a[local])

    def __getitem__(self, i: int):
        return self.batch_images([int(i)])[0].float(), self.labels[int(i)]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A whole batch at once (the DataLoader calls this instead of ``__getitem__`` per item)."""
        imgs = self.batch_images(indices).float()
        return [(imgs[j], self.labels[int(i)]) for j, i in enumerate(indices)]

    @property
    def images(self) -> SpecImages:
        return SpecImages(self)

    @property
    def stats(self) -> NormStats:
        """Each image's normalisation statistics (computed once, in chunks)."""
        if self._stats is None:
            parts = [self._compute(np.arange(s, min(s + 128, len(self))))[1] for s in range(0, len(self), 128)]
            self._stats = NormStats(torch.cat([p.mean for p in parts]), torch.cat([p.std for p in parts]))
        return self._stats


@dataclass
class VAEData:
    profile: Any
    spectrogrammer: Spectrogrammer
    train: dict[str, Examples]
    val: dict[str, Examples]
    train_ds: PairSpecDataset | StreamingPairDataset
    val_ds: PairSpecDataset | StreamingPairDataset

    @property
    def effects(self) -> list[str]:
        return list(self.train)

    def summary(self) -> dict[str, int]:
        out = {"n_train": len(self.train_ds), "n_val": len(self.val_ds)}
        out["n_failed"] = int(sum(e.n_failed for e in [*self.train.values(), *self.val.values()]))
        return out


class _CorpusOnDemand:
    """The profile's corpus, built (or loaded from its cache) only when a missing example set
    must be rendered: with every example cache present nothing of the corpus is loaded."""

    def __init__(self, profile):
        self.profile = profile
        self._corpus = None

    def select(self, **kwargs):
        if self._corpus is None:
            from ..corpus import build_corpus

            self._corpus = build_corpus(self.profile)
        return self._corpus.select(**kwargs)


def _corpus(profile, corpus=None):
    return corpus if corpus is not None else _CorpusOnDemand(profile)


def _seen() -> tuple[str, ...]:
    from ..effects import SEEN

    return SEEN


def _unseen() -> tuple[str, ...]:
    from ..effects import UNSEEN

    return UNSEEN


#: ``vae.stream_data="auto"`` streams when the examples and images held in memory would exceed this
STREAM_ABOVE_BYTES = 2 * 1024**3


def in_memory_bytes(profile, n_examples: int) -> int:
    """Bytes the in-memory loader holds for ``n_examples``: audio (x, y, y_ref as float32) plus the
    float16 (2, F, T) image of each."""
    from ..spectrogram import Spectrogrammer

    f, t = Spectrogrammer(profile.spec, profile.data.sample_rate, profile.half_samples).shape
    return int(n_examples) * (3 * 4 * profile.half_samples + 2 * 2 * f * t)


def should_stream(profile, n_examples: int) -> bool:
    """``profile.vae.stream_data``: "always", "never", or "auto" (stream only above
    :data:`STREAM_ABOVE_BYTES`: computing images per batch costs about a third of a CPU epoch of the
    default profile's small VAE, measured, while its examples take ~0.3 GB in memory)."""
    mode = profile.vae.stream_data
    return mode == "always" or (mode == "auto" and in_memory_bytes(profile, n_examples) > STREAM_ABOVE_BYTES)


def load_vae_data(profile, *, corpus=None, effects: Sequence[str] | None = None, stream: bool | None = None) -> VAEData:
    """Seen-effect examples (train/val splits, rendered once and cached) and their datasets.

    ``stream=True``: examples stay on disk and images are computed per batch
    (:class:`StreamingPairDataset`, memory flat in the number of examples); ``False``: the
    examples and every image in memory (:class:`dafxlib.pairs.PairSpecDataset`); None (default):
    :func:`should_stream` decides from the profile. Both give the same images, labels and order.
    """
    corpus = _corpus(profile, corpus)
    keys = tuple(effects or _seen())
    v = profile.vae
    if stream is None:
        stream = should_stream(profile, len(keys) * (v.n_train_per_effect + v.n_val_per_effect))

    def get(k: str, split: str, n: int) -> Examples:
        return cached_examples(profile, k, split, n, "vae", corpus=corpus, lazy=stream)

    train = {k: get(k, "train", v.n_train_per_effect) for k in keys}
    val = {k: get(k, "val", v.n_val_per_effect) for k in keys}
    sp = Spectrogrammer(profile.spec, profile.data.sample_rate, profile.half_samples)
    kind = StreamingPairDataset if stream else PairSpecDataset
    return VAEData(profile, sp, train, val, kind(list(train.values()), sp), kind(list(val.values()), sp))


@dataclass
class ProbeData:
    """Examples for probes and MI: seen effects on held-out clips, unseen on train/test clips."""

    seen_test: dict[str, Examples]
    unseen_train: dict[str, Examples] = field(default_factory=dict)
    unseen_test: dict[str, Examples] = field(default_factory=dict)


def load_probe_data(profile, *, corpus=None, unseen: bool = True, stream: bool | None = None) -> ProbeData:
    """Probe examples (``stream=True``: audio left on disk, rows read on demand; None: the
    profile decides, :func:`should_stream`)."""
    corpus = _corpus(profile, corpus)
    n = profile.sweep.n_probe_per_effect
    if stream is None:
        stream = should_stream(profile, n * (len(_seen()) + (2 * len(_unseen()) if unseen else 0)))

    def get(k: str, split: str) -> Examples:
        return cached_examples(profile, k, split, n, "probe", corpus=corpus, lazy=stream)

    seen = {k: get(k, "test") for k in _seen()}
    ut, us = {}, {}
    if unseen:
        ut = {k: get(k, "train") for k in _unseen()}
        us = {k: get(k, "test") for k in _unseen()}
    return ProbeData(seen, ut, us)

"""Training examples (x, y, y_ref, p) and the VAE's spectrogram dataset.

An example (the study's data stage) comes from one clip (half A then half B) and one
uniformly random normalised setting ``p`` of an effect: the whole clip is rendered once,
then ``x`` = clean half A, ``y`` = effected half A and ``y_ref`` = effected half B (same
recording and setting, different content: the style reference).

:func:`make_examples` renders (through :class:`dafxlib.render.RenderPool` when it exists),
drops and counts failed renders; :func:`cached_examples` caches one (profile, effect,
split, n, tag) set as an ``.npz`` under ``build/<profile>/cache/pairs``.
:class:`PairSpecDataset` turns lists of :class:`Examples` into normalised (clean,
effected) spectrogram images for the VAE, with effect labels and statistics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from . import paths, storage
from .errors import AudioError, DatasetError, EffectError
from .seeding import array_hash, derive_seed, stable_hash

__all__ = ["Examples", "make_examples", "cached_examples", "PairSpecDataset"]

_CACHE_VERSION = 1


@dataclass
class Examples:
    """Examples (x, y, y_ref, p) of one effect: the one container of every stage.

    Audio arrays are (n, half_samples) float32. Training sets carry their ``split``; an
    evaluation cell carries its ``corpus``; controller data carries ``features`` (one row of
    controller features per example).
    """

    x: np.ndarray
    y: np.ndarray
    y_ref: np.ndarray
    #: normalised parameters (n, P) float32
    p: np.ndarray
    clip_ids: np.ndarray
    effect: str
    param_names: tuple[str, ...] = ()
    sample_rate: int = 24_000
    #: "speech" / "music" per example ("" for every example when not given)
    kinds: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    #: renders that failed (non-finite, silent, exception) and were dropped
    n_failed: int = 0
    failures: list[str] = field(default_factory=list)
    #: the evaluation corpus of a test cell ("" elsewhere)
    corpus: str = ""
    #: "train" / "val" / "test" ("" when mixed or unknown)
    split: str = ""
    #: controller features (n, D) float32, where computed
    features: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.x)
        self.clip_ids = np.asarray(self.clip_ids).astype(str)
        for name in ("y", "y_ref", "p", "clip_ids") + (("features",) if self.features is not None else ()):
            if len(getattr(self, name)) != n:
                raise DatasetError(f"Examples.{name} has {len(getattr(self, name))} rows, x has {n}")
        if self.kinds is None or len(self.kinds) == 0:
            self.kinds = np.array([""] * n)
        self.kinds = np.asarray(self.kinds)
        self.param_names = tuple(self.param_names)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def half_samples(self) -> int:
        return int(self.x.shape[1])

    def subset(self, idx) -> Examples:
        idx = np.asarray(idx)
        return Examples(
            self.x[idx],
            self.y[idx],
            self.y_ref[idx],
            self.p[idx],
            self.clip_ids[idx],
            self.effect,
            self.param_names,
            self.sample_rate,
            self.kinds[idx],
            self.n_failed,
            list(self.failures),
            self.corpus,
            self.split,
            None if self.features is None else self.features[idx],
        )

    def feature_matrix(self) -> np.ndarray:
        """The controller features (n, D); a clear error where none were computed."""
        if self.features is None:
            raise DatasetError(f"examples of {self.effect!r} carry no controller features (use dafxlib.e2e.load_data)")
        return self.features

    def identity(self) -> str:
        """A short hash of the settings, a stride of the clean audio and the features (cache keys)."""
        f32 = np.float32
        parts = [self.p.astype(f32), self.x[:, ::101].astype(f32)]
        return array_hash(*parts, *([] if self.features is None else [self.features.astype(f32)]))

    def save(self, path: str | Path) -> None:
        storage.save_npz(
            path,
            x=self.x,
            y=self.y,
            y_ref=self.y_ref,
            p=self.p,
            clip_ids=self.clip_ids.astype(str),
            kinds=self.kinds.astype(str),
            meta=np.array(
                json.dumps(
                    {
                        "effect": self.effect,
                        "param_names": list(self.param_names),
                        "sample_rate": self.sample_rate,
                        "n_failed": self.n_failed,
                        "failures": self.failures[:50],
                    }
                )
            ),
        )

    @classmethod
    def load(cls, path: str | Path, *, lazy: bool = False) -> Examples:
        """The examples saved at ``path``; ``lazy=True`` leaves the audio (x, y, y_ref) on disk
        as :class:`dafxlib.storage.NpzRows` readers (rows read on demand, memory flat in n)."""
        if lazy:
            z = storage.npz_rows(path)
            small = {k: np.asarray(z[k]) for k in ("p", "clip_ids", "kinds", "meta")}
            return cls._from_members({**z, **small})
        with np.load(path, allow_pickle=False) as f:
            return cls._from_members({k: f[k] for k in f.files})

    @classmethod
    def _from_members(cls, z: dict[str, Any]) -> Examples:
        meta = json.loads(str(z["meta"]))
        return cls(
            z["x"],
            z["y"],
            z["y_ref"],
            z["p"],
            z["clip_ids"],
            meta["effect"],
            tuple(meta["param_names"]),
            int(meta["sample_rate"]),
            z["kinds"],
            int(meta["n_failed"]),
            list(meta.get("failures", [])),
        )


#: rows per render call: the shared pool keeps buffers for its largest batch, so render in chunks
_RENDER_CHUNK = 256


def _render(effect, audios: np.ndarray, params: np.ndarray, sample_rate: int, workers: int):
    """(audio, ok mask, reasons) of one chunk through the shared render pool (failed renders
    reported, not fatal). The pool (:func:`dafxlib.render.shared_pool`) stays open for the
    next call, so a process pool (LV2) is started once per effect, not once per call."""
    from .render import render_batch

    res = render_batch(effect, audios, params, sample_rate, workers=workers, reuse=True)
    return np.asarray(res.audio, np.float32), np.asarray(res.ok, bool), list(res.failed)


def make_examples(
    effect, clips: Sequence[Any], n: int, seed: int, sample_rate: int, half_samples: int, workers: int = 2
) -> Examples:
    """Render ``n`` examples of ``effect`` (an Effect or key) over ``clips`` with uniform settings.

    Clips are used evenly (a fresh random permutation each pass). Failed renders are dropped
    and counted in ``Examples.n_failed``, so ``len(result) <= n``.
    """
    if isinstance(effect, str):
        from .effects import get_effect

        effect = get_effect(effect)
    if n < 1:
        raise DatasetError(f"make_examples: n must be >= 1, got {n}")
    if not clips:
        raise DatasetError("make_examples: no clips given (is the corpus split empty?)")
    need = 2 * int(half_samples)
    for c in clips:
        if int(c.sample_rate) != int(sample_rate):
            raise AudioError(f"clip {c.id} is at {c.sample_rate} Hz, expected {sample_rate} Hz")
        if c.audio.ndim != 1 or c.audio.shape[0] < need:
            raise AudioError(f"clip {c.id} has shape {c.audio.shape}; need mono with >= {need} samples")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(clips)) for _ in range(-(-n // len(clips)))])[:n]
    p = rng.uniform(size=(n, effect.n_params)).astype(np.float32)
    # rendered in chunks straight into the three halves (rows are independent, so chunking
    # does not change a sample): memory is the examples themselves plus one chunk
    h = int(half_samples)
    x, y, y_ref = (np.empty((n, h), np.float32) for _ in range(3))
    ok = np.empty(n, bool)
    reasons: list[str] = []
    for s in range(0, n, _RENDER_CHUNK):
        e = min(n, s + _RENDER_CHUNK)
        audios = np.stack([np.asarray(clips[i].audio[:need], np.float32) for i in order[s:e]])
        out, ok[s:e], failed = _render(effect, audios, p[s:e].astype(np.float64), int(sample_rate), workers)
        x[s:e], y[s:e], y_ref[s:e] = audios[:, :h], out[:, :h], out[:, h:need]
        reasons += [f"{s + i}: {r}" for i, r in failed]
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        raise EffectError(f"{effect.name}: every one of {n} renders failed, e.g. {reasons[:3]}")
    if keep.size < n:
        x, y, y_ref = x[keep], y[keep], y_ref[keep]
    return Examples(
        x=x,
        y=y,
        y_ref=y_ref,
        p=p[keep],
        clip_ids=np.array([clips[i].id for i in order[keep]]),
        effect=effect.key,
        param_names=tuple(effect.param_names),
        sample_rate=int(sample_rate),
        kinds=np.array([getattr(clips[i], "kind", "") for i in order[keep]]),
        n_failed=int(n - keep.size),
        failures=reasons,
    )


def _cache_path(profile, effect_key: str, split: str, n: int, tag: str) -> Path:
    ident = {
        "v": _CACHE_VERSION,
        "data": profile.to_dict()["data"],
        "effect_set": profile.effects.effect_set,
        "seed": profile.seed,
        "effect": effect_key,
        "split": split,
        "n": int(n),
        "tag": tag,
    }
    h = stable_hash(ident, 10)
    safe_tag = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in tag)
    return paths.cache_dir(profile.name, "pairs") / f"{effect_key}_{split}_{safe_tag}_{n}_{h}.npz"


def cached_examples(
    profile,
    effect_key: str,
    split: str,
    n: int,
    tag: str = "train",
    *,
    corpus=None,
    progress: bool = False,
    lazy: bool = False,
) -> Examples:
    """Examples of one effect on one corpus split, rendered once and cached (npz).

    The seed is derived from ``(profile.seed, effect_key, split, tag)``, so different tags
    give independent settings on the same clips. ``corpus`` may be passed to avoid a
    rebuild; by default :func:`dafxlib.corpus.build_corpus` (cached) is called.
    ``lazy=True`` returns the audio as on-disk row readers (:meth:`Examples.load`).
    """
    if split not in ("train", "val", "test"):
        raise DatasetError(f"split must be 'train', 'val' or 'test', got {split!r}")
    from .effects import get_effect

    effect = get_effect(effect_key, profile.effects.effect_set)
    key = effect.key
    path = _cache_path(profile, key, split, n, tag)
    if path.exists():
        return Examples.load(path, lazy=lazy)
    with storage.locked(path):
        if path.exists():
            return Examples.load(path, lazy=lazy)
        if corpus is None:
            from .corpus import build_corpus

            corpus = build_corpus(profile)
        clips = corpus.select(split=split)
        if not clips:
            raise DatasetError(f"corpus split {split!r} of profile {profile.name!r} has no clips")
        ex = make_examples(
            effect,
            clips,
            n,
            derive_seed(profile.seed, key, split, tag),
            profile.data.sample_rate,
            profile.half_samples,
            workers=profile.effects.workers,
        )
        ex.save(path)
    return Examples.load(path, lazy=True) if lazy else ex


class PairSpecDataset(Dataset):
    """Normalised (clean x, effected y) images of lists of :class:`Examples`.

    Items are ``(image (2, F, T) float32, effect index int64)``; ``effects`` lists the keys in
    label order. Images are computed once (stored as float16 to halve memory);
    ``stats`` holds each image's normalisation statistics and ``params[i]`` its settings.
    ``source="y_ref"`` pairs x with the effected *other* half instead.
    """

    def __init__(
        self,
        examples: Sequence[Examples],
        spectrogrammer,
        *,
        source: str = "y",
        chunk: int = 128,
        dtype: torch.dtype = torch.float16,
    ):
        if not examples:
            raise DatasetError("PairSpecDataset needs at least one Examples set")
        if source not in ("y", "y_ref"):
            raise DatasetError(f"source must be 'y' or 'y_ref', got {source!r}")
        self.spectrogrammer = spectrogrammer
        self.effects = [e.effect for e in examples]
        imgs, means, stds, labels = [], [], [], []
        for k, ex in enumerate(examples):
            other = getattr(ex, source)
            for s in range(0, len(ex), chunk):
                im, st = spectrogrammer.images(ex.x[s : s + chunk], other[s : s + chunk])
                imgs.append(im.to(dtype))
                means.append(st.mean)
                stds.append(st.std)
            labels.append(np.full(len(ex), k))
        self.images = torch.cat(imgs)
        from .spectrogram import NormStats

        self.stats = NormStats(torch.cat(means), torch.cat(stds))
        self.labels = torch.as_tensor(np.concatenate(labels), dtype=torch.int64)
        self.params = [row for ex in examples for row in ex.p]
        self.clip_ids = np.concatenate([ex.clip_ids for ex in examples])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        return self.images[i].float(), self.labels[i]

"""dafxlib.pairs: example generation, caching and the spectrogram dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from dafxlib.config import get_profile
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import AudioError, DatasetError, EffectError
from dafxlib.pairs import Examples, PairSpecDataset, cached_examples, make_examples
from dafxlib.seeding import derive_seed
from dafxlib.spectrogram import Spectrogrammer

SR = 8000
HALF = 2000


class Gain(Effect):
    """Test effect: gain between 0.1 and 1; fails (NaN) above 0.95 when ``nan_above`` set."""

    name = "Gain"

    def __init__(self, nan_above=None):
        super().__init__([ParamSpec("gain", 0.1, 1.0, 0.5)])
        self.nan_above = nan_above

    def _render(self, audio, sample_rate, raw):
        out = audio * raw["gain"]
        if self.nan_above is not None and raw["gain"] > self.nan_above:
            out = out * np.nan
        return out


@dataclass
class FakeClip:
    id: str
    audio: np.ndarray
    sample_rate: int = SR
    kind: str = "music"
    split: str = "train"
    source: str = ""
    synthetic: bool = True
    meta: dict = field(default_factory=dict)


def _clips(n=3, length=2 * HALF, sr=SR):
    g = np.random.default_rng(0)
    t = np.arange(length) / sr
    out = []
    for i in range(n):
        a = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * g.normal(size=length)
        a[length // 2 :] *= 0.5  # half B differs from half A
        out.append(FakeClip(f"c{i}", a.astype(np.float32), sr))
    return out


def test_make_examples_halves_and_params():
    clips = _clips()
    ex = make_examples(Gain(), clips, 7, seed=1, sample_rate=SR, half_samples=HALF)
    assert len(ex) == 7 and ex.x.shape == (7, HALF) and ex.x.dtype == np.float32
    assert ex.p.shape == (7, 1) and ex.p.min() >= 0 and ex.p.max() <= 1
    assert ex.effect == "gain" and ex.param_names == ("gain",)
    for i in range(7):
        clip = next(c for c in clips if c.id == ex.clip_ids[i])
        g = Gain().to_raw(ex.p[i])["gain"]
        np.testing.assert_allclose(ex.x[i], clip.audio[:HALF])
        np.testing.assert_allclose(ex.y[i], clip.audio[:HALF] * g, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ex.y_ref[i], clip.audio[HALF:] * g, rtol=1e-5, atol=1e-6)
    # clips are used evenly and the result is deterministic for a seed
    assert sorted(np.unique(ex.clip_ids, return_counts=True)[1]) == [2, 2, 3]
    again = make_examples(Gain(), clips, 7, seed=1, sample_rate=SR, half_samples=HALF)
    np.testing.assert_array_equal(again.p, ex.p)
    other = make_examples(Gain(), clips, 7, seed=2, sample_rate=SR, half_samples=HALF)
    assert not np.array_equal(other.p, ex.p)


def test_failed_renders_are_dropped_and_counted():
    ex = make_examples(Gain(nan_above=0.5), _clips(), 40, seed=0, sample_rate=SR, half_samples=HALF)
    assert 0 < ex.n_failed < 40 and len(ex) == 40 - ex.n_failed
    assert np.all(np.isfinite(ex.y))
    with pytest.raises(EffectError):
        make_examples(Gain(nan_above=0.0), _clips(), 5, seed=0, sample_rate=SR, half_samples=HALF)


def test_make_examples_validates_inputs():
    with pytest.raises(DatasetError):
        make_examples(Gain(), [], 3, 0, SR, HALF)
    with pytest.raises(AudioError):
        make_examples(Gain(), _clips(length=HALF), 3, 0, SR, HALF)
    with pytest.raises(AudioError):
        make_examples(Gain(), _clips(), 3, 0, 16000, HALF)


def test_examples_save_load_subset(tmp_path):
    ex = make_examples(Gain(), _clips(), 5, seed=0, sample_rate=SR, half_samples=HALF)
    ex.save(tmp_path / "e.npz")
    back = Examples.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.y_ref, ex.y_ref)
    assert list(back.clip_ids) == list(ex.clip_ids) and back.param_names == ex.param_names
    sub = ex.subset([0, 2])
    assert len(sub) == 2 and sub.clip_ids[1] == ex.clip_ids[2]


class FakeCorpus:
    def __init__(self, clips):
        self.clips = clips
        self.calls = 0

    def select(self, split=None, kind=None):
        self.calls += 1
        return [c for c in self.clips if split is None or c.split == split]


def test_cached_examples_renders_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    prof = get_profile("smoke", {"data.sample_rate": SR, "data.half_seconds": HALF / SR})
    corpus = FakeCorpus(_clips())
    a = cached_examples(prof, "RingMod", "train", 4, "t", corpus=corpus)
    b = cached_examples(prof, "ringmod", "train", 4, "t", corpus=corpus)
    assert corpus.calls == 1 and a.effect == "ringmod"
    np.testing.assert_array_equal(a.y, b.y)
    c = cached_examples(prof, "ringmod", "train", 4, "other", corpus=corpus)
    assert corpus.calls == 2 and not np.array_equal(a.p, c.p)
    assert len(list((tmp_path / "smoke" / "cache" / "pairs").glob("*.npz"))) == 2
    with pytest.raises(DatasetError):
        cached_examples(prof, "ringmod", "val", 4, "t", corpus=corpus)  # no val clips
    with pytest.raises(DatasetError):
        cached_examples(prof, "ringmod", "dev", 4, "t", corpus=corpus)


def test_derive_seed_stable():
    assert derive_seed(0, "a", "train") == derive_seed(0, "a", "train")
    assert derive_seed(0, "a", "train") != derive_seed(1, "a", "train")


def test_pair_spec_dataset():
    prof = get_profile("smoke", {"data.sample_rate": SR, "data.half_seconds": HALF / SR})
    sp = Spectrogrammer(prof.spec, SR, HALF)
    e1 = make_examples(Gain(), _clips(), 3, seed=0, sample_rate=SR, half_samples=HALF)
    e2 = make_examples(Gain(), _clips(), 2, seed=1, sample_rate=SR, half_samples=HALF)
    e2.effect = "other"
    ds = PairSpecDataset([e1, e2], sp, chunk=2)
    assert len(ds) == 5 and ds.effects == ["gain", "other"]
    img, lab = ds[4]
    assert img.shape == (2, *sp.shape) and img.dtype == torch.float32 and int(lab) == 1
    direct, st = sp.images(e2.x[1:2], e2.y[1:2])
    torch.testing.assert_close(img, direct[0], atol=2e-2, rtol=1e-2)  # float16 storage
    assert ds.stats.mean.shape == (5, 1)
    ref = PairSpecDataset([e1], sp, source="y_ref")
    assert not torch.allclose(ref[0][0], ds[0][0])
    with pytest.raises(DatasetError):
        PairSpecDataset([], sp)

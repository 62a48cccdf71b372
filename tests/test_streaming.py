"""Streaming VAE and probe data: examples read from the on-disk cache, images computed per batch, same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from dafxlib import pairs, storage
from dafxlib.betavae import data as vdata
from dafxlib.betavae.evaluate import embed_examples
from dafxlib.betavae.probes import reconstruction_stats
from dafxlib.config import get_profile
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import CorruptFileError
from dafxlib.models.encoder import AudioEncoder
from dafxlib.models.vae import VAEModule
from dafxlib.pairs import Examples, PairSpecDataset, make_examples
from dafxlib.training import make_loader

SR = 8000
HALF = 2000


@dataclass
class Clip:
    id: str
    audio: np.ndarray
    split: str
    sample_rate: int = SR
    kind: str = "music"
    meta: dict = field(default_factory=dict)


class Corpus:
    def __init__(self, clips):
        self.clips = clips

    def select(self, split=None, kind=None):
        return [c for c in self.clips if split is None or c.split == split]


def _corpus(n_per_split=4):
    g = np.random.default_rng(0)
    t = np.arange(2 * HALF) / SR
    clips = []
    for s, split in enumerate(("train", "val", "test")):
        for i in range(n_per_split):
            a = 0.3 * np.sin(2 * np.pi * (150 + 70 * i + 20 * s) * t) + 0.05 * g.normal(size=t.size)
            clips.append(Clip(f"{split}{i}", a.astype(np.float32), split))
    return Corpus(clips)


def _profile(n_train=21, n_val=9, n_probe=10):
    return get_profile(
        "smoke",
        {
            "data.sample_rate": SR,
            "data.half_seconds": HALF / SR,
            "vae.n_train_per_effect": n_train,
            "vae.n_val_per_effect": n_val,
            "sweep.n_probe_per_effect": n_probe,
            "effects.workers": 1,
        },
    )


EFFECTS = ("overdrive", "ringmod")


@pytest.fixture
def both(tmp_path, monkeypatch):
    """(profile, streaming VAEData, in-memory VAEData) on the same cached examples."""
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(vdata, "_seen", lambda: EFFECTS)
    monkeypatch.setattr(vdata, "_unseen", lambda: ("ambience",))
    prof, corpus = _profile(), _corpus()
    eager = vdata.load_vae_data(prof, corpus=corpus, stream=False)
    stream = vdata.load_vae_data(prof, corpus=corpus, stream=True)
    return prof, corpus, stream, eager


def test_npz_rows_reads_what_numpy_loads(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((9, 6)).astype(np.float32)
    path = tmp_path / "a.npz"
    storage.save_npz(path, a=a, ids=np.array(["a", "bb", "c"]), meta=np.array("{}"))
    z = storage.npz_rows(path)
    rows = z["a"]
    assert isinstance(rows, storage.NpzRows) and rows.shape == (9, 6) and len(rows) == 9
    for key in (0, -1, slice(2, 7), slice(None, None, 3), [5, 1, 5], np.arange(9) % 2 == 0, (slice(1, 4), 2), (3, 2)):
        np.testing.assert_array_equal(rows[key], a[key])
    np.testing.assert_array_equal(np.asarray(rows), a)
    np.testing.assert_array_equal(np.asarray(z["ids"]), ["a", "bb", "c"])
    assert str(z["meta"]) == "{}"
    with pytest.raises(IndexError):
        rows[9]
    # a file cut short is reported, not read as garbage
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        storage.npz_rows(cut)


def test_lazy_examples_equal_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    prof, corpus = _profile(), _corpus()
    eager = pairs.cached_examples(prof, "ringmod", "train", 7, "t", corpus=corpus)
    lazy = pairs.cached_examples(prof, "ringmod", "train", 7, "t", corpus=corpus, lazy=True)
    assert isinstance(lazy.x, storage.NpzRows) and isinstance(lazy.y_ref, storage.NpzRows)
    for name in ("x", "y", "y_ref", "p", "clip_ids", "kinds"):
        np.testing.assert_array_equal(np.asarray(getattr(lazy, name)), getattr(eager, name))
    assert lazy.identity() == eager.identity() and lazy.half_samples == HALF
    sub = lazy.subset([3, 0])
    np.testing.assert_array_equal(sub.y, eager.y[[3, 0]])


def test_streaming_dataset_matches_in_memory(both):
    prof, _, stream, eager = both
    for s, e in ((stream.train_ds, eager.train_ds), (stream.val_ds, eager.val_ds)):
        assert isinstance(s, vdata.StreamingPairDataset) and isinstance(e, PairSpecDataset)
        assert len(s) == len(e) and s.effects == e.effects
        assert torch.equal(s.labels, e.labels)
        np.testing.assert_array_equal(np.asarray(s.params), np.asarray(e.params))
        np.testing.assert_array_equal(s.clip_ids, e.clip_ids)
        assert torch.equal(s.images.materialise(chunk=5), e.images)
        assert s.images.shape == tuple(e.images.shape)
        assert torch.equal(s.images[[4, 1, len(s) - 1]], e.images[[4, 1, len(s) - 1]])
        assert torch.equal(s.stats.mean, e.stats.mean) and torch.equal(s.stats.std, e.stats.std)
        for i in (0, len(s) - 1):
            assert torch.equal(s[i][0], e[i][0]) and int(s[i][1]) == int(e[i][1])
        # one shuffled epoch through the training loader: every batch the same, to the bit
        for (xs, ys), (xe, ye) in zip(make_loader(s, 8, seed=3), make_loader(e, 8, seed=3), strict=True):
            assert torch.equal(xs, xe) and torch.equal(ys, ye)


def test_streaming_latents_and_losses_match(both):
    prof, corpus, stream, eager = both
    torch.manual_seed(0)
    module = VAEModule(shape=stream.spectrogrammer.shape, latent_dim=4, base_channels=4)
    enc = AudioEncoder.from_module(module.eval(), stream.spectrogrammer, name="t")
    labels = [eager.effects[i] for i in eager.val_ds.labels]
    assert reconstruction_stats(enc.vae, stream.val_ds.images, labels, batch_size=4) == reconstruction_stats(
        enc.vae, eager.val_ds.images, labels, batch_size=4
    )
    np.testing.assert_array_equal(
        enc.embed_images(stream.train_ds.images, 8), enc.embed_images(eager.train_ds.images, 8)
    )
    ps = vdata.load_probe_data(prof, corpus=corpus, stream=True)
    pe = vdata.load_probe_data(prof, corpus=corpus, stream=False)
    assert isinstance(ps.seen_test["ringmod"].x, storage.NpzRows)
    for group in ("seen_test", "unseen_train", "unseen_test"):
        zs, ls = embed_examples(enc, getattr(ps, group))
        ze, le = embed_examples(enc, getattr(pe, group))
        np.testing.assert_array_equal(zs, ze)
        np.testing.assert_array_equal(ls, le)


def _held_bytes(obj, seen=None) -> int:
    """Bytes of every array and tensor reachable from ``obj``'s attributes, lists and dicts."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, torch.Tensor):
        return int(obj.untyped_storage().nbytes())
    if isinstance(obj, dict):
        return sum(_held_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_held_bytes(v, seen) for v in obj)
    if isinstance(obj, (Examples, torch.utils.data.Dataset)):
        return sum(_held_bytes(v, seen) for v in vars(obj).values())
    return 0


def test_streaming_holds_no_audio_or_images(both):
    _, _, stream, eager = both
    ds = stream.train_ds
    # the audio stays on disk: row readers, not arrays
    assert all(isinstance(a, storage.NpzRows) for a in (*ds._x, *ds._other))
    audio = sum(a.nbytes for a in (*ds._x, *ds._other))
    images = len(ds) * int(np.prod(ds.item_shape)) * 2  # float16
    held = _held_bytes(ds)
    # what is held (labels, settings, clip ids) is a small fraction of the audio and images
    assert held < (audio + images) / 20, (held, audio, images)
    # the in-memory dataset holds every image: the measure is not blind
    assert _held_bytes(eager.train_ds) >= images


def test_chunked_render_is_identical(monkeypatch):
    class Gain(Effect):
        name = "Gain"

        def __init__(self):
            super().__init__([ParamSpec("gain", 0.1, 1.0, 0.5)])

        def _render(self, audio, sample_rate, raw):
            return audio * raw["gain"] * (np.nan if raw["gain"] > 0.7 else 1.0)

    clips = _corpus().select(split="train")
    whole = make_examples(Gain(), clips, 13, seed=2, sample_rate=SR, half_samples=HALF, workers=1)
    monkeypatch.setattr(pairs, "_RENDER_CHUNK", 3)
    chunked = make_examples(Gain(), clips, 13, seed=2, sample_rate=SR, half_samples=HALF, workers=1)
    assert whole.n_failed > 0  # the failed-render path is exercised
    assert whole.n_failed == chunked.n_failed and whole.failures == chunked.failures
    for name in ("x", "y", "y_ref", "p"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))


def test_the_profile_decides_when_to_stream():
    from dafxlib.config import get_profile

    default, paper = get_profile("default"), get_profile("paper")
    # the default profile's VAE data fit in memory (per-batch images would cost it time, measured)
    n_default = 4 * (default.vae.n_train_per_effect + default.vae.n_val_per_effect)
    assert vdata.in_memory_bytes(default, n_default) < vdata.STREAM_ABOVE_BYTES
    assert not vdata.should_stream(default, n_default)
    assert vdata.should_stream(default, 10**6)  # "auto": far more examples stream
    # the paper profile streams always (so its small fixture runs take the real run's path)
    assert paper.vae.stream_data == "always" and vdata.should_stream(paper, 1)
    assert vdata.in_memory_bytes(paper, 4 * 5500) > 25 * 1024**3  # what the in-memory loader would hold (VAE data only)
    never = get_profile("paper", {"vae.stream_data": "never"})
    assert not vdata.should_stream(never, 10**6)

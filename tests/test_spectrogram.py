"""dafxlib.spectrogram: shapes, compression, normalisation, Griffin-Lim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dafxlib.config import SpecConfig, get_profile
from dafxlib.errors import AudioError, ConfigError
from dafxlib.spectrogram import (
    Spectrogrammer,
    compress,
    decompress,
    denormalise,
    griffin_lim,
    normalise,
    spectral_error,
    stft_magnitude,
)

SR = 24_000


def _sine(f=440.0, n=SR // 2, amp=0.5):
    t = np.arange(n) / SR
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _noise(n, seed=0, amp=0.1):
    return (np.random.default_rng(seed).normal(size=n) * amp).astype(np.float32)


def test_default_profile_shape():
    p = get_profile("default")
    s = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    assert s.frames == 94 and s.shape == (256, 96)
    img, st = s.images(np.stack([_noise(p.half_samples)] * 3), np.stack([_noise(p.half_samples, 1)] * 3))
    assert img.shape == (3, 2, 256, 96) and img.dtype == torch.float32
    assert st.mean.shape == (3, 1)
    single, st1 = s.images(_noise(p.half_samples)[None])
    assert single.shape == (1, 1, 256, 96)


def test_smoke_profile_shape_and_multiple():
    p = get_profile("smoke")
    s = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    assert s.shape[0] == p.spec.n_bins and s.shape[1] % 16 == 0 and s.shape[1] >= s.frames


def test_stft_magnitude_peak_at_sine_bin():
    m = stft_magnitude(_sine(750.0), 512, 128)
    assert m.shape == (257, SR // 2 // 128 + 1)
    assert int(m.mean(-1).argmax()) == round(750 * 512 / SR)


def test_compress_roundtrip_and_errors():
    mag = torch.rand(5, 7) * 3
    for c in ("power", "log"):
        torch.testing.assert_close(decompress(compress(mag, c, 0.3), c, 0.3), mag, atol=1e-4, rtol=1e-4)
    assert float(compress(torch.zeros(()), "power", 0.3)) == pytest.approx(1e-8**0.3)
    with pytest.raises(ConfigError):
        compress(mag, "cube")
    with pytest.raises(ConfigError):
        compress(mag, "power", 2.0)


def test_normalisation_stats_restore_level():
    imgs = torch.rand(4, 2, 8, 16) * 5 + 2
    n, st = normalise(imgs, "pair")
    assert torch.allclose(n.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(n.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-4)
    torch.testing.assert_close(denormalise(n, st), imgs)
    n2, st2 = normalise(imgs, "channel")
    assert st2.mean.shape == (4, 2)
    torch.testing.assert_close(denormalise(n2, st2), imgs)
    with pytest.raises(ConfigError):
        normalise(imgs, "batch")


def test_gain_on_pair_is_removed_but_stats_keep_level():
    p = get_profile("smoke")
    s = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    x = _noise(p.half_samples, 0, 0.1)[None]
    y = (x * 0.5 + _noise(p.half_samples, 1, 0.02)).astype(np.float32)
    a, sa = s.images(x, y)
    b, sb = s.images(4 * x, 4 * y)
    assert float((a - b).abs().max()) < 1e-3  # level gone from the image
    assert float(sb.mean[0, 0] / sa.mean[0, 0]) == pytest.approx(4**0.3, rel=1e-3)  # kept in stats
    # the effect's own level change (y quieter than x) stays visible in a pair image
    c, _ = s.images(x, 4 * y)
    assert float((a - c).abs().mean()) > 0.1


def test_spectrogrammer_rejects_bad_input():
    p = get_profile("smoke")
    s = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    with pytest.raises(AudioError):
        s.images(np.zeros((1, 100), np.float32))
    bad = np.zeros((1, p.half_samples), np.float32)
    bad[0, 3] = np.nan
    with pytest.raises(AudioError):
        s.images(bad)
    with pytest.raises(ConfigError):
        Spectrogrammer(SpecConfig(n_fft=256, n_bins=500), SR, SR)


def test_griffin_lim_reconstructs_sine():
    x = _sine(440.0) * np.hanning(SR // 2).astype(np.float32)
    mag = stft_magnitude(x, 512, 128)
    y = griffin_lim(mag, 512, 128, n_iter=64, length=len(x))
    assert y.shape == (len(x),)
    assert spectral_error(x, y) < 0.1
    # and it does much better than a random phase with no iterations would
    noise = griffin_lim(mag, 512, 128, n_iter=1, momentum=0.0, length=len(x))
    assert spectral_error(x, y) < spectral_error(x, noise)


def test_to_audio_from_images_keeps_level():
    p = get_profile("smoke")
    s = Spectrogrammer(p.spec, p.data.sample_rate, p.half_samples)
    x = (_sine(600.0, p.half_samples, 0.3) + _noise(p.half_samples, 2, 0.01))[None]
    img, st = s.images(x, 0.5 * x)
    wav = s.to_audio(img, st, n_iter=32)
    assert wav.shape == (1, 2, p.half_samples) and wav.dtype == np.float32
    rms = np.sqrt((wav**2).mean(-1))[0]
    assert rms[1] / rms[0] == pytest.approx(0.5, rel=0.1)
    assert rms[0] == pytest.approx(np.sqrt((x**2).mean()), rel=0.2)


def test_numpy_spectrum_image_matches_the_torch_front_end():
    from dafxlib.spectrogram import spectrum_image

    a = np.random.default_rng(3).standard_normal(3001).astype(np.float32) * 0.2
    ref = compress(stft_magnitude(torch.from_numpy(a), 256, 96), "power", 0.3).numpy()
    got = spectrum_image(a, 256, 96)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(spectrum_image(a, 256, 96, "log"), np.log(ref ** (1 / 0.3)), atol=2e-2)
    with pytest.raises(ConfigError):
        spectrum_image(a, 256, 96, compression="mel")


def test_frame_spectrum_layouts_and_windows():
    from dafxlib.spectrogram import frame_spectrum

    a = np.random.default_rng(4).standard_normal((2, 1000)).astype(np.float32)
    centred = frame_spectrum(a, 256, 64)
    assert centred.shape == (2, 1000 // 64 + 1, 129) and centred.dtype == np.float32
    plain = frame_spectrum(a, 256, 64, center=False, window="symmetric")
    assert plain.shape == (2, 1 + (1000 - 256) // 64, 129)
    frame = a[1, 64:320] * np.hanning(256)
    np.testing.assert_allclose(plain[1, 1], np.abs(np.fft.rfft(frame)), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(frame_spectrum(a[0], 256, 64), centred[0])
    assert frame_spectrum(a[:, :100], 256, 64, center=False).shape == (2, 1, 129)
    with pytest.raises(ConfigError):
        frame_spectrum(a, 256, 64, window="hamming")

"""dafxlib.audio: loading, resampling, levels, loudness, silence, fades and validation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from dafxlib import audio as A
from dafxlib.errors import AudioError

SR = 24_000


def sine(freq=440.0, seconds=1.0, sr=SR, amp=1.0):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------------------- loading
def test_load_wav_returns_channels_first_float32(tmp_path):
    st = np.stack([sine(440), sine(660, amp=0.5)])
    p = tmp_path / "st.wav"
    sf.write(p, st.T, SR, subtype="PCM_16")
    a, sr = A.load_audio(p)
    assert sr == SR and a.dtype == np.float32 and a.shape == (2, SR)
    assert np.allclose(a, st, atol=1e-3)


def test_load_resamples_when_asked(tmp_path):
    p = tmp_path / "x.flac"
    sf.write(p, sine(1000, sr=48_000, seconds=0.5), 48_000)
    a, sr = A.load_audio(p, sample_rate=SR)
    assert sr == SR and a.shape == (1, SR // 2)
    spec = np.abs(np.fft.rfft(a[0]))
    assert abs(np.argmax(spec) * SR / a.shape[1] - 1000) < 5


def test_load_mp3_if_libsndfile_supports_it(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without mp3")
    p = tmp_path / "x.mp3"
    sf.write(p, sine(440, sr=44_100), 44_100, format="MP3")
    a, sr = A.load_audio(p)
    assert sr == 44_100 and a.shape[0] == 1 and abs(a.shape[1] - 44_100) < 3000


def test_missing_file_names_path(tmp_path):
    with pytest.raises(AudioError, match="not found: .*nope.wav"):
        A.load_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage" * 10, bytes(range(256)) * 4])
def test_corrupt_or_empty_file_raises_audio_error(tmp_path, content):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match="bad.wav"):
        A.load_audio(p)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        A.load_audio(tmp_path)


# ----------------------------------------------------------------------------- shape / rate
def test_to_mono_shapes():
    st = np.stack([np.ones(10), -np.ones(10) * 0.5]).astype(np.float32)
    assert np.allclose(A.to_mono(st), 0.25)
    assert A.to_mono(st[:1]).shape == (10,)
    assert A.to_mono(np.ones(7)).shape == (7,)
    with pytest.raises(AudioError):
        A.to_mono(np.zeros((2, 2, 2)))


def test_resample_keeps_frequency_and_length():
    x = sine(3000, seconds=1.0, sr=22_050)
    y = A.resample(x, 22_050, SR)
    assert y.dtype == np.float32 and len(y) == SR
    f = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
    assert abs(f - 3000) < 2
    np.testing.assert_array_equal(A.resample(x, 22_050, 22_050), x)  # same rate: the samples unchanged
    with pytest.raises(AudioError):
        A.resample(x, 0, SR)


# ----------------------------------------------------------------------------- level
def test_rms_and_peak():
    x = sine(amp=1.0)
    assert A.rms_db(x) == pytest.approx(-3.01, abs=0.02)
    assert A.rms_db(np.zeros(100)) == A.LEVEL_FLOOR_DB == -100.0
    y = A.peak_normalise(x * 0.1, -6.0)
    assert A.peak(y) == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    with pytest.raises(AudioError, match="silent"):
        A.peak_normalise(np.zeros(100))


def test_loudness_normalise_hits_target_and_respects_peak():
    rng = np.random.default_rng(0)
    x = (0.05 * rng.standard_normal(SR)).astype(np.float32)
    y = A.loudness_normalise(x, SR, -23.0, max_peak_db=None)
    assert A.loudness(y, SR) == pytest.approx(-23.0, abs=0.05)
    z = A.loudness_normalise(x, SR, -3.0, max_peak_db=-1.0)  # would clip: peak capped
    assert A.peak(z) <= 10 ** (-1 / 20) + 1e-6
    assert A.loudness(z, SR) < -3.0
    with pytest.raises(AudioError, match="silent"):
        A.loudness_normalise(np.zeros(SR, np.float32), SR)


def test_loudness_of_short_clip_is_finite():
    assert np.isfinite(A.loudness(sine(seconds=0.2), SR))
    assert A.loudness(np.zeros(SR), SR) == float("-inf")


# ----------------------------------------------------------------------------- silence / fades
def test_silence_detection_and_trim():
    x = np.concatenate([np.zeros(SR // 2), sine(seconds=0.5), np.zeros(SR // 2)]).astype(np.float32)
    assert not A.is_silent(x)
    assert A.is_silent(np.zeros(100)) and A.is_silent(1e-5 * sine())
    assert A.active_fraction(x, SR) == pytest.approx(1 / 3, abs=0.05)
    t = A.trim_silence(x, SR)
    assert abs(len(t) - SR // 2) < 0.03 * SR
    assert A.trim_silence(np.zeros(SR, np.float32), SR).shape[-1] == 0


def test_fade_in_and_out():
    x = np.ones(SR, np.float32)
    y = A.fade(x, SR, 0.01, 0.02)
    assert y[0] < 0.01 and y[-1] < 0.01 and y[SR // 2] == 1.0
    assert np.all(np.diff(y[:240]) >= 0)
    assert x[0] == 1.0  # input untouched


def test_segment_and_fit_length():
    x = np.arange(10, dtype=np.float32)
    s = A.segment(x, 4, 3)
    assert s.shape == (3, 4) and s[1, 0] == 3
    assert A.fit_length(x, 4).shape == (4,) and A.fit_length(x, 12)[-1] == 0
    with pytest.raises(AudioError):
        A.segment(x, 20)


# ----------------------------------------------------------------------------- validation
def test_validate_accepts_good_audio():
    out = A.validate_audio(sine().astype(np.float64), SR, mono=True, min_seconds=0.5)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    "bad, kwargs, msg",
    [
        (np.full(SR, np.nan, np.float32), {}, "non-finite"),
        (np.zeros(SR, np.float32), {}, "silent"),
        (sine(seconds=0.1), {"min_seconds": 0.5}, "too short"),
        (np.zeros((2, 2, 10)), {}, "expected shape"),
        (np.stack([sine()] * 2).T, {}, "transpose"),
        (np.stack([sine()] * 3), {"max_channels": 2}, "3 channels"),
        (np.stack([sine()] * 2), {"mono": True}, "expected shape"),
        (sine() * 4, {"max_abs": 1.0}, "peak"),
        (np.zeros(0, np.float32), {}, "empty"),
        ("not audio", {}, "numeric"),
    ],
)
def test_validate_rejects_bad_audio(bad, kwargs, msg):
    with pytest.raises(AudioError, match=msg):
        A.validate_audio(bad, SR, **kwargs)


def test_validate_allows_silence_on_request():
    out = A.validate_audio(np.zeros(100, np.float32), allow_silent=True)
    assert out.dtype == np.float32 and out.shape[-1] == 100 and not out.any()
    with pytest.raises(AudioError, match="silent"):
        A.validate_audio(np.zeros(100, np.float32))


def test_controller_level_features_and_descriptors_use_the_one_level_function():
    from dafxlib.audio import LEVEL_FLOOR_DB, peak_db, rms_db
    from dafxlib.models.controller import descriptor_features, descriptor_names
    from dafxlib.models.encoder import level_features

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((3, 4096))).astype(np.float32)
    y = (0.5 * x).astype(np.float32)
    y[2] = 0.0  # silence: floored, never -inf
    lf = level_features(x, y)
    np.testing.assert_allclose(lf[:, 0], rms_db(x, axis=1), atol=1e-4)
    np.testing.assert_allclose(lf[:, 1], rms_db(y, axis=1), atol=1e-4)
    np.testing.assert_allclose(lf[:, 3], peak_db(y, axis=1) - peak_db(x, axis=1), atol=1e-4)
    assert lf[2, 1] == LEVEL_FLOOR_DB and lf[0, 2] == pytest.approx(-6.0206, abs=1e-3)
    d = descriptor_features(y, 24_000)
    names = descriptor_names()
    np.testing.assert_allclose(d[:, names.index("rms_db")], rms_db(y, axis=1), atol=1e-4)
    assert d[2, names.index("peak_db")] == LEVEL_FLOOR_DB

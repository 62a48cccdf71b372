"""Audio helpers: load, mono, resample, level, loudness, silence, fades, validation.

Conventions: float32 arrays; ``(channels, samples)`` at the edges
(:func:`load_audio` returns that), mono ``(samples,)`` inside effects and models; the
sample rate is always passed explicitly. Bad input raises :class:`~dafxlib.errors.AudioError`
with a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from .errors import AudioError

#: extensions :func:`load_audio` and :func:`dafxlib.datasets.load_folder` accept
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
#: below this RMS (dBFS) a signal counts as silent
SILENCE_DB = -60.0
_EPS = 1e-12
#: the one silence floor of every level in dB (RMS 1e-5): metrics, features and figures agree on it
LEVEL_FLOOR_DB = -100.0
#: a common rate typed in kHz -> the rate in Hz it probably meant
_KHZ_TYPOS = {
    8: 8000,
    11: 11025,
    16: 16000,
    22: 22050,
    24: 24000,
    32: 32000,
    44: 44100,
    48: 48000,
    88: 88200,
    96: 96000,
    176: 176400,
    192: 192000,
}
#: full-scale value of each integer PCM type (float = int / scale)
_PCM_SCALE = {np.dtype(np.int8): 128.0, np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


# --------------------------------------------------------------------------- entry checks
def check_sample_rate(
    sample_rate, who: str = "audio", *, error: type[Exception] = AudioError, allow_float: bool = False
) -> int:
    """``sample_rate`` as an int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], or ``error`` saying why
    (``allow_float``: a float with a whole value, e.g. 24000.0, is accepted too)."""
    kinds = (int, np.integer, float, np.floating) if allow_float else (int, np.integer)
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, kinds):
        raise error(f"{who}: sample_rate must be an int number of Hz (e.g. 24000), got {sample_rate!r}")
    if not float(sample_rate).is_integer():
        raise error(f"{who}: sample_rate must be a whole number of Hz (e.g. 24000), got {sample_rate!r}")
    sr = int(sample_rate)
    if sr < MIN_SAMPLE_RATE:
        guess = _KHZ_TYPOS.get(sr)
        hint = (
            f"; sample rates are in Hz, not kHz (did you mean {guess}?)"
            if guess
            else "; pass the rate in Hz (e.g. 24000)"
        )
        raise error(f"{who}: sample rate {sr} Hz is below {MIN_SAMPLE_RATE} Hz, the lowest this library supports{hint}")
    if sr > MAX_SAMPLE_RATE:
        raise error(
            f"{who}: sample rate {sr} Hz is above {MAX_SAMPLE_RATE} Hz; pass the rate in Hz "
            "(e.g. 48000) or resample with dafxlib.audio.resample"
        )
    return sr


def as_float_audio(audio, who: str = "audio", *, error: type[Exception] = AudioError) -> np.ndarray:
    """``audio`` as a float array: int8/int16/int32 PCM scaled to [-1, 1) (x / full scale),
    float kept; other types (bool, int64, unsigned, complex, objects) refused with ``error``."""
    a = np.asarray(audio)
    if a.dtype in _PCM_SCALE:
        return (a.astype(np.float64) / _PCM_SCALE[a.dtype]).astype(np.float32)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "biuc" or a.dtype == object:
        raise error(
            f"{who}: audio of dtype {a.dtype} is not supported; pass float audio in [-1, 1] or "
            "int16/int32 PCM (scaled by full scale)"
        )
    raise error(f"{who}: expected a numeric audio array, got dtype {a.dtype}")


# --------------------------------------------------------------------------- loading
def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as ``(channels, samples)`` float32 and its sample rate.

    soundfile (libsndfile) reads wav/flac/ogg/aiff and, with libsndfile >= 1.1, mp3; anything
    it cannot read is retried through librosa's audioread fallback. With ``sample_rate`` the
    audio is resampled to it and that rate is returned.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}; check the path")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file; use dafxlib.datasets.load_folder")
    try:
        import soundfile as sf

        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(data.T)
    except Exception as exc_sf:  # libsndfile could not decode it: try audioread (mp3, m4a, ...)
        try:
            audio, sr = _load_fallback(path)
        except Exception as exc_fb:
            raise AudioError(
                f"cannot read audio file {path} ({type(exc_sf).__name__}: {exc_sf}; fallback: "
                f"{type(exc_fb).__name__}: {exc_fb}); is it a valid, complete "
                f"{path.suffix or 'audio'} file? Re-export it as WAV or FLAC"
            ) from exc_sf
    if audio.shape[-1] == 0:
        raise AudioError(f"audio file {path} contains no samples; it is empty or truncated")
    sr = int(sr)
    if sample_rate is not None and int(sample_rate) != sr:
        audio = resample(audio, sr, int(sample_rate))
        sr = int(sample_rate)
    return audio.astype(np.float32, copy=False), sr


def _load_fallback(path: Path) -> tuple[np.ndarray, int]:
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that it falls back to audioread
        y, sr = librosa.load(str(path), sr=None, mono=False)
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    return y, int(sr)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of a file without decoding it (AudioError if unreadable)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return int(info.samplerate), int(info.channels), int(info.frames)
    except Exception as exc:
        raise AudioError(f"cannot read the header of {path}: {exc}") from exc


# --------------------------------------------------------------------------- shape and rate
def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, samples)`` or ``(samples,)`` -> ``(samples,)`` float32."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        return a
    if a.ndim == 2:
        return a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0]
    raise AudioError(f"expected audio of shape (samples,) or (channels, samples), got {a.shape}")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (scipy ``resample_poly``)."""
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    a = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return a
    from scipy.signal import resample_poly

    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    return resample_poly(a, up, down, axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- level
def rms(audio: np.ndarray, axis: int | None = -1) -> np.ndarray | float:
    """Root mean square in float64 (along ``axis``; ``None`` for the whole array)."""
    a = np.asarray(audio, dtype=np.float64)
    r = np.sqrt(np.mean(np.square(a), axis=axis))
    return float(r) if np.ndim(r) == 0 else r


def rms_db(audio: np.ndarray, axis: int | None = -1, floor_db: float = LEVEL_FLOOR_DB) -> np.ndarray | float:
    """RMS in dBFS (a full-scale sine is -3 dB), floored at :data:`LEVEL_FLOOR_DB`: the one level function."""
    r = np.asarray(rms(audio, axis=axis), dtype=np.float64)
    d = np.maximum(20.0 * np.log10(np.maximum(r, _EPS)), floor_db)
    return float(d) if d.ndim == 0 else d


def peak_db(audio: np.ndarray, axis: int | None = -1, floor_db: float = LEVEL_FLOOR_DB) -> np.ndarray | float:
    """Absolute peak in dBFS along ``axis`` (float64), floored like :func:`rms_db`."""
    a = np.abs(np.asarray(audio, dtype=np.float64))
    pk = a.max(axis=axis) if a.size else np.float64(0.0)
    d = np.maximum(20.0 * np.log10(np.maximum(pk, _EPS)), floor_db)
    return float(d) if np.ndim(d) == 0 else d


def peak(audio: np.ndarray) -> float:
    a = np.asarray(audio)
    return float(np.max(np.abs(a))) if a.size else 0.0


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def peak_normalise(audio: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """Scale so the absolute peak is ``peak_db`` dBFS; silent input raises AudioError."""
    a = np.asarray(audio, dtype=np.float32)
    p = peak(a)
    if p <= 1e-9:
        raise AudioError("cannot peak-normalise silent audio (peak is 0); check the input")
    return (a * (db_to_gain(peak_db) / p)).astype(np.float32)


@lru_cache(maxsize=16)
def _meter(sample_rate: int, block_size: float):
    import pyloudnorm

    return pyloudnorm.Meter(int(sample_rate), block_size=block_size)


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770 via pyloudnorm) in LUFS; ``-inf`` for silence.

    Accepts ``(samples,)`` or ``(channels, samples)``. Clips shorter than the standard 400 ms
    gating block are measured with one block spanning the whole clip.
    """
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 2:
        a = a.T  # pyloudnorm wants (samples, channels)
    n = a.shape[0]
    if n < 16:
        raise AudioError(f"audio too short to measure loudness ({n} samples)")
    block = min(0.4, n / sample_rate)
    if rms(a, axis=None) < 1e-7:
        return float("-inf")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_meter(int(sample_rate), float(block)).integrated_loudness(a))


def loudness_normalise(
    audio: np.ndarray, sample_rate: int, target_lufs: float = -23.0, max_peak_db: float | None = -1.0
) -> np.ndarray:
    """Scale to ``target_lufs``; if that would push the peak above ``max_peak_db`` the gain is
    lowered so the peak sits at ``max_peak_db`` (the result is then quieter than the target).
    Silent input raises AudioError.
    """
    a = np.asarray(audio, dtype=np.float32)
    lufs = loudness(a, sample_rate)
    if not np.isfinite(lufs):
        raise AudioError("cannot loudness-normalise silent audio; check the input")
    gain = db_to_gain(target_lufs - lufs)
    if max_peak_db is not None:
        p = peak(a) * gain
        if p > db_to_gain(max_peak_db):
            gain *= db_to_gain(max_peak_db) / p
    return (a * gain).astype(np.float32)


# --------------------------------------------------------------------------- silence
def is_silent(audio: np.ndarray, threshold_db: float = SILENCE_DB) -> bool:
    """True when the whole signal's RMS is below ``threshold_db`` dBFS (or it is empty)."""
    a = np.asarray(audio)
    return bool(a.size == 0 or rms_db(a, axis=None) < threshold_db)


def frame_rms_db(audio: np.ndarray, frame: int, hop: int | None = None) -> np.ndarray:
    """RMS in dBFS of consecutive frames of a mono signal (last partial frame dropped)."""
    a = to_mono(audio)
    hop = hop or frame
    if len(a) < frame:
        return np.array([rms_db(a)], dtype=np.float32)
    n = 1 + (len(a) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    return np.asarray(rms_db(a[idx], axis=1), dtype=np.float32)


def active_mask(
    audio: np.ndarray, sample_rate: int, threshold_db: float = -45.0, frame_seconds: float = 0.02
) -> np.ndarray:
    """Boolean per 20 ms frame: is the frame above ``threshold_db`` dBFS?"""
    frame = max(1, int(round(frame_seconds * sample_rate)))
    return frame_rms_db(audio, frame) >= threshold_db


def active_fraction(audio: np.ndarray, sample_rate: int, threshold_db: float = -45.0) -> float:
    """Fraction of 20 ms frames louder than ``threshold_db`` dBFS."""
    m = active_mask(audio, sample_rate, threshold_db)
    return float(m.mean()) if m.size else 0.0


def trim_silence(
    audio: np.ndarray, sample_rate: int, threshold_db: float = -50.0, frame_seconds: float = 0.01
) -> np.ndarray:
    """Drop leading and trailing frames quieter than ``threshold_db`` (mono or multichannel)."""
    a = np.asarray(audio, dtype=np.float32)
    frame = max(1, int(round(frame_seconds * sample_rate)))
    m = active_mask(a, sample_rate, threshold_db, frame_seconds)
    if not m.any():
        return a[..., :0]
    first, last = int(np.argmax(m)), len(m) - int(np.argmax(m[::-1]))
    return a[..., first * frame : min(a.shape[-1], last * frame + frame)]


# --------------------------------------------------------------------------- fades / segments
def fade(audio: np.ndarray, sample_rate: int, fade_in: float = 0.01, fade_out: float = 0.01) -> np.ndarray:
    """Raised-cosine fade-in/out of ``fade_in``/``fade_out`` seconds (returns a new array)."""
    a = np.array(audio, dtype=np.float32, copy=True)
    n = a.shape[-1]
    for seconds, out in ((fade_in, False), (fade_out, True)):
        k = min(n, int(round(seconds * sample_rate)))
        if k <= 0:
            continue
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
        if out:
            a[..., n - k :] *= ramp[::-1]
        else:
            a[..., :k] *= ramp
    return a


def segment(audio: np.ndarray, length: int, hop: int | None = None) -> np.ndarray:
    """Cut a mono signal into ``(n, length)`` windows every ``hop`` samples (no padding)."""
    a = to_mono(audio)
    hop = hop or length
    if len(a) < length:
        raise AudioError(f"audio has {len(a)} samples, fewer than one window of {length}")
    n = 1 + (len(a) - length) // hop
    idx = np.arange(length)[None, :] + hop * np.arange(n)[:, None]
    return a[idx]


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to exactly ``length`` samples."""
    a = np.asarray(audio, dtype=np.float32)
    n = a.shape[-1]
    if n >= length:
        return a[..., :length]
    pad = [(0, 0)] * (a.ndim - 1) + [(0, length - n)]
    return np.pad(a, pad)


# --------------------------------------------------------------------------- validation
def validate_audio(
    audio,
    sample_rate: int | None = None,
    *,
    name: str = "audio",
    mono: bool | None = None,
    min_seconds: float | None = None,
    min_samples: int | None = None,
    allow_silent: bool = False,
    silence_db: float = SILENCE_DB,
    max_channels: int | None = None,
    max_abs: float | None = None,
) -> np.ndarray:
    """Check audio and return it as float32; raise AudioError naming the problem and the fix.

    Checks: numeric array, 1-D (``mono=True``) or 2-D ``(channels, samples)`` (``mono=False``;
    ``None`` accepts both), finite values, at least ``min_seconds``/``min_samples`` long, not
    silent (unless ``allow_silent``), at most ``max_channels`` channels, peak below ``max_abs``.
    """
    try:
        a = np.asarray(as_float_audio(audio, name), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, AudioError):
            raise
        raise AudioError(f"{name}: expected a numeric array, got {type(audio).__name__}") from exc
    if sample_rate is not None:
        check_sample_rate(sample_rate, name)
    if a.ndim not in (1, 2) or (mono is True and a.ndim != 1) or (mono is False and a.ndim != 2):
        want = {True: "(samples,)", False: "(channels, samples)", None: "(samples,) or (channels, samples)"}[mono]
        raise AudioError(
            f"{name}: expected shape {want}, got {a.shape}; use dafxlib.audio.to_mono "
            f"for mono or audio[None] for one channel"
        )
    if a.ndim == 2 and a.shape[0] > a.shape[1]:
        raise AudioError(f"{name}: shape {a.shape} looks like (samples, channels); transpose it to (channels, samples)")
    if max_channels is not None and a.ndim == 2 and a.shape[0] > max_channels:
        raise AudioError(
            f"{name}: {a.shape[0]} channels, at most {max_channels} supported; downmix with dafxlib.audio.to_mono"
        )
    n = a.shape[-1]
    if n == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    need = min_samples or 0
    if min_seconds is not None:
        if sample_rate is None:
            raise AudioError(f"{name}: min_seconds needs the sample rate")
        need = max(need, int(math.ceil(min_seconds * sample_rate)))
    if n < need:
        sr_txt = f" ({n / sample_rate:.3f} s at {sample_rate} Hz)" if sample_rate else ""
        raise AudioError(f"{name}: too short, {n} samples{sr_txt}; need at least {need}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise AudioError(
            f"{name}: contains {bad} non-finite values (NaN/inf); fix the source or replace them with np.nan_to_num"
        )
    if max_abs is not None and peak(a) > max_abs:
        raise AudioError(f"{name}: peak {peak(a):.3g} exceeds {max_abs}; peak-normalise it")
    if not allow_silent and is_silent(a, silence_db):
        raise AudioError(
            f"{name}: silent (RMS {rms_db(a, axis=None):.1f} dBFS < {silence_db} dBFS); "
            f"check the recording or pass allow_silent=True"
        )
    return a


__all__ = [
    "AUDIO_EXTENSIONS",
    "SILENCE_DB",
    "load_audio",
    "audio_info",
    "to_mono",
    "resample",
    "rms",
    "rms_db",
    "peak",
    "db_to_gain",
    "peak_normalise",
    "loudness",
    "loudness_normalise",
    "is_silent",
    "frame_rms_db",
    "active_mask",
    "active_fraction",
    "trim_silence",
    "fade",
    "segment",
    "fit_length",
    "validate_audio",
    "check_sample_rate",
    "as_float_audio",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
]


def player(audio, sample_rate: int):
    """An IPython audio player that keeps the clip's level (scaled down only if it would clip)."""
    from IPython.display import Audio

    a = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    return Audio(a / peak if peak > 1.0 else a, rate=int(sample_rate), normalize=False)

"""Objective metrics for effect style transfer, batched and robust to silence.

Every metric compares an ``estimate`` (B, N) with a ``target`` (B, N) (mono float audio at
one sample rate) and gives one value per item. Definitions follow the DeepAFx-ST
evaluation (Steinmetz et al., 2022) that the study reused, adapted where a clip is
shorter than an analysis window:

``mrstft``
    Multi-resolution STFT distance (auraloss ``STFTLoss`` per resolution, mean over
    resolutions): FFT sizes 32, 128, 512, 2048, 8192, 32768, hop = FFT/2, window = FFT
    (Hann), weights: linear magnitude L1 = 1, log magnitude L1 = 1, spectral convergence
    = 0, phase = 0. A resolution whose FFT is longer than the clip is dropped (torch's
    centred STFT cannot reflect-pad it): 1 s clips at 24 kHz use the first five.
    Lower is better; identical signals give 0.
``msd``
    Mel spectral distance: one mel (128 bands) STFT with FFT = hop = window = the largest
    power of two <= min(clip length, 65536), L1 on linear + log magnitudes.
``sce``
    Spectral-centroid error in Hz: | mean centroid(est) - mean centroid(target) |, frame
    centroids of the magnitude STFT (FFT 2048, hop 512), averaged over frames above
    -100 dBFS.
``rms``
    RMS level error in dB: | 20 log10 rms(est) - 20 log10 rms(target) |.
``lufs``
    Integrated loudness error in LU (ITU-R BS.1770 via pyloudnorm, mono).
``pesq``
    Wide-band PESQ (ITU-T P.862.2) at 16 kHz (both signals resampled with a polyphase
    filter); higher is better, range about 1.0 to 4.64. Meant for speech.
``param_mae``
    Mean absolute error of normalised parameters, averaged over the effect's parameters.

Silence and failures. No metric ever returns NaN or inf silently. An item is *excluded*
(its value is NaN and the reason is counted in a :class:`MetricReport`) when the target
is non-finite or silent (RMS below -100 dBFS), when the estimate is non-finite, or when a
metric is undefined for it (clip too short for LUFS gating or PESQ, a PESQ library
error). A *silent estimate* is a real failure of a method, so it is kept and scored at
the metric's floor (level -100 dB, loudness -70 LUFS, centroid 0 Hz, PESQ 1.0), which
penalises it instead of excusing it; such items are counted as ``floored``.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .audio import as_float_audio, check_sample_rate, loudness
from .audio import rms_db as _level_db
from .errors import AudioError
from .threads import single_thread

# ---- settings (documented in the module docstring) --------------------------------------
MRSTFT_FFT_SIZES: tuple[int, ...] = (32, 128, 512, 2048, 8192, 32768)
MRSTFT_HOP_FRACTION = 0.5
MRSTFT_W_LIN_MAG = 1.0
MRSTFT_W_LOG_MAG = 1.0
MSD_MAX_FFT = 65536
MSD_N_MELS = 128
SCE_N_FFT = 2048
SCE_HOP = 512
LF_CUTOFF_HZ = 250.0
PESQ_RATE = 16_000
#: an item whose RMS is below this (-100 dBFS) counts as silent
SILENCE_RMS = 1e-5
RMS_FLOOR_DB = 20.0 * math.log10(SILENCE_RMS)
LUFS_FLOOR = -70.0  # BS.1770 absolute gate
PESQ_FLOOR = 1.0
LUFS_MIN_SECONDS = 0.4  # one gating block
PESQ_MIN_SECONDS = 0.25

#: every metric name, in table order
METRICS: tuple[str, ...] = ("mrstft", "msd", "sce", "rms", "lufs", "pesq", "param_mae")
#: metrics computed from audio alone
AUDIO_METRICS: tuple[str, ...] = ("mrstft", "msd", "sce", "rms", "lufs", "pesq")
HIGHER_IS_BETTER = frozenset({"pesq"})
UNITS = {
    "mrstft": "",
    "msd": "",
    "sce": "Hz",
    "rms": "dB",
    "lufs": "LU",
    "pesq": "MOS-LQO",
    "param_mae": "",
    "param_mae_id": "",
}
LABELS = {
    "mrstft": "MR-STFT",
    "msd": "MSD",
    "sce": "SCE (Hz)",
    "rms": "RMS error (dB)",
    "lufs": "LUFS error (LU)",
    "pesq": "PESQ",
    "param_mae": "parameter MAE",
    "param_mae_id": "parameter MAE (identifiable knobs)",
}

_CHUNK = 64  # items per STFT batch (bounds memory for long clips)


# ---- bookkeeping ------------------------------------------------------------------------
@dataclass
class MetricReport:
    """Counts of excluded items (per metric, per reason) and of floored silent estimates."""

    n_items: int = 0
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)
    floored: dict[str, int] = field(default_factory=dict)

    def exclude(self, metric: str, reason: str, count: int = 1) -> None:
        if count:
            per = self.excluded.setdefault(metric, {})
            per[reason] = per.get(reason, 0) + int(count)

    def floor(self, metric: str, count: int = 1) -> None:
        if count:
            self.floored[metric] = self.floored.get(metric, 0) + int(count)

    def n_excluded(self, metric: str | None = None) -> int:
        if metric is not None:
            return sum(self.excluded.get(metric, {}).values())
        return sum(sum(v.values()) for v in self.excluded.values())

    def merge(self, other: MetricReport) -> MetricReport:
        self.n_items += other.n_items
        for m, reasons in other.excluded.items():
            for r, c in reasons.items():
                self.exclude(m, r, c)
        for m, c in other.floored.items():
            self.floor(m, c)
        return self

    def to_dict(self) -> dict:
        return {
            "n_items": self.n_items,
            "excluded": {m: dict(r) for m, r in self.excluded.items()},
            "floored": dict(self.floored),
        }

    def summary(self) -> str:
        if not self.excluded and not self.floored:
            return f"{self.n_items} items, none excluded, no silent estimates"
        parts = [f"{self.n_items} items"]
        for m, reasons in sorted(self.excluded.items()):
            parts.append(f"{m}: excluded " + ", ".join(f"{c} {r}" for r, c in sorted(reasons.items())))
        for m, c in sorted(self.floored.items()):
            parts.append(f"{m}: {c} silent estimates scored at the floor")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.summary()


def _as_batch(a, name: str) -> np.ndarray:
    arr = as_float_audio(a, name)  # int16/int32 PCM scaled to [-1, 1), other non-floats refused
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 2:
        raise AudioError(f"{name}: expected audio of shape (batch, samples) or (samples,), got {arr.shape}")
    if arr.shape[1] == 0:
        raise AudioError(f"{name}: audio is empty")
    return arr.astype(np.float64, copy=False)


def _pair(estimate, target) -> tuple[np.ndarray, np.ndarray]:
    est, tgt = _as_batch(estimate, "estimate"), _as_batch(target, "target")
    if est.shape != tgt.shape:
        raise AudioError(
            f"estimate {est.shape} and target {tgt.shape} must have the same shape; "
            "trim or pad them to one length first"
        )
    return est, tgt


def _rms(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(a), axis=-1))


def screen(estimate, target) -> tuple[np.ndarray, np.ndarray, dict[int, str], np.ndarray]:
    """Check items once: returns (est, tgt) with non-finite rows zeroed (excluded estimate
    rows too), {index: reason} of excluded items, and a mask of silent (finite) estimates."""
    est, tgt = _pair(estimate, target)
    reasons: dict[int, str] = {}
    fin_t = np.all(np.isfinite(tgt), axis=1)
    fin_e = np.all(np.isfinite(est), axis=1)
    tgt_z = np.where(fin_t[:, None], tgt, 0.0)
    est_z = np.where(fin_e[:, None], est, 0.0)
    silent_t = _rms(tgt_z) < SILENCE_RMS
    for i in range(est.shape[0]):
        if not fin_t[i]:
            reasons[i] = "non-finite target"
        elif not fin_e[i]:
            reasons[i] = "non-finite estimate"
        elif silent_t[i]:
            reasons[i] = "silent target"
    bad = np.zeros(est.shape[0], bool)
    bad[list(reasons)] = True
    est_z[bad] = 0.0  # the target keeps its rows: its features depend on the target alone
    silent_e = (_rms(est_z) < SILENCE_RMS) & ~bad
    return est_z, tgt_z, reasons, silent_e


# ---- spectral metrics (auraloss) -------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _mrstft_modules(n: int):
    import auraloss

    sizes = [f for f in MRSTFT_FFT_SIZES if f <= n]
    if not sizes:
        raise AudioError(f"clip of {n} samples is shorter than the smallest MR-STFT FFT ({MRSTFT_FFT_SIZES[0]})")
    return [
        auraloss.freq.STFTLoss(
            fft_size=f,
            hop_size=int(f * MRSTFT_HOP_FRACTION),
            win_length=f,
            w_sc=0.0,
            w_log_mag=MRSTFT_W_LOG_MAG,
            w_lin_mag=MRSTFT_W_LIN_MAG,
            w_phs=0.0,
            reduction="none",
        )
        for f in sizes
    ]


def mrstft_resolutions(n_samples: int) -> list[int]:
    """FFT sizes the MR-STFT uses for clips of ``n_samples`` (documented adaptation)."""
    return [m.fft_size for m in _mrstft_modules(int(n_samples))]


def msd_fft_size(n_samples: int) -> int:
    return int(min(MSD_MAX_FFT, 2 ** int(math.floor(math.log2(n_samples)))))


@functools.lru_cache(maxsize=16)
def _msd_module(n: int, sample_rate: int):
    import auraloss

    f = msd_fft_size(n)
    return auraloss.freq.MelSTFTLoss(
        sample_rate,
        fft_size=f,
        hop_size=f,
        win_length=f,
        w_sc=0.0,
        w_log_mag=1.0,
        w_lin_mag=1.0,
        n_mels=min(MSD_N_MELS, f // 2),
        reduction="none",
    )


def _per_item(modules, est: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    import torch

    out = np.zeros(est.shape[0])
    with torch.no_grad(), single_thread():
        for s in range(0, est.shape[0], _CHUNK):
            e = torch.from_numpy(est[s : s + _CHUNK].astype(np.float32))[:, None]
            t = torch.from_numpy(tgt[s : s + _CHUNK].astype(np.float32))[:, None]
            acc = torch.zeros(e.shape[0], dtype=torch.float64)
            for m in modules:
                acc += m(e, t).mean(dim=(-2, -1)).double()
            out[s : s + _CHUNK] = (acc / len(modules)).numpy()
    return out


# ---- descriptors ------------------------------------------------------------------------
def spectral_centroid(audio, sample_rate: int) -> np.ndarray:
    """Mean frame spectral centroid in Hz per item (frames above -100 dBFS; 0 for silence)."""
    import torch

    sample_rate = check_sample_rate(sample_rate, "spectral_centroid", allow_float=True)
    a = _as_batch(audio, "audio")
    a = np.where(np.isfinite(a), a, 0.0)
    n_fft = min(SCE_N_FFT, 2 ** int(math.floor(math.log2(a.shape[1]))))
    hop = max(1, n_fft // 4)
    out = np.zeros(a.shape[0])
    win = torch.hann_window(n_fft)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    with torch.no_grad(), single_thread():
        for s in range(0, a.shape[0], _CHUNK):
            out[s : s + _CHUNK] = _centroid_chunk(torch, a[s : s + _CHUNK], n_fft, hop, win, freqs)
    return out


def _centroid_chunk(torch, chunk: np.ndarray, n_fft: int, hop: int, win, freqs) -> np.ndarray:
    from .spectrogram import stft_magnitude

    mag = stft_magnitude(chunk.astype(np.float32), n_fft, hop, pad_mode="reflect")  # (B,F,T)
    total = mag.sum(dim=1)
    frame_power = (mag**2).sum(dim=1) / (win.pow(2).sum() * n_fft / 2)
    ok = (frame_power > SILENCE_RMS**2) & (total > 0)
    cent = (freqs[None, :, None] * mag).sum(dim=1) / total.clamp_min(1e-30)
    num = (cent * ok).sum(dim=1)
    den = ok.sum(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num)).double().numpy()


def low_frequency_ratio(audio, sample_rate: int, cutoff_hz: float = LF_CUTOFF_HZ) -> np.ndarray:
    """Share of energy below ``cutoff_hz`` (0..1) per item; 0 for silence."""
    sample_rate = check_sample_rate(sample_rate, "low_frequency_ratio", allow_float=True)
    a = _as_batch(audio, "audio")
    a = np.where(np.isfinite(a), a, 0.0)
    spec = np.abs(np.fft.rfft(a, axis=1)) ** 2
    freqs = np.fft.rfftfreq(a.shape[1], 1.0 / sample_rate)
    total = spec.sum(axis=1)
    low = spec[:, freqs < cutoff_hz].sum(axis=1)
    return np.where(total > 0, low / np.maximum(total, 1e-300), 0.0)


def rms_db(audio) -> np.ndarray:
    """RMS level in dBFS per item, floored at -100 dB (the silence threshold)."""
    a = _as_batch(audio, "audio")
    return np.asarray(_level_db(np.where(np.isfinite(a), a, 0.0), axis=-1, floor_db=RMS_FLOOR_DB))


def loudness_lufs(audio, sample_rate: int) -> np.ndarray:
    """Integrated loudness (LUFS) per item, floored at -70 LUFS (the absolute gate).

    Raises :class:`AudioError` for clips shorter than one 400 ms gating block."""
    sample_rate = check_sample_rate(sample_rate, "loudness_lufs", allow_float=True)
    a = _as_batch(audio, "audio")
    if a.shape[1] < LUFS_MIN_SECONDS * sample_rate:
        raise AudioError(f"LUFS needs clips of at least {LUFS_MIN_SECONDS} s, got {a.shape[1] / sample_rate:.3f} s")
    a = np.where(np.isfinite(a), a, 0.0)
    out = np.array([loudness(row, int(sample_rate)) if _rms(row) >= SILENCE_RMS else -np.inf for row in a])
    return np.maximum(np.where(np.isfinite(out), out, LUFS_FLOOR), LUFS_FLOOR)


def timbral_descriptors(audio, sample_rate: int) -> dict[str, np.ndarray]:
    """Spectral centroid (Hz), low-frequency energy ratio (< 250 Hz), RMS (dBFS) and loudness
    (LUFS; omitted for clips under 0.4 s) per item."""
    out = {
        "centroid_hz": spectral_centroid(audio, sample_rate),
        "lf_ratio": low_frequency_ratio(audio, sample_rate),
        "rms_db": rms_db(audio),
    }
    if _as_batch(audio, "audio").shape[1] >= LUFS_MIN_SECONDS * sample_rate:
        out["loudness_lufs"] = loudness_lufs(audio, sample_rate)
    return out


# ---- PESQ ---------------------------------------------------------------------------------
def _resample16(a: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == PESQ_RATE:
        return a
    from scipy.signal import resample_poly

    g = math.gcd(PESQ_RATE, int(sample_rate))
    return resample_poly(a, PESQ_RATE // g, int(sample_rate) // g, axis=-1)


def _pesq_one(ref: np.ndarray, deg: np.ndarray) -> tuple[float, str | None]:
    from pesq import pesq

    try:
        v = float(pesq(PESQ_RATE, ref, deg, "wb"))
    except Exception as exc:  # cypesq raises NoUtterancesError, BufferTooShortError, ...
        name = type(exc).__name__
        if name == "NoUtterancesError":
            return math.nan, "pesq: no speech found in the target"
        return math.nan, f"pesq error ({name})"
    if not math.isfinite(v):
        return math.nan, "pesq non-finite"
    return v, None


# ---- the batch entry point ---------------------------------------------------------------
def compute_metrics(
    estimate,
    target,
    sample_rate: int,
    *,
    metrics: Iterable[str] | None = None,
    params_hat=None,
    params_true=None,
    workers: int = 1,
    report: MetricReport | None = None,
    target_cache: dict | None = None,
) -> tuple[dict[str, np.ndarray], MetricReport]:
    """Per-item metrics of ``estimate`` against ``target`` (both (B, N) or (N,)).

    Returns ``(values, report)``: ``values[name]`` is a float64 array (B,) whose excluded
    items are NaN, each one counted with its reason in ``report`` (see module docstring).
    ``metrics`` defaults to the audio metrics plus ``param_mae`` when both parameter arrays
    are given. ``workers`` threads run PESQ. An existing ``report`` is added to.
    ``target_cache``: pass the same dict when scoring several estimates against one target
    (target descriptors are then computed once; a different target raises AudioError).
    """
    # PESQ resamples to 16 kHz; below 8 kHz its C library can crash the process (band-limited
    # input), and every other metric is meaningless: refuse such rates up front
    sample_rate = check_sample_rate(sample_rate, "compute_metrics", allow_float=True)
    names = (
        list(metrics)
        if metrics is not None
        else (list(AUDIO_METRICS) + (["param_mae"] if params_hat is not None and params_true is not None else []))
    )
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise AudioError(f"unknown metric(s) {unknown}; valid: {list(METRICS)}")
    est, tgt, reasons, silent_e = screen(estimate, target)
    b, n = est.shape
    rep = report if report is not None else MetricReport()
    rep.n_items += b
    base_bad = np.zeros(b, bool)
    base_bad[list(reasons)] = True
    out: dict[str, np.ndarray] = {}
    cache = target_cache if target_cache is not None else {}
    fp = (tgt.shape, float(np.sum(tgt)), float(np.sum(np.abs(tgt[:, ::97]))), sample_rate)
    if cache.setdefault("_fingerprint", fp) != fp:
        raise AudioError("target_cache was filled for a different target; use one dict per target")

    def tfeat(key: str, fn):
        if key not in cache:
            cache[key] = fn()
        return cache[key]

    def finish(
        name: str, vals: np.ndarray, extra_bad: Mapping[int, str] | None = None, floored: np.ndarray | None = None
    ) -> None:
        vals = np.asarray(vals, dtype=np.float64).copy()
        bad = base_bad.copy()
        why = dict(reasons)
        for k, r in (extra_bad or {}).items():
            if not bad[k]:
                bad[k] = True
                why[k] = r
        # a non-finite value that slipped through is excluded loudly, never returned silently
        for i in np.flatnonzero(~np.isfinite(vals) & ~bad).tolist():
            bad[i] = True
            why[i] = f"{name} non-finite"
        vals[bad] = np.nan
        counts: dict[str, int] = defaultdict(int)
        for i in np.flatnonzero(bad).tolist():
            counts[why[i]] += 1
        for r, c in counts.items():
            rep.exclude(name, r, c)
        if floored is not None:
            rep.floor(name, int(np.sum(floored & ~bad)))
        out[name] = vals

    for name in names:
        if name == "mrstft":
            finish(name, _per_item(_mrstft_modules(n), est, tgt))
        elif name == "msd":
            finish(name, _per_item([_msd_module(n, sample_rate)], est, tgt))
        elif name == "sce":
            tc = tfeat("centroid", lambda: spectral_centroid(tgt, sample_rate))
            finish(name, np.abs(spectral_centroid(est, sample_rate) - tc), floored=silent_e)
        elif name == "rms":
            finish(name, np.abs(rms_db(est) - tfeat("rms_db", lambda: rms_db(tgt))), floored=silent_e)
        elif name == "lufs":
            if n < LUFS_MIN_SECONDS * sample_rate:
                finish(name, np.full(b, np.nan), {i: f"too short for LUFS (< {LUFS_MIN_SECONDS} s)" for i in range(b)})
            else:
                tl = tfeat("lufs", lambda: loudness_lufs(tgt, sample_rate))
                finish(name, np.abs(loudness_lufs(est, sample_rate) - tl), floored=silent_e)
        elif name == "pesq":
            t16 = tfeat("t16", lambda: _resample16(tgt, sample_rate))
            finish(name, *_pesq_batch(est, t16, sample_rate, base_bad, silent_e, workers), floored=silent_e)
        elif name == "param_mae":
            finish(name, *_param_mae(params_hat, params_true, b))
    return out, rep


def _pesq_batch(est, t16, sample_rate, base_bad, silent_e, workers) -> tuple[np.ndarray, dict[int, str]]:
    b, n = est.shape
    vals = np.full(b, np.nan)
    if n < PESQ_MIN_SECONDS * sample_rate:
        return vals, {i: f"too short for PESQ (< {PESQ_MIN_SECONDS} s)" for i in range(b)}
    e16 = _resample16(est, sample_rate)
    vals[silent_e] = PESQ_FLOOR
    todo = [i for i in range(b) if not base_bad[i] and not silent_e[i]]
    extra: dict[int, str] = {}
    if workers > 1 and len(todo) > 1:
        with ThreadPoolExecutor(workers) as ex:
            res = list(ex.map(lambda i: _pesq_one(t16[i], e16[i]), todo))
    else:
        res = [_pesq_one(t16[i], e16[i]) for i in todo]
    for i, (v, why) in zip(todo, res):
        vals[i] = v
        if why:
            extra[i] = why
    return vals, extra


def _param_mae(params_hat, params_true, b: int) -> tuple[np.ndarray, dict[int, str]]:
    if params_hat is None or params_true is None:
        raise AudioError("param_mae needs both params_hat and params_true (arrays of shape (batch, P))")
    ph = np.asarray(params_hat, dtype=np.float64).reshape(b, -1)
    pt = np.asarray(params_true, dtype=np.float64).reshape(b, -1)
    if ph.shape != pt.shape:
        raise AudioError(f"params_hat {ph.shape} and params_true {pt.shape} differ in shape")
    ok = np.all(np.isfinite(ph), axis=1) & np.all(np.isfinite(pt), axis=1)
    vals = np.where(ok, np.abs(np.where(ok[:, None], ph - pt, 0.0)).mean(axis=1), np.nan)
    return vals, {int(i): "non-finite parameters" for i in np.flatnonzero(~ok)}


def param_mae(params_hat, params_true) -> np.ndarray:
    """Per-item mean absolute error of normalised parameters (raises on non-finite input)."""
    ph = np.atleast_2d(np.asarray(params_hat, dtype=np.float64))
    vals, bad = _param_mae(ph, params_true, ph.shape[0])
    if bad:
        raise AudioError(f"param_mae: non-finite parameters in items {sorted(bad)}")
    return vals


def mrstft(estimate, target) -> np.ndarray:
    """Per-item MR-STFT distance (study settings; raises on non-finite or silent targets)."""
    vals, rep = compute_metrics(estimate, target, PESQ_RATE, metrics=["mrstft"])  # MR-STFT ignores the rate
    _raise_if_excluded(rep)
    return vals["mrstft"]


def _raise_if_excluded(rep: MetricReport) -> None:
    if rep.n_excluded():
        raise AudioError(
            f"items could not be scored: {rep.summary()}; use compute_metrics to exclude and count them instead"
        )


def nanmean_valid(values: np.ndarray) -> float | None:
    """Mean over non-excluded (non-NaN) items, or None when every item was excluded."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else None


def is_better(metric: str, a: float, b: float) -> bool:
    """True when value ``a`` is strictly better than ``b`` for ``metric``."""
    return a > b if metric in HIGHER_IS_BETTER else a < b


def sign(metric: str) -> int:
    """+1 when lower is better, -1 when higher is better (multiply to make lower better)."""
    return -1 if metric in HIGHER_IS_BETTER else 1


__all__: Sequence[str] = (
    "METRICS",
    "AUDIO_METRICS",
    "HIGHER_IS_BETTER",
    "UNITS",
    "LABELS",
    "MetricReport",
    "compute_metrics",
    "mrstft",
    "param_mae",
    "spectral_centroid",
    "low_frequency_ratio",
    "rms_db",
    "loudness_lufs",
    "timbral_descriptors",
    "mrstft_resolutions",
    "msd_fft_size",
    "nanmean_valid",
    "is_better",
    "sign",
    "screen",
)

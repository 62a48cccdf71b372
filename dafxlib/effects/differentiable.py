"""A differentiable EQ + compressor chain in torch: the DeepAFx-ST-style stand-in for an effect.

:class:`DiffChain` maps clean audio ``x`` (B, N) and normalised parameters ``p`` (B, P) in [0, 1]
to ``y`` (B, N), differentiably in both, so a controller predicting ``p`` trains by autodiff.
Stages, in order:

1. **Parametric EQ** (:func:`eq_response`): a low shelf, three peaking filters and a high shelf,
   each an RBJ-cookbook biquad. The five responses are evaluated on the clip's FFT grid and
   multiplied with the spectrum of the zero-padded clip (one rfft/irfft per clip): the
   biquads' exact frequency response applied by (padded, so nearly linear) convolution, without
   a recursive filter, so gradients are those of a few complex products.
2. **Feed-forward compressor** (:func:`compress`): level detection at a control rate (mean
   power in frames of ``hop`` samples, in dB), a soft-knee gain computer (knee 6 dB), and the
   gain reduction smoothed by two one-pole filters, a fast one (attack) and a slow one
   (release), taken as their maximum: a rise in gain reduction follows the attack filter, a
   fall the release filter. Each one-pole filter is applied as its impulse response truncated to
   the clip (an FIR applied by FFT convolution), which is differentiable in the time constant.
   The smoothed gain is interpolated linearly back to the sample rate.
3. **Makeup gain** in dB.

Parameter ranges (:data:`CHAIN_PARAMS`; ``log`` scales interpolate the logarithm; frequencies
above ``0.45 x sample_rate`` are clamped there):

=================  =============  =====
name               range          scale
=================  =============  =====
low_shelf_hz       30 - 400 Hz    log
low_shelf_db       -18 - +18 dB   lin
peak1_hz           60 - 600 Hz    log
peak1_db / q       +-18 dB, 0.3-5 lin / log
peak2_hz           300 - 3000 Hz  log
peak3_hz           1.5 - 12 kHz   log
high_shelf_hz      1.5 - 12 kHz   log
high_shelf_db      -18 - +18 dB   lin
threshold_db       -60 - 0 dB     lin
ratio              1 - 20         log
attack_ms          0.5 - 50 ms    log
release_ms         10 - 1000 ms   log
makeup_db          -24 - +24 dB   lin
=================  =============  =====

At ``p = flat_params()`` (every EQ gain 0 dB, threshold 0 dB, ratio 1, makeup 0 dB) the chain is
the identity up to float error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import scipy.fft as sfft
import torch

from ..errors import AudioError, EffectError


@dataclass(frozen=True)
class ChainParam:
    """One normalised knob of the chain: raw range, unit and scale."""

    name: str
    minimum: float
    maximum: float
    unit: str = ""
    scale: str = "linear"

    def to_raw(self, p01: torch.Tensor) -> torch.Tensor:
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return torch.exp(lo + p01 * (hi - lo))
        return self.minimum + p01 * (self.maximum - self.minimum)

    def to_norm(self, raw: float) -> float:
        raw = min(max(float(raw), self.minimum), self.maximum)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (math.log(raw) - lo) / (hi - lo)
        return (raw - self.minimum) / (self.maximum - self.minimum)


_GAIN = 18.0
CHAIN_PARAMS: tuple[ChainParam, ...] = (
    ChainParam("low_shelf_hz", 30.0, 400.0, "Hz", "log"),
    ChainParam("low_shelf_db", -_GAIN, _GAIN, "dB"),
    ChainParam("peak1_hz", 60.0, 600.0, "Hz", "log"),
    ChainParam("peak1_db", -_GAIN, _GAIN, "dB"),
    ChainParam("peak1_q", 0.3, 5.0, "", "log"),
    ChainParam("peak2_hz", 300.0, 3000.0, "Hz", "log"),
    ChainParam("peak2_db", -_GAIN, _GAIN, "dB"),
    ChainParam("peak2_q", 0.3, 5.0, "", "log"),
    ChainParam("peak3_hz", 1500.0, 12000.0, "Hz", "log"),
    ChainParam("peak3_db", -_GAIN, _GAIN, "dB"),
    ChainParam("peak3_q", 0.3, 5.0, "", "log"),
    ChainParam("high_shelf_hz", 1500.0, 12000.0, "Hz", "log"),
    ChainParam("high_shelf_db", -_GAIN, _GAIN, "dB"),
    ChainParam("threshold_db", -60.0, 0.0, "dB"),
    ChainParam("ratio", 1.0, 20.0, "", "log"),
    ChainParam("attack_ms", 0.5, 50.0, "ms", "log"),
    ChainParam("release_ms", 10.0, 1000.0, "ms", "log"),
    ChainParam("makeup_db", -24.0, 24.0, "dB"),
)
PARAM_NAMES: tuple[str, ...] = tuple(c.name for c in CHAIN_PARAMS)
N_PARAMS = len(CHAIN_PARAMS)
N_EQ_PARAMS = 13
_Coeffs = tuple[list[torch.Tensor], list[torch.Tensor]]
#: soft-knee width of the gain computer (dB)
KNEE_DB = 6.0


def flat_params() -> torch.Tensor:
    """The normalised setting (P,) at which the chain is the identity: every gain 0 dB, threshold
    0 dB, ratio 1, makeup 0 dB; frequencies, Q and time constants at mid-range."""
    raw = {
        "low_shelf_db": 0.0,
        "peak1_db": 0.0,
        "peak2_db": 0.0,
        "peak3_db": 0.0,
        "high_shelf_db": 0.0,
        "threshold_db": 0.0,
        "ratio": 1.0,
        "makeup_db": 0.0,
    }
    return torch.tensor([c.to_norm(raw[c.name]) if c.name in raw else 0.5 for c in CHAIN_PARAMS], dtype=torch.float32)


def to_raw(p01: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw values (each (B,)) of a batch of normalised settings (B, P)."""
    return {c.name: c.to_raw(p01[:, i]) for i, c in enumerate(CHAIN_PARAMS)}


def check_inputs(x: torch.Tensor, p01: torch.Tensor) -> None:
    """EffectError / AudioError for a wrong shape, non-finite values or settings outside [0, 1]."""
    if not isinstance(x, torch.Tensor) or not isinstance(p01, torch.Tensor):
        raise AudioError("the differentiable chain takes torch tensors x (B, N) and p (B, P)")
    if x.ndim != 2 or x.shape[1] < 64:
        raise AudioError(f"the differentiable chain expects audio (B, N>=64), got shape {tuple(x.shape)}")
    if p01.ndim != 2 or p01.shape != (x.shape[0], N_PARAMS):
        raise EffectError(
            f"the differentiable chain expects settings (B, {N_PARAMS}) with B = {x.shape[0]}, got {tuple(p01.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise AudioError("the differentiable chain: audio contains NaN or inf")
    if not bool(torch.isfinite(p01).all()) or bool((p01 < 0).any()) or bool((p01 > 1).any()):
        raise EffectError("the differentiable chain's settings must be finite and in [0, 1] (normalised)")


# ---- EQ -------------------------------------------------------------------------------------


def _poly_mul(p: torch.Tensor, q: list[torch.Tensor]) -> torch.Tensor:
    """Coefficients (B, K + 2) of the product of polynomials in z^-1: ``p`` (B, K) times a quadratic ``q``."""
    pad = torch.nn.functional.pad
    return pad(p * q[0][:, None], (0, 2)) + pad(p * q[1][:, None], (1, 1)) + pad(p * q[2][:, None], (2, 0))


def _peak(f0: torch.Tensor, gain_db: torch.Tensor, q: torch.Tensor, sr: float) -> _Coeffs:
    amp = torch.pow(10.0, gain_db / 40.0)
    w0 = 2 * math.pi * f0 / sr
    alpha = torch.sin(w0) / (2 * q)
    cw = torch.cos(w0)
    b = [1 + alpha * amp, -2 * cw, 1 - alpha * amp]
    a = [1 + alpha / amp, -2 * cw, 1 - alpha / amp]
    return b, a


def _shelf(f0: torch.Tensor, gain_db: torch.Tensor, sr: float, high: bool) -> _Coeffs:
    amp = torch.pow(10.0, gain_db / 40.0)
    w0 = 2 * math.pi * f0 / sr
    cw, sw = torch.cos(w0), torch.sin(w0)
    alpha = sw / 2 * math.sqrt(2.0)  # the cookbook's sqrt((A + 1/A)(1/S - 1) + 2) at slope S = 1
    ra = 2 * torch.sqrt(amp) * alpha
    sgn = -1.0 if high else 1.0
    # low shelf (sgn = +1) and high shelf (sgn = -1) of the cookbook, one expression
    b = [
        amp * ((amp + 1) - sgn * (amp - 1) * cw + ra),
        sgn * 2 * amp * ((amp - 1) - sgn * (amp + 1) * cw),
        amp * ((amp + 1) - sgn * (amp - 1) * cw - ra),
    ]
    a = [
        (amp + 1) + sgn * (amp - 1) * cw + ra,
        -sgn * 2 * ((amp - 1) + sgn * (amp + 1) * cw),
        (amp + 1) + sgn * (amp - 1) * cw - ra,
    ]
    return b, a


def eq_coefficients(p01: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator and denominator (each (B, 11), powers of z^-1, float64) of the five cascaded biquads."""
    raw = {k: v.double() for k, v in to_raw(p01).items()}
    sr = float(sample_rate)
    fmax = 0.45 * sr
    hz = lambda k: torch.clamp(raw[k], max=fmax)  # noqa: E731
    sections = [_shelf(hz("low_shelf_hz"), raw["low_shelf_db"], sr, high=False)]
    sections += [_peak(hz(f"peak{i}_hz"), raw[f"peak{i}_db"], raw[f"peak{i}_q"], sr) for i in (1, 2, 3)]
    sections.append(_shelf(hz("high_shelf_hz"), raw["high_shelf_db"], sr, high=True))
    one = torch.ones(p01.shape[0], 1, dtype=torch.float64, device=p01.device)
    num, den = one, one
    for b, a in sections:
        num, den = _poly_mul(num, b), _poly_mul(den, a)
    return num, den


@functools.lru_cache(maxsize=8)
def _basis(n_taps: int, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(w k) and sin(w k) (n_taps, n_fft // 2 + 1), float64, on the rfft grid w = 2 pi f / n_fft."""
    w = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (2 * math.pi / n_fft)
    wk = torch.arange(n_taps, dtype=torch.float64)[:, None] * w[None]
    return torch.cos(wk), torch.sin(wk)


def eq_response(p01: torch.Tensor, sample_rate: int, n_fft: int) -> torch.Tensor:
    """The EQ's complex frequency response (B, n_fft // 2 + 1) for normalised settings (B, P).

    The cascade's numerator and denominator polynomials are evaluated on the rfft grid as two small
    matrix products (float64: the poles of a 30 Hz shelf sit close to z = 1, where the sums
    cancel), then divided in float32 arithmetic."""
    num, den = eq_coefficients(p01, sample_rate)
    c, s = _basis(num.shape[1], int(n_fft))
    c, s = c.to(num.device), s.to(num.device)
    nr, ni = (num @ c).float(), -(num @ s).float()
    dr, di = (den @ c).float(), -(den @ s).float()
    mag = dr * dr + di * di
    return torch.complex((nr * dr + ni * di) / mag, (ni * dr - nr * di) / mag)


def _fft_len(n: int, pad: int) -> int:
    return int(sfft.next_fast_len(n + pad, real=True))


def apply_eq(x: torch.Tensor, p01: torch.Tensor, sample_rate: int, pad: int | None = None) -> torch.Tensor:
    """EQ ``x`` (B, N) in the FFT domain; ``pad`` zeros (default min(N, 4096)) take the filters' tails."""
    n = x.shape[1]
    m = _fft_len(n, min(n, 4096) if pad is None else int(pad))
    spec = torch.fft.rfft(x, m)
    return torch.fft.irfft(spec * eq_response(p01, sample_rate, m), m)[:, :n]


# ---- compressor -----------------------------------------------------------------------------


def gain_computer(level_db: torch.Tensor, threshold_db: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Gain reduction in dB (>= 0) of a soft-knee (``KNEE_DB``) compressor at input levels ``level_db``."""
    t, r = threshold_db[:, None], ratio[:, None]
    over = level_db - t
    slope = 1.0 - 1.0 / r
    knee = slope * (over + KNEE_DB / 2) ** 2 / (2 * KNEE_DB)
    above = slope * over
    return torch.where(over <= -KNEE_DB / 2, torch.zeros_like(over), torch.where(over >= KNEE_DB / 2, above, knee))


def one_pole_fir(tau_frames: torch.Tensor, n: int) -> torch.Tensor:
    """Impulse responses (B, n) of one-pole smoothers with time constants ``tau_frames`` (B,), unit DC gain
    over the n taps."""
    a = torch.exp(-1.0 / tau_frames.clamp_min(1e-3))[:, None]
    k = torch.arange(n, dtype=tau_frames.dtype, device=tau_frames.device)[None]
    h = torch.pow(a, k)
    return h / h.sum(dim=1, keepdim=True)


def _causal_conv(sig: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    n = sig.shape[1]
    m = _fft_len(2 * n, 0)
    return torch.fft.irfft(torch.fft.rfft(sig, m) * torch.fft.rfft(kern, m), m)[:, :n]


def compress(
    x: torch.Tensor,
    threshold_db: torch.Tensor,
    ratio: torch.Tensor,
    attack_ms: torch.Tensor,
    release_ms: torch.Tensor,
    sample_rate: int,
    hop: int = 64,
) -> torch.Tensor:
    """Feed-forward compression of ``x`` (B, N); the other arguments are raw values (B,)."""
    b, n = x.shape
    n_frames = -(-n // hop)
    padded = torch.nn.functional.pad(x, (0, n_frames * hop - n))
    power = padded.reshape(b, n_frames, hop).pow(2).mean(dim=2)
    level = 10.0 * torch.log10(power + 1e-10)
    gr = gain_computer(level, threshold_db, ratio)
    frame_ms = 1000.0 * hop / sample_rate
    fast = _causal_conv(gr, one_pole_fir(attack_ms / frame_ms, n_frames))
    slow = _causal_conv(gr, one_pole_fir(release_ms / frame_ms, n_frames))
    smooth = torch.maximum(fast, slow)
    gain = torch.pow(10.0, -smooth / 20.0)
    # frame k's gain sits at the frame's centre; linear interpolation to the samples
    up = torch.nn.functional.interpolate(gain[:, None], size=n_frames * hop, mode="linear", align_corners=False)
    return x * up[:, 0, :n]


# ---- the chain ------------------------------------------------------------------------------


class DiffChain(torch.nn.Module):
    """EQ -> compressor -> makeup gain, differentiable in the audio and the normalised settings."""

    param_names = PARAM_NAMES
    n_params = N_PARAMS

    def __init__(self, sample_rate: int, hop: int = 64, eq_pad: int | None = None):
        super().__init__()
        if int(sample_rate) < 8000:
            raise AudioError(f"the differentiable chain needs a sample rate of at least 8 kHz, got {sample_rate}")
        if int(hop) < 1:
            raise EffectError(f"compressor hop must be >= 1 sample, got {hop}")
        self.sample_rate = int(sample_rate)
        self.hop = int(hop)
        self.eq_pad = eq_pad

    def forward(self, x: torch.Tensor, p01: torch.Tensor) -> torch.Tensor:
        check_inputs(x, p01)
        raw = to_raw(p01)
        y = apply_eq(x, p01, self.sample_rate, self.eq_pad)
        y = compress(
            y, raw["threshold_db"], raw["ratio"], raw["attack_ms"], raw["release_ms"], self.sample_rate, self.hop
        )
        return y * torch.pow(10.0, raw["makeup_db"] / 20.0)[:, None]

"""The ``portable`` effect set: pip-only versions of the nine study effects.

pedalboard built-ins where they fit (distortion, filters, gain, compressor, gate, limiter,
reverb, chorus), numba/numpy where they do not (feedback delay with a tone filter, ring
modulator, multiband split, rotary speaker). Parameter names follow the mda plugins.

Ranges are chosen so that every point of [0, 1]^P is a plausible, clearly audible use of
the effect on speech or music around -30..-10 dBFS RMS: wet mixes never approach zero,
feedback stays well inside stability, no setting silences a normal clip. Each instance
builds its pedalboard objects once (lazily, so instances pickle and deep-copy) and only
sets their attributes per call; pedalboard resets plugin state on every call, so outputs
do not depend on what an instance rendered before.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Effect, ParamSpec
from .dsp import db_to_gain, delay_kernel, lr4_allpass, lr4_split, ringmod_kernel


def _nyq(sample_rate: int, hz: float) -> float:
    """Keep a filter frequency safely below Nyquist."""
    return float(min(hz, 0.45 * sample_rate))


class _Portable(Effect):
    """Common plumbing: lazily built pedalboard objects, dropped when pickled."""

    backend = "pedalboard"
    SPECS: tuple[ParamSpec, ...] = ()

    def __init__(self):
        super().__init__(self.SPECS)
        self._pb = None

    def _plugins(self):
        if self._pb is None:
            self._pb = self._build()
        return self._pb

    def _build(self):
        return None

    @staticmethod
    def _run(board, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = board.process(audio.reshape(1, -1), float(sample_rate), reset=True)
        return out[0]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pb"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


class Overdrive(_Portable):
    """Soft (tanh) distortion, a gentle one-pole low-pass ("muffle") and an output trim."""

    name = "Overdrive"
    SPECS = (
        ParamSpec("drive", 12.0, 42.0, 24.0, unit="dB"),
        ParamSpec("muffle", 0.0, 1.0, 0.3, unit=""),  # low-pass from 10 kHz (0) down to 800 Hz (1)
        ParamSpec("output", -24.0, 0.0, -12.0, unit="dB"),
    )

    def _build(self):
        import pedalboard as pb

        return pb.Pedalboard([pb.Distortion(), pb.LowpassFilter(), pb.Gain()])

    def _render(self, audio, sample_rate, raw):
        board = self._plugins()
        board[0].drive_db = raw["drive"]
        board[1].cutoff_frequency_hz = _nyq(sample_rate, 10000.0 * (800.0 / 10000.0) ** raw["muffle"])
        board[2].gain_db = raw["output"]
        return self._run(board, audio, sample_rate)


class Combo(_Portable):
    """Amp simulator: asymmetric tanh clipping (``bias``), resonant high-pass, speaker voicing."""

    name = "Combo"
    SPECS = (
        ParamSpec("drive", 6.0, 36.0, 18.0, unit="dB"),
        ParamSpec("bias", -0.6, 0.6, 0.0, unit=""),  # offset before clipping: even harmonics
        ParamSpec("output", -24.0, 0.0, -12.0, unit="dB"),
        ParamSpec("hpf_freq", 40.0, 1200.0, 150.0, unit="Hz", scale="log"),
        ParamSpec("hpf_reso", 0.0, 0.7, 0.3, unit=""),
    )

    def _build(self):
        import pedalboard as pb

        return pb.Pedalboard(
            [
                pb.LadderFilter(pb.LadderFilter.Mode.HPF12, 150.0, 0.3, 1.0),
                pb.PeakFilter(1500.0, 4.0, 0.8),  # speaker voicing: presence bump ...
                pb.LowpassFilter(4000.0),  # ... and cabinet roll-off
                pb.Gain(),
            ]
        )

    def _render(self, audio, sample_rate, raw):
        g = db_to_gain(raw["drive"])
        b = raw["bias"]
        x = audio.astype(np.float64)
        # bias shifts the operating point; subtracting tanh(b) keeps silence silent (no DC step)
        shaped = (np.tanh(g * x + b) - math.tanh(b)).astype(np.float32)
        board = self._plugins()
        board[0].cutoff_hz = _nyq(sample_rate, raw["hpf_freq"])
        board[0].resonance = raw["hpf_reso"]
        board[1].cutoff_frequency_hz = _nyq(sample_rate, 1500.0)
        board[2].cutoff_frequency_hz = _nyq(sample_rate, 4000.0)
        board[3].gain_db = raw["output"]
        return self._run(board, shaped, sample_rate)


class Delay(_Portable):
    """Two-tap feedback echo: taps at ``l_delay`` and ``l_delay * r_delay``, tone filter in the loop.

    An impulse at sample 0 produces echoes at ``round(l_delay * sr / 1000)`` and
    ``round(l_delay * r_delay * sr / 1000)`` samples (then every round trip).
    ``fb_tone``: 0 dark (low-pass at 1.2 kHz), 0.5 neutral, 1 thin (high-pass at 1.2 kHz).
    """

    name = "Delay"
    backend = "numba"
    SPECS = (
        ParamSpec("l_delay", 40.0, 500.0, 180.0, unit="ms", scale="log"),
        ParamSpec("r_delay", 0.5, 1.5, 0.75, unit="x l_delay"),
        ParamSpec("feedback", 0.0, 0.8, 0.4, unit=""),
        ParamSpec("fb_tone", 0.0, 1.0, 0.5, unit=""),
        ParamSpec("fx_mix", 0.25, 0.75, 0.4, unit=""),
    )
    TONE_HZ = 1200.0

    @staticmethod
    def delay_samples(l_delay_ms: float, r_delay: float, sample_rate: int) -> tuple[int, int]:
        d1 = max(1, int(round(l_delay_ms * sample_rate / 1000.0)))
        d2 = max(1, int(round(l_delay_ms * r_delay * sample_rate / 1000.0)))
        return d1, d2

    def _render(self, audio, sample_rate, raw):
        d1, d2 = self.delay_samples(raw["l_delay"], raw["r_delay"], sample_rate)
        t = raw["fb_tone"]
        lp_gain, hp_gain = (1.0, 2.0 * t) if t < 0.5 else (2.0 * (1.0 - t), 1.0)
        pole = math.exp(-2.0 * math.pi * _nyq(sample_rate, self.TONE_HZ) / sample_rate)
        m = raw["fx_mix"]
        return delay_kernel(audio, d1, d2, raw["feedback"], pole, lp_gain, hp_gain, m, 1.0 - m)


class RingMod(_Portable):
    """Ring modulator: input times a sine carrier at ``freq + fine`` Hz, with feedback.

    ``y[n] = (x[n] + feedback * y[n-1]) * sin(2 pi (freq + fine) n / sr)``.
    """

    name = "RingMod"
    backend = "numba"
    SPECS = (
        ParamSpec("freq", 30.0, 2000.0, 300.0, unit="Hz", scale="log"),
        ParamSpec("fine", 0.0, 100.0, 0.0, unit="Hz"),
        ParamSpec("feedback", 0.0, 0.9, 0.0, unit=""),
    )

    @staticmethod
    def carrier_hz(freq: float, fine: float) -> float:
        return float(freq + fine)

    def _render(self, audio, sample_rate, raw):
        f = self.carrier_hz(raw["freq"], raw["fine"])
        return ringmod_kernel(audio, 2.0 * math.pi * f / sample_rate, raw["feedback"])


class Dynamics(_Portable):
    """Gate, compressor, make-up gain (``output``) and a limiter, blended with the dry signal.

    ``limiter`` is the output ceiling in dBFS. pedalboard's (JUCE's) Limiter raises its output
    by ``3.75 - threshold`` dB so that its ceiling sits near 0 dBFS; a gain after it takes that
    back, so signals below the ceiling pass at unity and peaks stop near ``limiter`` dBFS.
    """

    name = "Dynamics"
    SPECS = (
        ParamSpec("thresh", -45.0, -20.0, -30.0, unit="dB"),
        ParamSpec("ratio", 2.0, 20.0, 4.0, unit=":1", scale="log"),
        ParamSpec("output", 0.0, 18.0, 6.0, unit="dB"),
        ParamSpec("attack", 0.3, 60.0, 5.0, unit="ms", scale="log"),
        ParamSpec("release", 20.0, 800.0, 150.0, unit="ms", scale="log"),
        ParamSpec("limiter", -18.0, -6.0, -10.0, unit="dBFS"),
        ParamSpec("gate_thr", -55.0, -25.0, -40.0, unit="dB"),
        ParamSpec("gate_att", 0.5, 20.0, 2.0, unit="ms", scale="log"),
        ParamSpec("gate_rel", 20.0, 500.0, 100.0, unit="ms", scale="log"),
        ParamSpec("mix", 0.6, 1.0, 1.0, unit=""),
    )
    #: the fixed make-up JUCE's Limiter adds on top of -threshold (10 dB * (1 - 1/4) / 2)
    JUCE_LIMITER_MAKEUP_DB = 3.75

    def _build(self):
        import pedalboard as pb

        return pb.Pedalboard([pb.NoiseGate(ratio=10.0), pb.Compressor(), pb.Gain(), pb.Limiter(), pb.Gain()])

    def _render(self, audio, sample_rate, raw):
        board = self._plugins()
        gate, comp, gain, lim, ceiling = board[0], board[1], board[2], board[3], board[4]
        gate.threshold_db = raw["gate_thr"]
        gate.attack_ms = raw["gate_att"]
        gate.release_ms = raw["gate_rel"]
        comp.threshold_db = raw["thresh"]
        comp.ratio = raw["ratio"]
        comp.attack_ms = raw["attack"]
        comp.release_ms = raw["release"]
        gain.gain_db = raw["output"]
        lim.threshold_db = raw["limiter"] + self.JUCE_LIMITER_MAKEUP_DB
        lim.release_ms = raw["release"]
        ceiling.gain_db = raw["limiter"]
        wet = self._run(board, audio, sample_rate)
        m = raw["mix"]
        if m >= 1.0:
            return wet
        return (m * wet + (1.0 - m) * audio).astype(np.float32)


class Ambience(_Portable):
    """Room reverb (pedalboard/Freeverb): size, high-frequency damping, wet mix, output trim."""

    name = "Ambience"
    SPECS = (
        ParamSpec("size", 0.3, 0.95, 0.6, unit=""),
        ParamSpec("hf_damp", 0.1, 0.9, 0.5, unit=""),
        ParamSpec("mix", 0.3, 0.7, 0.45, unit=""),
        ParamSpec("output", -6.0, 6.0, 0.0, unit="dB"),
    )

    def _render(self, audio, sample_rate, raw):
        import pedalboard as pb

        # A fresh Reverb per call (~30 us): pedalboard's Reverb ramps its damping/gains from the
        # previous call's settings even with reset=True, so a reused one depends on history.
        rev = pb.Reverb(width=1.0)
        board = pb.Pedalboard([rev, pb.Gain()])
        rev.room_size = raw["size"]
        rev.damping = raw["hf_damp"]
        rev.wet_level = raw["mix"]
        rev.dry_level = 1.0 - 0.6 * raw["mix"]
        board[1].gain_db = raw["output"]
        return self._run(board, audio, sample_rate)


class Flanger(_Portable):
    """Flanger built on pedalboard's Chorus with short delays.

    The delay sweeps between ``depth`` ms and ``depth - depth_mod * (depth - 1)`` ms at
    ``rate`` Hz; ``feedback`` sharpens the comb (kept well below 1: Chorus does not clamp it).
    """

    name = "Flanger"
    SPECS = (
        ParamSpec("rate", 0.05, 2.0, 0.3, unit="Hz", scale="log"),
        ParamSpec("depth", 2.0, 10.0, 5.0, unit="ms"),
        ParamSpec("mix", 0.4, 0.65, 0.5, unit=""),
        ParamSpec("feedback", 0.0, 0.7, 0.3, unit=""),
        ParamSpec("depth_mod", 0.5, 1.0, 0.8, unit=""),
    )
    #: pedalboard/JUCE Chorus: delay = centre + 20 ms * depth/2 * lfo
    _CHORUS_MOD_MS = 10.0

    def _build(self):
        import pedalboard as pb

        return pb.Pedalboard([pb.Chorus()])

    def _render(self, audio, sample_rate, raw):
        d_max = raw["depth"]
        d_min = d_max - raw["depth_mod"] * (d_max - 1.0)
        ch = self._plugins()[0]
        ch.rate_hz = raw["rate"]
        ch.centre_delay_ms = 0.5 * (d_max + d_min)
        ch.depth = 0.5 * (d_max - d_min) / self._CHORUS_MOD_MS
        ch.feedback = raw["feedback"]
        ch.mix = raw["mix"]
        return self._run(self._plugins(), audio, sample_rate)


class MultiBand(_Portable):
    """Three-band compressor: LR4 crossovers, one compressor and one level trim per band.

    ``*_comp`` is a compression amount: threshold -24 dBFS (band level) and 2.5:1 at 0 up to
    -46 dBFS and 8:1 at 1, with automatic make-up gain (half the gain reduction of a band
    at -18 dBFS), so the knob changes dynamics and density more than overall level.
    """

    name = "MultiBand"
    SPECS = (
        ParamSpec("l_m", 80.0, 800.0, 250.0, unit="Hz", scale="log"),
        ParamSpec("m_h", 1500.0, 6000.0, 3000.0, unit="Hz", scale="log"),
        ParamSpec("l_comp", 0.0, 1.0, 0.5, unit=""),
        ParamSpec("m_comp", 0.0, 1.0, 0.5, unit=""),
        ParamSpec("h_comp", 0.0, 1.0, 0.5, unit=""),
        ParamSpec("l_out", -12.0, 12.0, 0.0, unit="dB"),
        ParamSpec("m_out", -12.0, 12.0, 0.0, unit="dB"),
        ParamSpec("h_out", -12.0, 12.0, 0.0, unit="dB"),
        ParamSpec("attack", 1.0, 50.0, 8.0, unit="ms", scale="log"),
        ParamSpec("release", 30.0, 600.0, 150.0, unit="ms", scale="log"),
    )

    @staticmethod
    def band_curve(amount: float) -> tuple[float, float]:
        """(threshold dBFS, ratio) of a band compressor for a compression amount in [0, 1]."""
        return -24.0 - 22.0 * amount, 2.5 + 5.5 * amount

    @classmethod
    def makeup_db(cls, amount: float) -> float:
        thr, ratio = cls.band_curve(amount)
        return 0.5 * (1.0 - 1.0 / ratio) * (-18.0 - thr)

    def _build(self):
        import pedalboard as pb

        return [pb.Compressor() for _ in range(3)]

    def _render(self, audio, sample_rate, raw):
        x = audio.astype(np.float64)
        low, rest = lr4_split(x, sample_rate, raw["l_m"])
        mid, high = lr4_split(rest, sample_rate, raw["m_h"])
        low = lr4_allpass(low, sample_rate, raw["m_h"])
        out = np.zeros_like(x)
        comps = self._plugins()
        for band, comp, key in zip((low, mid, high), comps, ("l", "m", "h")):
            amount = raw[f"{key}_comp"]
            thr, ratio = self.band_curve(amount)
            comp.threshold_db = thr
            comp.ratio = ratio
            comp.attack_ms = raw["attack"]
            comp.release_ms = raw["release"]
            y = self._run(comp, band.astype(np.float32), sample_rate)
            out += db_to_gain(raw[f"{key}_out"] + self.makeup_db(amount)) * y
        return out.astype(np.float32)


class Leslie(_Portable):
    """Rotary speaker: LR4 crossover into horn (high) and drum (low) rotors.

    The horn turns at ``speed`` Hz, the drum at 0.85x that; each rotor modulates its band's
    delay (Doppler: horn by ``hi_depth`` ms, drum by 0.15 ms) and amplitude (``hi_throb``,
    ``lo_throb``), loudest when the rotor faces the listener (shortest delay).
    """

    name = "Leslie"
    backend = "numpy"
    SPECS = (
        ParamSpec("lo_throb", 0.2, 0.7, 0.4, unit=""),
        ParamSpec("hi_depth", 0.2, 1.0, 0.5, unit="ms"),
        ParamSpec("hi_throb", 0.3, 0.8, 0.5, unit=""),
        ParamSpec("x_over", 300.0, 1500.0, 800.0, unit="Hz", scale="log"),
        ParamSpec("output", -6.0, 6.0, 0.0, unit="dB"),
        ParamSpec("speed", 0.6, 7.0, 2.0, unit="Hz", scale="log"),
    )
    DRUM_RATIO = 0.85
    DRUM_DEPTH_MS = 0.15
    BASE_DELAY_MS = 1.2

    def _render(self, audio, sample_rate, raw):
        x = audio.astype(np.float64)
        low, high = lr4_split(x, sample_rate, raw["x_over"])
        n = np.arange(x.shape[0], dtype=np.float64)
        t = n / sample_rate
        out = np.zeros_like(x)
        rotors = (
            (high, raw["speed"], raw["hi_depth"], raw["hi_throb"], 0.0),
            (low, raw["speed"] * self.DRUM_RATIO, self.DRUM_DEPTH_MS, raw["lo_throb"], 1.3),
        )
        for band, rate, depth_ms, throb, phase in rotors:
            s = np.sin(2.0 * np.pi * rate * t + phase)  # -1: facing the listener
            delay = (self.BASE_DELAY_MS + 0.5 * depth_ms * (1.0 + s)) * (sample_rate / 1000.0)
            moved = np.interp(n - delay, n, band, left=0.0)
            out += moved * (1.0 - 0.5 * throb * (1.0 + s))
        out *= db_to_gain(raw["output"])
        return out.astype(np.float32)


PORTABLE_EFFECTS: dict[str, type[_Portable]] = {
    "overdrive": Overdrive,
    "delay": Delay,
    "ringmod": RingMod,
    "dynamics": Dynamics,
    "combo": Combo,
    "ambience": Ambience,
    "flanger": Flanger,
    "multiband": MultiBand,
    "leslie": Leslie,
}

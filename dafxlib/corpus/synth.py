"""A small numpy instrument synthesiser for the embedded music corpus.

Instruments (each a pure function of its arguments and a ``numpy.random.Generator``):

- :func:`pluck`  Karplus-Strong plucked string, vectorised one period at a time
- :func:`bass`   saw + sub-sine through an enveloped one-pole lowpass
- :func:`keys`   two-operator FM electric piano or additive organ
- :func:`pad`    detuned polyBLEP saws through a Butterworth lowpass, slow envelope
- :func:`kick`, :func:`snare`, :func:`hat`  a drum kit from sines and filtered noise

:func:`render_phrase` draws tempo, key, scale, chord progression and an arrangement (a solo
instrument or two to four layered parts: melody, arpeggio, comping, pad, bass line, drum
pattern) and renders exactly ``n_samples``. It is deterministic for a given generator state
and costs a few milliseconds per second of audio.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
#: chord roots as scale degrees, one chord per bar
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 3, 4, 0),
    (0, 5, 3, 4),
    (0, 4, 5, 3),
    (1, 4, 0, 0),
    (0, 0, 3, 4),
    (5, 3, 0, 4),
    (0, 6, 5, 4),
    (0, 2, 3, 4),
)
DRUM_PATTERNS = ("rock", "four_on_floor", "half_time", "breakbeat", "shuffle")
#: solo arrangements and layered ones (weights in render_phrase)
SOLO_PARTS = ("melody_pluck", "arp_pluck", "melody_keys", "comp_keys", "pad", "bass", "drums")


def midi_to_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


# --------------------------------------------------------------------------- envelopes / filters
def adsr(n: int, sr: int, attack: float, decay: float, sustain: float, release: float, gate: float) -> np.ndarray:
    """Piecewise-linear ADSR of ``n`` samples; the note is held for ``gate`` seconds."""
    a, d, r = max(attack, 1e-4), max(decay, 1e-4), max(release, 1e-4)
    g = max(gate, a)
    pts_t = [0.0, a, a + d, max(g, a + d), max(g, a + d) + r]
    pts_v = [0.0, 1.0, sustain, sustain, 0.0]
    if g < a + d:  # released during the decay: release from the level reached at the gate
        lvl = 1.0 + (sustain - 1.0) * (g - a) / d
        pts_t = [0.0, a, g, g + r]
        pts_v = [0.0, 1.0, lvl, 0.0]
    t = np.arange(n, dtype=np.float32) / sr
    return np.interp(t, pts_t, pts_v).astype(np.float32)


def exp_decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n, dtype=np.float32) / (tau * sr)).astype(np.float32)


@lru_cache(maxsize=256)
def _butter(order: int, cutoff: float | tuple[float, float], sr: int, btype: str) -> np.ndarray:
    from scipy.signal import butter

    nyq = 0.5 * sr
    if btype == "bandpass":
        assert isinstance(cutoff, tuple), "a band-pass needs (low, high) cut-offs"
        lo, hi = cutoff
        return butter(order, [max(lo, 10.0) / nyq, min(hi, 0.95 * nyq) / nyq], btype=btype, output="sos")
    assert not isinstance(cutoff, tuple), f"a {btype} filter needs one cut-off"
    return butter(order, min(max(cutoff, 10.0), 0.95 * nyq) / nyq, btype=btype, output="sos")


def filt(x: np.ndarray, sr: int, cutoff, btype: str = "lowpass", order: int = 2) -> np.ndarray:
    from scipy.signal import sosfilt

    key = tuple(cutoff) if isinstance(cutoff, (tuple, list)) else float(cutoff)
    return sosfilt(_butter(order, key, int(sr), btype), x).astype(np.float32)


def _poly_blep_saw(freq: float, n: int, sr: int, phase0: float) -> np.ndarray:
    """Band-limited-ish sawtooth (polyBLEP) in [-1, 1]."""
    dt = freq / sr
    t = (phase0 + dt * np.arange(n, dtype=np.float64)) % 1.0
    y = 2.0 * t - 1.0
    m = t < dt
    x = t[m] / dt
    y[m] -= x + x - x * x - 1.0
    m = t > 1.0 - dt
    x = (t[m] - 1.0) / dt
    y[m] -= x * x + x + x + 1.0
    return y.astype(np.float32)


# --------------------------------------------------------------------------- instruments
def pluck(
    freq: float,
    duration: float,
    sr: int,
    rng: np.random.Generator,
    *,
    brightness: float = 0.6,
    sustain_s: float = 1.2,
    release: float = 0.05,
) -> np.ndarray:
    """Karplus-Strong string: noise burst into a tuned, damped feedback delay.

    The loop filter is the classic two-point average combined with a linear-interpolation
    fractional delay, ``h = g * [(1-d)/2, 1/2, d/2]`` on taps ``L, L+1, L+2``, whose delay
    ``L + 0.5 + d`` equals the period ``sr / freq``. Every tap lies at least one period back,
    so the loop is computed exactly one period (``L`` samples) per numpy step. ``g`` sets the
    decay time ``sustain_s`` (-60 dB).
    """
    n = max(1, int(round((duration + release) * sr)))
    period = sr / freq
    L = max(2, int(np.floor(period - 0.5)))
    d = float(np.clip(period - 0.5 - L, 0.0, 1.0))
    g = 10.0 ** (-3.0 / (sustain_s * freq))  # -60 dB after sustain_s seconds
    burst = rng.uniform(-1.0, 1.0, L + 2).astype(np.float32)
    if brightness < 1.0:  # soften the excitation with a one-pole lowpass
        from scipy.signal import lfilter

        a = 0.15 + 0.85 * brightness
        burst = lfilter([a], [1.0, -(1.0 - a)], burst).astype(np.float32)
    burst -= burst.mean()
    y = np.zeros(n + L + 2, dtype=np.float32)
    y[: L + 2] = burst
    c0, c1, c2 = (np.float32(g * (1.0 - d) / 2), np.float32(g / 2), np.float32(g * d / 2))
    s = L + 2
    while s < len(y):
        e = min(s + L, len(y))
        k = e - s
        y[s:e] = c0 * y[s - L : s - L + k] + c1 * y[s - L - 1 : s - L - 1 + k] + c2 * y[s - L - 2 : s - L - 2 + k]
        s = e
    y = y[:n]
    # damp at note-off (a finger on the string), then a short release
    off = int(duration * sr)
    if off < n:
        y[off:] *= np.linspace(1.0, 0.0, n - off, dtype=np.float32)
    return y * 0.7


def bass(
    freq: float, duration: float, sr: int, rng: np.random.Generator, *, cutoff: float = 900.0, release: float = 0.06
) -> np.ndarray:
    n = max(1, int(round((duration + release) * sr)))
    saw = _poly_blep_saw(freq, n, sr, rng.uniform())
    sub = np.sin(2 * np.pi * freq * np.arange(n) / sr + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    env = adsr(n, sr, 0.005, 0.15, 0.7, release, duration)
    tone = filt(0.55 * saw + 0.6 * sub, sr, cutoff * (0.6 + 0.8 * rng.uniform()), "lowpass", 2)
    return tone * env * 0.8


def keys(
    freq: float, duration: float, sr: int, rng: np.random.Generator, *, kind: str = "epiano", release: float = 0.15
) -> np.ndarray:
    n = max(1, int(round((duration + release) * sr)))
    t = np.arange(n, dtype=np.float32) / sr
    if kind == "epiano":  # 2-op FM, index decaying: bright attack, mellow tail
        index = (2.5 + 2.0 * rng.uniform()) * exp_decay(n, sr, 0.25)
        mod = np.sin(2 * np.pi * freq * t)
        y = np.sin(2 * np.pi * freq * t + index * mod)
        y += 0.15 * np.sin(2 * np.pi * 14.0 * freq * t) * exp_decay(n, sr, 0.02)  # tine click
        env = adsr(n, sr, 0.002, 0.8, 0.35, release, duration) * exp_decay(n, sr, 1.5)
    else:  # organ: additive drawbars with a little tremolo
        bars = ((1.0, 1.0), (2.0, 0.6), (3.0, 0.35), (4.0, 0.25), (0.5, 0.45))
        y = np.zeros(n, dtype=np.float32)
        for ratio, amp in bars:
            if ratio * freq < 0.45 * sr:
                y += amp * np.sin(2 * np.pi * ratio * freq * t + rng.uniform(0, 2 * np.pi))
        y *= 1.0 + 0.08 * np.sin(2 * np.pi * 5.5 * t)
        y /= 2.0
        env = adsr(n, sr, 0.01, 0.05, 0.9, release, duration)
    return (y * env * 0.5).astype(np.float32)


def pad(
    freqs: list[float],
    duration: float,
    sr: int,
    rng: np.random.Generator,
    *,
    detune_cents: float = 12.0,
    cutoff: float = 1800.0,
    release: float = 0.4,
) -> np.ndarray:
    n = max(1, int(round((duration + release) * sr)))
    y = np.zeros(n, dtype=np.float32)
    for f in freqs:
        for cents in (-detune_cents, detune_cents):
            y += _poly_blep_saw(f * 2 ** ((cents + rng.normal(0, 2)) / 1200), n, sr, rng.uniform())
    y = filt(y / (2 * max(1, len(freqs))), sr, cutoff, "lowpass", 2)
    env = adsr(n, sr, min(0.35, 0.4 * duration), 0.3, 0.8, release, duration)
    return y * env * 0.9


def kick(sr: int, rng: np.random.Generator, *, decay: float = 0.35) -> np.ndarray:
    n = int(decay * sr)
    t = np.arange(n, dtype=np.float32) / sr
    f_hi, f_lo = 130 + 60 * rng.uniform(), 45 + 15 * rng.uniform()
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / 0.035)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    y = np.sin(phase) * exp_decay(n, sr, 0.12)
    click = rng.uniform(-1, 1, n).astype(np.float32) * exp_decay(n, sr, 0.003)
    return (0.95 * y + 0.25 * click).astype(np.float32)


def snare(sr: int, rng: np.random.Generator, *, decay: float = 0.25) -> np.ndarray:
    n = int(decay * sr)
    t = np.arange(n, dtype=np.float32) / sr
    noise = filt(rng.uniform(-1, 1, n).astype(np.float32), sr, (1200.0, 9000.0), "bandpass", 2)
    tone = np.sin(2 * np.pi * (180 + 40 * rng.uniform()) * t) * exp_decay(n, sr, 0.04)
    return (0.8 * noise * exp_decay(n, sr, 0.07) + 0.5 * tone).astype(np.float32)


def hat(sr: int, rng: np.random.Generator, *, open_: bool = False) -> np.ndarray:
    n = int((0.3 if open_ else 0.06) * sr)
    noise = filt(rng.uniform(-1, 1, n).astype(np.float32), sr, 7000.0, "highpass", 2)
    return (0.45 * noise * exp_decay(n, sr, 0.09 if open_ else 0.015)).astype(np.float32)


# --------------------------------------------------------------------------- phrases
@dataclass
class _Mix:
    n: int
    sr: int
    buf: np.ndarray = field(init=False)

    def __post_init__(self):
        self.buf = np.zeros(self.n, dtype=np.float32)

    def add(self, t: float, sig: np.ndarray, gain: float = 1.0) -> None:
        i = int(round(t * self.sr))
        if i >= self.n or i + len(sig) <= 0:
            return
        j = max(0, -i)
        seg = sig[j : self.n - i] if i >= 0 else sig[j : j + self.n]
        i = max(i, 0)
        self.buf[i : i + len(seg)] += gain * seg


def _chord(root_deg: int, scale: tuple[int, ...], tonic: int, octave: int, n_notes: int = 3) -> list[int]:
    """MIDI notes of a diatonic chord (stacked thirds on scale degree ``root_deg``)."""
    notes = []
    for k in range(n_notes):
        deg = root_deg + 2 * k
        notes.append(tonic + 12 * (octave + deg // len(scale)) + scale[deg % len(scale)])
    return notes


def _scale_note(deg: int, scale: tuple[int, ...], tonic: int, octave: int) -> int:
    return tonic + 12 * (octave + deg // len(scale)) + scale[deg % len(scale)]


def render_phrase(rng: np.random.Generator, sample_rate: int, n_samples: int) -> tuple[np.ndarray, dict]:
    """Render one musical phrase of exactly ``n_samples``; returns ``(audio, meta)``.

    ``meta`` names tempo, key, scale, progression, drum pattern and the parts played.
    """
    sr = int(sample_rate)
    dur = n_samples / sr
    tempo = float(rng.uniform(72, 160))
    beat = 60.0 / tempo
    tonic = int(rng.integers(0, 12))  # pitch class
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    beats_per_chord = 4 if dur / beat > 6 else 2
    # arrangement: a solo part (35 %) or 2-4 layered parts
    if rng.uniform() < 0.35:
        parts = [str(rng.choice(SOLO_PARTS))]
    else:
        lead = str(rng.choice(["melody_pluck", "arp_pluck", "melody_keys", "comp_keys", "pad"]))
        pool = [p for p in ("bass", "drums", "pad", "comp_keys", "arp_pluck") if p != lead]
        k = int(rng.integers(1, 4))
        parts = [lead] + [str(p) for p in rng.choice(pool, size=k, replace=False)]
    drum_pattern = str(rng.choice(DRUM_PATTERNS))
    start = -float(rng.uniform(0, 2 * beat))  # enter mid-phrase, not always on the downbeat
    mix = _Mix(n_samples, sr)
    n_beats = int(math.ceil((dur - start) / beat)) + 1

    def chord_at(b: float) -> int:
        return prog[int(b // beats_per_chord) % len(prog)]

    gains = {p: float(rng.uniform(0.6, 1.0)) for p in parts}
    jitter = lambda: float(rng.normal(0, 0.004))  # noqa: E731 - humanised timing
    for part in parts:
        g = gains[part]
        if part == "drums":
            kit = {"k": kick(sr, rng), "s": snare(sr, rng), "h": hat(sr, rng), "o": hat(sr, rng, open_=True)}
            for b in range(n_beats):
                t0 = start + b * beat
                hits = _drum_hits(drum_pattern, b, rng)
                for frac, name, vel in hits:
                    mix.add(t0 + frac * beat + jitter(), kit[name], g * vel)
        elif part == "bass":
            octave = 2 + (tonic < 4)
            step = 1.0 if rng.uniform() < 0.5 else 0.5
            t = start
            while t < dur:
                root = chord_at((t - start) / beat)
                deg = root + (4 if rng.uniform() < 0.2 else 0)
                f = midi_to_hz(_scale_note(deg, scale, tonic, octave))
                mix.add(t + jitter(), bass(f, step * beat * 0.9, sr, rng), g * rng.uniform(0.8, 1.0))
                t += step * beat
        elif part == "pad":
            t = start
            while t < dur:
                root = chord_at((t - start) / beat)
                freqs = [midi_to_hz(m) for m in _chord(root, scale, tonic, 4, 3 + (rng.uniform() < 0.4))]
                mix.add(t, pad(freqs, beats_per_chord * beat, sr, rng, cutoff=float(rng.uniform(900, 3000))), g * 0.8)
                t += beats_per_chord * beat
        elif part == "comp_keys":
            kind = "epiano" if rng.uniform() < 0.6 else "organ"
            comp_hits = (0.0, 1.5, 2.0, 3.5) if rng.uniform() < 0.5 else (0.0, 1.0, 2.0, 3.0)
            for b0 in range(0, n_beats, 4):
                for h in comp_hits:
                    tb = b0 + h
                    t = start + tb * beat
                    if t >= dur:
                        break
                    notes = _chord(chord_at(tb), scale, tonic, 4)
                    length = beat * (0.9 if h % 1 else 0.8)
                    sig = functools.reduce(
                        operator.add, [keys(midi_to_hz(m), length, sr, rng, kind=kind) for m in notes]
                    )
                    mix.add(t + jitter(), sig / 2.0, g * rng.uniform(0.7, 1.0))
        elif part in ("melody_pluck", "melody_keys"):
            deg = int(rng.integers(0, len(scale)))
            octave = 5 if part == "melody_keys" else 4
            kind = "epiano" if rng.uniform() < 0.7 else "organ"
            t = start
            while t < dur:
                step = float(rng.choice([0.25, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                if rng.uniform() < 0.15:  # rest
                    t += step * beat
                    continue
                deg += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
                deg = int(np.clip(deg, -3, 2 * len(scale)))
                f = midi_to_hz(_scale_note(deg, scale, tonic, octave))
                length = step * beat * float(rng.uniform(0.6, 1.0))
                sig = (
                    pluck(f, length, sr, rng, brightness=float(rng.uniform(0.3, 0.9)))
                    if part == "melody_pluck"
                    else keys(f, length, sr, rng, kind=kind)
                )
                mix.add(t + jitter(), sig, g * rng.uniform(0.7, 1.0))
                t += step * beat
        elif part == "arp_pluck":
            step = 0.25 if tempo < 110 else 0.5
            pattern = rng.permutation(4) if rng.uniform() < 0.3 else np.array([0, 1, 2, 1])
            i, t = 0, start
            bright = float(rng.uniform(0.4, 0.95))
            while t < dur:
                notes = _chord(chord_at((t - start) / beat), scale, tonic, 4, 4)
                f = midi_to_hz(notes[int(pattern[i % len(pattern)]) % len(notes)])
                mix.add(
                    t + jitter(),
                    pluck(f, step * beat * 1.6, sr, rng, brightness=bright, sustain_s=0.8),
                    g * rng.uniform(0.6, 0.9),
                )
                i += 1
                t += step * beat
    y = mix.buf
    if rng.uniform() < 0.5:  # a touch of room: a few sparse, decaying echoes
        for k, d in enumerate(rng.uniform(0.021, 0.09, 3)):
            i = int(d * sr)
            y[i:] += (0.25 / (k + 1)) * y[:-i].copy()
    meta = {
        "tempo": round(tempo, 2),
        "key": ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][tonic],
        "scale": scale_name,
        "progression": list(prog),
        "parts": parts,
        "drum_pattern": drum_pattern if "drums" in parts else None,
        "layered": len(parts) > 1,
    }
    return y.astype(np.float32), meta


def _drum_hits(pattern: str, b: int, rng: np.random.Generator) -> list[tuple[float, str, float]]:
    """(fraction of the beat, drum, velocity) hits for beat ``b`` of ``pattern``."""
    bar_beat = b % 4
    hits: list[tuple[float, str, float]] = []
    if pattern == "rock":
        hits.append((0.0, "k" if bar_beat in (0, 2) else "s", 1.0))
        hits += [(0.0, "h", 0.8), (0.5, "h", 0.55)]
        if bar_beat == 3 and rng.uniform() < 0.3:
            hits.append((0.5, "k", 0.7))
    elif pattern == "four_on_floor":
        hits += [(0.0, "k", 1.0), (0.5, "o", 0.5)]
        if bar_beat in (1, 3):
            hits.append((0.0, "s", 0.8))
    elif pattern == "half_time":
        if bar_beat == 0:
            hits.append((0.0, "k", 1.0))
        if bar_beat == 2:
            hits.append((0.0, "s", 1.0))
        hits += [(f, "h", 0.5 + 0.2 * (f == 0)) for f in (0.0, 0.25, 0.5, 0.75)]
    elif pattern == "breakbeat":
        if bar_beat == 0:
            hits.append((0.0, "k", 1.0))
        if bar_beat in (1, 3):
            hits.append((0.0, "s", 1.0))
        if bar_beat == 2:
            hits += [(0.5, "k", 0.8)]
        if rng.uniform() < 0.35:
            hits.append((0.75, "s", 0.35))
        hits += [(0.0, "h", 0.7), (0.5, "h", 0.5)]
    else:  # shuffle: swung eighths
        hits += [(0.0, "h", 0.7), (2 / 3, "h", 0.45)]
        hits.append((0.0, "k" if bar_beat in (0, 2) else "s", 0.9))
    return hits

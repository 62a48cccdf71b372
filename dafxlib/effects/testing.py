"""Fault-injecting effects for testing render pools (importable by worker processes)."""

from __future__ import annotations

import ctypes
import os
import signal

import numpy as np

from .base import Effect, ParamSpec


class FaultyEffect(Effect):
    """A gain whose render fails on purpose when parameter ``trigger`` exceeds 0.5.

    ``fault``: ``"abort"`` (os.abort: SIGABRT), ``"segfault"`` (reads address 0),
    ``"kill"`` (SIGKILL to itself), ``"raise"`` (RuntimeError), ``"nan"`` (NaN output),
    ``"silent"`` (zeros), ``"hang"`` (sleeps far longer than any timeout), ``"slow"`` (sleeps
    0.3 s, then renders normally: slow progress is not a hang).
    ``process=True`` asks render pools for process isolation (needed for the crashing
    faults; with threads they would kill the caller).
    """

    backend = "python"

    def __init__(self, fault: str = "raise", process: bool = True):
        if fault not in ("abort", "segfault", "kill", "raise", "nan", "silent", "hang", "slow"):
            raise ValueError(f"unknown fault {fault!r}")
        self.name = f"Faulty{fault.capitalize()}"
        self.fault = fault
        self.needs_process_isolation = process
        super().__init__([ParamSpec("gain", -12.0, 12.0, 0.0, unit="dB"), ParamSpec("trigger", 0.0, 1.0, 0.0)])

    def _render(self, audio, sample_rate, raw):
        if raw["trigger"] > 0.5:
            if self.fault == "abort":
                os.abort()
            if self.fault == "segfault":
                ctypes.string_at(0)
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "raise":
                raise RuntimeError("injected failure")
            if self.fault == "nan":
                return np.full_like(audio, np.nan)
            if self.fault == "silent":
                return np.zeros_like(audio)
            if self.fault in ("hang", "slow"):
                import time

                time.sleep(3600 if self.fault == "hang" else 0.3)
        return audio * np.float32(10.0 ** (raw["gain"] / 20.0))


def probe_clip(sample_rate: int, seconds: float = 0.5, seed: int = 0, level_db: float = -20.0) -> np.ndarray:
    """A deterministic music/speech-like test clip for effect tests, plots and benchmarks.

    A harmonic chord (harmonics up to Nyquist) with a tremolo, cut into 250 ms "phrases"
    whose last 70 ms decay towards a -60 dBFS noise floor (like pauses between words), plus
    noise bursts. Broadband, with loud and quiet parts, so every effect (gates included)
    has something to act on. RMS is close to ``level_db`` dBFS.
    """
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    for f0 in (110.0, 165.0, 220.0, 277.2):
        for h in range(1, 40):
            if f0 * h < 0.45 * sample_rate:
                x += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
    x *= 0.35 + 0.65 * np.sin(2 * np.pi * 2.0 * t) ** 2
    x += 0.5 * rng.standard_normal(n) * ((t % 0.2) < 0.04)
    phase = t % 0.25
    x *= np.where(phase < 0.18, 1.0, np.exp(-(phase - 0.18) / 0.008))
    x *= 10 ** (level_db / 20) / np.sqrt(np.mean(x**2))
    x += 10 ** ((level_db - 40) / 20) * rng.standard_normal(n)
    return x.astype(np.float32)

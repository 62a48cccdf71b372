"""The one interface every effect sits behind: a black box with normalised knobs.

An :class:`Effect` has a name, a tuple of :class:`ParamSpec` and
``process(audio, sample_rate, params01) -> audio``: mono float32 in, mono float32 out,
same length unless ``tail_seconds`` asks for more. Parameters are always normalised to
[0, 1] outside this module; raw values exist only at the effect boundary.
Subclasses implement :meth:`Effect._render` with raw parameter values.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import as_float_audio, check_sample_rate
from ..errors import EffectError
from .dsp import sum_squares


@dataclass(frozen=True)
class ParamSpec:
    """One knob: raw range, unit, scale (``linear`` or ``log``) and default (raw)."""

    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    scale: str = "linear"

    def __post_init__(self):
        if self.scale not in ("linear", "log"):
            raise EffectError(f"parameter {self.name}: scale must be 'linear' or 'log'")
        if not self.maximum > self.minimum:
            raise EffectError(f"parameter {self.name}: maximum must exceed minimum")
        if self.scale == "log" and self.minimum <= 0:
            raise EffectError(f"parameter {self.name}: a log scale needs a positive minimum")

    def to_raw(self, x01: float) -> float:
        x01 = float(x01)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return float(math.exp(lo + x01 * (hi - lo)))
        return float(self.minimum + x01 * (self.maximum - self.minimum))

    def to_norm(self, raw: float) -> float:
        raw = float(np.clip(raw, self.minimum, self.maximum))
        if self.scale == "log":
            return float((math.log(raw) - math.log(self.minimum)) / (math.log(self.maximum) - math.log(self.minimum)))
        return float((raw - self.minimum) / (self.maximum - self.minimum))

    @property
    def default01(self) -> float:
        return self.to_norm(self.default)


class Effect(ABC):
    """A black-box audio effect with normalised parameters."""

    #: display name, e.g. "Overdrive"
    name: str = "Effect"
    #: backend label, e.g. "pedalboard", "numpy", "lv2", "vst3"
    backend: str = "python"
    #: LV2 / out-of-process effects set this so the render pool uses processes
    needs_process_isolation: bool = False

    def __init__(self, specs: Sequence[ParamSpec]):
        self.specs: tuple[ParamSpec, ...] = tuple(specs)
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise EffectError(f"{self.name}: duplicate parameter names {names}")

    # ---- parameters -------------------------------------------------------------
    @property
    def key(self) -> str:
        """Lower-case name used in number keys and file names."""
        return self.name.lower()

    @property
    def param_names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def n_params(self) -> int:
        return len(self.specs)

    def defaults01(self) -> np.ndarray:
        return np.array([s.default01 for s in self.specs], dtype=np.float64)

    def validate_params(self, params01: Sequence[float] | Mapping[str, float] | np.ndarray) -> np.ndarray:
        """Return a float64 vector in [0,1]; a mapping may name a subset (others default)."""
        return np.array(self._checked_values(params01), dtype=np.float64)

    def _checked_values(self, params01) -> list[float]:
        """``params01`` as a list of floats in [0, 1], or a clear :class:`EffectError`."""
        if isinstance(params01, Mapping):
            unknown = sorted(set(params01) - set(self.param_names))
            if unknown:
                raise EffectError(f"{self.name}: unknown parameter(s) {unknown}; valid: {self.param_names}")
            values = [float(params01[s.name]) if s.name in params01 else s.default01 for s in self.specs]
        else:
            values = np.asarray(params01, dtype=np.float64).reshape(-1).tolist()
            if len(values) != len(self.specs):
                raise EffectError(
                    f"{self.name}: expected {self.n_params} parameters {self.param_names}, got {len(values)}"
                )
        for v in values:
            if not 0.0 <= v <= 1.0:  # also False for NaN
                vec = np.array(values)
                if not np.all(np.isfinite(vec)):
                    raise EffectError(f"{self.name}: parameters must be finite, got {vec}")
                raise EffectError(f"{self.name}: normalised parameters must lie in [0, 1], got {np.round(vec, 4)}")
        return values

    def to_raw(self, params01) -> dict[str, float]:
        """Raw values by parameter name; ``params01`` is checked (length, finite, in [0, 1])."""
        return self._raw_of(self._checked_values(params01))

    def _raw_of(self, values: Sequence[float]) -> dict[str, float]:
        """Raw values of already checked normalised ``values`` (same arithmetic as ParamSpec)."""
        return {s.name: s.to_raw(v) for s, v in zip(self.specs, values)}

    def to_norm(self, raw: Mapping[str, float]) -> np.ndarray:
        unknown = sorted(set(raw) - set(self.param_names))
        if unknown:
            raise EffectError(f"{self.name}: unknown parameter(s) {unknown}; valid: {self.param_names}")
        return np.array([s.to_norm(raw.get(s.name, s.default)) for s in self.specs])

    # ---- audio ------------------------------------------------------------------
    def process(self, audio: np.ndarray, sample_rate: int, params01, *, tail_seconds: float = 0.0) -> np.ndarray:
        """Render mono ``audio`` through the effect at normalised settings ``params01``."""
        sample_rate = check_sample_rate(sample_rate, self.name, error=EffectError)
        audio = _validate_audio(audio, self.name)
        return self._process_checked(audio, sample_rate, self._checked_values(params01), tail_seconds)

    def _process_checked(
        self, audio: np.ndarray, sample_rate: int, values: Sequence[float], tail_seconds: float = 0.0
    ) -> np.ndarray:
        """:meth:`process` after validation: ``audio`` finite float32 C-contiguous, ``values``
        in [0, 1] (render pools check a whole batch once, then call this per item)."""
        raw = self._raw_of(values)
        n = audio.shape[0]
        if tail_seconds > 0:
            audio = np.concatenate([audio, np.zeros(int(round(tail_seconds * sample_rate)), np.float32)])
        out = np.asarray(self._render(audio, sample_rate, raw), dtype=np.float32).reshape(-1)
        want = audio.shape[0]
        if out.shape[0] < want:
            out = np.pad(out, (0, want - out.shape[0]))
        out = out[:want] if tail_seconds > 0 else out[:n]
        return np.ascontiguousarray(out, dtype=np.float32)

    @abstractmethod
    def _render(self, audio: np.ndarray, sample_rate: int, raw: dict[str, float]) -> np.ndarray:
        """Render with raw parameter values; ``audio`` is mono float32, C-contiguous."""

    def clone(self) -> Effect:
        """A fresh, independent instance (one per render worker)."""
        import copy

        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.backend}) params={self.param_names}>"


def _validate_audio(audio, name: str) -> np.ndarray:
    a = as_float_audio(audio, name, error=EffectError)  # int16/int32 PCM scaled to [-1, 1)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise EffectError(f"{name}: expected mono audio of shape (samples,), got shape {a.shape}")
    if a.shape[0] == 0:
        raise EffectError(f"{name}: audio is empty")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not math.isfinite(sum_squares(a)):
        raise EffectError(f"{name}: input audio contains NaN or inf")
    return a

"""Figures that show what the effects do (notebook 01).

* :func:`effect_spectrograms`: one clip through each effect at a few settings.
* :func:`effect_sweep`: one knob at a time (others at their defaults), as a grid of small
  spectrograms or as descriptor curves (level, spectral centroid, distance from the dry clip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..audio import rms_db
from ..effects.base import Effect
from ..errors import EffectError
from .style import EFFECT_COLORS, effect_color, new_figure


def _spec_db(x: np.ndarray, sr: int, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (Hz), frame times (s) and |STFT| in dB (centred frames, the project's front end)."""
    from ..spectrogram import frame_spectrum

    mag = frame_spectrum(x, n_fft, hop).T
    return np.fft.rfftfreq(n_fft, 1.0 / sr), np.arange(mag.shape[1]) * hop / sr, 20.0 * np.log10(mag + 1e-9)


def _params_for(effect: Effect, setting) -> tuple[np.ndarray, str]:
    """Normalised parameters and a short label for one setting."""
    if isinstance(setting, str):
        if setting != "default":
            raise EffectError(f"unknown setting {setting!r}: use 'default', a number in [0, 1], a vector or a dict")
        return effect.defaults01(), "defaults"
    if isinstance(setting, Mapping):
        own = {k: v for k, v in setting.items() if k in effect.param_names}
        p = effect.validate_params(own)
        return p, (", ".join(f"{k}={float(v):.2f}" for k, v in own.items()) or "defaults")
    arr = np.asarray(setting, dtype=np.float64)
    if arr.ndim == 0:
        return effect.validate_params(np.full(effect.n_params, float(arr))), f"all knobs {float(arr):.2f}"
    return effect.validate_params(arr), "p=[" + " ".join(f"{v:.1f}" for v in arr) + "]"


def _show(ax, f, t, s, vmin, vmax, sr):
    ax.imshow(
        s,
        origin="lower",
        aspect="auto",
        extent=(t[0], t[-1], f[0] / 1000, f[-1] / 1000),
        vmin=vmin,
        vmax=vmax,
        cmap="magma",
        interpolation="nearest",
    )
    ax.set_ylim(0, sr / 2000)


def effect_spectrograms(
    clip: np.ndarray,
    sr: int,
    effects: Mapping[str, Effect] | Sequence[Effect],
    settings: Sequence = (0.2, "default", 0.8),
    *,
    n_fft: int = 512,
    hop: int = 128,
    dynamic_range_db: float = 80.0,
):
    """One clip through each effect at a few settings, as log-magnitude spectrograms.

    ``settings``: each a number (every knob set to it), ``"default"``, a parameter vector
    or a dict of named knobs (each effect takes the names it has; the rest stay default).
    The top-left panel is the dry clip; each panel title gives the output level change.
    Returns the matplotlib Figure.
    """
    fx = list(effects.values()) if isinstance(effects, Mapping) else list(effects)
    if not fx:
        raise EffectError("effect_spectrograms needs at least one effect")
    clip = np.asarray(clip, dtype=np.float32).reshape(-1)
    settings = list(settings)
    known = {n for e in fx for n in e.param_names}
    for s in settings:
        if isinstance(s, Mapping) and set(s) - known:
            raise EffectError(f"setting names unknown parameter(s) {sorted(set(s) - known)}; known: {sorted(known)}")
    n_cols = max(1, len(settings))
    fig, axes = new_figure(len(fx) + 1, n_cols, width=2.3 * n_cols + 0.6, row_height=1.35, sharex=True, sharey=True)
    f, t, dry = _spec_db(clip, sr, n_fft, hop)
    vmax = float(dry.max()) + 6.0
    vmin = vmax - dynamic_range_db
    dry_db = rms_db(clip)
    _show(axes[0, 0], f, t, dry, vmin, vmax, sr)
    axes[0, 0].set_title(f"dry input ({dry_db:.0f} dBFS rms)")
    for ax in axes[0, 1:]:
        ax.axis("off")
    for r, e in enumerate(fx, start=1):
        for c, s in enumerate(settings):
            p, label = _params_for(e, s)
            y = e.process(clip, sr, p)
            _, _, spec = _spec_db(y, sr, n_fft, hop)
            ax = axes[r, c]
            _show(ax, f, t, spec, vmin, vmax, sr)
            ax.set_title(
                f"{e.name}: {label} ({rms_db(y) - dry_db:+.1f} dB)", fontsize=8, color=EFFECT_COLORS.get(e.key, "black")
            )
        axes[r, 0].set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    return fig


def _descriptors(y: np.ndarray, dry: np.ndarray, sr: int) -> dict[str, float]:
    from ..metrics import spectral_centroid
    from ..spectrogram import frame_spectrum

    mag, mag_dry = frame_spectrum(y, 1024, 512), frame_spectrum(dry, 1024, 512)
    centroid = float(spectral_centroid(y, sr)[0])
    lsd = float(np.sqrt(np.mean((20 * np.log10(mag + 1e-6) - 20 * np.log10(mag_dry + 1e-6)) ** 2)))
    return {
        "level change (dB)": float(rms_db(y, axis=None)) - float(rms_db(dry, axis=None)),
        "spectral centroid (kHz)": centroid / 1000,
        "log-spectral distance to dry (dB)": lsd,
    }


def effect_sweep(
    effect: Effect,
    clip: np.ndarray,
    sr: int,
    n: int = 5,
    *,
    kind: str = "grid",
    n_fft: int = 512,
    hop: int = 128,
    dynamic_range_db: float = 80.0,
):
    """What each knob does: sweep one parameter over ``n`` values in [0, 1], others at defaults.

    ``kind="grid"``: rows = parameters, columns = values, small spectrograms.
    ``kind="curves"``: one panel per descriptor (level change, spectral centroid, log-spectral
    distance to the dry clip), one line per parameter against its normalised value.
    Returns the matplotlib Figure.
    """
    if n < 2:
        raise EffectError("effect_sweep needs n >= 2 values per parameter")
    if kind not in ("grid", "curves"):
        raise EffectError(f"kind must be 'grid' or 'curves', got {kind!r}")
    clip = np.asarray(clip, dtype=np.float32).reshape(-1)
    values = np.linspace(0.0, 1.0, n)
    base = effect.defaults01()
    renders: list[list[np.ndarray]] = []
    for j in range(effect.n_params):
        row = []
        for v in values:
            p = base.copy()
            p[j] = v
            row.append(effect.process(clip, sr, p))
        renders.append(row)
    if kind == "grid":
        fig, axes = new_figure(effect.n_params, n, width=1.6 * n + 0.8, row_height=1.0, sharex=True, sharey=True)
        f, t, dry = _spec_db(clip, sr, n_fft, hop)
        vmax = float(dry.max()) + 6.0
        for j, spec in enumerate(effect.specs):
            for c, (v, y) in enumerate(zip(values, renders[j])):
                ax = axes[j, c]
                _, _, s = _spec_db(y, sr, n_fft, hop)
                _show(ax, f, t, s, vmax - dynamic_range_db, vmax, sr)
                raw = spec.to_raw(v)
                ax.set_title(f"{raw:.3g} {spec.unit}".strip(), fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[j, 0].set_ylabel(spec.name, fontsize=8, rotation=0, ha="right", va="center")
        fig.suptitle(f"{effect.name} ({effect.backend}): one knob at a time, others at defaults", fontsize=9)
        return fig
    desc = [[_descriptors(y, clip, sr) for y in row] for row in renders]
    names = list(desc[0][0])
    fig, axes = new_figure(1, len(names), width=3.0 * len(names), row_height=2.8)
    cmap = __import__("matplotlib").colormaps["tab10"]
    for k, dname in enumerate(names):
        ax = axes[0, k]
        for j, spec in enumerate(effect.specs):
            ax.plot(values, [d[dname] for d in desc[j]], marker="o", ms=3, color=cmap(j % 10), label=spec.name)
        ax.set_xlabel("normalised value")
        ax.set_title(dname)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right upper")
    fig.suptitle(f"{effect.name} ({effect.backend}): one knob at a time, others at defaults", fontsize=9)
    return fig


def example_structure(examples, i: int = 0, *, n_fft: int = 512, hop: int = 128, dynamic_range_db: float = 80.0):
    """One training example: x (clean A), y (effected A), y_ref (effected B) and its p.

    ``examples`` is a :class:`dafxlib.pairs.Examples`; the right panel shows the normalised
    parameters that rendered both y and y_ref.
    """
    sr = int(examples.sample_rate)
    x, y, y_ref, p = examples.x[i], examples.y[i], examples.y_ref[i], examples.p[i]
    specs = [_spec_db(a, sr, n_fft, hop) for a in (x, y, y_ref)]
    vmax = max(s[2].max() for s in specs)
    fig, axes = new_figure(1, 4, width=10.0, row_height=2.4)
    titles = ("x = clean half A (input)", "y = effected half A (target)", "y_ref = effected half B (reference)")
    for ax, (f, t, s), title in zip(axes[0], specs, titles):
        _show(ax, f, t, s, vmax - dynamic_range_db, vmax, sr)
        ax.set_title(title)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("kHz")
    ax = axes[0][3]
    names = list(examples.param_names) or [str(k) for k in range(len(p))]
    ax.barh(range(len(p)), p, color=EFFECT_COLORS.get(examples.effect, "#555555"))
    ax.set_yticks(range(len(p)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"p ({examples.effect}, normalised)")
    return fig


def knob_sensitivity(results: Mapping[str, Any], *, threshold: float | None = None):
    """Horizontal bars: each knob's audible sensitivity (share of the sound change a redraw of
    every knob makes), one row per knob grouped by effect; knobs left of the dashed threshold
    are unidentifiable from (x, y_ref) and drawn hatched. ``results``: effect -> an object with
    ``knobs``, ``sensitivity`` and ``threshold`` (:class:`dafxlib.e2e.identifiability.KnobSensitivity`)."""
    rows: list[tuple[str, str, float]] = []
    thr = threshold
    for key, r in results.items():
        thr = float(r.threshold) if thr is None else thr
        rows += [(key, k, float(s)) for k, s in zip(r.knobs, r.sensitivity)]
    if not rows:
        raise EffectError("knob_sensitivity: no results to plot")
    fig, axes = new_figure(1, 1, width=7.0, row_height=max(3.0, 0.16 * len(rows) + 0.8))
    ax = axes[0, 0]
    y = np.arange(len(rows))[::-1]
    vals = np.array([max(s, 1e-4) for _, _, s in rows])
    colors = [effect_color(e) for e, _, _ in rows]
    bars = ax.barh(y, vals, color=colors, edgecolor="k", lw=0.3)
    for b, (_, _, s) in zip(bars, rows):
        if thr is not None and s < thr:
            b.set_hatch("////")
            b.set_facecolor("white")
    ax.set_yticks(y, [f"{e}: {k}" for e, k, _ in rows], fontsize=6)
    ax.set_xscale("log")
    if thr is not None:
        ax.axvline(thr, color="k", ls="--", lw=0.8, label=f"unidentifiable below {thr:g}")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("sensitivity: MR-STFT change when this knob alone is redrawn / when every knob is")
    return fig

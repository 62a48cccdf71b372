"""One visual style for every figure."""

from __future__ import annotations

from typing import Any, cast

import matplotlib.pyplot as plt

#: one colour per effect key, stable across every figure
EFFECT_COLORS = {
    "overdrive": "#d62728",
    "delay": "#1f77b4",
    "ringmod": "#9467bd",
    "dynamics": "#2ca02c",
    "combo": "#ff7f0e",
    "ambience": "#17becf",
    "flanger": "#e377c2",
    "multiband": "#8c564b",
    "leslie": "#bcbd22",
}
#: one colour per method in evaluation figures
METHOD_COLORS = {
    "do_nothing": "#7f7f7f",
    "random": "#c7c7c7",
    "mean_params": "#aec7e8",
    "controller_audio": "#ffbb78",
    "controller_regression": "#98df8a",
    "controller_both": "#2ca02c",
    "controller": "#1f77b4",
    "ito": "#9467bd",
    "oracle": "#000000",
}
SYNTHETIC_NOTE = "synthetic corpus (espeak-ng speech, numpy-synthesised music)"

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "magma",
    "axes.grid": False,
}


def apply() -> None:
    plt.rcParams.update(cast(Any, _RC))  # matplotlib's stubs type the keys as literals


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, row_height: float = 2.6, **kw):
    """A figure in the house style: ``fig, axes = new_figure(2, 3)``."""
    apply()
    kw.setdefault("constrained_layout", True)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows), squeeze=False, **kw)
    return fig, axes


def effect_color(key: str) -> str:
    return EFFECT_COLORS.get(key.lower(), "#333333")

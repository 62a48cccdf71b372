"""Held-out scoring of predicted settings: render them and measure against the ground truth."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..pairs import Examples


def _render(effect, x: np.ndarray, p: np.ndarray, sample_rate: int, workers: int) -> np.ndarray:
    from ..render import render_batch

    return np.asarray(render_batch(effect, x, p, sample_rate, workers=workers, reuse=True).audio, dtype=np.float32)


def score(
    effect,
    data: Examples,
    p_hat: np.ndarray | None,
    sample_rate: int,
    workers: int = 2,
    y_hat: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-example reported MR-STFT of effect(x, p_hat) against y, and parameter MAE."""
    from ..metrics import compute_metrics, param_mae

    if y_hat is None:
        if p_hat is None:
            raise ConfigError("score needs the predicted settings p_hat or the rendered y_hat")
        y_hat = _render(effect, data.x, p_hat, sample_rate, workers)
    vals, _ = compute_metrics(y_hat, data.y, sample_rate, metrics=["mrstft"])
    out = {"mrstft": vals["mrstft"]}
    if p_hat is not None:
        out["param_mae"] = param_mae(p_hat, data.p)
    return out

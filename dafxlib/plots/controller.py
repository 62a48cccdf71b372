"""Figures of notebook 04 (end-to-end controller): curves, parameters, examples, summary, timing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .style import METHOD_COLORS, effect_color, new_figure

SIGNAL_COLORS = {
    "regression": METHOD_COLORS.get("controller_regression", "#98df8a"),
    "both": METHOD_COLORS.get("controller_both", "#2ca02c"),
    "audio": METHOD_COLORS.get("controller_audio", "#ffbb78"),
    "do_nothing": METHOD_COLORS.get("do_nothing", "#7f7f7f"),
    "random": METHOD_COLORS.get("random", "#c7c7c7"),
    "mean_params": METHOD_COLORS["mean_params"],
}
METHOD_LABELS = {
    "regression": "controller: regression",
    "both": "controller: regression + SPSA",
    "audio": "controller: SPSA only",
    "do_nothing": "do nothing (y_hat = x)",
    "random": "random parameters",
    "mean_params": "constant 0.5",
}


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(v) < k:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([v[: k - 1], out])


def _grid(n: int, ncols: int = 3, width: float = 9.0, row_height: float = 2.2):
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = new_figure(nrows, ncols, width=width, row_height=row_height)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def plot_training_curves(results: Mapping[str, Any], kind: str = "regression"):
    """Per effect: training loss (smoothed, per step) and validation loss (per epoch).

    ``kind="regression"``: parameter MSE of the ``regression`` signal.
    ``kind="audio"``: MR-STFT + L1 audio loss of the ``both`` and ``audio`` (SPSA) signals;
    for ``both`` the validation point at step 0 is the regression warm start.
    """
    signals = ("regression",) if kind == "regression" else ("both", "audio")
    keys = [k for k, r in results.items() if any(s in r.controllers for s in signals)]
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes, keys):
        r = results[key]
        for sig in signals:
            tc = r.controllers.get(sig)
            if tc is None:
                continue
            rows = tc.history
            tr = [(h["step"], h["train_loss"]) for h in rows if "train_loss" in h]
            va = [(h["step"], h["val_loss"]) for h in rows if "val_loss" in h]
            col = SIGNAL_COLORS[sig]
            if tr:
                s, v = np.array(tr).T
                ax.plot(s, _smooth(v, max(1, len(v) // 30)), color=col, lw=1.0, alpha=0.8, label=f"{sig} train")
            if va:
                s, v = np.array(va).T
                ax.plot(s, v, "o-", color=col, ms=3, lw=1.2, mec="k", mew=0.4, label=f"{sig} val")
        ax.set_title(key, color=effect_color(key))
        ax.set_xlabel("step")
        ax.set_yscale("log" if kind == "regression" else "linear")
        ax.set_ylabel("param MSE" if kind == "regression" else "MR-STFT + L1")
    if keys:
        axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        "Controller training: " + ("parameter regression" if kind == "regression" else "audio loss through SPSA")
    )
    return fig


def plot_param_scatter(results: Mapping[str, Any], signals: Mapping[str, str] | None = None, max_points: int = 200):
    """Predicted vs true normalised parameters on the test split: rows = effects,
    columns = parameters; the title gives the MAE (a constant-0.5 guess scores ~0.25)."""
    keys = list(results)
    ncols = max(len(results[k].param_names) for k in keys)
    fig, axes = new_figure(len(keys), ncols, width=1.35 * ncols, row_height=1.35)
    for i, key in enumerate(keys):
        r = results[key]
        sig = (signals or {}).get(key) or next(iter(r.p_hat))
        ph, pt = r.p_hat[sig][:max_points], r.p_true[:max_points]
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(r.param_names):
                ax.set_visible(False)
                continue
            ax.plot([0, 1], [0, 1], color="#999999", lw=0.6)
            ax.scatter(pt[:, j], ph[:, j], s=4, color=effect_color(key), alpha=0.7, lw=0)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xticks([])
            ax.set_yticks([])
            mae = float(np.mean(np.abs(r.p_hat[sig][:, j] - r.p_true[:, j])))
            ax.set_title(f"{r.param_names[j][:10]}\nMAE {mae:.2f}", fontsize=6.5)
            if j == 0:
                ax.set_ylabel(f"{key}\n({sig})", fontsize=7)
    fig.suptitle("Predicted (y) vs true (x) parameters, held-out test clips", fontsize=9)
    return fig


def _spec_db(a: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    from ..spectrogram import frame_spectrum

    mag = frame_spectrum(np.asarray(a, dtype=np.float32), n_fft, hop, center=False, window="symmetric").T
    return 20 * np.log10(mag + 1e-6)


def plot_worked_examples(
    results: Mapping[str, Any],
    sample_rate: int,
    effects: Sequence[str] | None = None,
    signals: Mapping[str, str] | None = None,
    index: int = 0,
):
    """Spectrograms of input x, style reference y_ref, target y and prediction y_hat
    (one row per effect). y and y_hat share x's content; y_ref is the other half of the clip."""
    keys = list(effects or results)
    fig, axes = new_figure(len(keys), 4, width=9.0, row_height=1.7)
    for i, key in enumerate(keys):
        r = results[key]
        sig = (signals or {}).get(key) or next(iter(r.p_hat))
        ex = r.examples
        panels = [
            ("input x", ex["x"][index]),
            ("reference y_ref", ex["y_ref"][index]),
            ("target y", ex["y"][index]),
            (f"prediction ({sig})", ex[f"y_hat_{sig}"][index]),
        ]
        ref = _spec_db(ex["y"][index])
        vmax = float(ref.max())
        for j, (title, a) in enumerate(panels):
            ax = axes[i, j]
            s = _spec_db(a)
            dur = len(a) / sample_rate
            ax.imshow(
                s, origin="lower", aspect="auto", vmin=vmax - 80, vmax=vmax, extent=(0, dur, 0, sample_rate / 2000)
            )
            ax.set_title(title if i == 0 else "", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{key}\nkHz", fontsize=8)
            else:
                ax.set_yticks([])
            if i == len(keys) - 1:
                ax.set_xlabel("s")
            else:
                ax.set_xticks([])
    fig.suptitle("Worked examples (held-out test clips)", fontsize=9)
    return fig


def plot_summary(results: Mapping[str, Any], seen: Sequence[str]):
    """Test MR-STFT and parameter MAE per effect: controller (validation-chosen signal and the
    others) vs do-nothing, random and constant-0.5 baselines; seen effects left, unseen right."""
    keys = [k for k in results if k in seen] + [k for k in results if k not in seen]
    methods_m = ["do_nothing", "random", "mean_params", "regression", "both", "audio"]
    methods_m = [m for m in methods_m if any(m in results[k].test for k in keys)]
    fig, axes = new_figure(2, 1, width=10.0, row_height=2.8)
    for ax, metric in zip(axes[:, 0], ("mrstft", "param_mae")):
        ms = [m for m in methods_m if any(metric in results[k].test.get(m, {}) for k in keys)]
        w = 0.8 / len(ms)
        for j, m in enumerate(ms):
            xs, vs = [], []
            for i, k in enumerate(keys):
                d = results[k].test.get(m, {})
                if metric in d:
                    xs.append(i + (j - (len(ms) - 1) / 2) * w)
                    vs.append(float(np.nanmean(d[metric])))
            ax.bar(xs, vs, width=w, color=SIGNAL_COLORS[m], label=METHOD_LABELS[m], edgecolor="k", lw=0.3)
        n_seen = sum(k in seen for k in keys)
        if 0 < n_seen < len(keys):
            ax.axvline(n_seen - 0.5, color="k", lw=0.8, ls="--")
            ax.text(
                n_seen / 2 - 0.5,
                1.0,
                "seen by the VAE",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
            ax.text(
                (n_seen + len(keys)) / 2 - 0.5,
                1.0,
                "unseen",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if metric == "param_mae":
            ax.axhline(0.25, color="k", lw=0.6, ls=":")
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(keys)
        ax.set_ylabel("test MR-STFT" if metric == "mrstft" else "test parameter MAE")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=7)
    return fig


def plot_spsa_timing(bench: Mapping[str, Any]):
    """Seconds per SPSA training step and renders per second with 1 vs N render workers."""
    per = bench["per_workers"]
    ws = sorted(per, key=int)
    fig, axes = new_figure(1, 3, width=9.0, row_height=2.6)
    labels = [f"{w} worker{'s' if int(w) > 1 else ''}" for w in ws]
    cols = ["#c7c7c7", "#1f77b4", "#2ca02c", "#d62728"][: len(ws)]
    for ax, key, title in zip(
        axes[0],
        ("step_seconds", "render_seconds_per_step", "renders_per_second"),
        ("seconds per training step", "render seconds per step", "renders per second"),
    ):
        vals = [per[w][key] for w in ws]
        ax.bar(labels, vals, color=cols, edgecolor="k", lw=0.4)
        for x, v in enumerate(vals):
            ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title)
    fig.suptitle(
        f"SPSA step on {bench['effect']} (batch {bench['batch_size']}, "
        f"{per[ws[-1]]['renders_per_example_per_step']:g} perturbation renders per example per step "
        f"+ 1 forward render)",
        fontsize=9,
    )
    return fig


def example_audio(result: Any, sample_rate: int, signal: str, index: int = 0) -> dict[str, Any]:
    """IPython audio players for one worked example (x, y_ref, y, y_hat), scaled by one common
    factor so that their relative levels are kept."""
    from IPython.display import Audio

    ex = result.examples
    clips = {
        "input x": ex["x"][index],
        "reference y_ref": ex["y_ref"][index],
        "target y": ex["y"][index],
        f"prediction ({signal})": ex[f"y_hat_{signal}"][index],
    }
    peak = max(float(np.max(np.abs(a))) for a in clips.values()) or 1.0
    scale = min(1.0, 0.99 / peak)
    return {k: Audio(np.clip(a * scale, -1, 1), rate=int(sample_rate), normalize=False) for k, a in clips.items()}


def plot_gradient_quality(summary: Any, info: Mapping[str, Mapping[str, float]] | None = None):
    """SPSA gradient quality (:func:`dafxlib.e2e.gradcheck.summarise` table): cosine with the
    finite-difference reference against perturbations per example, one panel per effect and a
    line per epsilon (mean over distances, band = mean of the 25-75% ranges), and against the
    distance of the evaluation point to the [0, 1] bounds (mean over epsilons, a line per K)."""
    effects = list(dict.fromkeys(summary["effect"]))
    fig, axes = new_figure(2, len(effects), width=3.0 * len(effects), row_height=2.5)
    eps_cols = ["#9ecae1", "#3182bd", "#08519c", "#08306b"]
    k_cols = ["#fdae6b", "#f16913", "#d94801", "#7f2704"]
    for c, key in enumerate(effects):
        s = summary[summary["effect"] == key]
        ax = axes[0][c]
        for i, (eps, g) in enumerate(s.groupby("epsilon")):
            m = g.groupby("K")[["mean", "q25", "q75"]].mean()
            ax.plot(m.index, m["mean"], "o-", color=eps_cols[i % 4], label=f"eps {eps:g}", ms=3)
            ax.fill_between(m.index, m["q25"], m["q75"], color=eps_cols[i % 4], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(s["K"])), [str(k) for k in sorted(set(s["K"]))])
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-1, 1)
        title = key
        if info and key in info:
            title += f"  (reference self-cosine {info[key]['ref_self_cosine']:.2f})"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("perturbations per example (K)")
        ax = axes[1][c]
        for i, (k, g) in enumerate(s.groupby("K")):
            m = g.groupby("distance")["mean"].mean()
            ax.plot(m.index, m.values, "o-", color=k_cols[i % 4], label=f"K={k}", ms=3)
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylim(-1, 1)
        ax.set_xlabel("distance of the point to the [0, 1] bounds")
    axes[0][0].set_ylabel("cosine(SPSA, finite diff.)")
    axes[1][0].set_ylabel("cosine (mean over eps)")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.suptitle("SPSA gradient quality: cosine with a per-parameter central-difference reference", fontsize=9)
    return fig


def plot_budget_curve(curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]):
    """Validation audio loss of each SPSA run against training renders (``curves[effect][signal]``
    = rows of :func:`dafxlib.e2e.train.budget_curve`), relative to its start (step 0): below 1
    means SPSA improved on where it started (the regression model for ``both``)."""
    effects = [k for k in curves if curves[k]]
    fig, axes = _grid(len(effects))
    for ax, key in zip(axes, effects):
        for sig, rows in curves[key].items():
            if not rows:
                continue
            r = np.array([x["renders"] for x in rows], float)
            v = np.array([x["val_loss"] for x in rows], float)
            ax.plot(r, v / v[0], "o-", ms=3, color=SIGNAL_COLORS.get(sig, "k"), label=sig)
        ax.axhline(1.0, color="k", lw=0.5, ls=":")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(key, fontsize=8)
        ax.set_xlabel("training renders")
    for ax in axes[len(effects) :]:
        ax.set_visible(False)
    if effects:
        axes[0].set_ylabel("val loss / start")
        axes[0].legend(fontsize=7)
    fig.suptitle("SPSA budget: validation audio loss against renders (relative to the start)", fontsize=9)
    return fig

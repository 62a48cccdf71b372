"""Figures of the study's published results, redrawn from its data (notebooks 03, 05 and 06)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..study import load
from ..study.mushra import MushraAnalysis
from .style import effect_color, new_figure
from .vae import domain_colors

CONDITION_COLORS = {"controller": "#1f77b4", "untrained": "#ff7f0e", "do_nothing": "#7f7f7f"}
CONDITION_LABELS = {
    "controller": "controller (trained encoder)",
    "untrained": "untrained encoder",
    "do_nothing": "do-nothing (other clips)",
}
STIMULUS_COLORS = {
    "reference": "#2ca02c",
    "end2end": "#1f77b4",
    "controller": "#1f77b4",
    "anchor": "#7f7f7f",
    "style_transfer": "#9467bd",
    "anchor35": "#c7c7c7",
    "ito": "#8c564b",
    "do_nothing": "#bcbd22",
}
STUDY_NOTE = "the study's published data"
METRIC_LABELS = {"mrstft": "MR-STFT", "pesq": "PESQ"}


def metric_boxes(m: pd.DataFrame, metric: str = "mrstft"):
    """The study's box plots: one row per dataset, effects along x, one box per condition (no fliers)."""
    fig, axes = new_figure(len(load.DATASETS), 1, width=11.0, row_height=2.5)
    conds = list(load.CONDITIONS)
    w = 0.8 / len(conds)
    cells = {k: g.to_numpy(float) for k, g in m.groupby(["effect", "dataset", "condition"], sort=False)[metric]}
    for ax, d in zip(axes[:, 0], load.DATASETS):
        for j, c in enumerate(conds):
            data = [cells[(e, d, c)][np.isfinite(cells[(e, d, c)])] for e in load.EFFECTS]
            pos = np.arange(len(load.EFFECTS)) - 0.4 + w * (j + 0.5)
            bp = ax.boxplot(
                data,
                positions=pos,
                widths=w * 0.9,
                showfliers=False,
                patch_artist=True,
                medianprops={"color": "black", "linewidth": 0.8},
            )
            for b in bp["boxes"]:
                b.set(facecolor=CONDITION_COLORS[c], alpha=0.8, linewidth=0.5)
            ax.plot([], [], "s", color=CONDITION_COLORS[c], label=CONDITION_LABELS[c])
        ax.set_xticks(np.arange(len(load.EFFECTS)), load.EFFECTS)
        ax.set_ylabel(f"{load.DATASET_LABELS[d]}\n{METRIC_LABELS.get(metric, metric)}")
    axes[0, 0].legend(ncol=3, loc="upper left", fontsize=7)
    axes[0, 0].set_title(
        f"{METRIC_LABELS.get(metric, metric)} per clip, 5,000 clips per box ({STUDY_NOTE}; whiskers 1.5 IQR)"
    )
    return fig


def wins_figure(cmp: pd.DataFrame, other: str = "do-nothing"):
    """Difference of means (controller - other) per effect x dataset with its unpaired 95% interval."""
    fig, axes = new_figure(1, 1, width=8.0, row_height=3.6)
    ax = axes[0, 0]
    offs = {d: (i - 1) * 0.25 for i, d in enumerate(load.DATASETS)}
    marks = {"vctk": "o", "daps": "s", "musdb18": "^"}
    for d in load.DATASETS:
        sub = cmp[cmp.dataset == d].set_index("effect").loc[list(load.EFFECTS)]
        y = np.arange(len(load.EFFECTS)) + offs[d]
        col = np.where(sub.significant, "#1f77b4", np.where(sub.loss_significant, "#d62728", "#7f7f7f"))
        ax.errorbar(
            sub["diff"],
            y,
            xerr=[sub["diff"] - sub.lo, sub.hi - sub["diff"]],
            fmt="none",
            ecolor="#999999",
            elinewidth=0.8,
        )
        ax.scatter(sub["diff"], y, c=col, marker=marks[d], s=18, zorder=3, label=load.DATASET_LABELS[d])
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(np.arange(len(load.EFFECTS)), load.EFFECTS)
    ax.invert_yaxis()
    ax.set_xlabel(f"mean difference controller - {other} (negative = controller better)")
    n_win, n_sig = int(cmp.win.sum()), int(cmp.significant.sum())
    ax.set_title(
        f"{n_win} of {len(cmp)} cells won, {n_sig} significantly (blue); red: significant loss "
        f"({STUDY_NOTE}, unpaired bootstrap)",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="lower right")
    return fig


def mushra_boxes(analyses: Mapping[str, MushraAnalysis], stimuli: Sequence[str]):
    """The study's MUSHRA box plots, one row per analysis variant (e.g. as the study did / after screening)."""
    names = list(analyses)
    effects = sorted(set().union(*[set(a.ratings.effect) for a in analyses.values()]))
    fig, axes = new_figure(len(names), 1, width=9.0, row_height=2.6)
    w = 0.8 / len(stimuli)
    for ax, name in zip(axes[:, 0], names):
        a = analyses[name]
        for j, s in enumerate(stimuli):
            data, pos = [], []
            for i, e in enumerate(effects):
                v = a.ratings[(a.ratings.effect == e) & (a.ratings.rating_stimulus == s)].rating_score.to_numpy(float)
                if v.size:
                    data.append(v)
                    pos.append(i - 0.4 + w * (j + 0.5))
            if data:
                bp = ax.boxplot(
                    data,
                    positions=pos,
                    widths=w * 0.9,
                    patch_artist=True,
                    showfliers=True,
                    flierprops={"markersize": 2},
                    medianprops={"color": "black", "linewidth": 0.8},
                )
                for b in bp["boxes"]:
                    b.set(facecolor=STIMULUS_COLORS.get(s, "#333333"), alpha=0.8, linewidth=0.5)
                ax.plot([], [], "s", color=STIMULUS_COLORS.get(s, "#333333"), label=s)
        ax.set_xticks(np.arange(len(effects)), effects)
        ax.set_ylim(-3, 103)
        ax.set_ylabel("score")
        ax.set_title(f"{name}: {len(a.screening.kept)} assessors", fontsize=9)
    axes[0, 0].legend(ncol=len(stimuli), fontsize=7, loc="lower left")
    return fig


def expert_boxes(ex: load.ExpertWalkthrough):
    """The expert walk-through scores (1-10) per effect and questionnaire, each score a dot."""
    parts = {"overall questions": ex.final, "navigation (test 1)": ex.navigation, "tasks (test 2)": ex.tasks}
    fig, axes = new_figure(1, 1, width=6.0, row_height=2.8)
    ax = axes[0, 0]
    labels, data = [], []
    for name, df in parts.items():
        df = df.dropna(subset=["effect", "score"])
        for e, g in df.groupby("effect", sort=True):
            labels.append(f"{e}\n{name}")
            data.append(g.score.to_numpy(float))
    ax.boxplot(data, widths=0.5, medianprops={"color": "black"})
    rng = np.random.default_rng(0)
    for i, v in enumerate(data):
        ax.scatter(
            i + 1 + rng.uniform(-0.12, 0.12, v.size), v, s=12, color=effect_color(labels[i].split()[0]), zorder=3
        )
    ax.set_xticks(np.arange(1, len(labels) + 1), labels, fontsize=7)
    ax.set_ylim(0.5, 10.5)
    ax.set_ylabel("score (1-10)")
    ax.set_title(f"Expert walk-through of the latent controller (one expert; {STUDY_NOTE})", fontsize=9)
    return fig


def latent_umap(points: np.ndarray, labels: np.ndarray, names: Sequence[str], kind: str, method: str = "umap"):
    """UMAP (or PCA) of the study's published per-clip features coloured by effect (as its week-8 figures)."""
    fig, axes = new_figure(1, 1, width=5.5, row_height=4.6)
    ax = axes[0, 0]
    for i, n in enumerate(names):
        sel = labels == i
        ax.scatter(points[sel, 0], points[sel, 1], s=2, alpha=0.6, color=effect_color(n), label=n, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=5, fontsize=7, loc="best")
    what = "its published PCA features (pca_features.npy)" if kind == "pca" else "its VAE embeddings"
    ax.set_title(f"The study's {len(labels):,} clips of {len(names)} effects: {method.upper()} of {what}", fontsize=8)
    return fig


def projections(
    projs: Sequence[load.Projection], top_params: Mapping[str, Sequence[str]], *, max_points: int = 4000, seed: int = 0
):
    """The study's per-effect 2-D projections, domain-coloured by two settings (hue: the first, lightness:
    the second; the two with the highest published mutual information)."""
    n = len(projs)
    cols = 3
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(rows, cols, width=10.0, row_height=3.2)
    rng = np.random.default_rng(seed)
    for ax, pr in zip(axes.ravel(), projs):
        a, b = top_params[pr.effect][:2]
        ia, ib = pr.param_names.index(a), pr.param_names.index(b)
        idx = rng.choice(len(pr.points), min(max_points, len(pr.points)), replace=False)
        col = domain_colors(pr.settings[idx, ia], pr.settings[idx, ib])
        ax.scatter(pr.points[idx, 0], pr.points[idx, 1], c=col, s=2, rasterized=True)
        ax.set_title(f"{pr.effect}: hue {a}, lightness {b}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"The study's latent projections per effect (10,000 settings each; {STUDY_NOTE})", fontsize=9)
    return fig


def latent_controller(points: Mapping[str, pd.DataFrame], *, n_neighbors: int = 25):
    """The study's latent-controller planes (its own colours) and true vs predicted settings."""
    fig, axes = new_figure(len(points), 3, width=11.0, row_height=3.2)
    for row, (effect, df) in zip(axes, points.items()):
        x, y, c = df[f"x_emb_n={n_neighbors}"], df[f"y_emb_n={n_neighbors}"], df[f"colour_n={n_neighbors}"]
        row[0].scatter(x, y, c=list(c), s=4)
        row[0].set_title(f"{effect}: controller plane (n_neighbors={n_neighbors}, its colours)", fontsize=8)
        row[0].set_xticks([])
        row[0].set_yticks([])
        params = [k[2:] for k in df.columns if k.startswith("p_") and not k.startswith("p_hat_")]
        for p in params:
            row[1].scatter(df[f"p_{p}"], df[f"p_hat_{p}"], s=2, alpha=0.4, label=p)
        row[1].plot([0, 1], [0, 1], color="black", linewidth=0.6)
        row[1].set_xlabel("true setting")
        row[1].set_ylabel("predicted")
        row[1].legend(fontsize=6, markerscale=3, ncol=2 if len(params) > 4 else 1)
        sc = row[2].scatter(df.brightness_diff, df.depth_diff, c=y, s=3, cmap="viridis")
        row[2].set_xlabel("brightness difference (y_hat - x)")
        row[2].set_ylabel("depth difference")
        fig.colorbar(sc, ax=row[2], label="plane y")
    fig.suptitle(f"The study's latent controller: 1,000 points per effect ({STUDY_NOTE})", fontsize=9)
    return fig


def ratio_side_by_side(study: pd.Series, run: Mapping[str, float]):
    """MR-STFT of the controller relative to do-nothing per effect: the study's (its data) beside this run's."""
    fig, axes = new_figure(1, 1, width=8.0, row_height=3.0)
    ax = axes[0, 0]
    x = np.arange(len(load.EFFECTS))
    ax.bar(x - 0.2, [study[e] for e in load.EFFECTS], 0.4, color="#1f77b4", label="study (VCTK/DAPS/MUSDB18, mda)")
    ax.bar(
        x + 0.2,
        [run.get(e, np.nan) for e in load.EFFECTS],
        0.4,
        color="#ff7f0e",
        label="this run (synthetic corpus, re-run)",
    )
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xticks(x, load.EFFECTS)
    ax.set_ylabel("controller / do-nothing MR-STFT")
    ax.set_title("Below 1: the controller beats doing nothing (two different experiments)", fontsize=9)
    ax.legend(fontsize=7)
    return fig

"""Figures and tables of the evaluation stage (notebook 06)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import metrics as M
from ..evaluation import METHODS, SPEECH_CORPORA
from .style import METHOD_COLORS, new_figure

#: the methods shown in the headline figures (variants stay in the tables)
HEADLINE_METHODS: tuple[str, ...] = (
    "do_nothing",
    "random",
    "mean_params",
    "controller",
    "ito",
    "ito_amortised",
    "oracle",
)
#: colours of methods the house style does not name yet
_EXTRA_COLORS = {"ito_amortised": "#c5b0d5"}


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, _EXTRA_COLORS.get(method, "#999999"))


def _methods(table, methods: Sequence[str] | None) -> list[str]:
    present = set(table["method"])
    want = methods or HEADLINE_METHODS
    return [m for m in METHODS if m in want and m in present]


def metric_boxes(
    table, metric: str = "mrstft", methods: Sequence[str] | None = None, corpora: Sequence[str] | None = None
):
    """Box plots of per-clip ``metric``: one row per corpus, effects along x, one box per method."""
    corpora = [
        c
        for c in (corpora or list(dict.fromkeys(table["corpus"])))
        if np.isfinite(table[table.corpus == c][metric].to_numpy(float)).any()
    ]
    methods = _methods(table, methods)
    effects = list(dict.fromkeys(table["effect"]))
    fig, axes = new_figure(max(1, len(corpora)), 1, width=11.0, row_height=2.8)
    width = 0.8 / max(1, len(methods))
    for ax, corpus in zip(axes[:, 0], corpora):
        sub = table[table.corpus == corpus]
        for j, method in enumerate(methods):
            data, pos = [], []
            for i, eff in enumerate(effects):
                v = sub[(sub.effect == eff) & (sub.method == method)][metric].to_numpy(float)
                v = v[np.isfinite(v)]
                if v.size:
                    data.append(v)
                    pos.append(i - 0.4 + width * (j + 0.5))
            if not data:
                continue
            bp = ax.boxplot(
                data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=False, manage_ticks=False
            )
            for box in bp["boxes"]:
                box.set(facecolor=_color(method), alpha=0.85, linewidth=0.5)
            for k in ("medians", "whiskers", "caps"):
                for line in bp[k]:
                    line.set(linewidth=0.6, color="#333333")
            ax.plot([], [], "s", color=_color(method), label=method)
        ax.set_xticks(range(len(effects)), effects)
        ax.set_ylabel(M.LABELS.get(metric, metric))
        ax.set_title(
            f"{corpus}: {M.LABELS.get(metric, metric)} per clip "
            f"({'higher' if metric in M.HIGHER_IS_BETTER else 'lower'} is better)"
        )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(methods), fontsize=7, frameon=False)
    return fig


def wins_figure(wins, method: str = "controller"):
    """Cells (effect x corpus) where ``method`` beats do-nothing and random (paired MR-STFT):
    colour = item win rate against do-nothing; text = win marks (* = significant)."""
    import matplotlib.pyplot as plt

    corpora = list(dict.fromkeys(wins["corpus"]))
    effects = list(dict.fromkeys(wins["effect"]))
    fig, axes = new_figure(1, 1, width=2.2 + 1.5 * len(corpora), row_height=0.35 * len(effects) + 1.2)
    ax = axes[0, 0]
    grid = np.full((len(effects), len(corpora)), np.nan)
    for r in wins.itertuples(index=False):
        rate = getattr(r, "vs_do_nothing_win_rate", None)
        grid[effects.index(r.effect), corpora.index(r.corpus)] = np.nan if rate is None else rate
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", alpha=0.55)

    def mark(win, sig):
        if win is None or (isinstance(win, float) and np.isnan(win)):
            return "n/a"
        return ("win" if win else "loss") + ("*" if sig else "")

    for r in wins.itertuples(index=False):
        i, j = effects.index(r.effect), corpora.index(r.corpus)
        txt = (
            f"vs DN: {mark(r.vs_do_nothing_win, r.vs_do_nothing_significant)}\n"
            f"vs R: {mark(r.vs_random_win, r.vs_random_significant)}"
        )
        ax.text(j, i, txt, ha="center", va="center", fontsize=6.5)
    ax.set_xticks(range(len(corpora)), corpora)
    ax.set_yticks(
        range(len(effects)),
        [
            f"{e}{'' if s else ' (unseen)'}"
            for e, s in zip(effects, [bool(wins[wins.effect == e]["seen"].iloc[0]) for e in effects])
        ],
    )
    ax.set_title(
        f"{method} vs do-nothing (DN) and random (R), paired MR-STFT\n"
        "(* = 95% interval of the paired difference below 0)"
    )
    plt.colorbar(im, ax=ax, label="item win rate vs do-nothing", shrink=0.8)
    return fig


def seen_unseen_figure(group_means, metric: str = "mrstft", methods: Sequence[str] | None = None):
    """Mean over cells of ``metric`` for seen vs unseen effects, per corpus and method."""
    corpora = list(dict.fromkeys(group_means["corpus"]))
    present = set(group_means["method"])
    methods = [m for m in METHODS if m in (methods or HEADLINE_METHODS) and m in present]
    fig, axes = new_figure(1, len(corpora), width=3.0 * len(corpora) + 1, row_height=2.8, sharey=True)
    for ax, corpus in zip(axes[0], corpora):
        sub = group_means[group_means.corpus == corpus]
        for k, grp in enumerate(("seen", "unseen")):
            vals = []
            for m in methods:
                v = sub[(sub.group == grp) & (sub.method == m)][metric]
                vals.append(float(v.iloc[0]) if len(v) else np.nan)
            x = np.arange(len(methods)) + (k - 0.5) * 0.38
            ax.bar(
                x,
                vals,
                width=0.36,
                color=[_color(m) for m in methods],
                alpha=1.0 if grp == "seen" else 0.5,
                hatch=None if grp == "seen" else "//",
                edgecolor="#333333",
                linewidth=0.4,
                label=grp,
            )
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
        ax.set_title(f"{corpus}")
    axes[0, 0].set_ylabel(f"mean {M.LABELS.get(metric, metric)}")
    axes[0, 0].legend(["seen (solid)", "unseen (hatched)"], frameon=False, fontsize=7)
    return fig


def speech_music_figure(summary, metric: str = "mrstft", methods: Sequence[str] = ("do_nothing", "controller", "ito")):
    """Per effect: mean ``metric`` on speech corpora (x) vs music corpora (y), per method."""
    from .style import effect_color

    s = summary[summary.metric == metric]
    speech = s[s.corpus.isin(SPEECH_CORPORA)].groupby(["effect", "method"])["mean"].mean()
    music = s[~s.corpus.isin(SPEECH_CORPORA)].groupby(["effect", "method"])["mean"].mean()
    fig, axes = new_figure(1, 1, width=5.6, row_height=4.2)
    ax = axes[0, 0]
    markers = {"do_nothing": "o", "controller": "s", "ito": "^", "ito_amortised": "v", "random": "x", "oracle": "+"}
    lim = []
    for m in methods:
        for eff in dict.fromkeys(summary["effect"]):
            if (eff, m) in speech.index and (eff, m) in music.index:
                a, b = speech[(eff, m)], music[(eff, m)]
                ax.scatter(a, b, marker=markers.get(m, "o"), color=effect_color(eff), s=28)
                lim += [a, b]
        ax.scatter([], [], marker=markers.get(m, "o"), color="#555555", label=m)
    if lim:
        lo, hi = min(lim), max(lim)
        ax.plot([lo, hi], [lo, hi], color="#999999", linewidth=0.6, linestyle="--")
    ax.set_xlabel(f"speech: mean {M.LABELS.get(metric, metric)}")
    ax.set_ylabel(f"music: mean {M.LABELS.get(metric, metric)}")
    ax.set_title("speech vs music per effect (colour = effect, marker = method)")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    from matplotlib.lines import Line2D

    effs = list(dict.fromkeys(summary["effect"]))
    fig.legend(
        [Line2D([], [], marker="o", linestyle="", color=effect_color(e)) for e in effs],
        effs,
        loc="outside right center",
        fontsize=7,
        frameon=False,
    )
    return fig


def cost_figure(cost_summary):
    """Cost of each method: wall milliseconds per clip (log) and renders per clip."""
    fig, axes = new_figure(1, 2, width=8.5, row_height=2.8)
    methods = list(cost_summary["method"])
    colors = [_color(m) for m in methods]
    axes[0, 0].bar(methods, np.maximum(cost_summary["ms_per_clip"].to_numpy(float), 1e-3), color=colors)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("ms per clip (wall, incl. renders)")
    axes[0, 1].bar(methods, cost_summary["renders_per_clip"], color=colors)
    axes[0, 1].set_ylabel("renders per clip")
    for ax in axes[0]:
        ax.tick_params(axis="x", rotation=45)
        for lab in ax.get_xticklabels():
            lab.set_ha("right")
    return fig


def summary_table(summary, metric: str = "mrstft", methods: Sequence[str] | None = None, digits: int = 3):
    """Table (effect x corpus/method) of 'mean [lo, hi]' strings for one metric."""
    s = summary[summary.metric == metric].copy()
    present = set(s["method"])
    methods = [m for m in METHODS if m in (methods or METHODS) and m in present]
    s = s[s.method.isin(methods)]
    s["cell"] = [f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for m, lo, hi in zip(s["mean"], s["lo"], s["hi"])]
    t = s.pivot_table(index="effect", columns=["corpus", "method"], values="cell", aggfunc="first", sort=False)
    return t.reindex(columns=[c for c in t.columns], copy=False)


def ito_budget_figure(curve_summary):
    """The ITO budget curve (:meth:`dafxlib.evaluation.budget.BudgetCurve.summary`): per corpus,
    mean MR-STFT against renders per clip for the search from 0.5 (``ito``) and from the
    controller's prediction (``ito_amortised``), the controller and do-nothing on the same clips
    as horizontal lines (top row); wall milliseconds per clip against renders (bottom row)."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    s = curve_summary
    corpora = [c for c in dict.fromkeys(s["corpus"]) if c != "all"]
    fig, axes = new_figure(2, len(corpora), width=3.4 * len(corpora) + 0.6, row_height=2.6, sharex=True)
    labels = {"ito": "ITO from 0.5", "ito_amortised": "ITO from the controller's prediction"}
    refs = {"controller": ("-", "controller (1 render)"), "do_nothing": (":", "do-nothing")}
    for j, corpus in enumerate(corpora):
        sub = s[s.corpus == corpus]
        top, bottom = axes[0, j], axes[1, j]
        for m, label in labels.items():
            g = sub[(sub.method == m) & (sub.budget > 0)].sort_values("renders_per_clip")
            if not len(g):
                continue
            kw = {"color": _color(m), "marker": "o" if m == "ito" else "s", "markersize": 4, "label": label}
            top.plot(g["renders_per_clip"], g["mrstft"], **kw)
            bottom.plot(g["renders_per_clip"], g["ms_per_clip"], **kw)
            for r in g.itertuples(index=False):
                top.annotate(
                    str(int(r.budget)),
                    (r.renders_per_clip, r.mrstft),
                    fontsize=6,
                    xytext=(2, 3),
                    textcoords="offset points",
                )
        for m, (ls, label) in refs.items():
            v = sub[(sub.method == m) & (sub.budget == 0)]["mrstft"]
            if len(v):
                top.axhline(float(v.iloc[0]), color=_color(m), linestyle=ls, linewidth=1.0, label=label)
        top.set_xscale("log")
        ticks = sorted({float(v) for v in sub[sub.budget > 0]["renders_per_clip"]})
        for ax in (top, bottom):
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        if ticks:
            bottom.set_xticks(ticks, [f"{t:.0f}" for t in ticks])
        top.set_title(f"{corpus}: mean MR-STFT over cells")
        bottom.set_xlabel("renders per clip (log; labels: budget)")
        if j == 0:
            top.set_ylabel("MR-STFT (lower is better)")
            bottom.set_ylabel("ms per clip (wall)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncol=4, fontsize=7, frameon=False)
    return fig

"""The evaluation discussion: short prose whose every number and verdict comes from the results."""

from __future__ import annotations

from .. import metrics as M
from .results import EvalResults
from .sets import SPEECH_CORPORA


def discussion_markdown(res: EvalResults, summary=None, metric: str = "mrstft") -> str:
    """A short discussion whose every number comes from ``res`` (for the notebook and the
    report fragment ``06_discussion``); the wording follows the results."""
    summary = res.summary() if summary is None else summary
    s = summary[summary.metric == metric]
    lines: list[str] = []
    cells = len(res.table[["corpus", "effect"]].drop_duplicates())
    mean = s.pivot_table(index=["corpus", "effect"], columns="method", values="mean")
    methods = set(res.methods)
    prof = res.meta.get("profile", "?")
    lines.append(f"**Discussion ({prof} profile, {res.meta.get('n_per_cell', '?')} clips per cell, {cells} cells).**")
    if "controller" in methods and "do_nothing" in mean:
        wt = res.wins("controller", ("do_nothing", "random"), metric)
        w_dn = int(wt["vs_do_nothing_win"].fillna(False).astype(bool).sum())
        w_r = int(wt["vs_random_win"].fillna(False).astype(bool).sum()) if "vs_random_win" in wt else 0
        sig = int(wt["vs_do_nothing_significant"].fillna(False).astype(bool).sum())
        seen_w = int(wt[wt.seen == True]["vs_do_nothing_win"].fillna(False).astype(bool).sum())  # noqa: E712
        n_seen = int((wt.seen == True).sum())  # noqa: E712
        lines.append(
            f"The controller has a lower mean {M.LABELS[metric]} than doing nothing in {w_dn} of "
            f"{len(wt)} cells ({sig} significant at 95%), {seen_w} of {n_seen} on seen effects and "
            f"{w_dn - seen_w} of {len(wt) - n_seen} on unseen ones; it beats random settings in "
            f"{w_r} cells. The original study beat doing nothing in 12 of 27 cells."
        )
        rel = ((mean["controller"] - mean["do_nothing"]) / mean["do_nothing"]).dropna()
        if len(rel):
            best, worst = rel.idxmin(), rel.idxmax()
            lines.append(
                f"Relative to doing nothing, the controller's error changes by {100 * rel[best]:+.0f}% "
                f"in its best cell ({best[1]}, {best[0]}) and by {100 * rel[worst]:+.0f}% in its worst "
                f"({worst[1]}, {worst[0]}); negative is better."
            )
        gm = res.group_means(metric)
        g = gm[gm.corpus == "all"].pivot_table(index="group", columns="method", values=metric)
        if {"seen", "unseen"} <= set(g.index) and {"controller", "do_nothing"} <= set(g.columns):
            ds = g.loc["seen", "controller"] - g.loc["seen", "do_nothing"]
            du = g.loc["unseen", "controller"] - g.loc["unseen", "do_nothing"]
            better = "seen" if ds < du else "unseen"
            lines.append(
                f"Controller minus do-nothing, mean over cells: {ds:+.3f} on seen effects and "
                f"{du:+.3f} on unseen effects, so the controller helps more on {better} effects "
                "(the VAE encoder was trained on the seen ones only)."
            )
        kinds = {
            "speech": [c for c in res.corpora if c in SPEECH_CORPORA],
            "music": [c for c in res.corpora if c not in SPEECH_CORPORA],
        }
        if kinds["speech"] and kinds["music"]:
            d = (mean["controller"] - mean["do_nothing"]).dropna()
            dsp = d[d.index.get_level_values(0).isin(kinds["speech"])].mean()
            dmu = d[d.index.get_level_values(0).isin(kinds["music"])].mean()
            lines.append(f"By material: controller minus do-nothing {dsp:+.3f} on speech and {dmu:+.3f} on music.")
    if "ito" in methods and "controller" in methods:
        cs = res.cost_summary().set_index("method")
        i_m, c_m = mean["ito"].mean(), mean["controller"].mean()
        lines.append(
            f"The ITO baseline ({int(cs.loc['ito', 'renders_per_clip'])} renders per clip, "
            f"{cs.loc['ito', 'ms_per_clip']:.0f} ms per clip) reaches a mean {M.LABELS[metric]} of "
            f"{i_m:.3f} against the controller's {c_m:.3f} at {cs.loc['controller', 'ms_per_clip']:.1f} ms "
            f"per clip: {'search beats' if i_m < c_m else 'the amortised controller beats'} "
            f"{'amortised prediction' if i_m < c_m else 'per-clip search'} at this budget."
        )
    pm = summary[summary.metric == "param_mae"].pivot_table(index=["corpus", "effect"], columns="method", values="mean")
    if {"controller", "mean_params", "random"} <= set(pm.columns):
        lines.append(
            f"Parameter recovery (MAE of normalised settings): controller {pm['controller'].mean():.3f}, "
            f"a constant middle setting {pm['mean_params'].mean():.3f}, random {pm['random'].mean():.3f}."
        )
    if "oracle" in mean:
        lines.append(
            f"The oracle (true settings) scores {mean['oracle'].mean():.3f} on average: the distance "
            "left between the controller and this floor is what better settings could still gain."
        )
    exc = res.excluded_counts()
    tot = sum(exc.values())
    lines.append(
        "No item was excluded."
        if tot == 0
        else "Excluded items (silent or non-finite targets, metric errors): "
        + ", ".join(f"{k} {v}" for k, v in sorted(exc.items()))
        + "."
    )
    if res.skipped:
        sk = sorted({d["method"] for d in res.skipped})
        lines.append(f"{len(res.skipped)} method-cells could not run (missing artifacts): {', '.join(sk)}.")
    return "\n\n".join(lines)

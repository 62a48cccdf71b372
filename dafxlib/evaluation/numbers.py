"""The evaluation's numbers contract: every ``eval.*`` key the report and notebooks read."""

from __future__ import annotations

from typing import Any

import numpy as np

from .results import EvalResults

#: metrics whose bootstrap interval also goes into numbers.json
CI_METRICS: tuple[str, ...] = ("mrstft",)


def number_entries(res: EvalResults, summary=None) -> dict[str, Any]:
    """Flat ``eval.*`` keys for numbers.json (lower-case):

    - ``eval.<corpus>.<effect>.<method>.<metric>``: cell means over valid items (pesq on
      speech corpora only; param_mae for methods that output settings), plus
      ``..._lo`` / ``..._hi`` 95% bootstrap bounds for mrstft;
    - ``eval.<seen|unseen>.<method>.<metric>`` and ``eval.<corpus>.<all|seen|unseen>.<method>.<metric>``:
      means of cell means (mrstft, pesq, param_mae, param_mae_id);
    - ``eval.<corpus>.<effect>.<m>.win_rate_vs_<do_nothing|random>``: share of clips where
      m (controller, ito, ito_amortised) has the lower MR-STFT (ties count half);
    - ``eval.wins.<m>_vs_<do_nothing|random>`` (cells with a lower mean MR-STFT; m in
      controller, ito, ito_amortised), ``eval.wins.<m>_vs_both``, ``eval.wins.significant.*``,
      ``eval.wins.seen.*``, ``eval.wins.unseen.*``, ``eval.wins.cells_<m>``;
    - ``eval.<corpus>.ratio_to_do_nothing.<method>``: mean over effects of the cell-mean MR-STFT
      ratio method / do-nothing (the issue-13 target is read on the controller's);
    - ``eval.cells``, ``eval.n_per_cell``, ``eval.ito_budget``, ``eval.n_corpora``,
      ``eval.n_effects``, ``eval.n_methods``, ``eval.skipped_method_cells``, ``eval.wall_s``;
    - ``eval.cost.<method>.ms_per_clip`` / ``.renders_per_clip``;
    - ``eval.excluded.<metric>`` (only for metrics with excluded items).
    """
    summary = res.summary() if summary is None else summary
    out: dict[str, Any] = {}
    for r in summary.itertuples(index=False):
        if r.mean is None or not np.isfinite(r.mean):
            continue
        k = f"eval.{r.corpus}.{r.effect}.{r.method}.{r.metric}"
        out[k] = r.mean
        if r.metric in CI_METRICS:
            out[k + "_lo"], out[k + "_hi"] = r.lo, r.hi
    for metric in ("mrstft", "pesq", "param_mae", "param_mae_id"):
        if metric not in res.table or not np.isfinite(res.table[metric].to_numpy(float)).any():
            continue
        gm = res.group_means(metric)
        for r in gm.itertuples(index=False):
            v = getattr(r, metric)
            if r.corpus == "all":
                out[f"eval.{r.group}.{r.method}.{metric}"] = v
            else:
                out[f"eval.{r.corpus}.{r.group}.{r.method}.{metric}"] = v
    # per corpus, the mean over effects of (method MR-STFT / do-nothing MR-STFT) of the cell means
    mr = summary[summary.metric == "mrstft"].pivot_table(index=["corpus", "effect"], columns="method", values="mean")
    if "do_nothing" in mr:
        for corpus, g in mr.groupby(level="corpus"):
            dn = g["do_nothing"].to_numpy(float)
            for method in g.columns:
                if method == "do_nothing":
                    continue
                ratio = g[method].to_numpy(float) / dn
                if np.isfinite(ratio).any():
                    out[f"eval.{corpus}.ratio_to_do_nothing.{method}"] = float(np.nanmean(ratio))
    cells = res.table[["corpus", "effect"]].drop_duplicates()
    out["eval.cells"] = int(len(cells))
    out["eval.n_per_cell"] = int(res.meta.get("n_per_cell", 0))
    out["eval.ito_budget"] = int(res.meta.get("ito_budget", 0))
    out["eval.n_corpora"] = len(res.corpora)
    out["eval.n_effects"] = len(res.effects)
    out["eval.n_methods"] = len(res.methods)
    methods = set(res.methods)
    for method in ("controller", "ito", "ito_amortised"):
        if method not in methods:
            continue
        wt = res.wins(method, ("do_nothing", "random"))
        for other in ("do_nothing", "random"):
            col = f"vs_{other}_win"
            if col not in wt:
                continue
            w = wt[col].fillna(False).astype(bool)
            s = wt[f"vs_{other}_significant"].fillna(False).astype(bool)
            out[f"eval.wins.{method}_vs_{other}"] = int(w.sum())
            out[f"eval.wins.significant.{method}_vs_{other}"] = int(s.sum())
            out[f"eval.wins.seen.{method}_vs_{other}"] = int(w[wt.seen == True].sum())  # noqa: E712
            out[f"eval.wins.unseen.{method}_vs_{other}"] = int(w[wt.seen == False].sum())  # noqa: E712
        for r in wt.itertuples(index=False):
            for other in ("do_nothing", "random"):
                rate = getattr(r, f"vs_{other}_win_rate", None)
                if rate is not None and np.isfinite(rate):
                    out[f"eval.{r.corpus}.{r.effect}.{method}.win_rate_vs_{other}"] = float(rate)
        if "vs_do_nothing_win" in wt and "vs_random_win" in wt:
            both = wt["vs_do_nothing_win"].fillna(False).astype(bool) & wt["vs_random_win"].fillna(False).astype(bool)
            out[f"eval.wins.{method}_vs_both"] = int(both.sum())
        out[f"eval.wins.cells_{method}"] = int(len(wt))
    for r in res.cost_summary().itertuples(index=False):
        out[f"eval.cost.{r.method}.ms_per_clip"] = float(r.ms_per_clip)
        out[f"eval.cost.{r.method}.renders_per_clip"] = float(r.renders_per_clip)
    for m, n in res.excluded_counts().items():
        out[f"eval.excluded.{m}"] = int(n)
    out["eval.skipped_method_cells"] = len(res.skipped)
    out["eval.wall_s"] = float(res.meta.get("wall_s", 0.0))
    return out

"""Per-cell summaries of the evaluation table: bootstrap intervals, paired differences and wins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import metrics as M
from ..seeding import mix_seed
from ..stats import mean_ci
from .cell import EVAL_METRICS


def paired(table, cell: tuple[str, str], a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-item values of methods a and b in one cell, on the items valid for both."""
    c = table[(table.corpus == cell[0]) & (table.effect == cell[1])]
    va = c[c.method == a].set_index("item")[metric]
    vb = c[c.method == b].set_index("item")[metric]
    j = va.index.intersection(vb.index)
    va, vb = va.loc[j].to_numpy(float), vb.loc[j].to_numpy(float)
    ok = np.isfinite(va) & np.isfinite(vb)
    return va[ok], vb[ok]


def cell_summary(table, *, n_boot: int = 1000, seed: int = 0, metrics: Iterable[str] = EVAL_METRICS):
    """Per (corpus, effect, method, metric): mean, 95% bootstrap interval, n valid, n excluded."""
    import pandas as pd

    out = []
    for (corpus, effect, method), g in table.groupby(["corpus", "effect", "method"], sort=False):
        for m in metrics:
            if m not in g:
                continue
            v = g[m].to_numpy(float)
            if not np.isfinite(v).any() and m in ("pesq", "param_mae", "param_mae_id"):
                continue  # not applicable (music corpus, or a method without parameters)
            mean, lo, hi = mean_ci(v, n_boot, mix_seed(seed, "boot", corpus, effect, method, m))
            out.append(
                {
                    "corpus": corpus,
                    "effect": effect,
                    "method": method,
                    "metric": m,
                    "mean": mean,
                    "lo": lo,
                    "hi": hi,
                    "n": int(np.isfinite(v).sum()),
                    "n_excluded": int((~np.isfinite(v)).sum()),
                }
            )
    return pd.DataFrame(out)


def win_table(
    table,
    method: str = "controller",
    against: Sequence[str] = ("do_nothing", "random"),
    metric: str = "mrstft",
    *,
    n_boot: int = 1000,
    seed: int = 0,
):
    """Paired comparison per cell: means, win (mean better), item win rate (ties count
    half), and whether the paired bootstrap 95% interval of the difference excludes 0."""
    import pandas as pd

    sgn = M.sign(metric)
    rows = []
    cells = table[["corpus", "effect"]].drop_duplicates().itertuples(index=False)
    for corpus, effect in cells:
        seen = table[(table.corpus == corpus) & (table.effect == effect)]["seen"].iloc[0]
        row: dict[str, Any] = {"corpus": corpus, "effect": effect, "seen": seen}
        for other in against:
            a, b = paired(table, (corpus, effect), method, other, metric)
            key = f"vs_{other}"
            if a.size == 0:  # the method or the baseline did not run in this cell
                row.update(
                    {
                        f"{other}_mean": None,
                        f"{key}_win": None,
                        f"{key}_win_rate": None,
                        f"{key}_significant": None,
                        f"{key}_n": 0,
                    }
                )
                continue
            d = sgn * (a - b)  # < 0: method better
            _, lo, hi = mean_ci(d, n_boot, mix_seed(seed, "pair", corpus, effect, method, other, metric))
            row.update(
                {
                    f"{method}_mean": float(a.mean()),
                    f"{other}_mean": float(b.mean()),
                    f"{key}_win": bool(d.mean() < 0),
                    f"{key}_win_rate": float(np.mean((d < 0) + 0.5 * (d == 0))),
                    f"{key}_significant": bool(hi is not None and hi < 0),
                    f"{key}_n": int(a.size),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)

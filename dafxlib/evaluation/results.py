"""The evaluation's results: the per-item table, costs and metadata, stored and reloaded atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths, storage
from ..config import Profile
from ..errors import MissingArtifactError
from ..seeding import stable_hash
from .methods import METHODS
from .summary import cell_summary, win_table


@dataclass
class EvalResults:
    """The per-item table, per-cell costs, exclusion reports, skipped methods and metadata."""

    table: Any  # pandas DataFrame
    costs: Any  # pandas DataFrame
    reports: dict[str, dict] = field(default_factory=dict)  # method -> MetricReport.to_dict()
    skipped: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        present = set(self.table["method"])
        return [m for m in METHODS if m in present]

    @property
    def corpora(self) -> list[str]:
        return list(dict.fromkeys(self.table["corpus"]))

    @property
    def effects(self) -> list[str]:
        return list(dict.fromkeys(self.table["effect"]))

    def summary(self, *, n_boot: int | None = None, seed: int | None = None):
        return cell_summary(
            self.table,
            n_boot=self.meta.get("bootstrap", 1000) if n_boot is None else n_boot,
            seed=self.meta.get("seed", 0) if seed is None else seed,
        )

    def wins(self, method: str = "controller", against=("do_nothing", "random"), metric: str = "mrstft"):
        return win_table(
            self.table, method, against, metric, n_boot=self.meta.get("bootstrap", 1000), seed=self.meta.get("seed", 0)
        )

    def cost_summary(self):
        """Per method: mean ms per clip and renders per clip over all cells."""
        g = self.costs.groupby("method", sort=False)
        df = g.agg(
            ms_per_clip=("ms_per_clip", "mean"), renders_per_clip=("renders_per_clip", "mean"), cells=("n", "size")
        ).reset_index()
        df["order"] = df["method"].map({m: i for i, m in enumerate(METHODS)})
        return df.sort_values("order").drop(columns="order").reset_index(drop=True)

    def group_means(self, metric: str = "mrstft"):
        """Mean of cell means per (corpus, group) and method, group in all / seen / unseen."""
        import pandas as pd

        cm = self.table.groupby(["corpus", "effect", "seen", "method"], sort=False)[metric].mean().reset_index()
        out = []
        for grp, sel in (("all", cm), ("seen", cm[cm.seen == True]), ("unseen", cm[cm.seen == False])):  # noqa: E712
            for (corpus, method), g in sel.groupby(["corpus", "method"], sort=False):
                v = g[metric].dropna()
                if len(v):
                    out.append(
                        {
                            "corpus": corpus,
                            "group": grp,
                            "method": method,
                            metric: float(v.mean()),
                            "cells": int(len(v)),
                        }
                    )
            for method, g in sel.groupby("method", sort=False):
                v = g[metric].dropna()
                if len(v):
                    out.append(
                        {"corpus": "all", "group": grp, "method": method, metric: float(v.mean()), "cells": int(len(v))}
                    )
        return pd.DataFrame(out)

    def excluded_counts(self) -> dict[str, int]:
        """Excluded items per metric over every method and cell."""
        tot: dict[str, int] = {}
        for rep in self.reports.values():
            for m, reasons in rep.get("excluded", {}).items():
                tot[m] = tot.get(m, 0) + sum(reasons.values())
        return tot


def results_dir(profile: str) -> Path:
    d = paths.build_dir(profile) / "eval"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _artifact_fingerprint(profile: str) -> list:
    d = paths.build_dir(profile) / "artifacts"
    if not d.exists():
        return []
    out = []
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            st = p.stat()
            out.append([str(p.relative_to(d)), st.st_size, int(st.st_mtime)])
    return out


def cache_key(profile: Profile, methods, effects, corpora, effect_prints: Sequence[str] = ()) -> str:
    return stable_hash(
        [
            profile.hash(),
            list(methods),
            list(effects),
            list(corpora),
            list(effect_prints),
            _artifact_fingerprint(profile.name),
        ],
        16,
    )


def save_results(res: EvalResults, profile: str) -> Path:
    d = results_dir(profile)
    with storage.atomic_path(d / "results.csv") as tmp:
        res.table.to_csv(tmp, index=False)
    with storage.atomic_path(d / "costs.csv") as tmp:
        res.costs.to_csv(tmp, index=False)
    storage.write_json(d / "meta.json", {**res.meta, "reports": res.reports, "skipped": res.skipped})
    return d


def load_results(profile: str) -> EvalResults:
    """The cached evaluation of ``profile`` (raises MissingArtifactError naming notebook 06)."""
    import pandas as pd

    d = paths.build_dir(profile) / "eval"
    if not (d / "meta.json").exists() or not (d / "results.csv").exists():
        raise MissingArtifactError(
            f"no evaluation results for profile {profile!r} in {d}; "
            f"run notebook 06_evaluation first (./run_all.sh --profile {profile} --only 06)"
        )
    meta = storage.read_json(d / "meta.json")
    table = pd.read_csv(d / "results.csv", dtype={"clip_id": str})
    costs = pd.read_csv(d / "costs.csv")
    text = lambda col: ["" if isinstance(v, float) and np.isnan(v) else str(v) for v in col]  # noqa: E731
    table["excluded"] = text(table["excluded"])
    costs["note"] = text(costs["note"])
    return EvalResults(table, costs, meta.pop("reports", {}), meta.pop("skipped", []), meta)

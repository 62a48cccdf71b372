"""One evaluation cell: every method run on the same examples and scored against the ground truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import metrics as M
from ..errors import MissingArtifactError
from ..pairs import Examples
from ..threads import single_thread
from .methods import MethodOutput, run_method
from .sets import SPEECH_CORPORA

#: metrics of the evaluation table (pesq on speech corpora only; ``param_mae_id`` is the parameter
#: MAE over the knobs that can be inferred from audio, see :mod:`dafxlib.e2e.identifiability`)
EVAL_METRICS: tuple[str, ...] = ("mrstft", "msd", "sce", "rms", "lufs", "pesq", "param_mae", "param_mae_id")


@dataclass
class CellResult:
    rows: list[dict]
    costs: list[dict]
    report: dict[str, M.MetricReport]
    skipped: list[dict]


def evaluate_cell(
    es: Examples,
    pool,
    n_params: int,
    methods: Sequence[str],
    *,
    predictors: Mapping[str, Any] | None = None,
    best_signal: str | None = None,
    encoder=None,
    ito_budget: int = 0,
    seed: int = 0,
    pesq: bool | None = None,
    workers: int = 1,
    seen: bool | None = None,
    knob_mask: np.ndarray | None = None,
) -> CellResult:
    """Run every method on the same examples of one cell and score each against ``y``.

    ``controller`` reuses the outputs of ``controller_<best_signal>`` (no second run).
    A method that cannot run (missing artifact) is listed in ``skipped`` with the reason.
    ``knob_mask`` (the effect's identifiable knobs) adds ``param_mae_id`` for methods with settings.
    """
    pesq = es.corpus in SPEECH_CORPORA if pesq is None else pesq
    names = [m for m in EVAL_METRICS if m != "pesq" or pesq]
    tcache: dict = {}
    rows, costs, skipped = [], [], []
    reports: dict[str, M.MetricReport] = {}
    outputs: dict[str, MethodOutput] = {}
    scored: dict[str, tuple] = {}
    src = ""
    order = [m for m in methods if m != "controller"] + (["controller"] if "controller" in methods else [])
    for method in order:
        if method == "controller":
            src = f"controller_{best_signal}" if best_signal else ""
            if src not in outputs:
                try:
                    if not src:
                        raise MissingArtifactError("no best signal known; run notebook 04_end_to_end")
                    with single_thread():
                        outputs[src] = run_method(src, es, pool, n_params, predictors=predictors, seed=seed)
                except MissingArtifactError as exc:
                    skipped.append({"corpus": es.corpus, "effect": es.effect, "method": method, "reason": str(exc)})
                    continue
            out = outputs[src]
        else:
            try:
                with single_thread():  # same thread policy for every method (fair costs)
                    out = run_method(
                        method,
                        es,
                        pool,
                        n_params,
                        predictors=predictors,
                        encoder=encoder,
                        ito_budget=ito_budget,
                        seed=seed,
                    )
            except MissingArtifactError as exc:
                skipped.append({"corpus": es.corpus, "effect": es.effect, "method": method, "reason": str(exc)})
                continue
            outputs[method] = out
        key = src if method == "controller" else method
        if key in scored:  # the controller's outputs are those of its best signal: same scores
            vals, rep0, reasons, silent = scored[key]
            rep = M.MetricReport().merge(rep0)
        else:
            use = [m for m in names if m not in ("param_mae", "param_mae_id") or out.p_hat is not None]
            use = [m for m in use if m != "param_mae_id"]  # not an audio metric: computed below
            vals, rep = M.compute_metrics(
                out.y_hat,
                es.y,
                es.sample_rate,
                metrics=use,
                params_hat=out.p_hat,
                params_true=es.p if out.p_hat is not None else None,
                workers=workers,
                target_cache=tcache,
            )
            if out.p_hat is not None and knob_mask is not None:
                from ..e2e.identifiability import masked_mae

                vals["param_mae_id"] = masked_mae(out.p_hat, es.p, knob_mask)
            _, _, reasons, silent = M.screen(out.y_hat, es.y)
            scored[key] = (vals, rep, reasons, silent)
        reports[method] = rep
        for i in range(len(es)):
            row: dict[str, Any] = {
                "corpus": es.corpus,
                "effect": es.effect,
                "seen": seen,
                "method": method,
                "item": i,
                "clip_id": str(es.clip_ids[i]),
            }
            for m in EVAL_METRICS:
                row[m] = float(vals[m][i]) if m in vals else np.nan
            row["excluded"] = reasons.get(i, "")
            row["silent_estimate"] = bool(silent[i])
            row["render_failed"] = bool(out.render_failed[i])
            rows.append(row)
        costs.append(
            {
                "corpus": es.corpus,
                "effect": es.effect,
                "method": method,
                "n": len(es),
                "seconds": out.seconds,
                "renders": out.renders,
                "ms_per_clip": 1000.0 * out.seconds / len(es),
                "renders_per_clip": out.renders / len(es),
                "note": out.note + (f"; outputs of controller_{best_signal}" if method == "controller" else ""),
            }
        )
    return CellResult(rows, costs, reports, skipped)

"""The targets the black-box-gradient round set (issue 13), checked against a run's own numbers.

Each target names the numbers it reads; :func:`check` says for each whether this run met it,
missed it, or could not tell (a number absent: a signal or method the profile did not run),
and :func:`markdown` writes that as a table for the report. Nothing here is typed from a result:
the thresholds are the targets, the values come from ``numbers.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CORPORA: tuple[str, ...] = ("speech", "music")


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    #: numbers -> (value shown, met); raises KeyError when a number is absent
    test: Callable[[Mapping[str, Any]], tuple[str, bool]]


def _both(n: Mapping[str, Any]) -> tuple[str, bool]:
    k, of = int(n["e2e.spsa_targets.n_both_5pct_better"]), int(n["e2e.spsa_targets.n_both"])
    return f"{k} of {of} effects", k >= 6


def _audio_beats(n: Mapping[str, Any]) -> tuple[str, bool]:
    k, of = int(n["e2e.spsa_targets.n_audio_beats_do_nothing"]), int(n["e2e.spsa_targets.n_audio"])
    return f"{k} of {of} effects", k == of == 9


def _audio_close(n: Mapping[str, Any]) -> tuple[str, bool]:
    k, of = int(n["e2e.spsa_targets.n_audio_within_15pct"]), int(n["e2e.spsa_targets.n_audio"])
    mean = float(n["e2e.spsa_targets.audio_over_regression_mean"])
    return f"{k} of {of} effects (mean ratio to regression {mean:.2f})", k == of == 9


def _ratio(n: Mapping[str, Any]) -> tuple[str, bool]:
    vals = {c: float(n[f"eval.{c}.ratio_to_do_nothing.controller"]) for c in CORPORA}
    return ", ".join(f"{c} {v:.3f}" for c, v in vals.items()), all(v <= 0.35 for v in vals.values())


def _flanger(n: Mapping[str, Any]) -> tuple[str, bool]:
    vals = {
        c: float(n[f"eval.{c}.flanger.controller.mrstft"]) / float(n[f"eval.{c}.flanger.mean_params.mrstft"])
        for c in CORPORA
    }
    shown = ", ".join(f"{c} {1 - v:+.1%}" for c, v in vals.items())
    return shown + " better than the middle setting", all(v <= 0.9 for v in vals.values())


def _mae(n: Mapping[str, Any]) -> tuple[str, bool]:
    ident = {c: float(n[f"eval.{c}.all.controller.param_mae_id"]) for c in CORPORA}
    full = {c: float(n[f"eval.{c}.all.controller.param_mae"]) for c in CORPORA}
    shown = ", ".join(f"{c} {ident[c]:.3f} (all knobs {full[c]:.3f})" for c in CORPORA)
    return shown, all(v <= 0.15 for v in ident.values())


TARGETS: tuple[Target, ...] = (
    Target(
        "both",
        "SPSA fine-tuning (`both`) beats regression on test MR-STFT by at least 5% on at least 6 of the 9 effects",
        _both,
    ),
    Target(
        "audio_beats", "SPSA alone (`audio`, the study's method) beats do-nothing on all nine effects", _audio_beats
    ),
    Target("audio_close", "SPSA alone comes within 15% of regression on all nine effects", _audio_close),
    Target(
        "ratio", "mean over the nine effects of controller / do-nothing MR-STFT at most 0.35 on both corpora", _ratio
    ),
    Target("flanger", "Flanger at least 10% better than the constant middle setting (both corpora)", _flanger),
    Target("mae", "parameter MAE (identifiable knobs) at most 0.15, averaged over the nine effects", _mae),
)


def check(numbers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per target: name, text, value (or why not), met (True/False/None)."""
    rows = []
    for t in TARGETS:
        try:
            value, met = t.test(numbers)
        except (KeyError, TypeError, ValueError) as exc:
            value, met = f"not measured in this run ({exc.__class__.__name__}: {exc})", None
        rows.append({"name": t.name, "text": t.text, "value": value, "met": met})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`check` as a Markdown table with a one-line count."""
    word = {True: "**met**", False: "**missed**", None: "not measured"}
    lines = ["| target | this run | |", "|---|---|---|"]
    lines += [f"| {r['text']} | {r['value']} | {word[r['met']]} |" for r in rows]
    met = sum(r["met"] is True for r in rows)
    missed = sum(r["met"] is False for r in rows)
    return f"{met} of {len(rows)} targets met, {missed} missed.\n\n" + "\n".join(lines)


def numbers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``<name>.met`` per target (None where not measured) plus the counts, for numbers.json."""
    out: dict[str, Any] = {f"{r['name']}.met": r["met"] for r in rows}
    out["n_met"] = sum(r["met"] is True for r in rows)
    out["n_missed"] = sum(r["met"] is False for r in rows)
    return out

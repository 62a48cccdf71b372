"""MUSHRA analysis of a webMUSHRA results file: post-screening, medians/IQR, bootstrap means, paired tests.

One function, :func:`analyse`, reads the study's ``mushra.csv`` and the results file of a new test made
with :mod:`dafxlib.study.listening` alike: webMUSHRA's CSV export, one row per rated stimulus, columns
``session_test_id, session_uuid, trial_id, rating_stimulus, rating_score, rating_time, rating_date,
rating_comment``. Trial ids are ``<effect><example number>`` (``overdrive0``); the ``training`` trial
is left out.

Post-screening (ITU-R BS.1534-3, section 4.1.2): an assessor is excluded when they rate the hidden
reference below 90 in more than 15% of the test items (:data:`SCREENING_RULE`). A second, separately
counted rule that is not part of the Recommendation drops sessions that gave every stimulus of every
trial the same score (they carry no comparison at all).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DafxError
from ..seeding import mix_seed
from ..stats import holm, mean_ci

COLUMNS = (
    "session_test_id",
    "session_uuid",
    "trial_id",
    "rating_stimulus",
    "rating_score",
    "rating_time",
    "rating_date",
    "rating_comment",
)
REFERENCE = "reference"
SCREENING_RULE = (
    "ITU-R BS.1534-3 post-screening: exclude an assessor who rates the hidden reference below "
    "{threshold:g} for more than {fraction:.0%} of the test items"
)
CONSTANT_RULE = "additional (not BS.1534-3): exclude a session that gave every stimulus of every trial one score"
_TRIAL_RE = re.compile(r"^([A-Za-z_]+?)_?(\d+)$")


class MushraError(DafxError, ValueError):
    """A results file that is not in webMUSHRA's CSV format, or asks for stimuli it lacks."""


def read_results(source: str | Path | bytes | pd.DataFrame) -> pd.DataFrame:
    """Read a webMUSHRA CSV export (path, bytes or DataFrame) and add ``effect`` and ``example`` parsed from
    ``trial_id``; training trials are dropped. Raises :class:`MushraError` on a foreign format."""
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        try:
            df = pd.read_csv(
                io.BytesIO(source) if isinstance(source, bytes) else Path(source),
                dtype={"session_uuid": str, "trial_id": str, "rating_stimulus": str},
            )
        except FileNotFoundError as e:
            raise MushraError(f"MUSHRA results file {source!s} not found") from e
    missing = [c for c in COLUMNS[:5] if c not in df.columns]
    if missing:
        raise MushraError(f"not a webMUSHRA results file: columns {missing} missing (expected {', '.join(COLUMNS)})")
    df = df[df.trial_id.astype(str).str.lower() != "training"].copy()
    parsed = df.trial_id.astype(str).str.extract(_TRIAL_RE)
    if parsed[0].isna().any():
        bad = sorted(df.trial_id[parsed[0].isna()].astype(str).unique())[:5]
        raise MushraError(f"trial ids {bad} are not <effect><number> (e.g. overdrive0)")
    df["effect"] = parsed[0].str.lower().to_numpy()
    df["example"] = parsed[1].astype(int).to_numpy()
    df["rating_score"] = pd.to_numeric(df.rating_score, errors="raise").astype(float)
    if not df.rating_score.between(0, 100).all():
        raise MushraError("rating_score outside 0..100")
    return df.reset_index(drop=True)


@dataclass
class Screening:
    rule: str
    removed: dict[str, float]  # session -> share of items with the reference below threshold
    removed_constant: list[str]
    kept: list[str]
    n_sessions: int


def post_screen(
    df: pd.DataFrame, *, threshold: float = 90.0, max_fraction: float = 0.15, drop_constant: bool = True
) -> Screening:
    """Apply BS.1534-3 post-screening (and, separately counted, the constant-session rule)."""
    ref = df[df.rating_stimulus == REFERENCE]
    if ref.empty:
        raise MushraError(f"no '{REFERENCE}' stimulus: post-screening needs the hidden reference")
    sessions = list(dict.fromkeys(df.session_uuid))
    share = ref.groupby("session_uuid").rating_score.apply(lambda s: float((s < threshold).mean()))
    removed = {s: float(share.get(s, 0.0)) for s in sessions if share.get(s, 0.0) > max_fraction}
    constant = []
    if drop_constant:
        for s, g in df[~df.session_uuid.isin(removed)].groupby("session_uuid", sort=False):
            if g.rating_score.nunique() == 1:
                constant.append(s)
    kept = [s for s in sessions if s not in removed and s not in constant]
    return Screening(
        SCREENING_RULE.format(threshold=threshold, fraction=max_fraction), removed, constant, kept, len(sessions)
    )


def summarise(df: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per effect and stimulus: n ratings, median, quartiles, mean and a 95% percentile bootstrap
    interval of the mean (vectorised, seeded)."""
    rows = []
    for (e, s), g in df.groupby(["effect", "rating_stimulus"], sort=True):
        v = g.rating_score.to_numpy(float)
        _, lo, hi = mean_ci(v, n_resamples, seed=mix_seed(seed, e, s), method="percentile")
        q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
        rows.append(
            {
                "effect": e,
                "stimulus": s,
                "n": int(v.size),
                "median": float(med),
                "q1": float(q1),
                "q3": float(q3),
                "mean": float(v.mean()),
                "mean_lo": float("nan") if lo is None else float(lo),
                "mean_hi": float("nan") if hi is None else float(hi),
            }
        )
    return pd.DataFrame(rows)


def paired_tests(df: pd.DataFrame, model: str, against: Sequence[str] = ("anchor",)) -> pd.DataFrame:
    """Per effect and comparison: model vs each other stimulus on the same (session, trial), Wilcoxon
    signed-rank test (two-sided, zero differences dropped), Holm-corrected over every test made."""
    from scipy import stats

    if model not in set(df.rating_stimulus):
        raise MushraError(f"stimulus {model!r} not in the results (have {sorted(set(df.rating_stimulus))})")
    wide = df.pivot_table(
        index=["effect", "session_uuid", "trial_id"], columns="rating_stimulus", values="rating_score", aggfunc="first"
    )
    rows = []
    for e in sorted(set(df.effect)):
        w = wide.loc[e]
        for other in against:
            if other not in w.columns:
                continue
            pair = w[[model, other]].dropna()
            if pair.empty:
                continue
            d = pair[model].to_numpy() - pair[other].to_numpy()
            nz = d[d != 0]
            p = float(stats.wilcoxon(nz).pvalue) if nz.size >= 1 else 1.0
            rows.append(
                {
                    "effect": e,
                    "model": model,
                    "other": other,
                    "n_pairs": int(d.size),
                    "n_nonzero": int(nz.size),
                    "model_mean": float(pair[model].mean()),
                    "other_mean": float(pair[other].mean()),
                    "median_diff": float(np.median(d)),
                    "model_better_share": float(np.mean(d > 0)),
                    "p_wilcoxon": p,
                }
            )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_holm"] = holm(out.p_wilcoxon.to_numpy())
        out["significant"] = out.p_holm < 0.05
    return out


@dataclass
class MushraAnalysis:
    ratings: pd.DataFrame  # after screening
    all_ratings: pd.DataFrame
    screening: Screening
    summary: pd.DataFrame
    tests: pd.DataFrame
    model: str
    against: tuple[str, ...] = field(default_factory=tuple)


def analyse(
    source: str | Path | bytes | pd.DataFrame,
    *,
    model: str = "end2end",
    against: Sequence[str] = ("anchor", "style_transfer"),
    threshold: float = 90.0,
    max_fraction: float = 0.15,
    drop_constant: bool = True,
    n_resamples: int = 2000,
    seed: int = 0,
) -> MushraAnalysis:
    """The whole analysis of one webMUSHRA results file (the study's: ``model='end2end'``; a test made
    by :func:`dafxlib.study.listening.export_kit`: ``model='controller'``)."""
    df = read_results(source)
    scr = post_screen(df, threshold=threshold, max_fraction=max_fraction, drop_constant=drop_constant)
    kept = df[df.session_uuid.isin(scr.kept)]
    if kept.empty:
        raise MushraError("post-screening removed every session; nothing left to analyse")
    return MushraAnalysis(
        kept,
        df,
        scr,
        summarise(kept, n_resamples=n_resamples, seed=seed),
        paired_tests(kept, model, against),
        model,
        tuple(against),
    )


def summary_markdown(a: MushraAnalysis, stimuli: Sequence[str] | None = None) -> str:
    """Per effect (rows) and stimulus (columns): median [IQR], mean (95% CI)."""
    stimuli = list(stimuli or dict.fromkeys(a.summary.stimulus))
    header = ["Effect"] + list(stimuli)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(stimuli) + "|"]
    for e, g in a.summary.groupby("effect", sort=True):
        cells = []
        for s in stimuli:
            r = g[g.stimulus == s]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            cells.append(
                f"{r['median']:.0f} [{r.q1:.0f}-{r.q3:.0f}], {r['mean']:.1f} ({r.mean_lo:.1f}-{r.mean_hi:.1f})"
            )
        lines.append("| " + " | ".join([e] + cells) + " |")
    return "\n".join(lines)


def tests_markdown(a: MushraAnalysis) -> str:
    lines = [
        "| Effect | comparison | pairs | mean model / other | median diff | Wilcoxon p | Holm p |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in a.tests.iterrows():
        sig = "**" if r.significant else ""
        lines.append(
            f"| {r.effect} | {r.model} vs {r.other} | {r.n_pairs} | {r.model_mean:.1f} / {r.other_mean:.1f} "
            f"| {r.median_diff:+.0f} | {r.p_wilcoxon:.3g} | {sig}{r.p_holm:.3g}{sig} |"
        )
    return "\n".join(lines)

"""Re-analysis of the study's published evaluation and latent data (tables, unpaired wins, classifier).

Why unpaired: the study's do-nothing rows are other clips than its controller rows (its baseline
script drew its own 5,000 full 131,072-sample clips without the A/B split), so there is no clip to
pair with; a paired test would pair unrelated recordings. Wins are therefore judged by the
difference of the two means with an unpaired (two-sample) bootstrap interval and Welch's t-test.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..seeding import mix_seed
from ..stats import holm, mean_diff_ci
from . import load

#: lower is better for every metric except PESQ
HIGHER_IS_BETTER = {"pesq"}
UNREPORTED = ("msd", "sce", "cfe", "lufs", "rms")


def cell_means(m: pd.DataFrame, metrics: Sequence[str] = ("mrstft", "pesq")) -> pd.DataFrame:
    """Mean per (effect, dataset, condition) over the per-clip rows (NaN skipped, as pandas does)."""
    return m.groupby(["effect", "dataset", "condition"], sort=False)[list(metrics)].mean()


def regenerate_summary(m: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The study's summary table (``<metric>_combined.csv``) recomputed from the per-clip rows."""
    g = cell_means(m, [metric])[metric]
    cols = pd.MultiIndex.from_product([load.DATASETS, ("controller", "untrained")], names=["dataset", "condition"])
    out = pd.DataFrame(index=pd.Index(sorted(load.EFFECTS), name="effect"), columns=cols, dtype=float)
    for e in out.index:
        for d, c in cols:
            out.loc[e, (d, c)] = g.loc[(e, d, c)]
    return out


def printed_precision_mismatches(regenerated: pd.DataFrame, printed: pd.DataFrame) -> list[str]:
    """Cells where the regenerated mean differs from the printed one by more than half a unit of its
    last printed digit (empty list = the tables agree to their printed precision). Where the study printed
    all 17 significant digits, summation order alone moves the last one, so 4 units in the last place of
    float64 are allowed."""
    bad = []
    for e in printed.index:
        for col in printed.columns:
            s = str(printed.loc[e, col])
            decimals = len(s.split(".", 1)[1]) if "." in s else 0
            ours = float(regenerated.loc[e, col])
            tol = max(0.5 * 10.0**-decimals, 4 * np.spacing(abs(float(s))))  # full-length reprs: 4 ulp
            if not abs(ours - float(s)) <= tol:
                bad.append(f"{e} {col}: regenerated {ours!r}, printed {s}")
    return bad


def cell_arrays(m: pd.DataFrame, metric: str) -> dict[tuple[str, str, str], np.ndarray]:
    """Per (effect, dataset, condition): the per-clip values of ``metric`` (in clip order)."""
    return {k: g.to_numpy(float) for k, g in m.groupby(["effect", "dataset", "condition"], sort=False)[metric]}


def unpaired_comparison(
    m: pd.DataFrame,
    a: str = "controller",
    b: str = "do_nothing",
    metric: str = "mrstft",
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per (effect, dataset): mean of condition ``a`` and ``b``, their difference (a - b, signed so that
    negative = ``a`` better), a percentile bootstrap interval of the difference (:func:`dafxlib.stats.mean_diff_ci`,
    each group resampled on its own), Welch's t-test p-value and its Holm-corrected value over the cells, and the verdicts
    ``win`` (a's mean better) and ``significant`` (the interval excludes 0 on the winning side)."""
    from scipy import stats

    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
    cells = cell_arrays(m, metric)
    keys = [(e, d) for e in load.EFFECTS for d in load.DATASETS]
    rows = []
    for e, d in keys:
        ra, rb = cells[(e, d, a)], cells[(e, d, b)]
        va, vb = ra[np.isfinite(ra)], rb[np.isfinite(rb)]
        raw, raw_lo, raw_hi = mean_diff_ci(va, vb, n_resamples, seed=mix_seed(seed, e, d, a, b, metric), level=level)
        diff, lo, hi = (
            (sign * raw, sign * raw_lo, sign * raw_hi) if sign > 0 else (sign * raw, sign * raw_hi, sign * raw_lo)
        )
        p = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
        rows.append(
            {
                "effect": e,
                "dataset": d,
                "seen": e in load.SEEN_EFFECTS,
                f"{a}_mean": float(va.mean()),
                f"{b}_mean": float(vb.mean()),
                "n_a": int(va.size),
                "n_b": int(vb.size),
                "diff": float(diff),
                "lo": float(lo),
                "hi": float(hi),
                "p_welch": p,
                "win": bool(diff < 0),
                "significant": bool(hi < 0),
            }
        )
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_welch"].to_numpy())
    out["significant_welch_holm"] = (out["p_holm"] < 1 - level) & out["win"]
    out["loss_significant"] = out["lo"] > 0
    return out


def row_correlation(m: pd.DataFrame, a: str, b: str, metric: str = "mrstft") -> float:
    """Median over cells of the correlation of row i of condition a with row i of b (a hint whether the
    rows are the same clips: near 0 for unrelated clips)."""
    rs = []
    cells = cell_arrays(m, metric)
    for e in load.EFFECTS:
        for d in load.DATASETS:
            va, vb = cells[(e, d, a)], cells[(e, d, b)]
            n = min(va.size, vb.size)
            ok = np.isfinite(va[:n]) & np.isfinite(vb[:n])
            rs.append(np.corrcoef(va[:n][ok], vb[:n][ok])[0, 1])
    return float(np.median(rs))


def unreported_metrics(m: pd.DataFrame) -> pd.DataFrame:
    """Means of the metrics the study computed but never reported, controller vs untrained encoder:
    rows (effect, dataset), columns (metric, condition); non-finite values are left out."""
    sub = m.loc[m.condition.isin(["controller", "untrained"]), ["effect", "dataset", "condition", *UNREPORTED]]
    sub = sub.replace([np.inf, -np.inf], np.nan)  # LUFS is infinite where a clip was silent
    g = sub.groupby(["effect", "dataset", "condition"], sort=False)[list(UNREPORTED)].mean()
    return g.unstack("condition").reindex(pd.MultiIndex.from_product([load.EFFECTS, load.DATASETS]))


def nonfinite_counts(m: pd.DataFrame) -> dict[str, int]:
    """Per metric: rows (controller and untrained) whose value is NaN or infinite, left out of the means."""
    sub = m[m.condition.isin(["controller", "untrained"])]
    return {k: int((~np.isfinite(sub[k].to_numpy(float))).sum()) for k in ("pesq", "mrstft", *UNREPORTED)}


def unreported_wins(table: pd.DataFrame) -> dict[str, int]:
    """Per unreported metric: in how many of the 27 cells the controller's mean error is lower."""
    return {k: int((table[(k, "controller")] < table[(k, "untrained")]).sum()) for k in UNREPORTED}


def ratio_to_do_nothing(m: pd.DataFrame, metric: str = "mrstft") -> pd.Series:
    """Per effect: mean over datasets of (controller mean / do-nothing mean)."""
    g = cell_means(m, [metric])[metric]
    r = {
        e: float(np.mean([g.loc[(e, d, "controller")] / g.loc[(e, d, "do_nothing")] for d in load.DATASETS]))
        for e in load.EFFECTS
    }
    return pd.Series(r, name=f"{metric}_ratio")


# ---- tables as Markdown ------------------------------------------------------------------------
def _md(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or "|".join(["---"] + ["---:"] * (len(header) - 1))
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + align + "|"] + ["| " + " | ".join(r) + " |" for r in rows]
    )


def eval_table_markdown(m: pd.DataFrame, metric: str = "mrstft", fmt: str = ".2f") -> str:
    """Effects x datasets, cells "controller / untrained / do-nothing" means, plus the mean of the nine."""
    g = cell_means(m, [metric])[metric]
    header = ["Effect"] + [load.DATASET_LABELS[d] + " C / U / B" for d in load.DATASETS]
    rows = []
    for e in load.EFFECTS:
        rows.append([e] + [" / ".join(format(g.loc[(e, d, c)], fmt) for c in load.CONDITIONS) for d in load.DATASETS])
    rows.append(
        ["mean of 9"]
        + [
            " / ".join(format(np.mean([g.loc[(e, d, c)] for e in load.EFFECTS]), fmt) for c in load.CONDITIONS)
            for d in load.DATASETS
        ]
    )
    return _md(header, rows)


def wins_markdown(cmp: pd.DataFrame, a: str = "controller", b: str = "do_nothing") -> str:
    """Per cell: difference of means with its interval; bold = significant win, italics = significant loss."""
    header = ["Effect"] + [load.DATASET_LABELS[d] for d in load.DATASETS]
    rows = []
    for e in load.EFFECTS:
        cells = []
        for d in load.DATASETS:
            r = cmp[(cmp.effect == e) & (cmp.dataset == d)].iloc[0]
            s = f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
            cells.append(f"**{s}**" if r["significant"] else (f"*{s}*" if r["loss_significant"] else s))
        rows.append([e] + cells)
    return _md(header, rows)


def unreported_markdown(table: pd.DataFrame, fmt: str = ".2f") -> str:
    """Per effect (mean over the three datasets): each unreported metric as "controller / untrained"."""
    header = ["Effect"] + [k.upper() + " C / U" for k in UNREPORTED]
    rows = []
    for e in load.EFFECTS:
        sub = table.loc[e]
        rows.append(
            [e] + [f"{sub[(k, 'controller')].mean():{fmt}} / {sub[(k, 'untrained')].mean():{fmt}}" for k in UNREPORTED]
        )
    return _md(header, rows)


# ---- effect classification from the published latent features ------------------------------
@dataclass
class ClassifierResult:
    per_class: pd.DataFrame  # index effect: accuracy (recall), f1
    accuracy: float
    n_splits: int
    n_estimators: int


def classify_effects(
    features: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    n_splits: int = 5,
    n_estimators: int = 50,
    seed: int = 0,
) -> ClassifierResult:
    """Tree-ensemble effect classifier with stratified k-fold cross-validation (out-of-fold predictions
    over every clip); per effect: accuracy as the study reported it (the share of that effect's clips
    classified correctly) and F1. The ensemble is extremely randomised trees, the random-forest variant
    that draws split thresholds at random: on these features it scores like a random forest of the same
    size (measured: within 0.01 overall) at a third of the fitting time."""
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.metrics import f1_score, recall_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    clf = ExtraTreesClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = cross_val_predict(clf, features, labels, cv=cv)
    classes = np.arange(len(names))
    table = pd.DataFrame(
        {
            "accuracy": recall_score(labels, pred, labels=classes, average=None),
            "f1": f1_score(labels, pred, labels=classes, average=None),
        },
        index=pd.Index(list(names), name="effect"),
    )
    return ClassifierResult(table, float((pred == labels).mean()), n_splits, n_estimators)


def classifier_markdown(
    ours: ClassifierResult, published: pd.DataFrame, probe: Mapping[str, float] | None = None, kind: str = "pca"
) -> str:
    """The study's published accuracies beside this re-analysis (and this run's probe where given)."""
    header = [
        "Effect",
        "study: its VAE latent (published)",
        "study: PCA (published)",
        f"re-analysis: extra trees, {ours.n_splits}-fold CV on the published {kind} features",
    ]
    if probe is not None:
        header.append("this run: logistic probe on its own latent (synthetic corpus)")
    rows = []
    gap = classifier_gaps(ours, published)
    for e in ours.per_class.index:
        r = [
            e,
            f"{published.loc[e, 'vae_acc']:.2f}",
            f"{published.loc[e, 'pca_acc']:.2f}",
            f"{ours.per_class.loc[e, 'accuracy']:.2f}",
        ]
        if probe is not None:
            v = probe.get(e)
            r.append("n/a (not in this run's probe)" if v is None or not np.isfinite(v) else f"{v:.2f}")
        rows.append(r)
    lead = (
        f"Mean absolute difference of the re-analysis from the published accuracies: "
        f"{gap['vae']:.2f} (its VAE latent), {gap['pca']:.2f} (its PCA baseline).\n\n"
    )
    return lead + _md(header, rows)


def classifier_gaps(ours: ClassifierResult, published: pd.DataFrame) -> dict[str, float]:
    """Mean absolute difference of the re-analysed per-effect accuracies from the published ones."""
    acc = ours.per_class.accuracy
    return {k: float(np.mean(np.abs(acc - published.loc[acc.index, f"{k}_acc"]))) for k in ("vae", "pca")}


def umap_embedding(
    features: np.ndarray,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    n_epochs: int = 200,
    max_points: int | None = None,
    labels: np.ndarray | None = None,
    method: str = "umap",
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, single-threaded (deterministic) UMAP of ``features``; with ``max_points`` a stratified
    subsample (by ``labels``); ``method="pca"`` gives the first two principal components instead (what the
    smoke profile uses to skip UMAP's numba compilation). Returns (points, index of the rows used)."""
    if method not in ("umap", "pca"):
        raise ValueError(f"projection method must be 'umap' or 'pca', got {method!r}")
    idx = np.arange(len(features))
    if max_points is not None and max_points < len(features):
        rng = np.random.default_rng(seed)
        if labels is None:
            idx = np.sort(rng.choice(len(features), max_points, replace=False))
        else:
            per = max_points // len(np.unique(labels))
            idx = np.sort(
                np.concatenate([rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in np.unique(labels)])
            )
    x = np.asarray(features, np.float32)[idx]
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    if method == "pca":
        _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
        return x @ vt[:2].T, idx
    import umap

    # exact neighbours from scikit-learn (brute force, well under a second here) handed to UMAP: it skips
    # NN-descent, whose numba compilation alone costs ~30 s per process for more than 4,096 points
    from sklearn.neighbors import NearestNeighbors

    dist, nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(x).kneighbors(x)
    red = umap.UMAP(
        n_neighbors=n_neighbors, n_epochs=n_epochs, random_state=seed, n_jobs=1, precomputed_knn=(nn, dist, None)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")  # no transform() needed here
        return red.fit_transform(x), idx


# ---- latent controller ----------------------------------------------------------------------
def controller_recovery(df: pd.DataFrame) -> pd.DataFrame:
    """Per parameter of the latent-controller points: MAE of the predicted setting, MAE of a constant
    0.5 guess on the same points, and the correlation of true and predicted settings."""
    rows = []
    for c in df.columns:
        if c.startswith("p_") and not c.startswith("p_hat_") and f"p_hat_{c[2:]}" in df:
            t, p = df[c].to_numpy(float), df[f"p_hat_{c[2:]}"].to_numpy(float)
            rows.append(
                {
                    "param": c[2:],
                    "mae": float(np.mean(np.abs(t - p))),
                    "mae_const_half": float(np.mean(np.abs(t - 0.5))),
                    "corr": float(np.corrcoef(t, p)[0, 1]) if np.std(p) > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows).set_index("param")


def side_by_side_markdown(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """Rows of (quantity, the study's value, this run's value, what differs)."""
    return _md(
        ["Quantity", "Study (its data, as published)", "This run (re-run)", "What differs"],
        [list(r) for r in rows],
        align="---|---|---|---",
    )


#: what differs between the study's evaluation and this run's, in one place
DIFFERENCES = (
    "study: VCTK/DAPS/MUSDB18 at 24 kHz, mda plugins, 131,072-sample clips (2.73 s halves), "
    "5,000 clips per cell, GPU-scale training, unpaired do-nothing on other clips; "
    "this run: synthetic speech/music corpus, the profile's effect set, short clips, "
    "tens of clips per cell, CPU-scale training, paired baselines on the same clips"
)


def run_ratio_per_effect(numbers: Mapping[str, float], metric: str = "mrstft") -> dict[str, float]:
    """This run's controller / do-nothing ratio per effect (mean over its corpora) from numbers.json values."""
    out = {}
    for e in load.EFFECTS:
        rs = []
        for k, v in numbers.items():
            parts = k.split(".")
            if (
                len(parts) == 5
                and parts[0] == "eval"
                and parts[2] == e
                and parts[3] == "controller"
                and parts[4] == metric
                and v is not None
            ):
                base = numbers.get(f"eval.{parts[1]}.{e}.do_nothing.{metric}")
                if base:
                    rs.append(v / base)
        if rs:
            out[e] = float(np.mean(rs))
    return out


def side_by_side_eval(
    cmp: pd.DataFrame, ratio: pd.Series, numbers: Mapping[str, float], mushra_tests: pd.DataFrame | None = None
) -> tuple[str, dict]:
    """The evaluation quantities that exist in both, the study's (from its data) beside this run's
    (from numbers.json); with ``mushra_tests`` also the study's listening result per effect beside its own
    metric. Returns (Markdown table, numbers to record)."""
    run_ratio = run_ratio_per_effect(numbers)

    def mean_of(keys, table):
        v = [table[k] for k in keys if k in table]
        return float(np.mean(v)) if v else float("nan")

    unseen = [e for e in load.EFFECTS if e not in load.SEEN_EFFECTS]
    s_seen, s_unseen = mean_of(load.SEEN_EFFECTS, ratio), mean_of(unseen, ratio)
    r_seen, r_unseen = mean_of(load.SEEN_EFFECTS, run_ratio), mean_of(unseen, run_ratio)
    n = numbers.get
    run_wins = (
        f"{n('eval.wins.controller_vs_do_nothing', 'n/a')} of {n('eval.wins.cells_controller', 'n/a')} "
        f"({n('eval.wins.significant.controller_vs_do_nothing', 'n/a')} significant, paired bootstrap)"
    )
    study_wins = f"{int(cmp.win.sum())} of {len(cmp)} ({int(cmp.significant.sum())} significant, unpaired bootstrap)"
    rows = [
        (
            "wins over do-nothing (MR-STFT cells)",
            study_wins,
            run_wins,
            "study: 9 effects x 3 datasets, do-nothing on other clips; run: its effects x its corpora, same clips",
        ),
        (
            "MR-STFT controller / do-nothing, seen effects",
            f"{s_seen:.2f}",
            f"{r_seen:.2f}",
            "seen = the 4 effects the encoder was trained on, in both",
        ),
        (
            "MR-STFT controller / do-nothing, unseen effects",
            f"{s_unseen:.2f}",
            f"{r_unseen:.2f}",
            "unseen effects: study mda plugins; run: the profile's effect set",
        ),
        (
            "seen - unseen gap of that ratio",
            f"{s_seen - s_unseen:+.2f}",
            f"{r_seen - r_unseen:+.2f}",
            "positive = unseen effects fare relatively better",
        ),
    ]
    for e in load.EFFECTS:
        rows.append(
            (
                f"ratio, {e}",
                f"{ratio[e]:.2f}",
                f"{run_ratio[e]:.2f}" if e in run_ratio else "n/a",
                "study: mean of VCTK/DAPS/MUSDB18; run: mean of its corpora",
            )
        )
    if mushra_tests is not None:
        for r in mushra_tests[mushra_tests.other == "anchor"].itertuples():
            rows.append(
                (
                    f"MUSHRA vs metric, {r.effect}",
                    f"listeners: controller - anchor {r.model_mean - r.other_mean:+.1f} points (Holm p "
                    f"{r.p_holm:.2g}); MR-STFT ratio to do-nothing {ratio.get(r.effect, float('nan')):.2f}",
                    "no listening test in this run (kit: dafxlib.study.listening)",
                    "a listening test needs listeners",
                )
            )
    rec = {"ratio_seen": s_seen, "ratio_unseen": s_unseen, "run_ratio_seen": r_seen, "run_ratio_unseen": r_unseen}
    return side_by_side_markdown(rows), rec

"""Evaluation: methods x effects x corpora on fixed, paired, file-disjoint test sets.

Test sets. For each corpus (embedded ``speech`` and ``music``; VCTK, DAPS, MUSDB18 and a
user folder in the paper profile) and each of the nine effects, ``profile.eval.n_per_cell``
examples (x, y, y_ref, p) are drawn from the corpus's *test* split only (recordings never
used in training; :func:`check_disjoint` verifies it), rendered once with seeded uniform
random settings and cached (npz) under ``build/<profile>/cache/eval_examples``.

Methods, all scored on the SAME examples against the ground truth ``y`` (effected half A):

- ``do_nothing``: y_hat = x (no render).
- ``random``: uniform random settings (seeded), one render.
- ``mean_params``: every knob at 0.5, the mean of the uniform training distribution.
- ``controller_audio`` / ``controller_regression`` / ``controller_both``: the trained
  controllers of notebook 04 by training signal, where they were trained; ``controller``
  is the best signal per effect (:func:`dafxlib.models.controller.best_signal`).
- ``ito``: inference-time optimisation in the manner of ST-ITO (Steinmetz et al., 2024):
  CMA-ES over the normalised settings of each clip, ``profile.eval.ito_budget`` renders
  per clip. See :func:`ito_search` for what it compares and why.
- ``oracle``: the true settings rendered on x: the floor the metrics can reach.

Outputs: a per-item table (one row per corpus, effect, example, method; metric columns;
NaN only where an item was excluded, with the reason in ``excluded``), per-cell costs
(wall ms and renders per clip), bootstrap 95% intervals, paired win counts, seen/unseen
summaries, cached under ``build/<profile>/eval`` by atomic writes.

Modules: :mod:`.sets` (the fixed test cells), :mod:`.methods` (every method, ITO included),
:mod:`.cell` (one cell scored), :mod:`.summary` (intervals and wins), :mod:`.results`
(the stored table), :mod:`.run` (the stage function), :mod:`.numbers` (the numbers
contract) and :mod:`.discussion` (the prose that follows the results).
"""

from __future__ import annotations

from .cell import EVAL_METRICS, CellResult, evaluate_cell
from .discussion import discussion_markdown
from .methods import (
    BASELINES,
    ITO_LEVEL_SCALE_DB,
    ITO_LEVEL_WEIGHT,
    METHODS,
    SIGNALS,
    MethodOutput,
    ito_search,
    run_method,
)
from .numbers import CI_METRICS, number_entries
from .results import EvalResults, cache_key, load_results, results_dir, save_results
from .run import NO_TRAINING, run_evaluation
from .sets import (
    DATASET_NAMES,
    SPEECH_CORPORA,
    check_disjoint,
    corpus_groups,
    effect_fingerprint,
    eval_set,
    test_clip_groups,
)
from .summary import cell_summary, paired, win_table

__all__ = [
    "BASELINES",
    "CI_METRICS",
    "CellResult",
    "DATASET_NAMES",
    "EVAL_METRICS",
    "EvalResults",
    "ITO_LEVEL_SCALE_DB",
    "ITO_LEVEL_WEIGHT",
    "METHODS",
    "MethodOutput",
    "NO_TRAINING",
    "SIGNALS",
    "SPEECH_CORPORA",
    "cache_key",
    "cell_summary",
    "check_disjoint",
    "corpus_groups",
    "discussion_markdown",
    "effect_fingerprint",
    "eval_set",
    "evaluate_cell",
    "ito_search",
    "load_results",
    "number_entries",
    "paired",
    "results_dir",
    "run_evaluation",
    "run_method",
    "save_results",
    "test_clip_groups",
    "win_table",
]

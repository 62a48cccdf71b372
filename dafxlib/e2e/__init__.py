"""End-to-end controller training (notebook 04): one controller per effect, three signals.

Signals (``ControllerConfig.signals`` plus the ``audio`` ablation on ``ablation_effects``):

- ``regression``: mean-squared error between predicted and true normalised parameters of
  the generated pairs. Cheap: the encoder is frozen, so features of (x, y_ref) are
  computed once per dataset (and cached on disk).
- ``audio``: the study's objective, MR-STFT (auraloss ``MultiResolutionSTFTLoss``) + L1 between
  ``effect(x, p_hat)`` and the target ``y``, with gradients through the black-box effect from
  SPSA (:class:`dafxlib.spsa.EffectLayer`, two renders per example per step, in parallel).
- ``both``: the ``regression`` model as warm start, then ``audio`` fine-tuning.

Within a run the weights with the lowest validation loss are kept (for ``both`` this includes
the warm start itself, so fine-tuning can never make the validation loss worse). After a run
the controller is scored on the validation split with the reported MR-STFT
(:func:`dafxlib.metrics.mrstft`); :func:`best_signal` picks the lowest per effect.

Artifacts: ``controllers/<effect>_<signal>.pt`` (weights, feature spec, encoder fingerprint,
scores, history) and ``controllers/best_signal.json``; read them with :func:`load_controller`.
Runs (Lightning checkpoints, CSV logs) live under ``cache/controller_runs/``; a re-run with the
same configuration reuses finished artifacts and resumes interrupted runs (through
:func:`dafxlib.training.fit`; a resumed SPSA run draws fresh perturbations, so it is not
bit-identical to an uninterrupted one).

Threads: the controller is a small MLP, so training and scoring run with
``ControllerConfig.torch_threads`` torch threads (1 by default; on a busy 2-core machine two
threads made these tiny ops many times slower). The render pool's workers are separate.

Modules: :mod:`.artifacts` (stored controllers and the best-signal table), :mod:`.data`
(examples with their cached features), :mod:`.train` (one controller, one signal),
:mod:`.scoring` (held-out scores), :mod:`.stage` (every effect, the notebook's stage
function), :mod:`.benchmark` (the SPSA step timing) and :mod:`.deepafx` (the DeepAFx-ST-style
comparison: a controller of a differentiable EQ + compressor trained by autodiff).
"""

from __future__ import annotations

from .artifacts import (
    BEST_JSON,
    FORMAT_VERSION,
    MADE_BY,
    SIGNALS,
    artifact_name,
    best_signal,
    encoder_fingerprint,
    load_controller,
    signals_for,
)
from .benchmark import spsa_benchmark
from .data import load_data, make_features
from .deepafx import DeepAFxResult, deepafx_markdown, deepafx_numbers, load_deepafx, run_deepafx
from .scoring import score
from .stage import (
    EffectResult,
    beats_baselines,
    chosen_signal,
    evaluate_test,
    results_numbers,
    run_effect,
    run_end_to_end,
)
from .train import TrainedController, audio_loss_fn, train_controller

__all__ = [
    "BEST_JSON",
    "DeepAFxResult",
    "EffectResult",
    "FORMAT_VERSION",
    "MADE_BY",
    "SIGNALS",
    "TrainedController",
    "artifact_name",
    "audio_loss_fn",
    "beats_baselines",
    "best_signal",
    "chosen_signal",
    "deepafx_markdown",
    "deepafx_numbers",
    "encoder_fingerprint",
    "evaluate_test",
    "load_controller",
    "load_deepafx",
    "load_data",
    "make_features",
    "results_numbers",
    "run_deepafx",
    "run_effect",
    "run_end_to_end",
    "score",
    "signals_for",
    "spsa_benchmark",
    "train_controller",
]

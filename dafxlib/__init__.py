"""dafxlib: style transfer and latent control for non-differentiable audio effects, stage by stage.

The public entry points, by pipeline stage (each is importable from ``dafxlib`` directly;
submodules load on first use, so ``import dafxlib`` stays cheap and worker processes that
only render effects never import torch):

- profiles: :func:`get_profile` (one named profile sets every knob; ``overrides`` change fields)
- data: :func:`build_corpus` (embedded, paper datasets or a user folder, file-level splits)
- effects: :func:`get_effect`, :func:`effect_set` (the nine study effects, ``portable`` or ``mda``),
  :class:`RenderPool` (batched parallel rendering, bad items reported instead of fatal)
- representation: :class:`Spectrogrammer` (the VAE's compressed, normalised spectrogram images)
- VAE: :func:`load_selected_encoder` (the frozen encoder notebook 03 selected)
- training: :func:`fit` (PyTorch Lightning with checkpoints, resume and CSV logs)
- end-to-end controller: :func:`run_end_to_end`, :func:`load_controller`
- latent control: :func:`fit_plane`, :func:`load_plane`
- evaluation: :func:`run_evaluation`, :func:`load_results`
- report: :func:`record_numbers`, :func:`save_figure`
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_ENTRY_POINTS: dict[str, str] = {
    "get_profile": "dafxlib.config",
    "Profile": "dafxlib.config",
    "build_corpus": "dafxlib.corpus",
    "Corpus": "dafxlib.corpus",
    "get_effect": "dafxlib.effects",
    "effect_set": "dafxlib.effects",
    "Effect": "dafxlib.effects.base",
    "RenderPool": "dafxlib.render",
    "Spectrogrammer": "dafxlib.spectrogram",
    "load_selected_encoder": "dafxlib.models.encoder",
    "fit": "dafxlib.training",
    "run_end_to_end": "dafxlib.e2e",
    "load_controller": "dafxlib.e2e",
    "fit_plane": "dafxlib.plane",
    "load_plane": "dafxlib.plane",
    "run_evaluation": "dafxlib.evaluation",
    "load_results": "dafxlib.evaluation",
    "record_numbers": "dafxlib.provenance",
    "save_figure": "dafxlib.provenance",
}

__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dafxlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

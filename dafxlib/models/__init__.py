"""Neural models. Submodules are imported lazily so importing one never pulls in the others:
``from dafxlib.models import SpecVAE`` or ``from dafxlib.models.vae import SpecVAE``."""

from __future__ import annotations

import importlib

_LAZY = {
    "SpecVAE": "vae",
    "VAEModule": "vae",
    "vae_loss": "vae",
    "kl_divergence": "vae",
    "AudioEncoder": "encoder",
    "load_selected_encoder": "encoder",
    "level_features": "encoder",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

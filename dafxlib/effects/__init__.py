"""The study's nine effects behind one :class:`Effect` interface, in two sets.

* ``portable``: pip only (pedalboard built-ins, numba/numpy DSP); the default profile.
* ``mda``: Debian's mda-lv2 plugins hosted through ctypes (``apt-get install mda-lv2``).

Both sets name the same nine keys with the same seen/unseen split::

    from dafxlib.effects import get_effect, SEEN
    fx = get_effect("ringmod")                 # portable RingMod
    y = fx.process(x, 24000, fx.defaults01())

:func:`load_external` wraps any VST3/AU plugin file through ``pedalboard.load_plugin``.
"""

from __future__ import annotations

from ..config import EFFECT_SETS, effect_set_reason
from ..errors import EffectError
from .base import Effect, ParamSpec
from .external import ExternalEffect, load_external

#: effects the VAE trains on
SEEN: tuple[str, ...] = ("overdrive", "delay", "ringmod", "dynamics")
#: effects never seen in VAE training
UNSEEN: tuple[str, ...] = ("combo", "ambience", "flanger", "multiband", "leslie")
ALL: tuple[str, ...] = SEEN + UNSEEN
#: display names
DISPLAY_NAMES: dict[str, str] = {
    "overdrive": "Overdrive",
    "delay": "Delay",
    "ringmod": "RingMod",
    "dynamics": "Dynamics",
    "combo": "Combo",
    "ambience": "Ambience",
    "flanger": "Flanger",
    "multiband": "MultiBand",
    "leslie": "Leslie",
}

__all__ = [
    "SEEN",
    "UNSEEN",
    "ALL",
    "DISPLAY_NAMES",
    "EFFECT_SETS",
    "Effect",
    "ParamSpec",
    "get_effect",
    "effect_set",
    "load_external",
    "ExternalEffect",
    "is_seen",
]


def _check_set(name: str) -> str:
    s = str(name).lower()
    if s == "auto":  # a profile built by hand, not through get_profile: resolve it the same way
        s = effect_set_reason("auto")[0]
    if s not in EFFECT_SETS:
        raise EffectError(f"unknown effect set {name!r}; valid: {list(EFFECT_SETS)} or 'auto'")
    return s


def get_effect(key: str, effect_set: str = "portable") -> Effect:
    """A fresh effect instance for one of the nine study keys (case-insensitive)."""
    k = str(key).lower()
    s = _check_set(effect_set)
    if k not in ALL:
        raise EffectError(f"unknown effect {key!r}; valid keys: {list(ALL)}")
    if s == "portable":
        from .portable import PORTABLE_EFFECTS

        return PORTABLE_EFFECTS[k]()
    from .mda import make_mda_effect

    return make_mda_effect(k)


def effect_set(name: str = "portable", keys=None) -> dict[str, Effect]:
    """All nine effects of a set (or the listed ``keys``), keyed by lower-case key, in study order."""
    s = _check_set(name)
    wanted = ALL if keys is None else tuple(str(k).lower() for k in keys)
    return {k: get_effect(k, s) for k in wanted}


def is_seen(key: str) -> bool:
    k = str(key).lower()
    if k not in ALL:
        raise EffectError(f"unknown effect {key!r}; valid keys: {list(ALL)}")
    return k in SEEN

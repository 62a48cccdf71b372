"""The ``mda`` effect set: Debian's mda-lv2 plugins hosted through ctypes.

The nine study plugins with the study's parameter subsets (raw values are the plugins'
own 0..1 controls). Controls not exposed stay at their defaults, except where ``FIXED``
says otherwise. ThruZero plays the study's Flanger.

MultiBand and Leslie expose every control except their switches (MultiBand ``listen`` and
``process``, Leslie ``mode``) and their stereo-width controls (MultiBand ``stereo``, Leslie
``lo_width``/``hi_width``): the host feeds the same mono signal to both inputs and averages
the outputs, and on that path those controls provably do nothing (measured: bit-identical
output), so a model could never learn them.

mda Delay clears only ``size`` of its ``size + 1`` delay-line samples; settings whose left or
right delay reaches the full line read one uninitialised float (heap garbage: clicks, or
inf with feedback, and output that depends on what ran before). A pre-roll of silence at a
shorter delay overwrites the whole line first, which gives exactly the cleared-buffer start.
"""

from __future__ import annotations

from .. import paths
from ..errors import PluginNotFoundError
from .lv2 import LV2Effect

DEFAULT_BUNDLE = paths.MDA_DEFAULT_BUNDLE
BUNDLE_NAME = paths.MDA_BUNDLE_NAME
INSTALL_HINT = (
    "./run_all.sh --setup-only (fetches Debian's mda-lv2 into the environment, no root needed), "
    "sudo apt-get install mda-lv2, or set DAFX_MDA_LV2 to the mda.lv2 bundle folder"
)

#: key -> (display name, plugin symbol, exposed controls; None = every non-switch control)
MDA_EFFECTS: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    "overdrive": ("Overdrive", "Overdrive", ("drive", "muffle", "output")),
    "delay": ("Delay", "Delay", ("l_delay", "r_delay", "feedback", "fb_tone", "fx_mix")),
    "ringmod": ("RingMod", "RingMod", ("freq", "fine", "feedback")),
    "dynamics": (
        "Dynamics",
        "Dynamics",
        ("thresh", "ratio", "output", "attack", "release", "limiter", "gate_thr", "gate_att", "gate_rel", "mix"),
    ),
    "combo": ("Combo", "Combo", ("drive", "bias", "output", "hpf_freq", "hpf_reso")),
    "ambience": ("Ambience", "Ambience", ("size", "hf_damp", "mix", "output")),
    "flanger": ("Flanger", "ThruZero", ("rate", "depth", "mix", "feedback", "depth_mod")),
    "multiband": (
        "MultiBand",
        "MultiBand",
        ("l_m", "m_h", "l_comp", "m_comp", "h_comp", "l_out", "m_out", "h_out", "attack", "release"),
    ),
    "leslie": ("Leslie", "Leslie", ("lo_throb", "hi_depth", "hi_throb", "x_over", "output", "speed")),
}

#: controls pinned to a value other than their lv2:default
FIXED: dict[str, dict[str, float]] = {}

#: (frames of silence, control overrides) run before each clip; see the module docstring
PREROLL: dict[str, tuple[int, dict[str, float]]] = {
    "delay": (32768, {"l_delay": 0.5, "r_delay": 0.27}),
}


# the bundle search lives in the base layer, where the profile's ``auto`` effect set needs it
search_dirs = paths.lv2_search_dirs
bundle_path = paths.mda_bundle
mda_available = paths.mda_found


def make_mda_effect(key: str) -> LV2Effect:
    """Build the mda plugin for one study effect key."""
    if not mda_available():
        raise PluginNotFoundError(
            f"the mda effect set needs Debian's mda-lv2 plugins, not found at "
            f"{bundle_path()}. Install them: {INSTALL_HINT}"
        )
    name, plugin, params = MDA_EFFECTS[key]
    return LV2Effect(
        name, bundle_path(), plugin, params, fixed=FIXED.get(key), install_hint=INSTALL_HINT, preroll=PREROLL.get(key)
    )

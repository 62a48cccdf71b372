"""Any VST3 / Audio Unit plugin behind the :class:`Effect` interface (via pedalboard).

Parameters are discovered from ``plugin.parameters``; each exposed knob's normalised value
is the parameter's own ``raw_value`` (the plugin's 0..1 convention), so no unit guessing is
needed. Boolean switches and parameters with a single possible value are skipped (and
``bypass``-like knobs, which would switch the effect off).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EffectError, PluginNotFoundError
from .base import Effect, ParamSpec

Loader = Callable[[str, "str | None"], Any]

_SKIP_NAMES = ("bypass", "on_off", "onoff", "enable", "enabled", "power")


def _pedalboard_loader(path: str, plugin_name: str | None):
    import pedalboard

    try:
        return pedalboard.load_plugin(path, plugin_name=plugin_name)
    except ImportError as e:
        raise PluginNotFoundError(f"cannot load plugin {path}: {e}") from e
    except Exception as e:  # pedalboard raises ValueError/RuntimeError for unloadable files
        raise EffectError(f"pedalboard could not load plugin {path}: {e}") from e


def _adjustable(param, include_discrete: bool) -> bool:
    if bool(getattr(param, "is_boolean", False)) or getattr(param, "type", float) is bool:
        return False
    values = getattr(param, "valid_values", None)
    if values is not None and len(set(map(str, values))) < 2:
        return False
    if not include_discrete and getattr(param, "type", float) is str:
        return False
    return True


def discover_parameters(plugin, params: Sequence[str] | None = None, include_discrete: bool = True) -> list[ParamSpec]:
    """ParamSpecs (raw range 0..1 = the parameter's raw_value) of a loaded plugin's knobs."""
    available = dict(plugin.parameters)
    if params is not None:
        unknown = [p for p in params if p not in available]
        if unknown:
            raise EffectError(f"plugin has no parameter(s) {unknown}; parameters: {sorted(available)}")
        names = list(params)
    else:
        names = [
            n
            for n, p in available.items()
            if _adjustable(p, include_discrete) and not any(s == n.lower() for s in _SKIP_NAMES)
        ]
    specs = []
    for n in names:
        p = available[n]
        default = getattr(p, "default_raw_value", None)
        if default is None:
            default = p.raw_value
        unit = getattr(p, "label", None) or ""
        specs.append(ParamSpec(n, 0.0, 1.0, float(np.clip(default, 0.0, 1.0)), unit=str(unit)))
    if not specs:
        raise EffectError("the plugin exposes no adjustable (non-boolean) parameters")
    return specs


class ExternalEffect(Effect):
    """A VST3/AU plugin file as an :class:`Effect`.

    ``loader(path, plugin_name) -> plugin`` defaults to ``pedalboard.load_plugin``
    (replace it to test without a plugin). With ``isolate=True`` the render pool uses
    worker processes (a crashing plugin cannot take the caller down); each process loads
    its own copy, so ``loader`` must then be picklable (a module-level function).
    """

    backend = "vst3"

    def __init__(
        self,
        path: str | os.PathLike,
        plugin_name: str | None = None,
        params: Sequence[str] | None = None,
        name: str | None = None,
        include_discrete: bool = True,
        isolate: bool = True,
        loader: Loader | None = None,
    ):
        self.path = str(path)
        if not Path(self.path).exists():
            raise PluginNotFoundError(
                f"plugin file {self.path} does not exist; give the path of a .vst3 "
                "(or .component on macOS) plugin bundle"
            )
        self.plugin_name = plugin_name
        self._loader = loader
        self._plugin = None
        plugin = self._get_plugin()
        self.name = name or str(getattr(plugin, "name", None) or Path(self.path).stem)
        super().__init__(discover_parameters(plugin, params, include_discrete))
        self.needs_process_isolation = bool(isolate)
        self._stereo_in: bool | None = None

    @property
    def key(self) -> str:
        return "".join(c if c.isalnum() else "_" for c in self.name.lower())

    def _get_plugin(self):
        if self._plugin is None:
            loader = self._loader or _pedalboard_loader
            self._plugin = loader(self.path, self.plugin_name)
        return self._plugin

    def _render(self, audio, sample_rate, raw):
        plugin = self._get_plugin()
        params = plugin.parameters
        for n, v in raw.items():
            params[n].raw_value = float(v)
        x = audio.reshape(1, -1)
        if self._stereo_in:
            x = np.repeat(x, 2, axis=0)
        try:
            out = plugin.process(x, float(sample_rate), reset=True)
        except Exception as e:
            if self._stereo_in is not None or "channel" not in str(e).lower():
                raise
            self._stereo_in = True  # plugin wants a stereo input: duplicate the mono signal
            out = plugin.process(np.repeat(x, 2, axis=0), float(sample_rate), reset=True)
        if self._stereo_in is None:
            self._stereo_in = False
        out = np.asarray(out, dtype=np.float32)
        return out.mean(axis=0) if out.ndim == 2 else out

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_plugin"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


def load_external(
    path: str | os.PathLike, plugin_name: str | None = None, params: Sequence[str] | None = None, **kwargs
) -> ExternalEffect:
    """Wrap a VST3/AU plugin file (``pedalboard.load_plugin``) as an :class:`Effect`."""
    return ExternalEffect(path, plugin_name=plugin_name, params=params, **kwargs)

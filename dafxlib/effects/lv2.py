"""Host LV2 plugins through ctypes, without lilv.

:func:`read_bundle` reads a bundle's Turtle with rdflib (manifest.ttl and the files it points to) into
:class:`LV2PluginInfo` records; :class:`LV2Plugin` loads the shared library once and makes a
fresh instance per clip; :class:`LV2Effect` puts a plugin behind the :class:`Effect`
interface (mono in duplicated to every audio input, audio outputs averaged).

Host rules that the Debian mda-lv2 plugins need (all handled here):

* ``features`` must point to an array holding only NULL (a bare NULL pointer crashes);
* ``activate`` may be NULL; every port must be connected before ``run``;
* a control left at its default keeps coefficients computed for 44.1 kHz, so every control
  is first moved to a nearby value and a zero-length ``run`` makes the plugin see the
  change before the real values are set;
* some plugins keep state across deactivate/activate: each clip gets a fresh instance.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import EffectError, PluginNotFoundError
from .base import Effect, ParamSpec

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM = "http://lv2plug.in/ns/ext/atom#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
DOAP = "http://usefulinc.com/ns/doap#"

#: frames handed to ``run`` per call
BLOCK = 4096


@dataclass(frozen=True)
class LV2Port:
    index: int
    symbol: str
    name: str
    kind: str  # "control", "audio", "cv", "atom", "other"
    is_input: bool
    default: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    properties: tuple[str, ...] = ()
    optional: bool = False

    @property
    def is_switch(self) -> bool:
        """Toggles, enumerations and integer selectors (modes, listen switches)."""
        return any(p in self.properties for p in ("toggled", "enumeration", "integer"))


@dataclass(frozen=True)
class LV2PluginInfo:
    uri: str
    name: str
    binary: str
    bundle: str
    ports: tuple[LV2Port, ...]
    required_features: tuple[str, ...] = field(default=())

    def port(self, symbol: str) -> LV2Port:
        for p in self.ports:
            if p.symbol == symbol:
                return p
        raise EffectError(f"LV2 plugin {self.name}: no port {symbol!r}; ports: {[p.symbol for p in self.ports]}")

    @property
    def controls(self) -> list[LV2Port]:
        return [p for p in self.ports if p.kind == "control" and p.is_input]


def _local(uri: str) -> str:
    return uri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _file_of(uri: str) -> str:
    u = urlparse(uri)
    if u.scheme not in ("file", ""):
        raise EffectError(f"LV2: only local files are supported, got {uri}")
    return unquote(u.path)


RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


class _Turtle:
    """The Turtle files of one LV2 bundle, read with rdflib; answers in plain Python values."""

    def __init__(self, path: Path):
        import rdflib

        self._rdflib = rdflib
        self.g = rdflib.Graph()
        self.parse(path)

    def parse(self, path: str | os.PathLike) -> None:
        path = Path(path)
        try:
            self.g.parse(path.resolve().as_uri(), format="turtle")
        except Exception as e:  # rdflib raises several parser-specific types
            raise EffectError(f"cannot read the LV2 description {path}: {e}") from e

    def _ref(self, node: Any) -> Any:
        return self._rdflib.URIRef(node) if type(node) is str else node  # rdflib nodes are str subclasses

    def subjects(self, predicate: str, obj: str) -> list[str]:
        return [
            str(x) for x in self.g.subjects(self._ref(predicate), self._ref(obj)) if isinstance(x, self._rdflib.URIRef)
        ]

    def nodes(self, subject: Any, predicate: str) -> list[Any]:
        return list(self.g.objects(self._ref(subject), self._ref(predicate)))

    def uris(self, subject: Any, predicate: str) -> list[str]:
        return [str(o) for o in self.nodes(subject, predicate) if isinstance(o, self._rdflib.URIRef)]

    def uri(self, subject: Any, predicate: str) -> str | None:
        found = self.uris(subject, predicate)
        return found[0] if found else None

    def literal(self, subject: Any, predicate: str) -> Any:
        """The first literal object as a Python value (xsd:decimal as float), or None."""
        for o in self.nodes(subject, predicate):
            if isinstance(o, self._rdflib.Literal):
                v = o.toPython()
                return float(v) if isinstance(v, Decimal) else v
        return None

    def number(self, subject: Any, predicate: str) -> float | None:
        v = self.literal(subject, predicate)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


_BUNDLE_CACHE: dict[tuple[str, float], dict[str, LV2PluginInfo]] = {}
_BUNDLE_LOCK = threading.Lock()


def read_bundle(bundle: str | os.PathLike, only: Sequence[str] | None = None) -> dict[str, LV2PluginInfo]:
    """Describe the plugins of one LV2 bundle, keyed by URI.

    ``only`` limits reading to plugins whose URI ends with one of these names (it saves
    parsing every Turtle file of a large bundle).
    """
    bundle = Path(bundle)
    manifest = bundle / "manifest.ttl"
    if not manifest.is_file():
        raise PluginNotFoundError(f"LV2 bundle {bundle} has no manifest.ttl (is the plugin installed?)")
    key = (str(bundle.resolve()) + "|" + ",".join(sorted(only or [])), manifest.stat().st_mtime)
    with _BUNDLE_LOCK:
        if key in _BUNDLE_CACHE:
            return _BUNDLE_CACHE[key]
    g = _Turtle(manifest)
    uris = list(dict.fromkeys(g.subjects(RDF_TYPE, LV2 + "Plugin")))
    if only is not None:
        wanted = set(only)
        uris = [u for u in uris if _local(u) in wanted or u in wanted]
    seen_files = {str(manifest.resolve())}
    for u in uris:
        for see in g.uris(u, RDFS + "seeAlso"):
            f = _file_of(see)
            if f not in seen_files and os.path.isfile(f) and f.endswith(".ttl"):
                seen_files.add(f)
                g.parse(f)
    out: dict[str, LV2PluginInfo] = {}
    for u in uris:
        binary = g.uri(u, LV2 + "binary")
        if binary is None:
            continue
        ports = []
        for node in g.nodes(u, LV2 + "port"):
            types = {_local(t) for t in g.uris(node, RDF_TYPE)}
            if "ControlPort" in types:
                kind = "control"
            elif "AudioPort" in types:
                kind = "audio"
            elif "CVPort" in types:
                kind = "cv"
            elif "AtomPort" in types:
                kind = "atom"
            else:
                kind = "other"
            props = tuple(sorted(_local(p) for p in g.uris(node, LV2 + "portProperty")))
            idx, sym = g.literal(node, LV2 + "index"), g.literal(node, LV2 + "symbol")
            if not isinstance(idx, int) or isinstance(idx, bool) or not isinstance(sym, str):
                raise EffectError(f"LV2 plugin {u}: a port lacks lv2:index or lv2:symbol")
            ports.append(
                LV2Port(
                    index=idx,
                    symbol=sym,
                    name=str(g.literal(node, LV2 + "name") or sym),
                    kind=kind,
                    is_input="InputPort" in types,
                    default=g.number(node, LV2 + "default"),
                    minimum=g.number(node, LV2 + "minimum"),
                    maximum=g.number(node, LV2 + "maximum"),
                    properties=props,
                    optional="connectionOptional" in props,
                )
            )
        ports.sort(key=lambda p: p.index)
        if [p.index for p in ports] != list(range(len(ports))):
            raise EffectError(f"LV2 plugin {u}: port indices are not 0..n-1")
        feats = tuple(sorted(g.uris(u, LV2 + "requiredFeature")))
        name = g.literal(u, DOAP + "name") or _local(u)
        out[u] = LV2PluginInfo(
            uri=u,
            name=str(name),
            binary=_file_of(binary),
            bundle=str(bundle),
            ports=tuple(ports),
            required_features=feats,
        )
    with _BUNDLE_LOCK:
        _BUNDLE_CACHE[key] = out
    return out


# ---- ctypes view of lv2.h -------------------------------------------------------------
class _Feature(ctypes.Structure):
    _fields_ = [("URI", ctypes.c_char_p), ("data", ctypes.c_void_p)]


class _Descriptor(ctypes.Structure):
    pass


_Handle = ctypes.c_void_p
_Descriptor._fields_ = [
    ("URI", ctypes.c_char_p),
    (
        "instantiate",
        ctypes.CFUNCTYPE(
            _Handle,
            ctypes.POINTER(_Descriptor),
            ctypes.c_double,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.POINTER(_Feature)),
        ),
    ),
    ("connect_port", ctypes.CFUNCTYPE(None, _Handle, ctypes.c_uint32, ctypes.c_void_p)),
    ("activate", ctypes.CFUNCTYPE(None, _Handle)),
    ("run", ctypes.CFUNCTYPE(None, _Handle, ctypes.c_uint32)),
    ("deactivate", ctypes.CFUNCTYPE(None, _Handle)),
    ("cleanup", ctypes.CFUNCTYPE(None, _Handle)),
    ("extension_data", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)),
]

_LIBS: dict[str, ctypes.CDLL] = {}


def _load_descriptor(info: LV2PluginInfo):
    """dlopen the plugin binary (once per process) and find its descriptor."""
    lib = _LIBS.get(info.binary)
    if lib is None:
        if not os.path.isfile(info.binary):
            raise PluginNotFoundError(f"LV2 plugin {info.name}: binary {info.binary} is missing")
        try:
            lib = ctypes.CDLL(info.binary)
        except OSError as e:
            raise PluginNotFoundError(f"LV2 plugin {info.name}: cannot load {info.binary}: {e}") from e
        _LIBS[info.binary] = lib
    try:
        fn = lib.lv2_descriptor
    except AttributeError as e:
        raise EffectError(f"LV2 plugin {info.name}: {info.binary} exports no lv2_descriptor") from e
    fn.restype = ctypes.POINTER(_Descriptor)
    fn.argtypes = [ctypes.c_uint32]
    i = 0
    while True:
        d = fn(i)
        if not d:
            break
        if d.contents.URI.decode() == info.uri:
            return lib, d
        i += 1
    raise EffectError(f"LV2 plugin {info.name}: {info.binary} does not provide {info.uri}")


class LV2Plugin:
    """One loaded LV2 plugin type; :meth:`render` runs a fresh instance per call."""

    def __init__(self, info: LV2PluginInfo):
        if info.required_features:
            raise EffectError(
                f"LV2 plugin {info.name} requires features {list(info.required_features)}, "
                "which this small host does not provide"
            )
        bad = [p.symbol for p in info.ports if p.kind in ("atom", "cv", "other") and not p.optional]
        if bad:
            raise EffectError(f"LV2 plugin {info.name}: unsupported port types for {bad}")
        self.info = info
        self._lib, self._desc = _load_descriptor(info)
        d = self._desc.contents
        self._instantiate, self._connect, self._run = d.instantiate, d.connect_port, d.run
        self._activate = d.activate if d.activate else None
        self._deactivate = d.deactivate if d.deactivate else None
        self._cleanup = d.cleanup
        self._features = (ctypes.POINTER(_Feature) * 1)()  # array holding only NULL
        self._bundle = (info.bundle.rstrip("/") + "/").encode()
        self.audio_in = [p.index for p in info.ports if p.kind == "audio" and p.is_input]
        self.audio_out = [p.index for p in info.ports if p.kind == "audio" and not p.is_input]
        #: optional ports of kinds this host does not feed: connected to NULL
        self.null_ports = [p.index for p in info.ports if p.kind in ("atom", "cv", "other")]
        if not self.audio_in or not self.audio_out:
            raise EffectError(f"LV2 plugin {info.name}: needs audio inputs and outputs")
        self.control_index = {p.symbol: p.index for p in info.ports if p.kind == "control"}
        self.defaults = {p.symbol: (p.default if p.default is not None else (p.minimum or 0.0)) for p in info.controls}
        # work buffers reused between renders, one set per thread: fresh 262 kB arrays on
        # every render cost ~200 page faults (~0.3 ms, as much as the plugin's own work)
        self._buffers = threading.local()

    def _work_buffers(self, n: int, block: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(one output array per audio output, scratch, zeros), each at least as long as needed."""
        buf = self._buffers
        if getattr(buf, "n", -1) < n or getattr(buf, "block", -1) < block:
            buf.n, buf.block = max(n, getattr(buf, "n", 0)), max(block, 1, getattr(buf, "block", 0))
            buf.outs = [np.zeros(buf.n, dtype=np.float32) for _ in self.audio_out]
            buf.scratch = np.zeros(buf.block, dtype=np.float32)
            buf.zeros = np.zeros(buf.block, dtype=np.float32)
        return buf.outs, buf.scratch, buf.zeros

    def render(
        self,
        audio: np.ndarray,
        sample_rate: int,
        controls: Mapping[str, float],
        block: int = BLOCK,
        preroll: tuple[int, Mapping[str, float]] | None = None,
    ) -> np.ndarray:
        """Run mono ``audio`` through a fresh instance; returns the mean of the outputs.

        ``preroll=(frames, controls)`` first runs ``frames`` of silence with those control
        overrides (output discarded), e.g. to overwrite memory a plugin forgot to clear.
        """
        unknown = sorted(set(controls) - set(self.defaults))
        if unknown:
            raise EffectError(f"LV2 plugin {self.info.name}: unknown control(s) {unknown}")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        n = audio.shape[0]
        n_ports = len(self.info.ports)
        ctrl = np.zeros(n_ports, dtype=np.float32)
        target = dict(self.defaults)
        target.update({k: float(v) for k, v in controls.items()})
        nudged = np.zeros(n_ports, dtype=np.float32)
        for p in self.info.controls:
            v = target[p.symbol]
            lo = p.minimum if p.minimum is not None else v - 1.0
            hi = p.maximum if p.maximum is not None else v + 1.0
            step = 1e-3 * max(hi - lo, 1e-3)
            ctrl[p.index] = v
            nudged[p.index] = v + step if v + step <= hi else v - step
        outs, scratch, zeros = self._work_buffers(n, block)  # scratch: outputs of zero-length runs
        for o in outs:
            o[:n] = 0.0  # as fresh arrays were: nothing of the last clip can leak into this one
        handle = self._instantiate(self._desc, float(sample_rate), self._bundle, self._features)
        if not handle:
            raise EffectError(f"LV2 plugin {self.info.name}: instantiate failed at {sample_rate} Hz")
        try:
            connect, run = self._connect, self._run
            base_ctrl = ctrl.ctypes.data
            base_nudge = nudged.ctypes.data
            control_ports = [p.index for p in self.info.ports if p.kind == "control"]
            for i in control_ports:
                connect(handle, i, base_nudge + 4 * i)
            for i in self.audio_in:
                connect(handle, i, audio.ctypes.data)
            for i in self.audio_out:
                connect(handle, i, scratch.ctypes.data)
            for i in self.null_ports:
                connect(handle, i, None)
            if self._activate is not None:
                self._activate(handle)
            run(handle, 0)  # the plugin sees every control change at the right sample rate
            if preroll is not None and preroll[0] > 0:
                pre = ctrl.copy()
                for sym, v in preroll[1].items():
                    pre[self.control_index[sym]] = v
                for i in control_ports:
                    connect(handle, i, pre.ctypes.data + 4 * i)
                for i in self.audio_in:
                    connect(handle, i, zeros.ctypes.data)
                for i in self.audio_out:
                    connect(handle, i, scratch.ctypes.data)
                left = int(preroll[0])
                while left > 0:
                    m = min(block, left)
                    run(handle, m)
                    left -= m
            for c in control_ports:
                connect(handle, c, base_ctrl + 4 * c)
            run(handle, 0)
            a_ptr = audio.ctypes.data
            o_ptrs = [o.ctypes.data for o in outs]
            for start in range(0, n, block):
                m = min(block, n - start)
                for i in self.audio_in:
                    connect(handle, i, a_ptr + 4 * start)
                for i, optr in zip(self.audio_out, o_ptrs):
                    connect(handle, i, optr + 4 * start)
                run(handle, m)
            if self._deactivate is not None:
                self._deactivate(handle)
        finally:
            self._cleanup(handle)
        acc = outs[0][:n].copy()  # the buffers are reused: the result is a new array
        for o in outs[1:]:
            acc += o[:n]
        if len(outs) > 1:
            acc *= np.float32(1.0 / len(outs))
        return acc


class LV2Effect(Effect):
    """An LV2 plugin as an :class:`Effect`: the named controls exposed, the rest fixed.

    Raw parameter values are the plugin's own control values (its lv2:minimum..maximum).
    ``fixed`` sets controls that are not exposed (others stay at their lv2:default).
    The plugin library is loaded lazily, so instances pickle cheaply into worker processes.
    """

    backend = "lv2"
    needs_process_isolation = True

    def __init__(
        self,
        name: str,
        bundle: str | os.PathLike,
        plugin: str,
        params: Sequence[str] | None = None,
        fixed: Mapping[str, float] | None = None,
        install_hint: str = "",
        exclude: Sequence[str] = (),
        preroll: tuple[int, Mapping[str, float]] | None = None,
    ):
        self.name = name
        self.bundle = str(bundle)
        self.plugin = plugin
        self.install_hint = install_hint
        info = self._find_info()
        controls = {p.symbol: p for p in info.controls}
        if params is None:
            params = [p.symbol for p in info.controls if not p.is_switch and p.symbol not in exclude]
        unknown = [s for s in list(params) + list(fixed or {}) if s not in controls]
        if unknown:
            raise EffectError(f"{name}: LV2 plugin {plugin} has no control(s) {unknown}; controls: {sorted(controls)}")
        specs = []
        for s in params:
            p = controls[s]
            lo = p.minimum if p.minimum is not None else 0.0
            hi = p.maximum if p.maximum is not None else 1.0
            d = p.default if p.default is not None else lo
            specs.append(ParamSpec(s, lo, hi, min(max(d, lo), hi), unit=""))
        super().__init__(specs)
        self.fixed = {k: float(v) for k, v in (fixed or {}).items()}
        self.preroll = preroll
        self.info = info
        self._host: LV2Plugin | None = None

    def _find_info(self) -> LV2PluginInfo:
        if not Path(self.bundle, "manifest.ttl").is_file():
            hint = f" Install it: {self.install_hint}" if self.install_hint else ""
            raise PluginNotFoundError(f"{self.name}: LV2 bundle {self.bundle} not found.{hint}")
        infos = read_bundle(self.bundle, only=[self.plugin])
        for uri, info in infos.items():
            if uri == self.plugin or _local(uri) == self.plugin:
                return info
        raise PluginNotFoundError(f"{self.name}: plugin {self.plugin} not in bundle {self.bundle}")

    @property
    def host(self) -> LV2Plugin:
        if self._host is None:
            self._host = LV2Plugin(self.info)
        return self._host

    def _render(self, audio: np.ndarray, sample_rate: int, raw: dict[str, float]) -> np.ndarray:
        controls = dict(self.fixed)
        controls.update(raw)
        return self.host.render(audio, sample_rate, controls, preroll=self.preroll)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_host"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

"""The latent-plane explorer: click or drag on an effect's 2-D plane, hear and see the result.

All callback logic lives in :class:`ControlSurface`, a plain class with no widget imports,
tested headless: ``move_to(point) -> Update`` maps a plane point to parameters with the
plane's learned decoder (:meth:`dafxlib.plane.LatentPlane.to_params`, microseconds; never
UMAP's ``inverse_transform``, which costs seconds per call), renders the chosen clip and
computes its spectrogram. :class:`Explorer` only wires widgets to it.

Widget backend: **ipympl** (``%matplotlib widget``). The plane, the parameter bars and the
spectrogram are one ordinary matplotlib figure whose canvas is an ipywidget: clicks and
drags arrive as matplotlib ``button_press`` / ``motion_notify`` events already in data
coordinates, and the very same drawing code (:class:`dafxlib.plots.plane.ExplorerFigure`)
makes the static ``05_widget_snapshot`` figure that papermill runs and the report show.
ipympl is pinned in the environment and works in JupyterLab 4 without a build step.
bqplot would mean a second plotting stack (and a new dependency) for one figure;
ipyevents only delivers pixel coordinates on an image widget that we would have to
re-render and map back to the plane ourselves. A move redraws only the moving artists
(blitting over a cached background: ~30-70 ms in the kernel on a busy 2-core CPU against
~150-300 ms for a full redraw), and drags are throttled so events never queue behind
renders. :func:`measure_latency` and :func:`measure_draw` time both halves.
"""

from __future__ import annotations

import io as _io
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .errors import ConfigError, DafxError
from .spectrogram import spectrum_image

if TYPE_CHECKING:
    from .effects.base import Effect
    from .plane import LatentPlane


@dataclass
class Update:
    """Everything the explorer shows after one move."""

    effect: str
    point: np.ndarray  #: (2,) the plane point used (after clamping)
    requested: np.ndarray  #: (2,) the point asked for
    params01: np.ndarray  #: (P,) normalised parameters
    raw_params: dict[str, float]  #: parameters in the effect's own units
    audio: np.ndarray  #: (N,) rendered clip, float32
    spectrogram: np.ndarray  #: (F, T) compressed magnitude (the study's (|X|+1e-8)^0.3)
    clamped: bool  #: the requested point lay outside the plane's support
    latency_s: float  #: map + render + spectrogram wall time
    timings: dict[str, float] = field(default_factory=dict)
    t: float | None = None  #: position along the A -> B path, if this came from path()


class ControlSurface:
    """State of the explorer: current effect, its plane, the clip, path end points.

    ``planes`` and ``effects`` map effect keys to :class:`~dafxlib.plane.LatentPlane` and
    :class:`~dafxlib.effects.base.Effect`; ``clips`` maps clip ids to mono float32 audio.
    """

    def __init__(
        self,
        planes: Mapping[str, LatentPlane],
        effects: Mapping[str, Effect],
        clips: Mapping[str, np.ndarray],
        sample_rate: int,
        *,
        n_fft: int = 512,
        hop: int = 256,
        compression: str = "power",
        power: float = 0.3,
        effect: str | None = None,
        clip: str | None = None,
    ):
        if not planes:
            raise ConfigError("ControlSurface needs at least one fitted plane (run notebook 05)")
        missing = sorted(set(planes) - set(effects))
        if missing:
            raise ConfigError(f"no Effect given for plane(s) {missing}")
        if not clips:
            raise ConfigError("ControlSurface needs at least one clip")
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive int, got {sample_rate!r}")
        self.planes = dict(planes)
        self.effects = dict(effects)
        self.clips = {k: np.ascontiguousarray(v, dtype=np.float32).reshape(-1) for k, v in clips.items()}
        self.sample_rate = int(sample_rate)
        self.n_fft, self.hop, self.compression, self.power = n_fft, hop, compression, power
        self.clip_id = clip if clip is not None else next(iter(self.clips))
        self._check_clip(self.clip_id)
        self.last: Update | None = None
        self.set_effect(effect if effect is not None else next(iter(self.planes)))

    @classmethod
    def from_profile(
        cls,
        profile,
        *,
        planes: Mapping[str, LatentPlane] | None = None,
        effect_keys: Sequence[str] | None = None,
        corpus=None,
        n_clips: int = 4,
        split: str = "test",
    ) -> ControlSurface:
        """Load the planes notebook 05 saved (or take ``planes``), the effects and a few
        ``split`` clips (whole clips, halves A and B) of the profile's corpus."""
        from . import plane
        from .effects import ALL, get_effect

        if planes is None:
            keys = list(effect_keys or profile.plane.effects or ALL)
            planes = {k: plane.load_plane(profile.name, k) for k in keys}
        effects = {k: get_effect(k, profile.effects.effect_set) for k in planes}
        if corpus is None:
            from .corpus import build_corpus

            corpus = build_corpus(profile)
        clips = plane.select_clips(corpus, split, n_clips, 2 * profile.half_samples, profile.seed + 2)
        s = profile.spec
        return cls(
            planes,
            effects,
            clips,
            profile.data.sample_rate,
            n_fft=s.n_fft,
            hop=s.hop,
            compression=s.compression,
            power=s.power,
        )

    # ---- state --------------------------------------------------------------------------
    @property
    def effect_keys(self) -> list[str]:
        return list(self.planes)

    @property
    def clip_ids(self) -> list[str]:
        return list(self.clips)

    @property
    def audio(self) -> np.ndarray:
        return self.clips[self.clip_id]

    def _check_clip(self, clip_id: str) -> None:
        if clip_id not in self.clips:
            raise ConfigError(f"unknown clip {clip_id!r}; valid: {list(self.clips)}")

    def set_effect(self, key: str) -> Update:
        """Switch effect: new plane, decoder and effect; path A/B reset; move to the centre."""
        k = str(key).lower()
        if k not in self.planes:
            raise ConfigError(f"no plane for effect {key!r}; valid: {self.effect_keys}")
        from .plane import default_waypoints

        self.key = k
        self.plane = self.planes[k]
        self.effect = self.effects[k]
        a, _, b = default_waypoints(self.plane)
        self.a, self.b = a, b
        return self.move_to(self.plane.center)

    def set_clip(self, clip_id: str) -> Update:
        """Switch clip and re-render at the current point."""
        self._check_clip(clip_id)
        self.clip_id = clip_id
        point = self.last.requested if self.last is not None else self.plane.center
        return self.move_to(point)

    def set_endpoint(self, which: str, point) -> np.ndarray:
        """Set path end ``'a'`` or ``'b'`` (clamped to the support); returns the stored point."""
        q, _ = self.plane.clamp(point)
        if which == "a":
            self.a = q
        elif which == "b":
            self.b = q
        else:
            raise ConfigError(f"path end must be 'a' or 'b', got {which!r}")
        return q

    # ---- moves --------------------------------------------------------------------------
    def spectrogram(self, audio: np.ndarray) -> np.ndarray:
        """Compressed magnitude (F, T), the same numbers as :mod:`dafxlib.spectrogram`
        (centred, zero-padded Hann STFT) computed with numpy: torch's per-call overhead
        is ~20x the work at this size when the two cores are busy."""
        return spectrum_image(audio, self.n_fft, self.hop, self.compression, self.power)

    def move_to(self, point) -> Update:
        """Plane point -> (clamp) -> parameters -> render -> spectrogram."""
        t0 = time.perf_counter()
        req = np.asarray(point, dtype=np.float64).reshape(-1)
        if req.shape != (2,):
            raise ConfigError(f"a plane point has 2 coordinates, got shape {np.shape(point)}")
        q, clamped = self.plane.clamp(req)
        p = self.plane.to_params(q, clamp=False)
        t1 = time.perf_counter()
        audio = self.effect.process(self.audio, self.sample_rate, p)
        t2 = time.perf_counter()
        spec = self.spectrogram(audio)
        t3 = time.perf_counter()
        self.last = Update(
            effect=self.key,
            point=q,
            requested=req,
            params01=p,
            raw_params=self.effect.to_raw(p),
            audio=audio,
            spectrogram=spec,
            clamped=bool(clamped),
            latency_s=t3 - t0,
            timings={"map": t1 - t0, "render": t2 - t1, "spectrogram": t3 - t2},
        )
        return self.last

    def path_point(self, a, b, t: float) -> np.ndarray:
        if not 0.0 <= float(t) <= 1.0:
            raise ConfigError(f"path position t must lie in [0, 1], got {t}")
        a = np.asarray(a, dtype=np.float64)
        return a + float(t) * (np.asarray(b, dtype=np.float64) - a)

    def path(self, a=None, b=None, t: float = 0.0) -> Update:
        """Move to position ``t`` in [0,1] on the straight path A -> B (default: stored A, B)."""
        a = self.a if a is None else a
        b = self.b if b is None else b
        u = self.move_to(self.path_point(a, b, t))
        u.t = float(t)
        return u


def measure_latency(
    surface: ControlSurface, *, n_moves: int = 50, seed: int = 0, margin: float = 0.1
) -> dict[str, Any]:
    """Time ``n_moves`` random moves (map + render + spectrogram), cycling through the
    effects (switching is not timed). Points are uniform over the settings' bounding box
    widened by ``margin``, so some are clamped, as real clicks would be."""
    rng = np.random.default_rng(seed)
    keys = surface.effect_keys
    lat: list[float] = []
    parts: dict[str, list[float]] = {"map": [], "render": [], "spectrogram": []}
    per_effect: dict[str, list[float]] = {}
    n_clamped = 0
    for i in range(n_moves):
        k = keys[i % len(keys)]
        if surface.key != k:
            surface.set_effect(k)
        lo, hi = surface.plane.lo, surface.plane.hi
        pad = margin * (hi - lo)
        u = surface.move_to(rng.uniform(lo - pad, hi + pad))
        lat.append(u.latency_s)
        for name, v in u.timings.items():
            parts[name].append(v)
        per_effect.setdefault(k, []).append(u.latency_s)
        n_clamped += u.clamped
    ms = 1000 * np.asarray(lat)
    return {
        "move_ms_median": float(np.median(ms)),
        "move_ms_p95": float(np.percentile(ms, 95)),
        "move_ms_max": float(ms.max()),
        "n_moves": n_moves,
        "clamped_frac": n_clamped / n_moves,
        **{f"{name}_ms_median": 1000 * float(np.median(v)) for name, v in parts.items()},
        "per_effect_ms_median": {k: 1000 * float(np.median(v)) for k, v in per_effect.items()},
        "all_ms": ms.tolist(),
    }


def measure_draw(surface: ControlSurface, *, n_moves: int = 20, seed: int = 0, figsize=(10.0, 3.4)) -> dict[str, float]:
    """Time the explorer's redraw after a move, as the live widget does it in the kernel:
    blitted update of the moving artists on the Agg canvas, then PNG encoding of the whole
    frame at zlib level 1 (what :func:`full_frames` makes ipympl send). Also times one full redraw (effect switch). The
    browser's decoding and the transfer are not included."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from .plots.plane import ExplorerFigure

    rng = np.random.default_rng(seed)
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    view = ExplorerFigure(fig, surface, blit=True)
    t = time.perf_counter()
    fig.canvas.draw()  # full draw: caches the background
    full_ms = 1000 * (time.perf_counter() - t)
    lo, hi = surface.plane.lo, surface.plane.hi
    times = []
    for _ in range(n_moves):
        u = surface.move_to(rng.uniform(lo, hi))
        t = time.perf_counter()
        view.update(u)
        frame = np.asarray(cast(Any, fig.canvas).buffer_rgba())  # an Agg-based canvas
        with _io.BytesIO() as png:
            Image.fromarray(frame).save(png, format="png", compress_level=1)  # as full_frames sends it
        times.append(time.perf_counter() - t)
    ms = 1000 * np.asarray(times)
    return {
        "draw_ms_median": float(np.median(ms)),
        "draw_ms_p95": float(np.percentile(ms, 95)),
        "full_draw_ms": full_ms,
    }


def grid_updates(surface: ControlSurface, n: int = 4, *, inset: float = 0.1) -> list[Update]:
    """Updates at an ``n x n`` lattice over the current plane's bounding box (row-major,
    bottom row first), for the spectrogram-grid figure."""
    lo, hi = surface.plane.lo, surface.plane.hi
    span = hi - lo
    xs = np.linspace(lo[0] + inset * span[0], hi[0] - inset * span[0], n)
    ys = np.linspace(lo[1] + inset * span[1], hi[1] - inset * span[1], n)
    return [surface.move_to((x, y)) for y in ys for x in xs]


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of mono float audio (peaks above 1 are scaled down, not clipped)."""
    a = np.asarray(audio, dtype=np.float64).reshape(-1)
    a = np.where(np.isfinite(a), a, 0.0)
    peak = np.abs(a).max() if a.size else 0.0
    if peak > 1.0:
        a = a / peak
    buf = _io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes((a * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def full_frames(canvas) -> None:
    """Make a web canvas (ipympl / webagg) send every frame as a complete image.

    By default the webagg protocol sends "diff" frames (only the changed pixels) and the
    browser paints each over the previous one. The browser drops a frame when the next one
    arrives before it has decoded it (it just replaces the image source), and it applies the
    image mode current at decoding time, so under a fast drag a lost diff leaves ghosts and
    stale fragments that no later diff repairs. Complete frames make a lost frame harmless:
    the next one replaces the whole picture."""
    if getattr(getattr(canvas, "get_diff_image", None), "_dafx_full", False):
        return
    if not hasattr(canvas, "_png_is_old"):
        raise DafxError(f"{type(canvas).__name__} is not a webagg/ipympl canvas")

    def full_frame() -> bytes | None:
        # what FigureCanvasWebAggCore.get_diff_image does in "full" mode, with fast PNG
        # compression (zlib level 1: ~2x faster than the default here, ~10% larger frames)
        if not canvas._png_is_old:
            return None
        from PIL import Image

        pixels = np.asarray(canvas.get_renderer().buffer_rgba())
        canvas.set_image_mode("full")
        canvas._last_buff = pixels.view(np.uint32).squeeze(2).copy()
        canvas._force_full = False
        canvas._png_is_old = False
        with _io.BytesIO() as png:
            Image.fromarray(pixels).save(png, format="png", compress_level=1)
            return png.getvalue()

    full_frame._dafx_full = True  # type: ignore[attr-defined]
    canvas.get_diff_image = full_frame


def _widget_backend() -> bool:
    import matplotlib

    b = matplotlib.get_backend().lower()
    return "ipympl" in b or b in ("widget", "module://ipympl.backend_nbagg")


class Explorer:
    """The ipywidgets explorer around a :class:`ControlSurface` (needs ``%matplotlib widget``).

    Modes: *move* (click or drag sets the point), *set A* / *set B* (click sets a path end);
    the slider walks the straight path A -> B. ``explorer.widget`` is the VBox to display.
    """

    MODES = ("move", "set A", "set B")

    def __init__(self, surface: ControlSurface, *, throttle_s: float = 0.03, figsize=(10.0, 3.4)):
        import ipywidgets as W
        import matplotlib.pyplot as plt

        from .plots.plane import ExplorerFigure

        if not _widget_backend():
            raise DafxError(
                "the explorer needs the ipympl backend: run `%matplotlib widget` in the "
                "notebook first (in papermill runs, use the static snapshot figure)"
            )
        self.surface = surface
        self.throttle_s = float(throttle_s)
        self.figsize = tuple(figsize)
        self._last_frame = 0.0
        self._dragging = False
        self._drag_moves = 0
        self._quiet = False
        self._shown: np.ndarray | None = None  #: requested point of the update on screen
        self.n_computed = 0  #: moves computed (one per distinct point)
        self.n_skipped = 0  #: drag events dropped by the throttle or repeating the shown point
        self.n_full_draws = 0
        self.last_timing: dict[str, float] = {}
        with plt.ioff():
            self.fig = plt.figure(figsize=figsize)
        canvas = self.fig.canvas
        for attr, val in (
            ("header_visible", False),
            ("footer_visible", False),
            ("toolbar_visible", False),
            ("resizable", False),
        ):
            if hasattr(canvas, attr):
                setattr(canvas, attr, val)
        full_frames(canvas)
        self.view = ExplorerFigure(self.fig, surface, blit=True)
        self.effect_dd = W.Dropdown(options=surface.effect_keys, value=surface.key, description="effect")
        self.clip_dd = W.Dropdown(options=surface.clip_ids, value=surface.clip_id, description="clip")
        self.mode = W.ToggleButtons(options=list(self.MODES), value="move")
        self.slider = W.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.01, description="A -> B", continuous_update=True, readout_format=".2f"
        )
        self.autoplay = W.Checkbox(value=False, description="autoplay")
        self.player = W.Audio(value=b"", format="wav", autoplay=False, controls=True, loop=False)
        self.status = W.HTML()
        self.effect_dd.observe(self._on_effect, names="value")
        self.clip_dd.observe(self._on_clip, names="value")
        self.slider.observe(self._on_slider, names="value")
        self.autoplay.observe(lambda ch: setattr(self.player, "autoplay", bool(ch["new"])), names="value")
        canvas.mpl_connect("button_press_event", self._on_press)
        canvas.mpl_connect("motion_notify_event", self._on_motion)
        canvas.mpl_connect("button_release_event", self._on_release)
        self.widget = W.VBox(
            [
                W.HBox([self.effect_dd, self.clip_dd]),
                self.mode,
                canvas,
                W.HBox([self.slider, self.autoplay]),
                self.player,
                self.status,
            ]
        )
        if surface.last is not None:
            self.apply(surface.last)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # ---- rendering ----------------------------------------------------------------------
    def apply(self, update: Update, *, t_event: float | None = None) -> None:
        """Show ``update``: marker, bars, spectrogram, audio and a status line.

        ``t_event`` is when the kernel received the mouse event (``time.perf_counter``); the
        status line then shows the kernel's share of the user's wait: event in -> frame sent.
        """
        t0 = time.perf_counter()
        self.view.update(update)  # blit: the frame (a full PNG, see full_frames) is sent here
        t1 = time.perf_counter()
        self.player.value = wav_bytes(update.audio, self.surface.sample_rate)
        t2 = time.perf_counter()
        self._shown = np.asarray(update.requested, dtype=np.float64).copy()
        start = t_event if t_event is not None else t0 - update.latency_s
        self.last_timing = {
            "compute_ms": 1000 * update.latency_s,
            "frame_ms": 1000 * (t1 - t0),
            "audio_ms": 1000 * (t2 - t1),
            "kernel_ms": 1000 * (t2 - start),
        }
        raw = ", ".join(f"{k} {v:.3g}" for k, v in update.raw_params.items())
        note = " <b>(clamped to the plane)</b>" if update.clamped else ""
        tm = self.last_timing
        self.status.value = (
            f"{update.effect}: {raw}{note}<br>last move: {tm['kernel_ms']:.0f} ms in the kernel "
            f"from mouse event to frame and audio sent (compute {tm['compute_ms']:.0f} ms, "
            f"frame {tm['frame_ms']:.0f} ms, audio {tm['audio_ms']:.0f} ms); transfer and "
            f"drawing in the browser come on top. Moves computed {self.n_computed}, "
            f"drag events skipped {self.n_skipped}."
        )
        self._last_frame = time.perf_counter()

    def full_redraw(self) -> None:
        """Redraw the whole figure and send it as one complete frame (after a drag, a switch)."""
        self.fig.canvas.draw()
        self.n_full_draws += 1

    def _move(self, q: np.ndarray, t_event: float) -> None:
        self.n_computed += 1
        self.apply(self.surface.move_to(q), t_event=t_event)

    def _same_as_shown(self, q: np.ndarray) -> bool:
        return self._shown is not None and bool(np.allclose(q, self._shown, rtol=0.0, atol=1e-12))

    # ---- callbacks ----------------------------------------------------------------------
    def _point(self, event):
        if event.inaxes is not self.view.ax_plane or event.xdata is None:
            return None
        return np.array([event.xdata, event.ydata], dtype=np.float64)

    def _on_press(self, event) -> None:
        t_event = time.perf_counter()
        q = self._point(event)
        if q is None:
            return
        mode = self.mode.value
        if mode == "move":
            self._dragging = True
            self._drag_moves = 0
            if not self._same_as_shown(q):
                self._move(q, t_event)
        else:
            which = "a" if mode == "set A" else "b"
            self.surface.set_endpoint(which, q)
            self.view.set_path(self.surface.a, self.surface.b, draw=False)
            self.n_computed += 1
            self.apply(self.surface.move_to(self.surface.a if which == "a" else self.surface.b), t_event=t_event)
            self.full_redraw()  # the path is part of the static background

    def _on_motion(self, event) -> None:
        if not self._dragging or self.mode.value != "move":
            return
        t_event = time.perf_counter()
        q = self._point(event)
        if q is None:
            return
        if self._same_as_shown(q) or t_event - self._last_frame < self.throttle_s:
            self.n_skipped += 1
            return
        self._drag_moves += 1
        self._move(q, t_event)

    def _on_release(self, event) -> None:
        if not self._dragging:
            return
        t_event = time.perf_counter()
        self._dragging = False
        q = self._point(event)
        if q is not None and not self._same_as_shown(q):  # a click computes once: press only
            self._drag_moves += 1
            self._move(q, t_event)
        if self._drag_moves:  # after a drag, one complete redraw leaves nothing stale
            self.full_redraw()

    def _on_effect(self, change) -> None:
        u = self.surface.set_effect(change["new"])
        self.n_computed += 1
        self.view.rebuild()
        self._quiet = True
        try:
            self.slider.value = 0.0
        finally:
            self._quiet = False
        self.apply(u)
        self.full_redraw()

    def _on_clip(self, change) -> None:
        self.n_computed += 1
        self.apply(self.surface.set_clip(change["new"]))
        self.full_redraw()

    def reference_frame(self) -> np.ndarray:
        """RGBA pixels of a fresh, independent full redraw of the shown state (a new Agg figure
        of the same size and dpi, no blitting): what the live canvas must show."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .plots.plane import ExplorerFigure

        w, h = (float(v) for v in self.fig.get_size_inches())
        fig = Figure(figsize=(w, h), dpi=self.fig.dpi)
        canvas = FigureCanvasAgg(fig)
        view = ExplorerFigure(fig, self.surface, blit=False)
        view.set_path(self.surface.a, self.surface.b, draw=False)
        view.update(self.surface.last)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba()).copy()

    def _on_slider(self, change) -> None:
        if self._quiet:
            return
        t_event = time.perf_counter()
        self.n_computed += 1
        self.apply(self.surface.path(t=float(change["new"])), t_event=t_event)

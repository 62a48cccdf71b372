"""The explorer's callback logic, headless: a point in gives parameters and audio out,
points outside the plane are clamped, switching effect rebuilds the state. Planes are
built from synthetic points (no UMAP), so this file needs no numba JIT."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from dafxlib import plane as control
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError, DafxError
from dafxlib.widgets import ControlSurface, Update, grid_updates, measure_latency, wav_bytes

SR = 8000


class Gain(Effect):
    name = "Gain"

    def __init__(self):
        super().__init__([ParamSpec("gain", 0.0, 1.0, 0.5), ParamSpec("mix", 0.0, 1.0, 1.0)])

    def _render(self, audio, sample_rate, raw):
        return raw["gain"] * (raw["mix"] * audio + (1 - raw["mix"]) * np.tanh(3 * audio))


class Crush(Effect):
    name = "Crush"

    def __init__(self):
        super().__init__(
            [ParamSpec("bits", 2.0, 12.0, 8.0), ParamSpec("level", 0.1, 1.0, 1.0), ParamSpec("tone", 0.0, 1.0, 0.5)]
        )

    def _render(self, audio, sample_rate, raw):
        q = 2.0 ** round(raw["bits"])
        return raw["level"] * np.round(audio * q) / q


def plane_for(key, n_params, seed):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-5, 5, (150, 2))
    cols = [(pts[:, j % 2] + 5) / 10 if j < 2 else np.full(len(pts), 0.3) for j in range(n_params)]
    p = np.clip(np.column_stack(cols), 0, 1)
    dec = control.KernelDecoder.fit(pts, p)
    g = np.linspace(-6, 6, 4)
    gl = np.zeros((4, 4, 3))
    return control.LatentPlane(
        key,
        [f"p{j}" for j in range(n_params)],
        pts,
        np.zeros((150, 3)),
        p,
        {},
        g,
        g,
        gl,
        support_radius=0.8,
        bandwidth=dec.bandwidth,
    )


@pytest.fixture
def surface():
    rng = np.random.default_rng(0)
    clips = {
        "noise": (0.3 * rng.standard_normal(4000)).astype(np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 220 * np.arange(3000) / SR)).astype(np.float32),
    }
    planes = {"gain": plane_for("gain", 2, 1), "crush": plane_for("crush", 3, 2)}
    return ControlSurface(planes, {"gain": Gain(), "crush": Crush()}, clips, SR, n_fft=256, hop=128)


def test_point_in_gives_parameters_audio_and_spectrogram(surface):
    u = surface.move_to([2.0, -1.0])
    assert isinstance(u, Update) and u.effect == "gain" and not u.clamped
    np.testing.assert_allclose(u.params01, surface.plane.to_params([2.0, -1.0]))
    np.testing.assert_allclose(u.params01, [0.7, 0.4], atol=0.08)
    assert set(u.raw_params) == {"gain", "mix"}
    expected = Gain().process(surface.audio, SR, u.params01)
    np.testing.assert_allclose(u.audio, expected, rtol=1e-6)
    assert u.audio.dtype == np.float32 and u.audio.shape == (4000,)
    assert u.spectrogram.shape == (129, 4000 // 128 + 1)
    assert u.latency_s > 0 and set(u.timings) == {"map", "render", "spectrogram"}
    # moving right raises p0 (gain): a louder render
    assert np.abs(surface.move_to([4.0, -1.0]).audio).mean() > np.abs(u.audio).mean()


def test_point_out_of_range_is_clamped(surface):
    u = surface.move_to([60.0, 0.0])
    assert u.clamped
    np.testing.assert_allclose(u.requested, [60.0, 0.0])
    d = np.linalg.norm(surface.plane.points - u.point, axis=1).min()
    assert d == pytest.approx(surface.plane.support_radius, rel=1e-6)
    np.testing.assert_allclose(u.params01, surface.plane.to_params(u.point, clamp=False))
    assert np.all(np.isfinite(u.audio))
    with pytest.raises(ConfigError):
        surface.move_to([1.0, 2.0, 3.0])


def test_switching_effect_rebuilds_state(surface):
    a_before = surface.a.copy()
    u = surface.set_effect("Crush")
    assert surface.key == "crush" and surface.effect.name == "Crush"
    assert surface.plane is surface.planes["crush"]
    assert u.params01.shape == (3,) and set(u.raw_params) == {"bits", "level", "tone"}
    np.testing.assert_allclose(u.point, surface.plane.center)
    assert not np.allclose(surface.a, a_before)  # path ends belong to the new plane
    with pytest.raises(ConfigError, match="valid"):
        surface.set_effect("reverb")
    assert surface.key == "crush"


def test_path_and_clip(surface):
    a, b = np.array([-4.0, 0.0]), np.array([4.0, 0.0])
    u0, u1, uh = surface.path(a, b, 0.0), surface.path(a, b, 1.0), surface.path(a, b, 0.5)
    np.testing.assert_allclose(u0.point, surface.plane.clamp(a)[0])
    np.testing.assert_allclose(uh.requested, [0.0, 0.0])
    assert u0.params01[0] < uh.params01[0] < u1.params01[0] and uh.t == 0.5
    with pytest.raises(ConfigError):
        surface.path(a, b, 1.5)
    stored = surface.set_endpoint("b", [90.0, 0.0])
    assert surface.plane.inside(stored)
    assert surface.path(t=1.0).point == pytest.approx(stored)
    v = surface.set_clip("tone")
    assert v.audio.shape == (3000,) and surface.clip_id == "tone"
    with pytest.raises(ConfigError):
        surface.set_clip("nope")


def test_constructor_validates():
    pl = {"gain": plane_for("gain", 2, 1)}
    with pytest.raises(ConfigError):
        ControlSurface({}, {}, {"c": np.zeros(100)}, SR)
    with pytest.raises(ConfigError, match="no Effect"):
        ControlSurface(pl, {}, {"c": np.zeros(100)}, SR)
    with pytest.raises(ConfigError):
        ControlSurface(pl, {"gain": Gain()}, {}, SR)


def test_latency_measurement_and_grid(surface):
    lat = measure_latency(surface, n_moves=10, seed=0)
    assert lat["n_moves"] == 10 and len(lat["all_ms"]) == 10
    assert 0 < lat["move_ms_median"] <= lat["move_ms_p95"] <= lat["move_ms_max"]
    assert set(lat["per_effect_ms_median"]) == {"gain", "crush"}
    ups = grid_updates(surface, 3)
    assert len(ups) == 9 and ups[0].point[0] < ups[2].point[0] and ups[0].point[1] < ups[6].point[1]


def test_wav_bytes():
    a = np.array([0.0, 0.5, -2.0, 1.0], dtype=np.float32)
    with wave.open(io.BytesIO(wav_bytes(a, SR))) as w:
        assert w.getframerate() == SR and w.getnframes() == 4 and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(4), "<i2")
    np.testing.assert_array_equal(x, [0, 8191, -32767, 16383])


def test_snapshot_and_explorer_wiring(surface, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import MouseEvent

    from dafxlib.plots.plane import explorer_snapshot
    from dafxlib.widgets import Explorer

    surface.move_to([1.0, 1.0])
    fig = explorer_snapshot(surface)
    assert len(fig.axes) == 3
    fig.savefig(tmp_path / "snap.png")
    plt.close(fig)
    old = matplotlib.get_backend()
    if "ipympl" not in old and old.lower() != "widget":
        with pytest.raises(DafxError, match="matplotlib widget"):
            Explorer(surface)
    try:
        plt.switch_backend("module://ipympl.backend_nbagg")
        ex = Explorer(surface)
        assert ex.player.value[:4] == b"RIFF"
        ex.fig.canvas.draw()  # what the browser asks for first: caches the background for blitting
        assert ex.view._bg is not None
        ax = ex.view.ax_plane
        x, y = ax.transData.transform((3.0, 0.5))
        ex.fig.canvas.callbacks.process(
            "button_press_event", MouseEvent("button_press_event", ex.fig.canvas, x, y, button=1)
        )
        assert surface.last.requested == pytest.approx([3.0, 0.5], abs=1e-6)
        assert "gain" in ex.status.value
        assert ex.view.bars[0].get_width() == pytest.approx(surface.last.params01[0])
        draws = ex.n_full_draws
        ex.effect_dd.value = "crush"
        assert surface.key == "crush" and len(ex.view.bars) == 3  # rebuilt
        assert ex.n_full_draws == draws + 1 and ex.view._bg is not None  # and redrawn in full
        ex.slider.value = 1.0
        assert surface.last.t == 1.0
        plt.close(ex.fig)
    finally:
        plt.switch_backend(old)


def test_measure_draw(surface):
    from dafxlib.widgets import measure_draw

    d = measure_draw(surface, n_moves=3)
    assert 0 < d["draw_ms_median"] <= d["draw_ms_p95"] and d["full_draw_ms"] > 0


def test_blitted_frame_matches_a_full_draw(surface):
    """The blitted update shows the same pixels as drawing the whole figure afresh."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dafxlib.plots.plane import ExplorerFigure

    frames = []
    for blit in (True, False):
        fig = Figure(figsize=(8, 3))
        FigureCanvasAgg(fig)
        view = ExplorerFigure(fig, surface, blit=blit)
        fig.canvas.draw()
        if blit:  # an earlier move must leave no trace (marker, bars, values, spectrogram)
            view.update(surface.move_to([-3.0, 3.0]))
        view.update(surface.move_to([1.5, -2.0]))
        if not blit:
            fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba()).astype(int))
    assert np.abs(frames[0] - frames[1]).mean() < 1.0


def test_plot_functions_draw_synthetic_planes(surface):
    import matplotlib.pyplot as plt

    from dafxlib.plots import plane as lp

    planes = surface.planes
    figs = [
        lp.plot_planes_by_parameter(planes),
        lp.plot_domain_colouring(planes["crush"]),
        lp.plot_grid_latent(planes["gain"], dims=2),
        lp.plot_planes_by_effect(
            np.vstack([planes["gain"].points, planes["crush"].points]), ["gain"] * 150 + ["crush"] * 150
        ),
    ]
    assert sum(ax.get_visible() and ax.axison for ax in figs[0].axes) >= 5  # 2 + 3 panels (+ colour bar)
    assert len(figs[1].axes) == 1 + 3  # plane + 3 parameter pairs
    ups = grid_updates(surface, 2)
    figs.append(lp.plot_spectrogram_grid(surface.plane, ups, 2, SR))
    assert len(figs[-1].axes) == 1 + 4
    prof = control.PathProfile(
        t=np.linspace(0, 1, 5),
        points=np.zeros((5, 2)),
        clamped=np.array([0, 1, 0, 0, 0], bool),
        params01=np.full((5, 2), 0.5),
        descriptors={"rms_db": np.arange(5.0)},
        waypoints=np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]),
    )
    surface.set_effect("gain")
    figs.append(lp.plot_path(surface.plane, prof))
    assert len(figs[-1].axes) == 3
    q = {
        "gain": {
            "smoothness": 1.0,
            "coverage": 0.5,
            "roundtrip_mae": 0.2,
            "roundtrip_mae_baseline": 0.25,
            "rho_centroid": 0.5,
            "rho_lowfreq": -0.2,
            "rho_rms": 0.9,
        }
    }
    figs += [lp.plot_quality(q), lp.plot_latency({"all_ms": [1.0, 2.0, 3.0]}, 2500.0)]
    for f in figs:
        f.canvas.draw()
        plt.close(f)


def _text_outside_figure(fig) -> list[str]:
    fig.canvas.draw()
    r, fb = fig.canvas.get_renderer(), fig.bbox
    out = []
    for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and bool(a.get_text())):
        bb = t.get_window_extent(r)
        if bb.x0 < fb.x0 - 0.5 or bb.x1 > fb.x1 + 0.5 or bb.y0 < fb.y0 - 0.5 or bb.y1 > fb.y1 + 0.5:
            out.append(t.get_text())
    return out


def test_explorer_figure_cuts_nothing_off_and_values_stay_clear_of_ticks(surface):
    import matplotlib.pyplot as plt

    from dafxlib.plots.plane import explorer_snapshot

    for key, point in (("gain", [-4.5, 4.5]), ("crush", [4.5, -4.5]), ("crush", [60.0, 0.0])):
        surface.set_effect(key)
        surface.move_to(point)
        fig = explorer_snapshot(surface)
        labels = {t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))}
        assert {"normalised value", "time (s)", "kHz"} <= labels
        assert _text_outside_figure(fig) == []
        view_bars = [a for a in fig.axes if a.get_xlabel() == "normalised value"][0]
        r = fig.canvas.get_renderer()
        ticks = [t.get_window_extent(r) for t in view_bars.get_yticklabels()]
        values = [t for t in view_bars.texts if t.get_text()]
        assert len(values) == surface.plane.n_params
        for v in values:  # a value label never touches a parameter name or the y axis line
            bb = v.get_window_extent(r)
            assert all(not bb.overlaps(tb) for tb in ticks)
            assert bb.x0 > view_bars.get_window_extent(r).x0
        plt.close(fig)


def test_full_frames_make_every_frame_complete():
    """A webagg canvas sends only changed pixels after the first frame; with full_frames
    every frame is the whole picture, so a frame the browser drops loses nothing."""
    from io import BytesIO

    from matplotlib.backends.backend_webagg_core import FigureCanvasWebAggCore
    from matplotlib.figure import Figure
    from PIL import Image

    from dafxlib.widgets import full_frames

    def frames(full: bool) -> list[np.ndarray]:
        fig = Figure(figsize=(3, 2))
        canvas = FigureCanvasWebAggCore(fig)
        if full:
            full_frames(canvas)
            full_frames(canvas)  # idempotent
        (line,) = fig.add_subplot().plot([0, 1], [0, 1])
        out = []
        for y in (1, 0.5):
            line.set_ydata([0, y])
            super(FigureCanvasWebAggCore, canvas).draw()  # the Agg draw (no browser to refresh)
            canvas._png_is_old = True
            with Image.open(BytesIO(canvas.get_diff_image())) as im:
                out.append(np.asarray(im.convert("RGBA")))
        return out

    diff, full = frames(False), frames(True)
    assert (diff[1][..., 3] == 0).mean() > 0.5  # the default: mostly transparent "diff" pixels
    assert (full[0][..., 3] == 255).all() and (full[1][..., 3] == 255).all()  # every frame complete
    assert np.array_equal(full[0], diff[0])
    with pytest.raises(DafxError):
        full_frames(object())


@pytest.fixture
def explorer(surface):
    import matplotlib
    import matplotlib.pyplot as plt

    from dafxlib.widgets import Explorer

    old = matplotlib.get_backend()
    plt.switch_backend("module://ipympl.backend_nbagg")
    ex = Explorer(surface, throttle_s=0.0)
    ex.fig.canvas.draw()
    try:
        yield ex
    finally:
        plt.close(ex.fig)
        plt.switch_backend(old)


def _mouse(ex, kind, xy, button=1):
    from matplotlib.backend_bases import MouseEvent

    x, y = ex.view.ax_plane.transData.transform(xy)
    ex.fig.canvas.callbacks.process(kind, MouseEvent(kind, ex.fig.canvas, x, y, button=button))


def test_a_click_computes_once_and_a_drag_ends_with_a_full_redraw(explorer):
    calls = []
    move_to = explorer.surface.move_to
    explorer.surface.move_to = lambda q: calls.append(np.array(q)) or move_to(q)
    draws = explorer.n_full_draws
    _mouse(explorer, "button_press_event", (1.0, 1.0))
    _mouse(explorer, "button_release_event", (1.0, 1.0))
    assert len(calls) == 1 and explorer.n_computed >= 1
    assert explorer.n_full_draws == draws  # a click: the blitted frame is complete already
    _mouse(explorer, "button_press_event", (1.0, 1.0))  # the shown point again: nothing to compute
    assert len(calls) == 1
    for x in np.linspace(1.0, 3.0, 6)[1:]:
        _mouse(explorer, "motion_notify_event", (x, 1.0))
    _mouse(explorer, "motion_notify_event", (3.0, 1.0))  # a repeated point is skipped
    _mouse(explorer, "button_release_event", (3.0, 1.0))
    assert len(calls) == 6 and explorer.n_skipped >= 1
    assert explorer.n_full_draws == draws + 1
    assert explorer.surface.last.requested == pytest.approx([3.0, 1.0])
    st = explorer.status.value
    assert "in the kernel from mouse event to frame and audio sent" in st and "browser" in st
    assert explorer.last_timing["kernel_ms"] >= explorer.last_timing["compute_ms"] > 0


def test_live_canvas_equals_a_fresh_redraw_after_moves(explorer):
    for x in np.linspace(-4.0, 4.0, 7):
        _mouse(explorer, "button_press_event", (x, -x / 2))
    _mouse(explorer, "button_release_event", (4.0, -2.0))
    explorer.effect_dd.value = "crush"
    _mouse(explorer, "button_press_event", (-1.0, 2.0))
    _mouse(explorer, "button_release_event", (-1.0, 2.0))
    live = np.asarray(explorer.fig.canvas.buffer_rgba()).astype(int)
    ref = explorer.reference_frame().astype(int)
    assert live.shape == ref.shape
    assert np.abs(live - ref).mean() < 1.0

"""Effects: registry, the portable set, parameter handling, Turtle reader, external wrapper."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from dafxlib.effects import ALL, DISPLAY_NAMES, SEEN, UNSEEN, effect_set, get_effect, is_seen, load_external
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.effects.external import ExternalEffect
from dafxlib.effects.portable import Delay, RingMod
from dafxlib.effects.testing import probe_clip
from dafxlib.errors import EffectError, PluginNotFoundError

SR = 24_000


@pytest.fixture(scope="module")
def clip():
    return probe_clip(SR, 0.3, seed=1)


@pytest.fixture(scope="module")
def portable():
    return effect_set("portable")


def rel_diff(a, b) -> float:
    return float(
        np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)) / (np.sqrt(np.mean(b.astype(np.float64) ** 2)) + 1e-12)
    )


def lsd_db(a, b) -> float:
    """Log-spectral distance (dB): sees changes in quiet passages that waveform error misses."""
    from scipy import signal

    _, _, sa = signal.stft(a, SR, nperseg=512)
    _, _, sb = signal.stft(b, SR, nperseg=512)
    return float(np.sqrt(np.mean((20 * np.log10(np.abs(sa) + 1e-6) - 20 * np.log10(np.abs(sb) + 1e-6)) ** 2)))


def rms_db(y) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-20))


# ---- registry ----------------------------------------------------------------------------
def test_sets_and_split():
    assert SEEN == ("overdrive", "delay", "ringmod", "dynamics")
    assert UNSEEN == ("combo", "ambience", "flanger", "multiband", "leslie")
    assert ALL == SEEN + UNSEEN
    assert is_seen("Delay") and not is_seen("leslie")
    fx = effect_set("portable")
    assert list(fx) == list(ALL)
    for key, e in fx.items():
        assert isinstance(e, Effect)
        assert e.key == key
        assert e.name == DISPLAY_NAMES[key]
    assert [e.name for e in fx.values()] == [
        "Overdrive",
        "Delay",
        "RingMod",
        "Dynamics",
        "Combo",
        "Ambience",
        "Flanger",
        "MultiBand",
        "Leslie",
    ]


def test_get_effect_case_insensitive_and_fresh():
    a, b = get_effect("RingMod"), get_effect("ringmod")
    assert type(a) is type(b) and a is not b


def test_unknown_effect_and_set_raise():
    with pytest.raises(EffectError, match="valid keys.*overdrive"):
        get_effect("chorus")
    with pytest.raises(EffectError, match="portable"):
        get_effect("delay", "vst")
    with pytest.raises(EffectError):
        effect_set("nope")
    with pytest.raises(EffectError):
        is_seen("nope")


# ---- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize("key", ALL)
def test_param_round_trip(key, portable):
    e = portable[key]
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.random(e.n_params)
        raw = e.to_raw(p)
        assert list(raw) == e.param_names
        for s in e.specs:
            assert s.minimum - 1e-9 <= raw[s.name] <= s.maximum + 1e-9
        np.testing.assert_allclose(e.to_norm(raw), p, atol=1e-9)
    d = e.defaults01()
    assert np.all((d >= 0) & (d <= 1))


def test_bad_params_raise(portable, clip):
    e = portable["delay"]
    with pytest.raises(EffectError, match="unknown parameter"):
        e.process(clip, SR, {"delay_time": 0.5})
    with pytest.raises(EffectError, match="expected 5 parameters"):
        e.process(clip, SR, [0.5, 0.5])
    with pytest.raises(EffectError, match=r"\[0, 1\]"):
        e.process(clip, SR, [0.5, 0.5, 1.2, 0.5, 0.5])
    with pytest.raises(EffectError, match=r"\[0, 1\]"):
        e.process(clip, SR, [0.5, -0.1, 0.5, 0.5, 0.5])
    with pytest.raises(EffectError, match="finite"):
        e.process(clip, SR, [0.5, np.nan, 0.5, 0.5, 0.5])
    with pytest.raises(EffectError, match="mono"):
        e.process(np.zeros((2, 100), np.float32), SR, e.defaults01())
    with pytest.raises(EffectError, match="sample_rate"):
        e.process(clip, 24000.0, e.defaults01())
    # a mapping may name a subset; the rest stay at their defaults
    y = e.process(clip, SR, {"feedback": 0.0})
    assert y.shape == clip.shape


# ---- audio behaviour of the portable set --------------------------------------------------
@pytest.mark.parametrize("key", ALL)
def test_deterministic_and_history_free(key, clip):
    e = get_effect(key)
    rng = np.random.default_rng(1)
    ps = rng.random((3, e.n_params))
    seq = [e.process(clip, SR, p) for p in ps]
    again = [e.process(clip, SR, p) for p in ps[::-1]][::-1]
    fresh = [get_effect(key).process(clip, SR, p) for p in ps]
    for a, b, c in zip(seq, again, fresh):
        assert a.dtype == np.float32 and a.shape == clip.shape
        assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("key", ALL)
def test_finite_audible_bounded_over_random_settings(key, portable, clip):
    e = portable[key]
    rng = np.random.default_rng(2)
    settings = [np.zeros(e.n_params), np.ones(e.n_params), e.defaults01()] + list(rng.random((10, e.n_params)))
    in_db = rms_db(clip)
    for p in settings:
        y = e.process(clip, SR, p)
        assert np.all(np.isfinite(y)), (key, p)
        assert np.max(np.abs(y)) < 4.0, f"{key}: runaway output at {p}"
        assert rms_db(y) > in_db - 30.0, f"{key}: near-silent output at {p}"
        # clearly different from the dry input (the do-nothing baseline)
        assert rel_diff(y, clip) > 0.1, f"{key}: output too close to the input at {p}"


@pytest.mark.parametrize("key", ALL)
def test_every_parameter_matters(key, portable, clip):
    e = portable[key]
    rng = np.random.default_rng(3)
    bases = [e.defaults01()] + list(rng.random((3, e.n_params)))
    for j, name in enumerate(e.param_names):
        best_rel = best_lsd = 0.0
        for base in bases:
            lo, hi = base.copy(), base.copy()
            lo[j], hi[j] = 0.1, 0.9
            y_lo, y_hi = e.process(clip, SR, lo), e.process(clip, SR, hi)
            best_rel = max(best_rel, rel_diff(y_lo, y_hi))
            best_lsd = max(best_lsd, lsd_db(y_lo, y_hi))
            if best_rel > 0.01 or best_lsd > 1.0:
                break
        assert best_rel > 0.01 or best_lsd > 1.0, (
            f"{key}.{name} barely changes the output (rel. diff {best_rel:.2e}, LSD {best_lsd:.2f} dB)"
        )


def test_tail_and_length(portable, clip):
    e = portable["delay"]
    y = e.process(clip, SR, e.defaults01(), tail_seconds=0.5)
    assert y.shape[0] == clip.shape[0] + SR // 2
    assert rms_db(y[clip.shape[0] :]) > -60  # the echoes continue past the input
    assert e.process(clip[:1000], SR, e.defaults01()).shape == (1000,)


def test_ringmod_carrier_frequency_at_24k():
    e = get_effect("ringmod")
    dc = np.full(SR, 0.5, np.float32)  # 1 s: 1 Hz FFT bins
    for p in ({"freq": 0.0, "fine": 0.0}, {"freq": 0.37, "fine": 0.42}, {"freq": 1.0, "fine": 1.0}, {}):
        raw = e.to_raw(p)
        expect = RingMod.carrier_hz(raw["freq"], raw["fine"])
        y = e.process(dc, SR, {**p, "feedback": 0.0})
        peak = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
        assert abs(peak - expect) <= 1.0, (p, peak, expect)


def test_delay_echo_positions_at_24k():
    e = get_effect("delay")
    x = np.zeros(SR, np.float32)
    x[0] = 1.0
    for p in ({"l_delay": 0.5, "r_delay": 0.3}, {"l_delay": 0.1, "r_delay": 1.0}, {"l_delay": 0.8, "r_delay": 0.0}):
        raw = e.to_raw({**p, "feedback": 0.0, "fb_tone": 0.5})
        d1, d2 = Delay.delay_samples(raw["l_delay"], raw["r_delay"], SR)
        assert abs(d1 - raw["l_delay"] * SR / 1000) <= 0.5
        y = e.process(x, SR, {**p, "feedback": 0.0, "fb_tone": 0.5})
        echoes = set(np.nonzero(np.abs(y[1:]) > 1e-3)[0] + 1)
        assert echoes == {d1, d2}, (p, sorted(echoes)[:5], d1, d2)


def test_delay_samples_scale_with_rate():
    assert Delay.delay_samples(100.0, 1.0, 48_000) == (4800, 4800)
    assert Delay.delay_samples(100.0, 0.5, 24_000) == (2400, 1200)


def test_clone_and_pickle_give_identical_output(portable, clip):
    for key in ("overdrive", "ambience", "multiband"):
        e = portable[key]
        p = np.linspace(0.2, 0.8, e.n_params)
        y = e.process(clip, SR, p)
        assert np.array_equal(e.clone().process(clip, SR, p), y)
        assert np.array_equal(pickle.loads(pickle.dumps(e)).process(clip, SR, p), y)


def test_portable_render_speed(portable):
    one_second = probe_clip(SR, 1.0)
    for key, e in portable.items():
        e.process(one_second, SR, e.defaults01())  # JIT / lazy build
        times = []
        for _ in range(3):
            t = time.perf_counter()
            e.process(one_second, SR, e.defaults01())
            times.append(time.perf_counter() - t)
        # a few ms on a quiet core; the bound only catches pathological slowness
        assert min(times) < 0.1, f"{key} took {min(times) * 1000:.1f} ms for 1 s of audio"


# ---- LV2 bundle descriptions (rdflib) ----------------------------------------------------
MANIFEST = r"""
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
<http://example.org/plug> a lv2:Plugin ; lv2:binary <plug.so> ; rdfs:seeAlso <plug.ttl> .
<http://example.org/other> a lv2:Plugin ; lv2:binary <other.so> .
"""
PLUGIN = r"""
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix doap: <http://usefulinc.com/ns/doap#> .
<http://example.org/plug> doap:name "Test \"Gain\"" ; lv2:requiredFeature <http://e/feat> ;
    lv2:port [ a lv2:InputPort , lv2:AudioPort ; lv2:index 1 ; lv2:symbol "in" ] ,
        [ a lv2:InputPort , lv2:ControlPort ; lv2:index 0 ; lv2:symbol "gain" ; lv2:name "Gain" ;
          lv2:default -1.5 ; lv2:minimum -24 ; lv2:maximum 6.0e0 ; lv2:portProperty lv2:connectionOptional ] ,
        [ a lv2:OutputPort , lv2:AudioPort ; lv2:index 2 ; lv2:symbol "out" ] .
"""


def test_read_bundle_describes_ports_from_the_manifest_and_see_also(tmp_path):
    from dafxlib.effects.lv2 import read_bundle

    (tmp_path / "manifest.ttl").write_text(MANIFEST)
    (tmp_path / "plug.ttl").write_text(PLUGIN)
    infos = read_bundle(tmp_path, only=["plug"])
    assert list(infos) == ["http://example.org/plug"]
    info = infos["http://example.org/plug"]
    assert info.name == 'Test "Gain"' and info.binary == str(tmp_path.resolve() / "plug.so")
    assert info.required_features == ("http://e/feat",)
    gain, inp, out = info.ports
    assert (gain.symbol, gain.kind, gain.is_input, gain.name) == ("gain", "control", True, "Gain")
    assert (gain.default, gain.minimum, gain.maximum) == (-1.5, -24.0, 6.0) and gain.optional
    assert (inp.kind, inp.is_input, out.kind, out.is_input) == ("audio", True, "audio", False)
    assert set(read_bundle(tmp_path)) == {"http://example.org/plug", "http://example.org/other"}


def test_read_bundle_errors_name_the_file(tmp_path):
    from dafxlib.effects.lv2 import read_bundle

    with pytest.raises(PluginNotFoundError, match="manifest.ttl"):
        read_bundle(tmp_path)
    (tmp_path / "manifest.ttl").write_text("@prefix ex: <http://e/> .\nex:a ex:b nope:c .")
    with pytest.raises(EffectError, match="manifest.ttl"):
        read_bundle(tmp_path)
    (tmp_path / "manifest.ttl").write_text(MANIFEST.replace("rdfs:seeAlso <plug.ttl> ", ""))
    (tmp_path / "manifest.ttl").write_text(MANIFEST + '<http://example.org/plug> lv2:port [ lv2:symbol "x" ] .')
    with pytest.raises(EffectError, match="lv2:index"):
        read_bundle(tmp_path, only=["plug"])


# ---- external (VST3/AU) wrapper ------------------------------------------------------------
class FakeParam:
    def __init__(self, raw, values=None, boolean=False, label=""):
        self.raw_value = raw
        self.default_raw_value = raw
        self.valid_values = values if values is not None else [f"{v:.2f}" for v in np.linspace(0, 1, 11)]
        self.is_boolean = boolean
        self.type = bool if boolean else float
        self.label = label


class FakePlugin:
    """Stands in for a pedalboard VST3Plugin: a gain with a stereo output."""

    name = "Fake Gain"

    def __init__(self):
        self.parameters = {
            "gain": FakeParam(0.5, label="dB"),
            "tone": FakeParam(0.25),
            "bypass": FakeParam(0.0, values=["Off", "On"], boolean=True),
            "fixed_mode": FakeParam(0.0, values=["Only"]),
            "power": FakeParam(1.0),
        }
        self.calls = []

    def process(self, audio, sample_rate, reset=True):
        self.calls.append((audio.shape, sample_rate, reset))
        g = self.parameters["gain"].raw_value * 2
        t = self.parameters["tone"].raw_value
        return np.stack([audio[0] * g, audio[0] * g * (1 - t)]).astype(np.float32)


def fake_loader(path, plugin_name):
    return FakePlugin()


def test_external_wrapper_with_fake_plugin(tmp_path, clip):
    f = tmp_path / "Fake.vst3"
    f.write_bytes(b"")
    e = load_external(f, loader=fake_loader)
    assert isinstance(e, ExternalEffect) and e.name == "Fake Gain" and e.key == "fake_gain"
    assert e.param_names == ["gain", "tone"]  # boolean, single-valued and power/bypass skipped
    assert e.specs[0].unit == "dB"
    np.testing.assert_allclose(e.defaults01(), [0.5, 0.25])
    y = e.process(clip, SR, [0.75, 0.5])
    plugin = e._get_plugin()
    assert plugin.parameters["gain"].raw_value == 0.75 and plugin.parameters["tone"].raw_value == 0.5
    assert plugin.calls[-1] == ((1, clip.shape[0]), float(SR), True)
    np.testing.assert_allclose(y, clip * 1.5 * 0.75, rtol=1e-6)  # mean of the two output channels
    # clones reload the plugin through the loader and render the same
    c = e.clone()
    assert c._plugin is None
    assert np.array_equal(c.process(clip, SR, [0.75, 0.5]), y)
    assert e.needs_process_isolation
    sub = load_external(f, params=["tone"], loader=fake_loader, isolate=False)
    assert sub.param_names == ["tone"] and not sub.needs_process_isolation
    with pytest.raises(EffectError, match="no parameter"):
        load_external(f, params=["volume"], loader=fake_loader)


def test_external_missing_file_raises(tmp_path):
    with pytest.raises(PluginNotFoundError, match="does not exist"):
        load_external(tmp_path / "Nope.vst3")


def test_paramspec_validation():
    with pytest.raises(EffectError):
        ParamSpec("x", 1.0, 1.0, 1.0)
    with pytest.raises(EffectError):
        ParamSpec("x", 0.0, 1.0, 0.5, scale="log")
    s = ParamSpec("f", 20.0, 2000.0, 200.0, unit="Hz", scale="log")
    assert abs(s.to_raw(0.5) - 200.0) < 1e-9 and abs(s.default01 - 0.5) < 1e-12


def test_dynamics_limiter_is_a_ceiling():
    """Quiet signals pass at unity; loud ones stop near the ``limiter`` ceiling (dBFS)."""
    e = get_effect("dynamics")
    t = np.arange(SR) / SR
    base = {"thresh": 1.0, "ratio": 0.0, "output": 0.0, "gate_thr": 0.0, "mix": 1.0}
    quiet = (0.003 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = e.process(quiet, SR, {**base, "limiter": 0.0})
    assert abs(20 * np.log10(np.abs(y[SR // 2 :]).max() / 0.003)) < 0.1
    loud = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    for lim in (0.0, 0.5, 1.0):
        p = {**base, "output": 1.0, "limiter": lim}
        ceiling = e.to_raw(p)["limiter"]
        peak_db = 20 * np.log10(np.abs(e.process(loud, SR, p)[SR // 2 :]).max())
        assert ceiling - 3.0 < peak_db < ceiling + 0.5, (ceiling, peak_db)


def test_effect_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dafxlib.plots.effects import effect_spectrograms, effect_sweep

    x = probe_clip(SR, 0.2)
    fx = [get_effect("ringmod"), get_effect("flanger")]
    fig = effect_spectrograms(x, SR, fx, settings=(0.2, "default", {"freq": 0.9}))
    assert len([a for a in fig.axes if a.get_visible() and a.axison]) == 1 + 2 * 3
    assert "RingMod" in fig.axes[3].get_title()
    with pytest.raises(EffectError):
        effect_spectrograms(x, SR, fx, settings=("loud",))
    plt.close(fig)
    fig = effect_sweep(fx[0], x, SR, n=3)
    assert len(fig.axes) == fx[0].n_params * 3
    plt.close(fig)
    fig = effect_sweep(fx[1], x, SR, n=3, kind="curves")
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(EffectError):
        effect_sweep(fx[0], x, SR, n=1)


def test_sum_squares_kernels_find_non_finite_values():
    from dafxlib.effects.dsp import copy_sum_squares, sum_squares

    x = np.random.default_rng(0).standard_normal(10_001).astype(np.float32)
    expect = float(np.sum(x.astype(np.float64) ** 2))
    assert abs(sum_squares(x) - expect) <= 1e-12 * expect
    dst = np.zeros_like(x)
    assert abs(copy_sum_squares(dst, x) - expect) <= 1e-12 * expect and np.array_equal(dst, x)
    big = np.full(100, 3e38, np.float32)  # float32-finite, squares overflow float32 but not float64
    assert np.isfinite(sum_squares(big))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[5000] = bad
        assert not np.isfinite(sum_squares(y)) and not np.isfinite(copy_sum_squares(dst, y))

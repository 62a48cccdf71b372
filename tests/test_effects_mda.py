"""The mda effect set: Debian's mda-lv2 plugins hosted through ctypes (skipped when not installed)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dafxlib.effects import ALL, DISPLAY_NAMES, effect_set, get_effect
from dafxlib.effects.lv2 import LV2Effect, read_bundle
from dafxlib.effects.mda import bundle_path, mda_available
from dafxlib.effects.testing import probe_clip
from dafxlib.errors import PluginNotFoundError

SR = 24_000

needs_mda = pytest.mark.skipif(
    not mda_available(), reason="Debian's mda-lv2 plugins are not installed (apt-get install mda-lv2)"
)

STUDY_PARAMS = {
    "overdrive": ["drive", "muffle", "output"],
    "delay": ["l_delay", "r_delay", "feedback", "fb_tone", "fx_mix"],
    "ringmod": ["freq", "fine", "feedback"],
    "dynamics": [
        "thresh",
        "ratio",
        "output",
        "attack",
        "release",
        "limiter",
        "gate_thr",
        "gate_att",
        "gate_rel",
        "mix",
    ],
    "combo": ["drive", "bias", "output", "hpf_freq", "hpf_reso"],
    "ambience": ["size", "hf_damp", "mix", "output"],
    "flanger": ["rate", "depth", "mix", "feedback", "depth_mod"],
    "multiband": ["l_m", "m_h", "l_comp", "m_comp", "h_comp", "l_out", "m_out", "h_out", "attack", "release"],
    "leslie": ["lo_throb", "hi_depth", "hi_throb", "x_over", "output", "speed"],
}


@pytest.fixture(scope="module")
def mda():
    if not mda_available():
        pytest.skip("Debian's mda-lv2 plugins are not installed (apt-get install mda-lv2)")
    return effect_set("mda")


@pytest.fixture(scope="module")
def clip():
    return probe_clip(SR, 0.4, seed=2)


def test_missing_bundle_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("DAFX_MDA_LV2", str(tmp_path / "nowhere.lv2"))
    with pytest.raises(PluginNotFoundError, match="apt-get install mda-lv2"):
        get_effect("delay", "mda")


@needs_mda
def test_bundle_reader_finds_the_study_plugins():
    infos = read_bundle(bundle_path(), only=["Overdrive", "ThruZero"])
    by_name = {u.rsplit("/", 1)[-1]: i for u, i in infos.items()}
    od = by_name["Overdrive"]
    assert od.binary.endswith("Overdrive.so") and os.path.isfile(od.binary)
    assert [(p.index, p.symbol, p.kind, p.is_input) for p in od.ports] == [
        (0, "drive", "control", True),
        (1, "muffle", "control", True),
        (2, "output", "control", True),
        (3, "left_in", "audio", True),
        (4, "right_in", "audio", True),
        (5, "left_out", "audio", False),
        (6, "right_out", "audio", False),
    ]
    assert od.port("output").default == 0.5 and od.port("drive").maximum == 1.0
    assert [p.symbol for p in by_name["ThruZero"].controls] == ["rate", "depth", "mix", "feedback", "depth_mod"]


@needs_mda
def test_switches_are_not_exposed():
    full = LV2Effect("MultiBand", bundle_path(), "MultiBand")  # params=None: every non-switch control
    assert "listen" not in full.param_names and "process" not in full.param_names
    les = LV2Effect("Leslie", bundle_path(), "Leslie")
    assert "mode" not in les.param_names


def test_study_parameter_subsets(mda):
    for key in ALL:
        e = mda[key]
        assert e.name == DISPLAY_NAMES[key] and e.key == key
        assert e.param_names == STUDY_PARAMS[key]
        assert e.needs_process_isolation and e.backend == "lv2"
    assert mda["flanger"].plugin == "ThruZero"


@pytest.mark.parametrize("key", ALL)
def test_deterministic_finite_and_not_silent(key, mda, clip):
    e = mda[key]
    rng = np.random.default_rng(5)
    settings = [e.defaults01(), np.full(e.n_params, 0.5)] + list(rng.random((8, e.n_params)))
    for p in settings:
        y = e.process(clip, SR, p)
        assert y.dtype == np.float32 and y.shape == clip.shape
        assert np.all(np.isfinite(y)), (key, p)
        assert np.sqrt(np.mean(np.square(y, dtype=np.float64))) > 1e-4, f"{key}: silent at {p}"
        assert np.array_equal(y, e.process(clip, SR, p))
    # round trip of the (identity) parameter mapping
    p = rng.random(e.n_params)
    np.testing.assert_allclose(e.to_norm(e.to_raw(p)), p, atol=1e-12)


@pytest.mark.parametrize("key", ALL)
def test_every_parameter_matters(key, mda, clip):
    e = mda[key]
    rng = np.random.default_rng(6)
    bases = [e.defaults01()] + list(rng.random((24, e.n_params)))  # mda renders take ~0.1 ms
    for j, name in enumerate(e.param_names):
        best = 0.0
        for base in bases:
            lo, hi = base.copy(), base.copy()
            lo[j], hi[j] = 0.1, 0.9
            a, b = e.process(clip, SR, lo), e.process(clip, SR, hi)
            best = max(best, float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b**2)) + 1e-12)))
            if best > 0.01:
                break
        assert best > 0.01, f"mda {key}.{name} barely changes the output ({best:.2e})"


@needs_mda
def test_ringmod_carrier_at_24k_matches_spec():
    """mda RingMod carrier = 100 Hz * (160 * freq + fine); also at the default (untouched) setting,
    which keeps 44.1 kHz coefficients (544 Hz instead of 1000 Hz) unless the host forces every control."""
    e = get_effect("ringmod", "mda")
    dc = np.full(SR, 0.5, np.float32)
    for p in ({}, {"freq": 0.1031, "fine": 0.0}, {"freq": 0.3, "fine": 0.5}):
        raw = e.to_raw(p)
        expect = 100.0 * (160.0 * raw["freq"] + raw["fine"])
        y = e.process(dc, SR, p)
        peak = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
        assert abs(peak - expect) <= 1.0, (p, peak, expect)


@needs_mda
@pytest.mark.parametrize("sr", [24_000, 48_000])
def test_delay_echo_lands_where_spec_says(sr):
    """mda Delay: left echo after int(32766 * l_delay^2) samples, right after that times 4 * r_delay."""
    e = get_effect("delay", "mda")
    x = np.zeros(sr, np.float32)
    x[0] = 1.0
    for l_delay, r_delay in ((0.3, 0.27), (0.5, 0.2)):
        y = e.process(x, sr, {"l_delay": l_delay, "r_delay": r_delay, "feedback": 0.0, "fx_mix": 1.0})
        left = int(32766 * np.float32(l_delay) ** 2)
        right = int(32766 * np.float32(l_delay) ** 2 * np.float32(4 * r_delay))
        echoes = np.nonzero(np.abs(y) > 1e-3)[0]
        assert len(echoes) == 2 and set(echoes) == {left, right}, (echoes[:4], left, right)


@needs_mda
def test_output_does_not_depend_on_uninitialised_memory(tmp_path):
    """mda Delay reads one never-cleared sample at long delays; the host's pre-roll must hide it.

    glibc's MALLOC_PERTURB_ fills fresh heap memory with a pattern: outputs must not change."""
    script = textwrap.dedent("""
        import hashlib, numpy as np
        from dafxlib.effects import get_effect
        from dafxlib.effects.testing import probe_clip
        x = probe_clip(24000, 0.4, seed=3)
        h = hashlib.md5()
        for key in ("delay", "ambience", "flanger", "leslie"):
            e = get_effect(key, "mda")
            rng = np.random.default_rng(0)
            for p in [np.ones(e.n_params), np.zeros(e.n_params)] + list(rng.random((4, e.n_params))):
                h.update(e.process(x, 24000, p).tobytes())
        print(h.hexdigest())
    """)
    digests = set()
    for perturb in ("", "165", "23"):
        env = dict(os.environ, MALLOC_PERTURB_=perturb)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


@needs_mda
def test_fresh_instance_per_clip(clip):
    e = get_effect("ambience", "mda")
    p = np.full(e.n_params, 0.7)
    first = e.process(clip, SR, p)
    kept = first.copy()
    e.process(probe_clip(SR, 0.4, seed=9, level_db=-6), SR, p)  # a loud, longer clip in between
    assert np.array_equal(first, kept)  # work buffers are reused, returned audio is not
    assert np.array_equal(first, e.process(clip, SR, p))
    assert hashlib.md5(first.tobytes()).hexdigest() == hashlib.md5(e.clone().process(clip, SR, p).tobytes()).hexdigest()

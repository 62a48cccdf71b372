"""The effects benchmark script runs and reports what the README table shows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_effects_quick_writes_rows(tmp_path, capsys):
    bench = _load("bench_effects")
    out = tmp_path / "effects.json"
    assert bench.main(["--quick", "--sets", "portable", "--effects", "delay,ringmod", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["effect"] for r in data["rows"]] == ["delay", "ringmod"]
    for r in data["rows"]:
        assert r["pool_mode"] == "thread" and r["batch"] == 4
        assert r["serial_renders_per_s"] > 0 and r["pool_renders_per_s"] > 0 and r["speedup"] > 0
        assert np.isfinite(r["overhead_pct"]) and r["overhead_us_per_render"] >= 0
    table = capsys.readouterr().out
    assert "| portable | Delay | numba (thread) |" in table and "| portable | RingMod |" in table


def test_bench_effects_rejects_unknown_effects(tmp_path):
    import pytest

    from dafxlib.errors import ConfigError

    bench = _load("bench_effects")
    with pytest.raises(ConfigError, match="unknown effect"):
        bench.main(["--quick", "--effects", "chorus", "--out", str(tmp_path / "x.json")])


def test_identity_twin_has_the_effects_specs():
    from dafxlib.effects import get_effect

    bench = _load("bench_effects")
    fx = get_effect("delay")
    twin = bench.identity_twin(fx)
    x = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
    assert twin.specs == fx.specs and np.array_equal(twin.process(x, 24_000, fx.defaults01()), x)

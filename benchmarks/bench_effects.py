"""Benchmark the effects: renders per second, serial vs RenderPool, and the wrapper's overhead.

For every effect of each installed set, on clips of 2.73 s at 24 kHz:

* ``serial``: ``effect.process`` one clip after another (renders/s);
* ``pool``: ``RenderPool(effect, sr, workers).render(batch)`` with a warm pool (renders/s)
  and the speed-up over serial (target >= 1.8x with 2 workers on 2 free cores);
* ``overhead``: CPU time of ``effect.process`` against the engine call it wraps,
  ``effect._render`` with raw values (pedalboard objects, numba kernels, or the LV2 plugin
  through ctypes), i.e. the cost of validation, normalisation and conversion (target <= 10 %).
  CPU time of the calling thread, so it holds on a busy machine; the renders/s and speed-up
  columns are wall-clock and need an idle one.

Writes a Markdown table to stdout and JSON to build/bench/effects.json.

    python benchmarks/bench_effects.py              # full run (a quiet machine please)
    python benchmarks/bench_effects.py --quick      # seconds: checks that it works
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np


def _time(fn, reps: int, clock=time.perf_counter) -> float:
    """Median seconds of ``reps`` calls of ``fn`` (after one warm-up call) on ``clock``."""
    fn()
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def bench_effect(effect, clips: np.ndarray, params: np.ndarray, sr: int, workers: int, reps: int) -> dict:
    from dafxlib.render import RenderPool

    b = clips.shape[0]
    raws = [effect.to_raw(p) for p in params]

    def serial():
        for i in range(b):
            effect.process(clips[i], sr, params[i])

    def engine():
        for i in range(b):
            effect._render(clips[i], sr, raws[i])

    t_serial = _time(serial, reps)
    # CPU time of the calling thread: the overhead ratio does not depend on other load
    cpu_serial = _time(serial, reps, time.thread_time)
    cpu_engine = _time(engine, reps, time.thread_time)
    with RenderPool(effect, sr, workers=workers) as pool:
        t_pool = _time(lambda: pool.render(clips, params), reps)
        mode = pool.mode
    return {
        "effect": effect.key, "name": effect.name, "backend": effect.backend, "pool_mode": mode,
        "batch": b, "serial_renders_per_s": b / t_serial, "pool_renders_per_s": b / t_pool,
        "speedup": t_serial / t_pool, "ms_per_render_serial": 1000 * t_serial / b,
        "cpu_ms_per_render": 1000 * cpu_serial / b, "cpu_ms_per_render_engine": 1000 * cpu_engine / b,
        "overhead_pct": 100.0 * (cpu_serial - cpu_engine) / cpu_engine,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny batch and few repeats (smoke check)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.73)
    ap.add_argument("--sr", type=int, default=24_000)
    ap.add_argument("--sets", default="portable,mda")
    ap.add_argument("--effects", default="", help="comma-separated keys (default: all nine)")
    ap.add_argument("--out", default=None, help="JSON path (default build/bench/effects.json)")
    args = ap.parse_args(argv)

    from dafxlib.effects import ALL, get_effect
    from dafxlib.effects.mda import mda_available
    from dafxlib.effects.testing import probe_clip
    from dafxlib.io import write_json
    from dafxlib.paths import build_dir

    batch = 4 if args.quick else 16
    reps = 2 if args.quick else 7
    sr = args.sr
    clips = np.stack([probe_clip(sr, args.seconds, seed=s) for s in range(batch)])
    keys = [k for k in (args.effects.split(",") if args.effects else ALL) if k]
    rows = []
    skipped = []
    for set_name in [s for s in args.sets.split(",") if s]:
        if set_name == "mda" and not mda_available():
            skipped.append("mda (mda-lv2 not installed)")
            continue
        for key in keys:
            effect = get_effect(key, set_name)
            params = np.random.default_rng(0).random((batch, effect.n_params))
            r = bench_effect(effect, clips, params, sr, args.workers, reps)
            r["set"] = set_name
            rows.append(r)
            print(f"  {set_name:8s} {key:10s} {r['ms_per_render_serial']:7.2f} ms/render", file=sys.stderr)

    cores = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\n### Effect rendering ({args.seconds} s clips at {sr} Hz, batch {batch}, "
          f"{args.workers} workers, {cores} cores, load {load[0]:.1f})\n" if load else "")
    print("| set | effect | backend | CPU ms/render | serial renders/s | pool renders/s | speed-up | overhead |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['set']} | {r['name']} | {r['backend']} ({r['pool_mode']}) | {r['cpu_ms_per_render']:.2f} | "
              f"{r['serial_renders_per_s']:.0f} | {r['pool_renders_per_s']:.0f} | {r['speedup']:.2f}x | "
              f"{r['overhead_pct']:+.1f}% |")
    if skipped:
        print(f"\nskipped: {', '.join(skipped)}")
    print("\ntargets: overhead <= 10 %, speed-up >= 1.8x with 2 workers on an otherwise idle machine")
    out = args.out or str(build_dir("bench") / "effects.json")
    write_json(out, {"rows": rows, "seconds": args.seconds, "sample_rate": sr, "batch": batch, "reps": reps,
                     "workers": args.workers, "quick": args.quick, "cpu_count": cores, "loadavg": load,
                     "machine": platform.platform(), "python": platform.python_version(), "skipped": skipped})
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # the process pool (mda set) needs this guard
    sys.exit(main())

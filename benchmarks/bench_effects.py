"""Benchmark the effects: renders per second, serial vs RenderPool, and the wrapper's overhead.

For every effect of each installed set, on a batch of clips of 2.73 s at 24 kHz (32 by
default: one SPSA step of the default profile renders 16 examples x 2 perturbations):

* ``serial``: ``effect.process`` one clip after another (renders/s);
* ``pool``: ``RenderPool(effect, sr, workers).render(batch)`` with a warm pool (renders/s)
  and its speed-up over serial (target >= 1.8x with 2 workers);
* ``ceiling``: what the machine itself gives: two independent processes, each rendering
  the whole batch serially with its own instance, started together, against one alone
  (2 x solo time / pair time). No pool can beat it; ``pool / ceiling`` is the share of
  the attainable speed-up the pool delivers. On shared or SMT-backed virtual cores the
  ceiling is often well below 2x, and it differs per effect (memory traffic, FPU use);
* ``overhead``: what ``effect.process`` adds to the engine call it wraps, ``effect._render``
  with raw values (pedalboard objects, numba kernels, or the LV2 plugin through ctypes):
  validation, normalisation and conversion (target <= 10 %). Measured as the CPU time of
  ``process`` on an identity twin of the effect (same parameter specs, a ``_render`` that
  returns its input) minus that ``_render``, over the effect's own engine CPU time: the
  direct difference ``process - _render`` of two noisy millisecond timings is also kept
  (``overhead_pct_direct`` in the JSON) but is too noisy to resolve microseconds.

Timings alternate between the variants for ``--rounds`` rounds. Renders/s use each
variant's fastest round (the least disturbed by other load); the speed-up and the ceiling
are medians of per-round ratios (serial/pool and solo/pair timed back to back, so a slow
drift of the machine's speed cancels); overhead uses thread CPU time.
Writes a Markdown table to stdout and JSON to build/bench/effects.json.

    python benchmarks/bench_effects.py              # full run (~4 min, a quiet machine please)
    python benchmarks/bench_effects.py --quick      # seconds: checks that it works
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import numpy as np


def make_clips(batch: int, seconds: float, sr: int) -> np.ndarray:
    from dafxlib.effects.testing import probe_clip

    return np.stack([probe_clip(sr, seconds, seed=s) for s in range(batch)])


# ---- ceiling: two independent processes ----------------------------------------------------
def _ceiling_worker(conn) -> None:
    """Child process: on ("load", set, key, clips, sr) build the effect; on "run" render the
    batch serially and answer the seconds it took."""
    from dafxlib.effects import get_effect

    effect = clips = params = sr = None
    while True:
        msg = conn.recv()
        if msg is None:
            return
        if msg[0] == "load":
            _, set_name, key, clips, sr = msg
            effect = get_effect(key, set_name)
            params = np.random.default_rng(0).random((clips.shape[0], effect.n_params))
            for i in range(clips.shape[0]):  # warm-up (JIT, library loading, caches)
                effect.process(clips[i], sr, params[i])
            conn.send("ready")
        else:
            t = time.perf_counter()
            for i in range(clips.shape[0]):
                effect.process(clips[i], sr, params[i])
            conn.send(time.perf_counter() - t)


class CeilingProbe:
    """Two persistent worker processes that time solo and simultaneous serial renders."""

    def __init__(self):
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(2):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_ceiling_worker, args=(child,), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    def load(self, set_name: str, key: str, clips: np.ndarray, sr: int) -> None:
        for c in self.conns:
            c.send(("load", set_name, key, clips, sr))
        for c in self.conns:
            assert c.recv() == "ready"

    def solo(self) -> float:
        self.conns[0].send("run")
        return self.conns[0].recv()

    def pair(self) -> float:
        for c in self.conns:
            c.send("run")
        return max(c.recv() for c in self.conns)

    def close(self) -> None:
        for c, p in zip(self.conns, self.procs):
            try:
                c.send(None)
            except OSError:
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


class _Identity:
    """Mixin: an engine that returns its input unchanged."""

    def _render(self, audio, sample_rate, raw):
        return audio


def identity_twin(effect):
    """An effect with ``effect``'s name and parameter specs whose engine returns its input."""
    from dafxlib.effects.base import Effect

    twin_class = type(f"{type(effect).__name__}Twin", (_Identity, Effect), {"name": effect.name})
    return twin_class(effect.specs)


# ---- one effect ------------------------------------------------------------------------------
def bench_effect(
    effect,
    set_name: str,
    clips: np.ndarray,
    params: np.ndarray,
    sr: int,
    workers: int,
    rounds: int,
    ceiling: CeilingProbe | None,
) -> dict:
    from dafxlib.render import RenderPool

    b = clips.shape[0]
    raws = [effect.to_raw(p) for p in params]

    def serial():
        for i in range(b):
            effect.process(clips[i], sr, params[i])

    def engine():
        for i in range(b):
            effect._render(clips[i], sr, raws[i])

    twin = identity_twin(effect)

    def twin_process():
        for _ in range(4):
            for i in range(b):
                twin.process(clips[i], sr, params[i])

    def twin_engine():
        for _ in range(4):
            for i in range(b):
                twin._render(clips[i], sr, raws[i])

    best: dict[str, float] = {}
    ratios, ceiling_ratios = [], []

    def timed(name, fn, clock=time.perf_counter):
        t = clock()
        fn()
        dt = clock() - t
        best[name] = min(best.get(name, float("inf")), dt)
        return dt

    if ceiling is not None:
        ceiling.load(set_name, effect.key, clips, sr)
    with RenderPool(effect, sr, workers=workers) as pool:
        mode = pool.mode
        serial(), engine(), pool.render(clips, params)  # warm-up
        for _ in range(rounds):
            s = timed("serial", serial)
            pool.render(clips, params)  # wake the workers up: the timed call is a warm pool's
            p = timed("pool", lambda: pool.render(clips, params))
            ratios.append(s / p)
            timed("cpu_serial", serial, time.thread_time)
            timed("cpu_engine", engine, time.thread_time)
            timed("twin_process", twin_process, time.thread_time)
            timed("twin_engine", twin_engine, time.thread_time)
            if ceiling is not None:
                solo, pair = ceiling.solo(), ceiling.pair()
                ceiling_ratios.append(2.0 * solo / pair)
    row = {
        "set": set_name,
        "effect": effect.key,
        "name": effect.name,
        "backend": effect.backend,
        "pool_mode": mode,
        "batch": b,
        "serial_renders_per_s": b / best["serial"],
        "pool_renders_per_s": b / best["pool"],
        "speedup": statistics.median(ratios),
        "speedup_of_best_rounds": best["serial"] / best["pool"],
        "ms_per_render_serial": 1000 * best["serial"] / b,
        "cpu_ms_per_render": 1000 * best["cpu_serial"] / b,
        "cpu_ms_per_render_engine": 1000 * best["cpu_engine"] / b,
        "overhead_pct_direct": 100.0 * (best["cpu_serial"] - best["cpu_engine"]) / best["cpu_engine"],
    }
    wrapper_s = max(best["twin_process"] - best["twin_engine"], 0.0) / (4 * b)
    row["overhead_us_per_render"] = 1e6 * wrapper_s
    row["overhead_pct"] = 100.0 * wrapper_s / (best["cpu_engine"] / b)
    if ceiling is not None:
        row["ceiling"] = statistics.median(ceiling_ratios)
        row["pool_share_of_ceiling"] = row["speedup"] / row["ceiling"]
    return row


def markdown(rows: list[dict], header: str) -> str:
    has_ceiling = all("ceiling" in r for r in rows)
    cols = [
        "set",
        "effect",
        "backend (pool)",
        "CPU ms/render",
        "serial renders/s",
        "pool renders/s",
        "speed-up: median (best)",
    ]
    if has_ceiling:
        cols += ["ceiling (2 procs)", "pool / ceiling"]
    cols += ["overhead"]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(cols) - 3)) + "|"]
    for r in rows:
        cells = [
            r["set"],
            r["name"],
            f"{r['backend']} ({r['pool_mode']})",
            f"{r['cpu_ms_per_render']:.2f}",
            f"{r['serial_renders_per_s']:.0f}",
            f"{r['pool_renders_per_s']:.0f}",
            f"{r['speedup']:.2f}x ({r['speedup_of_best_rounds']:.2f}x)",
        ]
        if has_ceiling:
            cells += [f"{r['ceiling']:.2f}x", f"{100 * r['pool_share_of_ceiling']:.0f}%"]
        cells += [f"{r['overhead_pct']:+.1f}% ({r['overhead_us_per_render']:.0f} us)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny batch, few rounds, no ceiling (smoke check)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.73)
    ap.add_argument("--sr", type=int, default=24_000)
    ap.add_argument("--batch", type=int, default=None, help="clips per batch (default 32; 4 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default 30; 2 with --quick)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the two-process ceiling")
    ap.add_argument("--sets", default="portable,mda")
    ap.add_argument("--effects", default="", help="comma-separated keys (default: all nine)")
    ap.add_argument("--out", default=None, help="JSON path (default build/bench/effects.json)")
    ap.add_argument("--table", metavar="JSON", default=None, help="only print the table of an earlier run's JSON")
    args = ap.parse_args(argv)
    if args.table:
        import json

        with open(args.table) as f:
            data = json.load(f)
        load = (data.get("loadavg") or [float("nan")])[0]
        print(
            markdown(
                data["rows"],
                f"### Effect rendering ({data['seconds']} s clips at {data['sample_rate']} Hz, "
                f"batch {data['batch']}, {data['workers']} workers, {data['cpu_count']} cores, "
                f"load {load:.1f}, {data['rounds']} rounds)",
            )
        )
        return 0

    from dafxlib.effects import ALL, get_effect
    from dafxlib.effects.mda import mda_available
    from dafxlib.errors import ConfigError
    from dafxlib.paths import build_dir
    from dafxlib.storage import write_json

    batch = args.batch or (4 if args.quick else 32)
    rounds = args.rounds or (2 if args.quick else 30)
    if batch < 1 or rounds < 1 or args.workers < 1 or args.seconds <= 0 or args.sr <= 0:
        raise ConfigError("--batch, --rounds, --workers, --seconds and --sr must be positive")
    sr = args.sr
    keys = [k for k in (args.effects.split(",") if args.effects else ALL) if k]
    unknown = sorted(set(keys) - set(ALL))
    if unknown:
        raise ConfigError(f"unknown effect(s) {unknown}; valid: {list(ALL)}")
    clips = make_clips(batch, args.seconds, sr)
    ceiling = None if (args.quick or args.no_ceiling) else CeilingProbe()
    rows, skipped = [], []
    started = time.perf_counter()
    try:
        for set_name in [s for s in args.sets.split(",") if s]:
            if set_name == "mda" and not mda_available():
                skipped.append("mda (mda-lv2 not installed)")
                continue
            for key in keys:
                effect = get_effect(key, set_name)
                params = np.random.default_rng(0).random((batch, effect.n_params))
                r = bench_effect(effect, set_name, clips, params, sr, args.workers, rounds, ceiling)
                rows.append(r)
                print(
                    f"  {set_name:8s} {key:10s} {r['ms_per_render_serial']:6.2f} ms/render  "
                    f"pool {r['speedup']:.2f}x" + (f"  ceiling {r['ceiling']:.2f}x" if "ceiling" in r else ""),
                    file=sys.stderr,
                )
    finally:
        if ceiling is not None:
            ceiling.close()

    cores = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),)
    header = (
        f"### Effect rendering ({args.seconds} s clips at {sr} Hz, batch {batch}, {args.workers} workers, "
        f"{cores} cores, load {load[0]:.1f}, {rounds} rounds)"
    )
    print("\n" + markdown(rows, header))
    if skipped:
        print(f"\nskipped: {', '.join(skipped)}")
    print("\ntargets: overhead <= 10 %, speed-up >= 1.8x with 2 workers")
    out = args.out or str(build_dir("bench") / "effects.json")
    write_json(
        out,
        {
            "rows": rows,
            "seconds": args.seconds,
            "sample_rate": sr,
            "batch": batch,
            "rounds": rounds,
            "workers": args.workers,
            "quick": args.quick,
            "cpu_count": cores,
            "loadavg": list(load),
            "wall_s": time.perf_counter() - started,
            "machine": platform.platform(),
            "python": platform.python_version(),
            "skipped": skipped,
        },
    )
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # the process pools (mda set, ceiling probe) need this guard
    sys.exit(main())

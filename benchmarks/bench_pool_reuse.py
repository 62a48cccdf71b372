"""Benchmark render-pool reuse: consecutive small render_batch calls, fresh pool vs shared pool.

Latent and end-to-end code render in many small calls (one UMAP grid row, one scoring batch).
With a process-mode effect (the mda LV2 plugins) each ``render_batch`` used to start and stop
a pool of worker processes; ``render_batch(..., reuse=True)`` keeps one open
(:func:`dafxlib.render.shared_pool`). For each effect: ``--calls`` consecutive calls of
``--batch`` clips of ``--seconds`` s, first with a fresh pool per call, then with the shared
pool (its first call starts the pool and is included). Prints a Markdown table and writes JSON
to build/bench/pool_reuse.json.

    python benchmarks/bench_pool_reuse.py                      # mda set (portable when mda is missing)
    python benchmarks/bench_pool_reuse.py --set portable --calls 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(effect_key: str, effect_set: str, calls: int, batch: int, seconds: float, sr: int, workers: int) -> dict:
    from dafxlib.effects import get_effect
    from dafxlib.effects.testing import probe_clip
    from dafxlib.render import close_shared_pools, render_batch

    e = get_effect(effect_key, effect_set)
    rng = np.random.default_rng(0)
    audios = np.stack([probe_clip(sr, seconds, seed=s) for s in range(batch)])
    params = [rng.random((batch, e.n_params)) for _ in range(calls)]
    out: dict = {
        "effect": effect_key,
        "set": effect_set,
        "calls": calls,
        "batch": batch,
        "seconds": seconds,
        "workers": workers,
    }
    for label, reuse in (("fresh", False), ("reused", True)):
        close_shared_pools()
        per_call = []
        results = []
        t_all = time.perf_counter()
        for p in params:
            t0 = time.perf_counter()
            results.append(render_batch(e, audios, p, sr, workers=workers, reuse=reuse).audio)
            per_call.append(time.perf_counter() - t0)
        out[f"{label}_total_s"] = round(time.perf_counter() - t_all, 4)
        out[f"{label}_per_call_s"] = [round(t, 4) for t in per_call]
        out[f"_{label}_audio"] = results
    close_shared_pools()
    out["identical"] = all(np.array_equal(a, b) for a, b in zip(out.pop("_fresh_audio"), out.pop("_reused_audio")))
    out["speedup"] = round(out["fresh_total_s"] / out["reused_total_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default=None, help="effect set (default: mda when installed, else portable)")
    ap.add_argument("--effects", default="overdrive,flanger", help="comma-separated effect keys")
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--sr", type=int, default=24_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "pool_reuse.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from dafxlib.effects.mda import mda_available

    effect_set = args.set or ("mda" if mda_available() else "portable")
    rows = [
        run(k, effect_set, args.calls, args.batch, args.seconds, args.sr, args.workers)
        for k in args.effects.split(",")
        if k
    ]
    print(
        f"| set | effect | {args.calls} calls x {args.batch} clips of {args.seconds:g} s | fresh pool per call (s) | "
        "shared pool (s) | speed-up | first shared call (s) | identical |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['effect']} | workers={r['workers']} | {r['fresh_total_s']:.2f} | "
            f"{r['reused_total_s']:.2f} | {r['speedup']:.1f}x | {r['reused_per_call_s'][0]:.2f} | {r['identical']} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

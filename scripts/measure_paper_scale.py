"""Peak memory and disk of notebooks 02/03's data path at the paper profile's STFT and model sizes.

Renders small synthetic example caches (the paper profile's 2.73 s halves at 24 kHz, through
the real effects) into a temporary build folder, then, in a fresh process per case, loads the
VAE and probe data (streaming, as notebooks 02/03 do now, and the old in-memory loader),
trains the paper-sized VAE (n_fft 4096, 2048 bins, latent 32, 32 base channels, batch 32) for
one epoch and runs the probe pass (:func:`dafxlib.betavae.evaluate.evaluate_run`). Each case
reports its peak resident memory (``ru_maxrss``) after each stage and its stage times, at two
numbers of examples per effect (N and 2N), so the growth per example can be read off. It
also measures the bytes per cached example and extrapolates each cache to the paper's counts,
and how much lossless compression (zlib) would save and cost on the cached audio.

    .venv/bin/python scripts/measure_paper_scale.py            # N = 16 per effect, ~6 min on 2 cores
    .venv/bin/python scripts/measure_paper_scale.py --n 16 --set vae.batch_size=16

Writes ``build/measure_paper_scale.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GiB = 1024**3
MiB = 1024**2


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB
    except (OSError, ValueError, IndexError):
        return 0.0


def _overrides(n: int, extra: list[str]) -> dict[str, str]:
    """The paper profile at N examples per effect (the STFT, half length and model sizes stay the paper's)."""
    ov = {
        "effects.effect_set": "portable",  # the memory path does not depend on the effect set
        "effects.workers": "2",
        "vae.n_train_per_effect": str(n),
        "vae.n_val_per_effect": str(max(4, n // 4)),
        "vae.epochs": "1",
        "sweep.n_probe_per_effect": str(max(8, n // 2)),
    }
    for item in extra:
        k, _, v = item.partition("=")
        ov[k.strip()] = v.strip()
    return ov


@dataclass
class Clip:
    id: str
    audio: np.ndarray
    split: str
    sample_rate: int
    kind: str
    meta: dict = field(default_factory=dict)


class SyntheticCorpus:
    """A few harmonic tones with noise and an envelope per split (the paper's clip length)."""

    def __init__(self, sample_rate: int, n_samples: int, per_split: int = 8, seed: int = 0):
        rng = np.random.default_rng(seed)
        t = np.arange(n_samples) / sample_rate
        self.clips = []
        for split in ("train", "val", "test"):
            for i in range(per_split):
                f0 = rng.uniform(80, 400)
                a = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 8))
                env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) ** 2
                a = 0.2 * a * env + 0.01 * rng.standard_normal(n_samples)
                kind = "speech" if i % 2 else "music"
                self.clips.append(Clip(f"{split}{i}", a.astype(np.float32), split, sample_rate, kind))

    def select(self, split=None, kind=None):
        return [c for c in self.clips if (split is None or c.split == split) and (kind is None or c.kind == kind)]


def make_caches(n: int, extra: list[str]) -> dict[str, int]:
    """Render the example caches of N per effect into $DAFX_BUILD_DIR; bytes per cache kind."""
    from dafxlib.betavae import data as vdata
    from dafxlib.config import get_profile

    prof = get_profile("paper", _overrides(n, extra))
    corpus = SyntheticCorpus(prof.data.sample_rate, 2 * prof.half_samples)
    vdata.load_vae_data(prof, corpus=corpus)
    vdata.load_probe_data(prof, corpus=corpus)
    out: dict[str, int] = {}
    pairs_dir = Path(os.environ["DAFX_BUILD_DIR"]) / prof.name / "cache" / "pairs"
    sizes = {"vae": (prof.vae.n_train_per_effect, prof.vae.n_val_per_effect), "probe": (prof.sweep.n_probe_per_effect,)}
    for f in pairs_dir.glob("*.npz"):
        _effect, split, tag, count, _hash = f.name[:-4].split("_")  # pairs._cache_path's name
        if int(count) == (sizes[tag][1] if tag == "vae" and split == "val" else sizes[tag][0]):
            out[f"{tag}_{split}"] = out.get(f"{tag}_{split}", 0) + f.stat().st_size
    return out


def child(mode: str, n: int, extra: list[str]) -> dict:
    """One case in this (fresh) process: load, one VAE epoch, probe pass; peak memory after each."""
    import torch

    from dafxlib.betavae import data as vdata
    from dafxlib.betavae.evaluate import evaluate_run
    from dafxlib.betavae.train import train_vae, vae_config
    from dafxlib.config import get_profile

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    prof = get_profile("paper", _overrides(n, extra))
    rec: dict = {"mode": mode, "n_per_effect": n, "peak_mib": {"start": _peak_mib()}, "seconds": {}}
    rec["rss_mib"] = {"start": _rss_mib()}
    t = time.perf_counter()
    stream = mode == "stream"
    data = vdata.load_vae_data(prof, stream=stream)
    probe_data = vdata.load_probe_data(prof, stream=stream)
    rec["seconds"]["load"], rec["peak_mib"]["load"] = time.perf_counter() - t, _peak_mib()
    rec["rss_mib"]["load"] = _rss_mib()
    rec["n_train"], rec["n_val"] = len(data.train_ds), len(data.val_ds)
    rec["n_probe"] = sum(
        len(e) for g in (probe_data.seen_test, probe_data.unseen_train, probe_data.unseen_test) for e in g.values()
    )
    t = time.perf_counter()
    run = train_vae(prof, data, vae_config(prof), progress=False, accelerator="cpu")
    rec["seconds"]["vae_epoch"], rec["peak_mib"]["vae_epoch"] = time.perf_counter() - t, _peak_mib()
    rec["rss_mib"]["vae_epoch"] = _rss_mib()
    t = time.perf_counter()
    metrics = evaluate_run(run, data, probe_data, seed=prof.seed)
    rec["seconds"]["probe_pass"], rec["peak_mib"]["probe_pass"] = time.perf_counter() - t, _peak_mib()
    rec["rss_mib"]["probe_pass"] = _rss_mib()
    rec["recon"], rec["probe_seen"] = metrics["recon"], metrics["probe_seen"]
    rec["image_shape"] = list(data.spectrogrammer.shape)
    return rec


def compression(files: list[Path], limit: int = 6) -> dict | None:
    """zlib (level 6) on the cached audio of ``files``: size ratio, encode and decode MB/s."""
    raw = packed = 0
    enc = dec = 0.0
    for f in files[:limit]:
        with np.load(f) as z:
            for k in ("x", "y", "y_ref"):
                b = np.ascontiguousarray(z[k]).tobytes()
                t = time.perf_counter()
                c = zlib.compress(b, 6)
                enc += time.perf_counter() - t
                t = time.perf_counter()
                zlib.decompress(c)
                dec += time.perf_counter() - t
                raw, packed = raw + len(b), packed + len(c)
    if not raw:
        return None
    return {
        "files": min(limit, len(files)),
        "ratio": packed / raw,
        "encode_mb_s": raw / enc / 1e6,
        "decode_mb_s": raw / dec / 1e6,
    }


def paper_disk(bytes_per_example: float) -> dict[str, float]:
    """GiB of each cache at the paper profile's own sizes (float32 x, y, y_ref per example)."""
    from dafxlib.config import get_profile
    from dafxlib.effects import ALL, SEEN, UNSEEN

    p = get_profile("paper")
    c, v, s = p.controller, p.vae, p.sweep
    n_corpora = 3  # evaluation cells: user speech, music and unseen (DAPS) speech per effect
    counts = {
        "vae_train": len(SEEN) * v.n_train_per_effect,
        "vae_val": len(SEEN) * v.n_val_per_effect,
        "probe": (len(SEEN) + 2 * len(UNSEEN)) * s.n_probe_per_effect,
        "controller": len(ALL) * (c.n_train_per_effect + c.n_val_per_effect + c.n_test_per_effect),
        "evaluation": len(ALL) * n_corpora * p.eval.n_per_cell,
    }
    out = {k: n * bytes_per_example / GiB for k, n in counts.items()}
    out["corpus"] = (p.data.n_speech + p.data.n_music) * 2 * p.half_samples * 4 / GiB
    out["total"] = sum(out.values())
    out["counts"] = counts  # type: ignore[assignment]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="examples per effect of the smaller size (the other is 2N)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="paper-profile override")
    ap.add_argument("--modes", default="stream,eager", help="stream (notebooks 02/03 now), eager (the old loader)")
    ap.add_argument("--out", default=str(ROOT / "build" / "measure_paper_scale.json"))
    ap.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(a.child[0], int(a.child[1]), a.set)))
        return 0
    sizes = (a.n, 2 * a.n)
    modes = [m for m in a.modes.split(",") if m]
    result: dict = {"sizes": list(sizes), "overrides": _overrides(a.n, a.set), "cases": [], "disk": {}}
    with tempfile.TemporaryDirectory(prefix="dafx_measure_") as tmp:
        env = {**os.environ, "DAFX_BUILD_DIR": tmp}
        os.environ["DAFX_BUILD_DIR"] = tmp
        cache_bytes = {}
        for n in sizes:
            t = time.perf_counter()
            cache_bytes[n] = make_caches(n, a.set)
            print(f"rendered caches for N={n} in {time.perf_counter() - t:.0f} s", flush=True)
        for n in sizes:
            for mode in modes:
                cmd = [sys.executable, __file__, "--child", mode, str(n), *sum((["--set", s] for s in a.set), [])]
                # a build folder of its own per case (a finished VAE run would otherwise be reused),
                # sharing the rendered caches
                case_dir = Path(tmp) / f"case_{mode}_{n}"
                (case_dir / "paper" / "cache").mkdir(parents=True)
                (case_dir / "paper" / "cache" / "pairs").symlink_to(Path(tmp) / "paper" / "cache" / "pairs")
                t = time.perf_counter()
                proc = subprocess.run(
                    cmd, env={**env, "DAFX_BUILD_DIR": str(case_dir)}, capture_output=True, text=True, cwd=ROOT
                )
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not lines:
                    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                    raise SystemExit(f"case {mode} N={n} failed (exit {proc.returncode})")
                rec = json.loads(lines[-1][7:])
                rec["wall_s"] = time.perf_counter() - t
                result["cases"].append(rec)
                print(
                    f"{mode:6s} N={n:4d}: peak {rec['peak_mib']['probe_pass']:.0f} MiB ({rec['wall_s']:.0f} s)",
                    flush=True,
                )
        # bytes per cached example: the slope between the two sizes (fixed overheads cancel)
        vae_train = {n: cache_bytes[n]["vae_train"] for n in sizes}
        from dafxlib.effects import SEEN

        per_example = (vae_train[sizes[1]] - vae_train[sizes[0]]) / (len(SEEN) * (sizes[1] - sizes[0]))
        result["disk"] = {
            "cache_bytes": {str(n): b for n, b in cache_bytes.items()},
            "bytes_per_example": per_example,
            "paper_gib": paper_disk(per_example),
        }
        synth = sorted((Path(tmp) / "paper" / "cache" / "pairs").glob("*_vae_*.npz"))
        result["disk"]["zlib_synthetic"] = compression(synth)
    real = sorted((ROOT / "build" / "smoke" / "cache" / "pairs").glob("*_vae_*.npz"))
    result["disk"]["zlib_smoke_cache"] = compression(real)

    # growth per example of the peak (MiB per example of the VAE training set) between N and 2N
    growth = {}
    for mode in modes:
        cs = {c["n_per_effect"]: c for c in result["cases"] if c["mode"] == mode}
        if len(cs) == 2:
            lo, hi = cs[sizes[0]], cs[sizes[1]]
            stages = {}
            for st in ("load", "vae_epoch", "probe_pass"):
                d = hi["peak_mib"][st] - lo["peak_mib"][st]
                stages[st] = {
                    "ratio": hi["peak_mib"][st] / lo["peak_mib"][st],
                    "mib_per_train_example": d / (hi["n_train"] - lo["n_train"]),
                }
            held = [c["rss_mib"]["load"] - c["rss_mib"]["start"] for c in (lo, hi)]
            stages["held_after_load"] = {
                "ratio": held[1] / held[0] if held[0] > 0 else float("nan"),
                "mib_per_train_example": (held[1] - held[0]) / (hi["n_train"] - lo["n_train"]),
            }
            growth[mode] = stages
    result["growth"] = growth
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from dafxlib import storage

    storage.write_json(out, result)

    print("\npeak resident memory (MiB) after each stage, one fresh process per case; held: resident after")
    print("loading minus before (what the loaded data keeps)")
    print(
        f"{'mode':7s} {'N/effect':>8s} {'train':>6s} {'probe':>6s} {'start':>7s} {'load':>7s} {'epoch':>7s} {'probes':>7s} {'held':>6s}  s(load/epoch/probes)"
    )
    for c in result["cases"]:
        pk, sec = c["peak_mib"], c["seconds"]
        print(
            f"{c['mode']:7s} {c['n_per_effect']:8d} {c['n_train']:6d} {c['n_probe']:6d} {pk['start']:7.0f} {pk['load']:7.0f} "
            f"{pk['vae_epoch']:7.0f} {pk['probe_pass']:7.0f} {c['rss_mib']['load'] - c['rss_mib']['start']:6.0f}  {sec['load']:.1f}/{sec['vae_epoch']:.0f}/{sec['probe_pass']:.0f}"
        )
    for mode, st in growth.items():
        print(
            f"{mode}: peak 2N/N "
            + ", ".join(f"{k} {v['ratio']:.3f} ({v['mib_per_train_example']:+.2f} MiB/ex)" for k, v in st.items())
        )
    d = result["disk"]
    print(f"\ndisk: {d['bytes_per_example'] / MiB:.3f} MiB per cached example (x, y, y_ref float32)")
    print("paper sizes (GiB): " + ", ".join(f"{k} {v:.1f}" for k, v in d["paper_gib"].items() if k != "counts"))
    for k in ("zlib_synthetic", "zlib_smoke_cache"):
        if d[k]:
            z = d[k]
            print(
                f"{k}: size x{z['ratio']:.3f}, encode {z['encode_mb_s']:.0f} MB/s, decode {z['decode_mb_s']:.0f} MB/s"
            )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

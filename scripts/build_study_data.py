"""Rebuild the compact copy of the study's published results shipped in ``dafxlib/study/data/``.

Usage (from the repository root)::

    .venv/bin/python scripts/build_study_data.py /path/to/study_results            # write the copy
    .venv/bin/python scripts/build_study_data.py /path/to/study_results --check    # rebuild in a temp
                                                                                    # folder, compare bytes

``/path/to/study_results`` is the folder ``src/evaluation/data/`` of the study's repository
(kieran-grant/Level5ProjectAudioVAE at commit ecd2bdd6880e1efbc0e3ac4ad4cdde43d8c98a94), with
``label_mapping.pkl`` turned into ``label_mapping.json``. The output is deterministic: the same
inputs give the same bytes (zip and gzip entries carry a fixed time stamp, arrays are written in
sorted order), so ``--check`` proves that the shipped copy was made from those files and nothing
else. What goes where:

- ``metrics.npz``: every per-clip metrics CSV (``metrics/<effect>_<dataset>_5000[_untrained|_baseline].csv``)
  as one array per column, named ``<effect>.<dataset>.<condition>.<column>``; a column is stored as
  float32 when every value of it is exactly a float32 number, else as float64, so every value equals
  what ``pandas.read_csv`` reads from the raw file (checked while building). The combined files
  ``metrics/<dataset>_baseline.csv`` repeat the per-effect baseline files (checked; they differ only in
  how PESQ was printed, by at most a few 1e-16) and are not shipped again.
- ``latent.npz``: ``dafx_latent_extraction/*.npy`` and ``param_extraction/*.npy``, unchanged arrays.
- ``raw/...``: every other file, byte for byte (gzip-compressed when larger than 100 kB).
- ``MANIFEST.json``: size and sha256 of every shipped file and of every source file; its own sha256
  is written into ``dafxlib/study/load.py`` (``MANIFEST_SHA256``) so that the loader can refuse an
  altered copy.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = "kieran-grant/Level5ProjectAudioVAE"
COMMIT = "ecd2bdd6880e1efbc0e3ac4ad4cdde43d8c98a94"
FOLDER = "src/evaluation/data/"
CONDITIONS = {"": "controller", "_untrained": "untrained", "_baseline": "do_nothing"}
METRIC_RE = re.compile(r"^metrics/([a-z]+)_(vctk|daps|musdb18)_5000(_untrained|_baseline)?\.csv$")
COMBINED_BASELINE_RE = re.compile(r"^metrics/(vctk|daps|musdb18)_baseline\.csv$")
GZIP_ABOVE = 100_000
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
OUT_DEFAULT = Path(__file__).resolve().parents[1] / "dafxlib" / "study" / "data"
LOAD_PY = Path(__file__).resolve().parents[1] / "dafxlib" / "study" / "load.py"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic ``.npz`` (fixed time stamps, sorted names, deflate level 9)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            body = io.BytesIO()
            np.lib.format.write_array(body, arr, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, body.getvalue(), compresslevel=9)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no file name, mtime 0."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def compact_column(values: np.ndarray) -> np.ndarray:
    """float32 when that holds every value exactly, else float64 (NaN kept)."""
    v = values.astype(np.float64)
    f32 = v.astype(np.float32)
    same = np.array_equal(f32.astype(np.float64), v, equal_nan=True)
    return f32 if same else v


def build(src: Path, out: Path) -> dict:
    """Write the compact copy of ``src`` into ``out``; return the manifest."""
    src = src.resolve()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not files:
        raise SystemExit(f"no files under {src}: pass the study's results folder (its README.md lists them)")
    out.mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict] = {}
    shipped: dict[str, bytes] = {}
    metrics: dict[str, np.ndarray] = {}
    latent: dict[str, np.ndarray] = {}
    combined_baselines: list[tuple[str, str]] = []
    for p in files:
        rel = p.relative_to(src).as_posix()
        data = p.read_bytes()
        entry = {"bytes": len(data), "sha256": sha256(data)}
        m = METRIC_RE.match(rel)
        if m:
            effect, dataset, suffix = m.group(1), m.group(2), m.group(3) or ""
            df = pd.read_csv(io.BytesIO(data), index_col=0)
            if not np.array_equal(df.index.to_numpy(), np.arange(len(df))):
                raise SystemExit(f"{rel}: rows are not numbered 0..n-1; the compact form would lose the index")
            for col in df.columns:
                key = f"{effect}.{dataset}.{CONDITIONS[suffix]}.{col}"
                arr = compact_column(df[col].to_numpy())
                if not np.array_equal(arr.astype(np.float64), df[col].to_numpy(np.float64), equal_nan=True):
                    raise SystemExit(f"{rel}: column {col} does not survive the compact form")
                metrics[key] = arr
            entry["shipped_in"] = "metrics.npz"
        elif COMBINED_BASELINE_RE.match(rel):
            combined_baselines.append((rel, COMBINED_BASELINE_RE.match(rel).group(1)))
            entry["shipped_in"] = "metrics.npz (the same values as the per-effect _baseline files)"
        elif p.suffix == ".npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            key = p.stem if rel.startswith("dafx_latent_extraction/") else f"{p.parent.name}.{p.stem}"
            latent[key] = arr
            entry["shipped_in"] = "latent.npz"
        elif rel == "LICENSE":
            entry["shipped_in"] = "LICENSE"
        else:
            target = f"raw/{rel}" + (".gz" if len(data) > GZIP_ABOVE else "")
            shipped[target] = gzip_bytes(data) if target.endswith(".gz") else data
            entry["shipped_in"] = target
        sources[rel] = entry
    for rel, dataset in combined_baselines:
        df = pd.read_csv(src / rel, index_col=0)
        for effect, sub in df.groupby("dafx", sort=False):
            for col, short in (("pesq", "PESQ"), ("mrstft", "MRSTFT")):
                mine = metrics.get(f"{effect}.{dataset}.do_nothing.{short}")
                if mine is None or len(mine) != len(sub):
                    raise SystemExit(f"{rel}: {effect} has no matching per-effect baseline file")
                diff = np.nanmax(np.abs(mine.astype(np.float64) - sub[col].to_numpy(np.float64)))
                if not diff <= 1e-12:
                    raise SystemExit(f"{rel}: {effect} {col} differs from the per-effect file by {diff}")
    if "LICENSE" not in sources:
        raise SystemExit("the study's LICENSE file is missing: it must travel with any copy")
    shipped["metrics.npz"] = npz_bytes(metrics)
    shipped["latent.npz"] = npz_bytes(latent)
    shipped["LICENSE"] = (src / "LICENSE").read_bytes()
    shipped["PROVENANCE.md"] = provenance_text(sources).encode()
    for name, data in sorted(shipped.items()):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = {
        "source": {
            "repository": REPO,
            "commit": COMMIT,
            "folder": FOLDER,
            "licence": "MIT (see LICENSE)",
            "edits": "label_mapping.pkl converted to label_mapping.json before this build",
        },
        "builder": "scripts/build_study_data.py",
        "files": {name: {"bytes": len(data), "sha256": sha256(data)} for name, data in sorted(shipped.items())},
        "sources": sources,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (out / "MANIFEST.json").write_text(text)
    manifest["_sha256"] = sha256(text.encode())
    return manifest


def provenance_text(sources: dict[str, dict]) -> str:
    total = sum(e["bytes"] for e in sources.values())
    return (
        "# Provenance of the study's published results\n\n"
        f"Source: https://github.com/{REPO} at commit {COMMIT}, folder `{FOLDER}`\n"
        "(the result data the study published with its code). Licence: MIT, see `LICENSE` in this\n"
        "folder; the notice must travel with any copy.\n\n"
        f"Made by `scripts/build_study_data.py` from {len(sources)} files ({total:,} bytes).\n"
        "Only change before the build: `label_mapping.pkl` was turned into `label_mapping.json`.\n"
        "Per-clip metric CSVs are held as arrays in `metrics.npz` (values identical to what pandas\n"
        "reads from the CSVs); `.npy` arrays are in `latent.npz`; every other file is in `raw/`,\n"
        "byte for byte (gzip-compressed when larger than 100 kB). `MANIFEST.json` gives the sha256\n"
        "of every shipped file and every source file.\n"
    )


def set_manifest_hash(digest: str) -> None:
    text = LOAD_PY.read_text()
    new, n = re.subn(r'^MANIFEST_SHA256 = "[0-9a-f]*"$', f'MANIFEST_SHA256 = "{digest}"', text, flags=re.M)
    if n != 1:
        raise SystemExit(f'{LOAD_PY}: no line MANIFEST_SHA256 = "..." to update')
    if new != text:
        LOAD_PY.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("source", type=Path, help="the study's results folder (src/evaluation/data of its repository)")
    ap.add_argument("--out", type=Path, default=OUT_DEFAULT, help="output folder (default: dafxlib/study/data)")
    ap.add_argument(
        "--check", action="store_true", help="rebuild into a temporary folder and compare with --out byte for byte"
    )
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            man = build(args.source, Path(tmp))
            bad = []
            for name in [*man["files"], "MANIFEST.json"]:
                a, b = Path(tmp) / name, args.out / name
                if not b.is_file() or a.read_bytes() != b.read_bytes():
                    bad.append(name)
            if bad:
                print("DIFFERENT from the rebuild:", *bad, sep="\n  ")
                return 1
            expected = re.search(r'^MANIFEST_SHA256 = "([0-9a-f]*)"$', LOAD_PY.read_text(), flags=re.M)
            if expected is None or expected.group(1) != man["_sha256"]:
                print(f"{LOAD_PY}: MANIFEST_SHA256 is not the rebuilt manifest's sha256 {man['_sha256']}")
                return 1
            print(f"identical: {len(man['files']) + 1} files; MANIFEST.json sha256 {man['_sha256']}")
            return 0
    man = build(args.source, args.out)
    set_manifest_hash(man["_sha256"])
    size = sum(f["bytes"] for f in man["files"].values())
    print(f"wrote {len(man['files']) + 1} files ({size:,} bytes) to {args.out}; MANIFEST.json sha256 {man['_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

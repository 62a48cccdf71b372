"""Typed, checksum-verified accessors for the study's published results shipped in ``data/``.

Every file is checked against ``data/MANIFEST.json`` (sha256) when it is read, and the manifest
itself against :data:`MANIFEST_SHA256`; a missing or altered file raises :class:`StudyDataError`
saying which file and how to restore it (``scripts/build_study_data.py``). Nothing here reads
outside the package.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DafxError

#: where the compact copy lives inside the package
DATA_DIR = Path(__file__).resolve().parent / "data"
#: sha256 of data/MANIFEST.json, written by scripts/build_study_data.py
MANIFEST_SHA256 = "bc27485e38ff4756066da1854cda663280bc546bb95cb7e1a1af654c254ad74a"

#: the study's nine effects in this project's order (seen first)
EFFECTS: tuple[str, ...] = (
    "overdrive",
    "delay",
    "ringmod",
    "dynamics",
    "combo",
    "ambience",
    "flanger",
    "multiband",
    "leslie",
)
SEEN_EFFECTS: tuple[str, ...] = ("overdrive", "delay", "ringmod", "dynamics")
DATASETS: tuple[str, ...] = ("vctk", "daps", "musdb18")
DATASET_LABELS = {"vctk": "VCTK", "daps": "DAPS", "musdb18": "MUSDB18"}
#: controller = trained encoder + controller; untrained = random-weight encoder; do_nothing = y_hat is x
CONDITIONS: tuple[str, ...] = ("controller", "untrained", "do_nothing")
METRICS: tuple[str, ...] = ("pesq", "mrstft", "msd", "sce", "cfe", "lufs", "rms")
#: the six effects of the latent-extraction data, in label order
LATENT_EFFECTS: tuple[str, ...] = ("ambience", "combo", "delay", "dynamics", "overdrive", "ringmod")
CONTROLLER_EFFECTS: tuple[str, ...] = ("overdrive", "multiband")
REBUILD_HINT = (
    "restore it from the repository (git checkout dafxlib/study/data) or rebuild it with "
    "`python scripts/build_study_data.py <study_results folder>`"
)


class StudyDataError(DafxError, ValueError):
    """A shipped file of the study's data is missing, altered or asked for with an unknown key."""


def _check_dir(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else DATA_DIR


@functools.lru_cache(maxsize=8)
def _manifest_cached(path: str, mtime_ns: int, size: int) -> dict:
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MANIFEST_SHA256:
        raise StudyDataError(
            f"{path} has been altered (sha256 {digest[:16]}..., expected {MANIFEST_SHA256[:16]}...): {REBUILD_HINT}"
        )
    return json.loads(raw)


def manifest(data_dir: Path | None = None) -> dict:
    """The verified manifest: source repository, commit, and sha256 of every shipped file."""
    path = _check_dir(data_dir) / "MANIFEST.json"
    if not path.is_file():
        raise StudyDataError(f"the study's data manifest {path} is missing: {REBUILD_HINT}")
    st = path.stat()
    return _manifest_cached(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _verified_cached(path: str, mtime_ns: int, size: int, expected: str) -> bytes:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise StudyDataError(
            f"shipped study file {path} has been altered (sha256 {digest[:16]}..., "
            f"MANIFEST.json says {expected[:16]}...); refusing to use it: {REBUILD_HINT}"
        )
    return data


def read_bytes(name: str, data_dir: Path | None = None) -> bytes:
    """The bytes of one shipped file (name relative to ``data/``), after checking its sha256."""
    d = _check_dir(data_dir)
    files = manifest(d)["files"]
    if name not in files:
        raise StudyDataError(f"{name!r} is not a file of the study's data; known: {', '.join(sorted(files))}")
    path = d / name
    if not path.is_file():
        raise StudyDataError(f"shipped study file {path} is missing: {REBUILD_HINT}")
    st = path.stat()
    return _verified_cached(str(path), st.st_mtime_ns, st.st_size, files[name]["sha256"])


def verify_all(data_dir: Path | None = None) -> int:
    """Check every shipped file; return how many were checked (raises on the first bad one)."""
    files = manifest(data_dir)["files"]
    for name in files:
        read_bytes(name, data_dir)
    return len(files)


def _raw_csv(rel: str, data_dir: Path | None = None, **kw) -> pd.DataFrame:
    """A raw CSV of the study (``rel`` as in its folder), gzip-transparent."""
    files = manifest(data_dir)["files"]
    name = f"raw/{rel}"
    if name not in files and f"{name}.gz" in files:
        data = gzip.decompress(read_bytes(f"{name}.gz", data_dir))
    else:
        data = read_bytes(name, data_dir)
    return pd.read_csv(io.BytesIO(data), **kw)


def _npz(name: str, data_dir: Path | None) -> dict[str, np.ndarray]:
    path = _check_dir(data_dir) / name
    st = path.stat() if path.is_file() else None
    return _npz_cached(name, str(_check_dir(data_dir)), st.st_mtime_ns if st else 0, st.st_size if st else 0)


@functools.lru_cache(maxsize=4)
def _npz_cached(name: str, data_dir: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    data = read_bytes(name, Path(data_dir))
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _check(value: str | None, allowed: tuple[str, ...], what: str) -> None:
    if value is not None and value not in allowed:
        raise StudyDataError(f"unknown {what} {value!r}; the study's data has {', '.join(allowed)}")


def metrics(
    effect: str | None = None, dataset: str | None = None, condition: str | None = None, *, data_dir: Path | None = None
) -> pd.DataFrame:
    """Per-clip metrics, long form: effect, dataset, condition, clip, then ``METRICS`` (lower case).

    The do-nothing rows have only PESQ and MR-STFT (the rest NaN); their clips are other clips than the
    controller's (unpaired) and full-length. PESQ is NaN where the study's PESQ failed.
    """
    _check(effect, EFFECTS, "effect")
    _check(dataset, DATASETS, "dataset")
    _check(condition, CONDITIONS, "condition")
    arrays = _npz("metrics.npz", data_dir)
    frames = []
    for e in (effect,) if effect else EFFECTS:
        for d in (dataset,) if dataset else DATASETS:
            for c in (condition,) if condition else CONDITIONS:
                cols = {m: arrays.get(f"{e}.{d}.{c}.{m.upper()}") for m in METRICS}
                n = next((len(v) for v in cols.values() if v is not None), 0)
                if n == 0:
                    raise StudyDataError(f"metrics.npz has no rows for {e} x {d} x {c}: {REBUILD_HINT}")
                df = pd.DataFrame(
                    {m: (v.astype(np.float64) if v is not None else np.full(n, np.nan)) for m, v in cols.items()}
                )
                df.insert(0, "clip", np.arange(n))
                df.insert(0, "condition", c)
                df.insert(0, "dataset", d)
                df.insert(0, "effect", e)
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


def summary_table(metric: str, *, data_dir: Path | None = None) -> pd.DataFrame:
    """The study's own summary table (``mrstft_combined.csv`` / ``pesq_combined.csv``) as published:
    index effect, columns (dataset, condition) with condition controller (trained) or untrained."""
    _check(metric, ("mrstft", "pesq"), "summary table")
    raw = _raw_csv(f"metrics/{metric}_combined.csv", data_dir, header=None, dtype=str)
    datasets = [s.lower() for s in raw.iloc[0, 1:]]
    encoders = ["controller" if s == "Trained" else "untrained" for s in raw.iloc[1, 1:]]
    body = raw.iloc[3:]
    out = pd.DataFrame(
        body.iloc[:, 1:].to_numpy(float),
        index=pd.Index(body.iloc[:, 0].to_numpy(), name="effect"),
        columns=pd.MultiIndex.from_arrays([datasets, encoders], names=["dataset", "condition"]),
    )
    return out


def summary_table_text(metric: str, *, data_dir: Path | None = None) -> pd.DataFrame:
    """The same table as printed (strings), to compare at the printed precision."""
    raw = _raw_csv(f"metrics/{metric}_combined.csv", data_dir, header=None, dtype=str)
    body = raw.iloc[3:]
    cols = pd.MultiIndex.from_arrays(
        [
            [s.lower() for s in raw.iloc[0, 1:]],
            ["controller" if s == "Trained" else "untrained" for s in raw.iloc[1, 1:]],
        ],
        names=["dataset", "condition"],
    )
    return pd.DataFrame(
        body.iloc[:, 1:].to_numpy(), index=pd.Index(body.iloc[:, 0].to_numpy(), name="effect"), columns=cols
    )


def mushra_csv_bytes(*, data_dir: Path | None = None) -> bytes:
    """The study's webMUSHRA results file, unchanged."""
    return read_bytes("raw/mushra.csv", data_dir)


def mushra_ratings(*, data_dir: Path | None = None) -> pd.DataFrame:
    """The study's MUSHRA ratings (training trial dropped), with ``effect`` and ``example`` parsed."""
    from .mushra import read_results

    return read_results(mushra_csv_bytes(data_dir=data_dir))


def mushra_settings(effect: str, *, data_dir: Path | None = None) -> pd.DataFrame:
    """The effect settings of each MUSHRA example (raw and normalised ``p_*``)."""
    _check(effect, ("ambience", "delay", "flanger", "multiband", "overdrive"), "MUSHRA effect")
    return _raw_csv(f"mushra_settings/{effect}.csv", data_dir, index_col=0)


@dataclass(frozen=True)
class ExpertWalkthrough:
    """The expert walk-through of the latent controller: three questionnaires (scores 1-10)."""

    final: pd.DataFrame  # overall questions per effect
    navigation: pd.DataFrame  # test 1: move from a to b along an axis
    tasks: pd.DataFrame  # test 2: prompts, attempts, score


def expert(*, data_dir: Path | None = None) -> ExpertWalkthrough:
    return ExpertWalkthrough(
        final=_raw_csv("latent_controller/expert_evaluation_final.csv", data_dir),
        navigation=_raw_csv("latent_controller/expert_evaluation_test1.csv", data_dir),
        tasks=_raw_csv("latent_controller/expert_evaluation_test2.csv", data_dir),
    )


def latent_controller(effect: str, *, data_dir: Path | None = None) -> pd.DataFrame:
    """1,000 points of the study's latent controller: true ``p_*`` and predicted ``p_hat_*`` settings,
    brightness/depth descriptors, 2-D UMAP points ``x_emb_n=K``/``y_emb_n=K`` and colours."""
    _check(effect, CONTROLLER_EFFECTS, "latent-controller effect")
    return _raw_csv(f"latent_controller/{effect}.csv", data_dir, index_col=0)


@dataclass(frozen=True)
class LatentFeatures:
    """Per-clip features of the six latent-extraction effects, with labels.

    The study's README names ``emb_data.npy`` (the VAE embeddings) but the published folder holds only
    ``pca_features.npy`` (128 PCA features of the same 6,000 clips): ``kind`` says which one this is.
    """

    features: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n,) int
    label_names: tuple[str, ...]
    kind: str


def latent_features(*, data_dir: Path | None = None) -> LatentFeatures:
    arrays = _npz("latent.npz", data_dir)
    mapping = json.loads(read_bytes("raw/dafx_latent_extraction/label_mapping.json", data_dir))
    names = tuple(k.replace("mda ", "").lower() for k, _ in sorted(mapping.items(), key=lambda kv: kv[1]))
    if "emb_data" in arrays:
        return LatentFeatures(arrays["emb_data"], arrays["labels"].astype(int), names, "vae")
    return LatentFeatures(arrays["pca_features"], arrays["labels"].astype(int), names, "pca")


@dataclass(frozen=True)
class Projection:
    """The study's 2-D projection of one effect's latents (10,000 points) with normalised settings."""

    effect: str
    points: np.ndarray  # (n, 2)
    settings: np.ndarray  # (n, n_params) in [0, 1]
    param_names: tuple[str, ...]


def projection(effect: str, *, data_dir: Path | None = None) -> Projection:
    _check(effect, LATENT_EFFECTS, "projection effect")
    arrays = _npz("latent.npz", data_dir)
    names = tuple(_raw_csv(f"param_mmi/{effect}.csv", data_dir, index_col=0).index.astype(str))
    settings = arrays[f"param_extraction.{effect}_settings"]
    if settings.shape[1] != len(names):
        raise StudyDataError(f"{effect}: {settings.shape[1]} settings columns but {len(names)} parameter names")
    return Projection(effect, arrays[f"param_extraction.{effect}_projection"], settings, names)


def classifier_metrics(*, data_dir: Path | None = None) -> pd.DataFrame:
    """The study's published effect classification: index effect (lower case), columns
    ``vae_acc``, ``vae_f1`` (its model's latent) and ``pca_acc``, ``pca_f1``."""
    raw = _raw_csv("embedding_classifier/classifier_metrics.csv", data_dir, header=None, dtype=str)
    body = raw.iloc[3:]
    return pd.DataFrame(
        body.iloc[:, 1:].to_numpy(float),
        columns=["vae_acc", "vae_f1", "pca_acc", "pca_f1"],
        index=pd.Index([s.lower() for s in body.iloc[:, 0]], name="effect"),
    )


def mutual_information(*, data_dir: Path | None = None) -> pd.DataFrame:
    """The study's latent-parameter mutual information ranking (``param_mmi_full.csv``), long form:
    effect, param, mmi (the max over latent dimensions)."""
    raw = _raw_csv("param_mmi_full.csv", data_dir, header=None, dtype=str)
    effects, rows = raw.iloc[0, 1:].tolist(), []
    for _, r in raw.iloc[2:].iterrows():
        if str(r.iloc[1]) == "mean":
            continue
        for j in range(0, len(effects), 2):
            p, v = r.iloc[1 + j], r.iloc[2 + j]
            if isinstance(p, str) and p:
                rows.append({"effect": effects[j].lower(), "param": p, "mmi": float(v)})
    return pd.DataFrame(rows)


def provenance(*, data_dir: Path | None = None) -> dict[str, str]:
    """Source repository, commit, folder and licence of the shipped data."""
    return dict(manifest(data_dir)["source"])


def licence_text(*, data_dir: Path | None = None) -> str:
    return read_bytes("LICENSE", data_dir).decode()

"""Clean clips for every later stage: :func:`build_corpus` -> :class:`Corpus` of :class:`Clip`.

A clip is mono float32, exactly ``2 * profile.half_samples`` long: half A then half B of
the same recording (an example is x = clean A, y = effected A, y_ref = effected B).

- ``data.corpus == "embedded"`` (smoke, default): SYNTHETIC speech from the espeak-ng
  engine (many accents, voices, rates and pitches reading public-domain Harvard sentences)
  and SYNTHETIC music from a numpy instrument synthesiser (:mod:`.synth`). Clips say so:
  ``Clip.synthetic`` is True and :meth:`Corpus.summary` carries ``synthetic: True``.
- ``data.corpus == "paper"``: windows of VCTK 0.92 (seen speech), DAPS clean (unseen
  speech, test only) and MUSDB18-HQ mixtures (music) (:mod:`.real`).
- ``data.user_folder`` (any profile): one clip per usable file, role ``"user"``, test only.

Splits are assigned per source (sentence, speaker, track, file) before any window is cut,
so no source is in two splits. Every clip is loudness-normalised (ITU-R BS.1770) to
``data.target_lufs`` plus a seeded uniform offset within ``+-data.lufs_spread`` dB (peaks
capped at -1 dBFS): levels are comparable across speech and music but not identical, so
level-dependent effects (dynamics, overdrive) meet a realistic range of input levels.

The result is cached under ``build/<profile>/cache/corpus/<key>/`` (atomic npz + json),
keyed by a hash of the data settings, the seed, :data:`CORPUS_VERSION` and, with a user
folder, the folder's contents (file names, sizes, modification times); ``rebuild=True``
(``run_all.sh --rebuild``) ignores the cache. A user folder that gives no usable clip raises
:class:`~dafxlib.errors.DatasetError`; the skipped sources are written to
``artifacts/corpus_skipped.json`` for the runner's terminal summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio as A
from .. import paths, storage
from ..config import Profile, get_profile
from ..errors import AudioError, CorruptFileError, DatasetError
from ..seeding import stable_hash

log = logging.getLogger(__name__)

#: bump when the corpus generation changes so stale caches are not reused
CORPUS_VERSION = 2
KINDS = ("speech", "music")
SPLITS = ("train", "val", "test")
#: roles: which evaluation set a clip belongs to
ROLES = ("seen_speech", "unseen_speech", "music", "user")
SYNTHETIC_NOTE = (
    "SYNTHETIC corpus: speech from the espeak-ng formant synthesiser and music "
    "from a numpy instrument synthesiser; not real recordings"
)


@dataclass(eq=False)
class Clip:
    """One clean clip: half A then half B of one recording."""

    id: str
    kind: str  # "speech" | "music"
    source: str  # the file/recording/sentence id that splits respect
    audio: np.ndarray  # mono float32, exactly 2 * half_samples
    sample_rate: int
    split: str  # "train" | "val" | "test"
    synthetic: bool
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AudioError(f"clip {self.id}: kind {self.kind!r} must be one of {KINDS}")
        if self.split not in SPLITS:
            raise AudioError(f"clip {self.id}: split {self.split!r} must be one of {SPLITS}")
        a = np.asarray(self.audio)
        if a.ndim != 1 or a.dtype != np.float32 or len(a) % 2:
            raise AudioError(f"clip {self.id}: audio must be mono float32 of even length, got {a.dtype} {a.shape}")

    @property
    def half_samples(self) -> int:
        return len(self.audio) // 2

    @property
    def half_a(self) -> np.ndarray:
        return self.audio[: self.half_samples]

    @property
    def half_b(self) -> np.ndarray:
        return self.audio[self.half_samples :]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def role(self) -> str:
        return self.meta.get("role", "music" if self.kind == "music" else "seen_speech")

    @property
    def dataset(self) -> str:
        return self.meta.get("dataset", "unknown")


@dataclass(eq=False)
class Corpus:
    """All clips of a profile plus how they were made."""

    clips: list[Clip]
    profile: str
    sample_rate: int
    half_samples: int
    synthetic: bool
    key: str = ""
    build_seconds: float = 0.0
    load_seconds: float = 0.0
    from_cache: bool = False
    cache_dir: Path | None = None
    #: sources or files left out while building, with a one-line reason each
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __getitem__(self, i: int) -> Clip:
        return self.clips[i]

    def get(self, clip_id: str) -> Clip:
        for c in self.clips:
            if c.id == clip_id:
                return c
        raise KeyError(f"no clip {clip_id!r} in the {self.profile} corpus")

    def select(
        self, split: str | None = None, kind: str | None = None, *, role: str | None = None, dataset: str | None = None
    ) -> list[Clip]:
        """Clips matching every given filter (split, kind, role, dataset)."""
        for name, value, valid in (("split", split, SPLITS), ("kind", kind, KINDS), ("role", role, ROLES)):
            if value is not None and value not in valid:
                raise AudioError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        return [
            c
            for c in self.clips
            if (split is None or c.split == split)
            and (kind is None or c.kind == kind)
            and (role is None or c.role == role)
            and (dataset is None or c.dataset == dataset)
        ]

    def stack(self, clips: list[Clip] | None = None) -> np.ndarray:
        """``(n, 2 * half_samples)`` float32 array of the given clips (default: all)."""
        clips = self.clips if clips is None else clips
        if not clips:
            return np.zeros((0, 2 * self.half_samples), np.float32)
        return np.stack([c.audio for c in clips]).astype(np.float32, copy=False)

    def skip_reasons(self) -> dict[str, int]:
        """How many sources were skipped for each kind of reason ("silent", "too short", ...)."""
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            kind = reason.split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def disk_bytes(self) -> int:
        if self.cache_dir is None or not Path(self.cache_dir).exists():
            return 0
        return sum(p.stat().st_size for p in Path(self.cache_dir).iterdir() if p.is_file())

    def summary(self) -> dict[str, Any]:
        """Counts, durations and levels; ``synthetic`` and ``description`` say what the data is."""
        clip_s = 2 * self.half_samples / self.sample_rate
        by_split = {s: sum(c.split == s for c in self.clips) for s in SPLITS}
        by_kind_split = {k: {s: sum(c.kind == k and c.split == s for c in self.clips) for s in SPLITS} for k in KINDS}
        roles = {r: sum(c.role == r for c in self.clips) for r in ROLES}
        datasets: dict[str, int] = {}
        for c in self.clips:
            datasets[c.dataset] = datasets.get(c.dataset, 0) + 1
        lufs = {}
        for k in KINDS:
            vals = [c.meta["lufs"] for c in self.clips if c.kind == k and np.isfinite(c.meta.get("lufs", np.nan))]
            lufs[k] = float(np.mean(vals)) if vals else float("nan")
        if self.synthetic:
            desc = SYNTHETIC_NOTE
        else:
            desc = "real recordings: " + ", ".join(sorted(datasets))
        return {
            "profile": self.profile,
            "synthetic": self.synthetic,
            "description": desc,
            "sample_rate": self.sample_rate,
            "half_seconds": self.half_samples / self.sample_rate,
            "clip_seconds": clip_s,
            "n_clips": len(self.clips),
            "n_speech": sum(c.kind == "speech" for c in self.clips),
            "n_music": sum(c.kind == "music" for c in self.clips),
            "by_split": by_split,
            "by_kind_split": by_kind_split,
            "by_role": roles,
            "by_dataset": datasets,
            "total_seconds": len(self.clips) * clip_s,
            "mean_lufs": lufs,
            "n_skipped": len(self.skipped),
            "build_seconds": self.build_seconds,
            "from_cache": self.from_cache,
            "cache_key": self.key,
            "disk_bytes": self.disk_bytes,
        }

    def describe(self) -> str:
        s = self.summary()
        lines = [
            f"{s['description']}",
            f"{s['n_clips']} clips of {s['clip_seconds']:.2f} s at {s['sample_rate']} Hz "
            f"({s['n_speech']} speech, {s['n_music']} music; {s['total_seconds'] / 60:.1f} min)",
        ]
        for k in KINDS:
            b = s["by_kind_split"][k]
            lines.append(
                f"  {k:6s} train {b['train']:5d}  val {b['val']:5d}  test {b['test']:5d}   "
                f"mean {s['mean_lufs'][k]:.1f} LUFS"
            )
        lines.append("  roles: " + ", ".join(f"{r} {n}" for r, n in s["by_role"].items() if n))
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} sources (see Corpus.skipped)")
        lines.append(f"  built in {self.build_seconds:.1f} s" + (" (loaded from cache)" if self.from_cache else ""))
        return "\n".join(lines)


# --------------------------------------------------------------------------- building
def corpus_key(profile: Profile) -> str:
    d: dict[str, Any] = {"data": asdict(profile.data), "seed": profile.seed, "version": CORPUS_VERSION}
    if profile.data.user_folder:
        from ..datasets import folder_fingerprint

        # keyed on the folder's contents (names, sizes, modification times), not only its path:
        # adding, fixing or removing a file builds the corpus again
        d["user_files"] = folder_fingerprint(profile.data.user_folder)
    if profile.data.corpus == "embedded":
        try:
            from importlib.metadata import version

            d["espeakng_loader"] = version("espeakng-loader")
        except Exception:  # pragma: no cover
            pass
    return stable_hash(d)


def build_corpus(profile: Profile | str, *, rebuild: bool = False, workers: int | None = None) -> Corpus:
    """Build (or load from cache) the profile's corpus. Deterministic for ``profile.seed``."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    data = profile.data
    if data.corpus not in ("embedded", "paper"):
        from ..errors import ConfigError

        raise ConfigError(f"data.corpus must be 'embedded' or 'paper', got {data.corpus!r}")
    if data.user_kind not in KINDS:
        from ..errors import ConfigError

        raise ConfigError(f"data.user_kind must be 'speech' or 'music', got {data.user_kind!r}")
    key = corpus_key(profile)
    cdir = paths.cache_dir(profile.name, "corpus", key)
    workers = workers or max(1, int(profile.effects.workers))
    with storage.locked(cdir / "build"):
        if not rebuild:
            t0 = time.perf_counter()
            cached = _load(cdir, profile.name)
            if cached is not None:
                cached.load_seconds = time.perf_counter() - t0
                write_skip_summary(cached)
                return cached
        t0 = time.perf_counter()
        clips, skipped = _make_clips(profile, workers)
        build_s = time.perf_counter() - t0
        corpus = Corpus(
            clips=clips,
            profile=profile.name,
            sample_rate=data.sample_rate,
            half_samples=profile.half_samples,
            synthetic=data.corpus == "embedded",
            key=key,
            build_seconds=build_s,
            cache_dir=cdir,
            skipped=skipped,
        )
        _save(corpus, cdir)
        corpus.build_seconds = build_s
    log.info("corpus %s: %d clips built in %.1f s", key, len(clips), build_s)
    write_skip_summary(corpus)
    return corpus


SKIPS_ARTIFACT = "corpus_skipped.json"


def write_skip_summary(corpus: Corpus) -> Path:
    """Write the sources the corpus left out (``artifacts/corpus_skipped.json``): the runner
    prints it on the terminal after notebook 01, notebook 01 records the counts as numbers."""
    path = paths.artifact_path(corpus.profile, SKIPS_ARTIFACT)
    storage.write_json(
        path,
        {
            "n_skipped": len(corpus.skipped),
            "by_reason": corpus.skip_reasons(),
            "n_user_clips": sum(c.role == "user" for c in corpus.clips),
            "skipped": [list(s) for s in corpus.skipped],
        },
    )
    return path


def _make_clips(profile: Profile, workers: int) -> tuple[list[Clip], list[tuple[str, str]]]:
    data = profile.data
    sr, L, seed = data.sample_rate, 2 * profile.half_samples, profile.seed
    raw: list[tuple[dict, np.ndarray, dict]] = []  # (plan, audio, meta)
    skipped: list[tuple[str, str]] = []
    user_items: list[tuple[dict, np.ndarray, dict]] = []
    user_skipped: list[tuple[str, str]] = []
    if data.user_folder:  # read first: a folder with no usable file fails before the long build
        from . import real

        user_items, user_skipped = real.build_user(profile)
        if not user_items:
            _no_usable_user_file(data.user_folder, user_skipped, L / sr)
    if data.corpus == "embedded":
        from . import embedded as E

        speech_plans = E.plan_speech(data.n_speech, seed, data.split, L / sr, data.unseen_speech_fraction)
        music_plans = E.plan_music(data.n_music, seed, data.split)
        # speech runs in worker processes; render the music here meanwhile
        with ThreadPoolExecutor(1) as pool:
            speech_job = pool.submit(E.build_speech, speech_plans, sr, L, seed, workers)
            music = E.build_music(music_plans, sr, L, seed)
            speech = speech_job.result()
        raw += [(p, a, m) for p, (a, m) in zip(speech_plans, speech)]
        raw += [({**p, "kind": "music"}, a, m) for p, (a, m) in zip(music_plans, music)]
        for p, _, _ in raw:
            p.setdefault("kind", "speech")
        synthetic = True
    else:
        from . import real

        items, skipped = real.build_paper(profile, workers=workers)
        raw += items
        synthetic = False
    raw += user_items  # after the built-in clips (level targets are drawn in this order)
    skipped += user_skipped
    from .embedded import level_targets

    targets = level_targets(len(raw), seed, data.target_lufs, data.lufs_spread)
    clips = []
    for (plan, a, meta), target in zip(raw, targets):
        a = A.fade(A.fit_length(np.asarray(a, np.float32), L), sr, 0.005, 0.005)
        lufs = A.loudness(a, sr)
        if not np.isfinite(lufs) or A.is_silent(a):
            skipped.append((plan["source"], "silent after windowing"))
            continue
        # gain to the target; lowered if the peak would pass -1 dBFS (then quieter than target)
        gain_db = min(float(target) - lufs, -1.0 - 20.0 * np.log10(max(A.peak(a), 1e-9)))
        a = (a * A.db_to_gain(gain_db)).astype(np.float32)
        meta = dict(meta)
        meta["target_lufs"] = round(float(target), 2)
        meta["lufs"] = round(lufs + gain_db, 2)  # loudness scales exactly with gain
        meta["rms_db"] = round(float(A.rms_db(a)), 2)
        is_user = plan.get("role") == "user"
        clips.append(
            Clip(
                id=plan["id"],
                kind=plan["kind"],
                source=plan["source"],
                audio=a,
                sample_rate=sr,
                split=plan["split"],
                synthetic=synthetic and not is_user,
                meta=meta,
            )
        )
    if data.user_folder and not any(c.meta.get("role") == "user" for c in clips):
        _no_usable_user_file(
            data.user_folder, [s for s in skipped if s[0].startswith("user/") or data.user_folder in s[0]], L / sr
        )
    return clips, skipped


def _no_usable_user_file(folder: str, skipped: list[tuple[str, str]], seconds: float) -> None:
    """A user folder that gives no clip is an error, never a silent fallback to the built-in corpus."""
    reasons: dict[str, int] = {}
    for _, r in skipped:
        k = r.split(":")[0]
        reasons[k] = reasons.get(k, 0) + 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(reasons.items())) or "no audio files found"
    shown = "; ".join(f"{Path(src).name}: {r}" for src, r in skipped[:3])
    raise DatasetError(
        f"data.user_folder {folder}: no usable audio file ({detail}){' - ' + shown if shown else ''}. "
        f"Fix or replace the files (wav/flac/ogg/mp3, at least {seconds:g} s long, not silent), "
        "or leave data.user_folder out to run on the built-in corpus only"
    )


# --------------------------------------------------------------------------- cache
def _save(corpus: Corpus, cdir: Path) -> None:
    audio = corpus.stack()
    storage.save_npz(cdir / "clips.npz", audio=audio)
    index = {
        "version": CORPUS_VERSION,
        "key": corpus.key,
        "profile": corpus.profile,
        "sample_rate": corpus.sample_rate,
        "half_samples": corpus.half_samples,
        "synthetic": corpus.synthetic,
        "build_seconds": corpus.build_seconds,
        "skipped": corpus.skipped,
        "clips": [
            {"id": c.id, "kind": c.kind, "source": c.source, "split": c.split, "synthetic": c.synthetic, "meta": c.meta}
            for c in corpus.clips
        ],
    }
    storage.write_json(cdir / "index.json", index)  # written last: its presence marks a complete cache


def _load(cdir: Path, profile_name: str) -> Corpus | None:
    try:
        index = storage.read_json(cdir / "index.json")
    except CorruptFileError as exc:  # a damaged cache is rebuilt, not trusted
        log.warning("%s; rebuilding the corpus", exc)
        return None
    npz = cdir / "clips.npz"
    if not index or not npz.exists() or index.get("version") != CORPUS_VERSION:
        return None
    try:
        with np.load(npz) as z:
            audio = z["audio"]
    except Exception as exc:  # a damaged cache is rebuilt, not trusted
        log.warning("corpus cache %s unreadable (%s); rebuilding", npz, exc)
        return None
    if audio.shape[0] != len(index["clips"]):
        return None
    clips = [
        Clip(
            id=e["id"],
            kind=e["kind"],
            source=e["source"],
            audio=audio[i],
            sample_rate=index["sample_rate"],
            split=e["split"],
            synthetic=e["synthetic"],
            meta=e["meta"],
        )
        for i, e in enumerate(index["clips"])
    ]
    return Corpus(
        clips=clips,
        profile=profile_name,
        sample_rate=index["sample_rate"],
        half_samples=index["half_samples"],
        synthetic=index["synthetic"],
        key=index["key"],
        build_seconds=index["build_seconds"],
        from_cache=True,
        cache_dir=cdir,
        skipped=[tuple(s) for s in index.get("skipped", [])],
    )


__all__ = [
    "Clip",
    "Corpus",
    "build_corpus",
    "corpus_key",
    "write_skip_summary",
    "SKIPS_ARTIFACT",
    "CORPUS_VERSION",
    "KINDS",
    "SPLITS",
    "ROLES",
    "SYNTHETIC_NOTE",
]

"""Clips cut from real recordings: the paper profile (VCTK, DAPS, MUSDB18-HQ) and user folders.

- VCTK 0.92 (seen speech): speakers are split train/val/test (exact, seeded), so every
  utterance of a speaker is in one split. A clip concatenates consecutive utterances of one
  speaker (VCTK utterances are ~3 s, shorter than a 5.5 s paper clip); its source is the
  speaker.
- DAPS clean (unseen speech): test only, windows from the 100 script readings; source = file.
- MUSDB18-HQ mixtures (music): the official ``test`` tracks are the test split, the
  ``train`` tracks are split train/val by track; windows from each track; source = track.
- A user folder: one clip per usable file (the most active window), test only; files that
  cannot be used are skipped with a reason, never a crash.

Every window is checked so both halves (A and B) are mostly active; the rng for window
positions is ``default_rng([seed, stream, clip index])``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import audio as A
from .. import datasets as D
from ..config import Profile
from ..errors import ConfigError

log = logging.getLogger(__name__)

_VCTK, _DAPS, _MUSDB = 11, 12, 13
GAP_SECONDS = 0.15


def _read_window(path, start_s: float, seconds: float, sr: int) -> np.ndarray:
    """Mono float32 at ``sr`` of ``seconds`` from ``start_s`` (reads only that part)."""
    import soundfile as sf

    info = sf.info(str(path))
    start = int(start_s * info.samplerate)
    frames = int(np.ceil(seconds * info.samplerate)) + 64
    x, native = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    y = A.resample(A.to_mono(x.T), native, sr)
    return A.fit_length(y, int(round(seconds * sr)))


def _window_from_file(
    path, duration_s: float, seconds: float, sr: int, rng: np.random.Generator, tries: int = 6
) -> tuple[np.ndarray, float] | None:
    """A window of ``seconds`` with both halves active; None if the file never gives one."""
    span = duration_s - seconds
    if span < 0:
        return None
    best, best_score, best_t = None, -1.0, 0.0
    for _ in range(tries):
        t = float(rng.uniform(0, span)) if span > 0 else 0.0
        w = _read_window(path, t, seconds, sr)
        h = len(w) // 2
        score = min(A.active_fraction(w[:h], sr), A.active_fraction(w[h:], sr))
        if score > best_score:
            best, best_score, best_t = w, score, t
        if score >= 0.5:
            break
    if best is None or best_score < 0.2:
        return None
    return best, best_t


def _duration(path) -> float:
    sr, _, frames = A.audio_info(path)
    return frames / sr


def _vctk_clip(files: list[D.AudioFile], start: int, seconds: float, sr: int) -> tuple[np.ndarray, list[str]]:
    """Concatenate consecutive utterances of one speaker from ``start`` until ``seconds``."""
    parts: list[np.ndarray] = []
    used: list[str] = []
    total = 0.0
    gap = np.zeros(int(GAP_SECONDS * sr), np.float32)
    k = start
    while total < seconds and len(used) < len(files) + 1:
        f = files[k % len(files)]
        x, _ = A.load_audio(f.path, sr)
        x = A.trim_silence(A.to_mono(x), sr, threshold_db=-50.0)
        parts += [x, gap]
        used.append(f.id)
        total += (len(x) + len(gap)) / sr
        k += 1
    return np.concatenate(parts)[: int(round(seconds * sr))], used


def build_paper(
    profile: Profile, workers: int = 2
) -> tuple[list[tuple[dict, np.ndarray, dict]], list[tuple[str, str]]]:
    """Cut the paper corpus; returns ``([(plan, audio, meta), ...], skipped)``."""
    data = profile.data
    sr, seed = data.sample_rate, profile.seed
    seconds = 2 * profile.half_samples / sr
    root = D.dataset_root(profile)
    n_unseen = int(round(data.n_speech * data.unseen_speech_fraction)) if data.unseen_speech_fraction > 0 else 0
    n_seen = data.n_speech - n_unseen
    # parse every layout first so a missing dataset fails before any long work
    vctk = D.vctk_files(root) if n_seen else []
    daps = D.daps_files(root) if n_unseen else []
    musdb = D.musdb_files(root) if data.n_music else []
    out: list[tuple[dict, np.ndarray, dict]] = []
    skipped: list[tuple[str, str]] = []

    # ---- VCTK: split speakers, then round-robin speakers within each split
    if n_seen:
        by_spk: dict[str, list[D.AudioFile]] = {}
        for f in vctk:
            by_spk.setdefault(f.group, []).append(f)
        spk_split = D.split_files(sorted(by_spk), data.split, seed, method="exact")
        jobs: list[tuple[str, str, int]] = []
        for split, count in zip(D.SPLITS, D.split_counts(n_seen, data.split)):
            spks = [s for s in sorted(by_spk) if spk_split[s] == split]
            if not spks:
                continue
            for j in range(count):
                spk = spks[j % len(spks)]
                rng = np.random.default_rng([seed, _VCTK, len(jobs)])
                start = int(rng.integers(0, len(by_spk[spk])))
                jobs.append((split, spk, start))

        def make_vctk(job):
            split, spk, start = job
            try:
                x, used = _vctk_clip(by_spk[spk], start, seconds, sr)
            except Exception as exc:  # a corrupt file skips the clip, not the run
                return None, f"{spk}: {exc}"
            return (split, spk, x, used), None

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for i, (res, err) in enumerate(pool.map(make_vctk, jobs)):
                if res is None:
                    skipped.append((f"vctk/{jobs[i][1]}", err))
                    continue
                split, spk, x, used = res
                plan = {
                    "id": f"vctk_{i:05d}",
                    "kind": "speech",
                    "split": split,
                    "role": "seen_speech",
                    "source": f"vctk/{spk}",
                }
                meta = {"dataset": "vctk", "role": "seen_speech", "speaker": spk, "files": used}
                out.append((plan, x, meta))

    # ---- DAPS: unseen speech, test only, windows spread over the files
    if n_unseen:

        def make_daps(j):
            f = daps[j % len(daps)]
            rng = np.random.default_rng([seed, _DAPS, j])
            try:
                got = _window_from_file(f.path, _duration(f.path), seconds, sr, rng)
            except Exception as exc:
                return f, None, f"unreadable: {exc}"
            return f, got, None if got else "no window with both halves active"

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for j, (f, got, err) in enumerate(pool.map(make_daps, range(n_unseen))):
                if got is None:
                    skipped.append((f"daps/{f.id}", err))
                    continue
                w, t = got
                plan = {
                    "id": f"daps_{j:05d}",
                    "kind": "speech",
                    "split": "test",
                    "role": "unseen_speech",
                    "source": f"daps/{f.id}",
                }
                out.append(
                    (
                        plan,
                        w,
                        {
                            "dataset": "daps",
                            "role": "unseen_speech",
                            "speaker": f.group,
                            "file": f.id,
                            "offset_s": round(t, 3),
                        },
                    )
                )

    # ---- MUSDB18-HQ: official test tracks = test; train tracks split train/val by track
    if data.n_music:
        fr = np.asarray(data.split, float)
        train_tracks = sorted(f.id for f in musdb if f.subset == "train")
        tv = D.split_files(train_tracks, (fr[0], fr[1], 0.0), seed, method="exact") if fr[:2].sum() > 0 else {}
        track_split = {**tv, **{f.id: "test" for f in musdb if f.subset == "test"}}
        by_id = {f.id: f for f in musdb}
        music_jobs: list[tuple[str, str]] = []
        for split, count in zip(D.SPLITS, D.split_counts(data.n_music, data.split)):
            tracks = [t for t in sorted(track_split) if track_split[t] == split]
            if not tracks:
                continue
            music_jobs += [(split, tracks[j % len(tracks)]) for j in range(count)]

        def make_musdb(i):
            split, tid = music_jobs[i]
            f = by_id[tid]
            rng = np.random.default_rng([seed, _MUSDB, i])
            try:
                got = _window_from_file(f.path, _duration(f.path), seconds, sr, rng)
            except Exception as exc:
                return None, f"unreadable: {exc}"
            return got, None if got else "no window with both halves active"

        with ThreadPoolExecutor(max(1, workers)) as pool:
            for i, (got, err) in enumerate(pool.map(make_musdb, range(len(music_jobs)))):
                split, tid = music_jobs[i]
                if got is None:
                    skipped.append((f"musdb18hq/{tid}", err))
                    continue
                w, t = got
                plan = {
                    "id": f"musdb_{i:05d}",
                    "kind": "music",
                    "split": split,
                    "role": "music",
                    "source": f"musdb18hq/{tid}",
                }
                out.append(
                    (
                        plan,
                        w,
                        {
                            "dataset": "musdb18hq",
                            "role": "music",
                            "track": by_id[tid].group,
                            "subset": by_id[tid].subset,
                            "offset_s": round(t, 3),
                        },
                    )
                )
    for src, why in skipped:
        log.warning("skipped %s: %s", src, why)
    return out, skipped


def build_user(profile: Profile) -> tuple[list[tuple[dict, np.ndarray, dict]], list[tuple[str, str]]]:
    """One test clip per usable file of ``profile.data.user_folder``."""
    data = profile.data
    sr, seed = data.sample_rate, profile.seed
    L = 2 * profile.half_samples
    if data.user_folder is None:
        raise ConfigError("build_user needs data.user_folder (a folder of audio files)")
    rep = D.load_folder(data.user_folder, sr, min_seconds=L / sr)
    skipped = list(rep.skipped)
    out = []
    for i, f in enumerate(rep.files):
        rng = np.random.default_rng([seed, 21, i])
        x = f.audio
        hi = len(x) - L
        best, best_score = 0, -1.0
        for s in sorted({0, *(int(v) for v in rng.integers(0, hi + 1, size=6))}) if hi > 0 else [0]:
            w = x[s : s + L]
            score = min(A.active_fraction(w[: L // 2], sr), A.active_fraction(w[L // 2 :], sr))
            if score > best_score:
                best, best_score = s, score
        if best_score < 0.2:
            skipped.append((str(f.path), "no window with both halves active"))
            continue
        name = f.path.relative_to(rep.folder).as_posix()
        plan: dict[str, Any] = {
            "id": f"user_{i:04d}",
            "kind": data.user_kind,
            "split": "test",
            "role": "user",
            "source": f"user/{name}",
        }
        out.append(
            (
                plan,
                x[best : best + L],
                {"dataset": "user", "role": "user", "file": name, "offset_s": round(best / sr, 3)},
            )
        )
    return out, skipped

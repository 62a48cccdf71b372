"""The embedded corpus: espeak-ng speech and numpy-synthesised music, no files, no network.

Splits are made at the source level before any audio exists:

- speech: the source is the Harvard sentence a clip opens with; sentences are split
  train/val/test (exact, seeded) and every sentence a clip speaks comes from its own split,
  so no sentence is heard in two splits. A fraction (``data.unseen_speech_fraction``) of the
  speech clips uses accents and voice variants never used elsewhere ("unseen speech",
  the embedded stand-in for DAPS); those are test only and speak test sentences.
- music: every clip is its own generated phrase (its own source), split exactly by id.

Every random draw comes from ``numpy.random.default_rng([seed, stream, index])``, so a clip
depends only on the seed and its index (music) or on the seed and the request list (speech).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import audio as A
from ..datasets import SPLITS, split_counts, split_files
from . import speech as S
from . import synth

_SPEECH, _MUSIC, _LEVEL, _WINDOW = 1, 2, 3, 4  # rng streams


def sentence_ids() -> list[str]:
    return [f"harvard_{i + 1:02d}" for i in range(len(S.HARVARD_SENTENCES))]


def _draw_voice(rng: np.random.Generator, unseen: bool) -> S.Voice:
    langs = S.UNSEEN_LANGUAGES if unseen else S.SEEN_LANGUAGES
    variants = S.UNSEEN_VARIANTS if unseen else S.SEEN_VARIANTS
    return S.Voice(
        language=str(rng.choice(langs)),
        variant=str(rng.choice(variants)),
        rate=int(rng.integers(130, 231)),
        pitch=int(rng.integers(25, 76)),
        range=int(rng.integers(20, 91)),
        word_gap=int(rng.choice([0, 0, 0, 1, 2])),
    )


def plan_speech(
    n_speech: int, seed: int, fractions, clip_seconds: float, unseen_fraction: float
) -> list[dict[str, Any]]:
    """Decide every speech clip (split, role, sentences, voice) before synthesising."""
    ids = sentence_ids()
    text = dict(zip(ids, S.HARVARD_SENTENCES))
    sent_split = split_files(ids, fractions, seed, method="exact")
    n_unseen = int(round(n_speech * unseen_fraction)) if unseen_fraction > 0 and n_speech > 1 else 0
    n_seen = n_speech - n_unseen
    pools = {}
    for k, split in enumerate(SPLITS):
        pool = [i for i in ids if sent_split[i] == split]
        pools[split] = [pool[j] for j in np.random.default_rng([seed, _SPEECH, 1000 + k]).permutation(len(pool))]
    jobs: list[tuple[str, str, int]] = []  # (split, role, index within split)
    for split, c in zip(SPLITS, split_counts(n_seen, fractions)):
        jobs += [(split, "seen_speech", j) for j in range(c)]
    jobs += [("test", "unseen_speech", j) for j in range(n_unseen)]
    plans = []
    for idx, (split, role, j) in enumerate(jobs):
        rng = np.random.default_rng([seed, _SPEECH, idx])
        unseen = role == "unseen_speech"
        voice = _draw_voice(rng, unseen)
        pool = pools[split] or pools["test"] or ids
        offset = j + (len(pool) // 2 if unseen else 0)  # unseen clips open with other sentences
        # enough sentences to cover the clip at this speaking rate (a trimmed Harvard sentence
        # lasts about 1.6 s at 175 wpm); a short result is extended by _best_window
        per_sentence = 1.6 * 175.0 / voice.rate
        n_sent = max(1, math.ceil((clip_seconds + 0.4) / per_sentence))
        sents = [pool[(offset + k) % len(pool)] for k in range(min(n_sent, max(1, len(pool))))]
        while len(sents) < n_sent:  # tiny pools: repeat
            sents.append(sents[len(sents) % len(pool)])
        prefix = "speech_u" if unseen else "speech"
        plans.append(
            {
                "id": f"{prefix}_{idx:04d}",
                "split": split,
                "role": role,
                "source": sents[0],
                "sentences": sents,
                "text": " ".join(text[s] for s in sents),
                "voice": voice,
                "dataset": "espeak_unseen" if unseen else "espeak",
            }
        )
    return plans


def _best_window(
    x: np.ndarray, sr: int, length: int, rng: np.random.Generator, tries: int = 8
) -> tuple[np.ndarray, int]:
    """A window of ``length`` whose two halves are both mostly active (speech or notes)."""
    if len(x) < length:
        reps = math.ceil(length / max(1, len(x))) + 1
        gap = np.zeros(int(0.15 * sr), np.float32)
        x = np.concatenate([np.concatenate([x, gap])] * reps)
    hi = len(x) - length
    half = length // 2
    best, best_score = 0, -1.0
    for _ in range(tries):
        s = int(rng.integers(0, hi + 1)) if hi > 0 else 0
        w = x[s : s + length]
        score = min(A.active_fraction(w[:half], sr), A.active_fraction(w[half:], sr))
        if score > best_score:
            best, best_score = s, score
        if score >= 0.5:
            break
    return x[best : best + length], best


def build_speech(
    plans: list[dict], sample_rate: int, clip_samples: int, seed: int, workers: int = 2
) -> list[tuple[np.ndarray, dict]]:
    """Synthesise the planned clips (reproducibly, in worker processes) and cut windows.

    Each sentence is spoken separately, trimmed, and joined to the next with a short random
    pause (80-250 ms), so clips do not contain espeak's long sentence-final pauses.
    """
    text = dict(zip(sentence_ids(), S.HARVARD_SENTENCES))
    requests, owner = [], []
    for idx, p in enumerate(plans):
        for sid in p["sentences"]:
            requests.append((text[sid], p["voice"]))
            owner.append(idx)
    audio, engine_rate = S.synthesize_many(requests, workers=workers, chunk_size=24)
    per_clip: list[list[np.ndarray]] = [[] for _ in plans]
    for idx, a in zip(owner, audio):
        per_clip[idx].append(A.trim_silence(a, engine_rate, threshold_db=-50.0))
    out = []
    for idx, (p, parts) in enumerate(zip(plans, per_clip)):
        rng = np.random.default_rng([seed, _WINDOW, idx])
        joined = []
        for k, part in enumerate(parts):
            if k:
                joined.append(np.zeros(int(rng.uniform(0.08, 0.25) * engine_rate), np.float32))
            joined.append(part)
        x = A.resample(np.concatenate(joined), engine_rate, sample_rate)
        w, start = _best_window(x, sample_rate, clip_samples, rng)
        v = p["voice"]
        meta = {
            "dataset": p["dataset"],
            "role": p["role"],
            "text": p["text"],
            "sentences": p["sentences"],
            "voice": v.name,
            "language": v.language,
            "variant": v.variant or "default",
            "rate_wpm": v.rate,
            "pitch": v.pitch,
            "pitch_range": v.range,
            "word_gap": v.word_gap,
            "offset_s": round(start / sample_rate, 3),
            "engine": "espeak-ng",
            "engine_rate": engine_rate,
        }
        out.append((w.astype(np.float32), meta))
    return out


def plan_music(n_music: int, seed: int, fractions) -> list[dict[str, Any]]:
    ids = [f"music_{i:04d}" for i in range(n_music)]
    split = split_files(ids, fractions, seed, method="exact")
    return [
        {"id": i, "split": split[i], "role": "music", "source": i, "index": k, "dataset": "synth"}
        for k, i in enumerate(ids)
    ]


def build_music(plans: list[dict], sample_rate: int, clip_samples: int, seed: int) -> list[tuple[np.ndarray, dict]]:
    out = []
    half = clip_samples // 2
    for p in plans:
        rng = np.random.default_rng([seed, _MUSIC, p["index"]])
        attempts = 0
        for _ in range(6):  # re-draw a phrase whose half A or B is nearly silent
            attempts += 1
            y, meta = synth.render_phrase(rng, sample_rate, clip_samples)
            score = min(A.active_fraction(y[:half], sample_rate), A.active_fraction(y[half:], sample_rate))
            if score >= 0.3 and not A.is_silent(y):
                break
        meta = {"dataset": "synth", "role": "music", "attempts": attempts, **meta}
        out.append((y, meta))
    return out


def level_targets(n: int, seed: int, target_lufs: float, spread: float, stream_offset: int = 0) -> np.ndarray:
    return np.array(
        [
            target_lufs + spread * np.random.default_rng([seed, _LEVEL, stream_offset + i]).uniform(-1, 1)
            for i in range(n)
        ],
        dtype=np.float64,
    )

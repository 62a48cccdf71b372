"""Small stand-ins for VCTK 0.92, DAPS and MUSDB18-HQ in their real on-disk layouts, from synthesised audio.

:func:`build_fixtures` writes, under one root, the three datasets the ``paper`` profile reads,
laid out as ``python -m dafxlib.datasets download`` leaves them (so ``data.dataset_root=<root>``
finds them with no other setting). Nothing is downloaded and no recording is used: every file is
SYNTHETIC (speech-like voiced/fricative syllables through moving formant resonators; music from
the instruments of :mod:`dafxlib.corpus.synth`). The audio only has to behave like speech and
music for the code that reads it (levels, silences, lengths, rates, channels); results computed
on it mean nothing.

- ``vctk/``: VCTK 0.92 as its zip extracts: ``wav48_silence_trimmed/<speaker>/<speaker>_<NNN>_mic1.flac``
  and ``_mic2.flac`` (48 kHz, 16-bit FLAC, mono), ``txt/<speaker>/<speaker>_<NNN>.txt``,
  ``speaker-info.txt`` in its column format (``ID  AGE  GENDER  ACCENTS  REGION COMMENTS``).
  As in the real corpus, one speaker has no mic2 files (said in its COMMENTS column) and one has no
  transcripts.
- ``daps/daps/``: DAPS as its tar extracts (a ``daps/`` folder): one folder per version (``clean``,
  ``cleanraw``, ``produced`` and the twelve device/room versions), each holding
  ``<speaker>_<script>_<version>.wav`` (44.1 kHz, 16-bit, mono) for speakers f1..f10 / m1..m10 and
  scripts script1..script5. The device versions are the clean reading band-limited, reverberated
  and with room noise; ``cleanraw`` and ``produced`` are the unprocessed and mastered variants.
- ``musdb18hq/``: MUSDB18-HQ as its zip extracts: ``train|test/<Artist - Title>/`` holding
  ``mixture.wav`` and the stems ``bass.wav``, ``drums.wav``, ``other.wav``, ``vocals.wav``
  (44.1 kHz, 16-bit, stereo); the mixture is the sum of the stems.

A ``FIXTURE.json`` at the root records what was written (and that it is synthetic); building again
with the same arguments into a complete root does nothing. ``python -m dafxlib.corpus.fixtures ROOT``
builds the default sizes and prints the command that runs the paper profile on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import storage
from ..errors import DatasetError
from . import synth

VCTK_RATE = 48_000
DAPS_RATE = 44_100
MUSDB_RATE = 44_100
#: DAPS's versions: the studio ones, then the consumer-device recordings in real rooms
DAPS_VERSIONS: tuple[str, ...] = (
    "clean",
    "cleanraw",
    "produced",
    "ipad_balcony1",
    "ipad_bedroom1",
    "ipad_confroom1",
    "ipad_confroom2",
    "ipad_livingroom1",
    "ipad_office1",
    "ipad_office2",
    "ipadflat_confroom1",
    "ipadflat_office1",
    "iphone_balcony1",
    "iphone_bedroom1",
    "iphone_livingroom1",
)
MUSDB_STEM_FILES = ("bass", "drums", "other", "vocals")
MARKER = "FIXTURE.json"
#: a few sentences for the VCTK transcripts (written for this fixture)
_SENTENCES = (
    "Please call the office before noon.",
    "The river was higher than last spring.",
    "We will need three more chairs for the meeting.",
    "A quiet evening is all she asked for.",
    "The train left the station on time.",
    "He painted the fence a pale shade of green.",
)
_ACCENTS = (
    ("English", "Southern England"),
    ("Scottish", "Edinburgh"),
    ("Irish", "Dublin"),
    ("American", "Ohio"),
    ("Welsh", "Cardiff"),
    ("Canadian", "Toronto"),
    ("English", "Yorkshire"),
    ("NewZealand", ""),
)
#: vowel formants (F1, F2, F3 in Hz, adult male; scaled per speaker)
_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (530, 1840, 2480),
    (300, 870, 2240),
    (570, 840, 2410),
    (660, 1720, 2410),
)


@dataclass(frozen=True)
class FixtureSizes:
    """How much of each dataset to write (defaults: a few MB in all, a few seconds to build)."""

    vctk_speakers: int = 6
    vctk_utterances: int = 4
    #: DAPS readers: the first n of f1, m1, f2, m2, ...
    daps_speakers: int = 4
    daps_scripts: int = 1
    daps_seconds: float = 14.0
    #: DAPS versions written (all fifteen by default; ``("clean",)`` is enough for the loader)
    daps_versions: tuple[str, ...] = DAPS_VERSIONS
    musdb_train: int = 4
    musdb_test: int = 2
    musdb_seconds: float = 12.0

    def check(self) -> None:
        for name in ("vctk_speakers", "vctk_utterances", "daps_speakers", "daps_scripts", "musdb_train", "musdb_test"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DatasetError(f"fixture size {name}={v!r}: must be a whole number >= 1")
        if self.daps_speakers > 20 or self.daps_scripts > 5:
            raise DatasetError(
                f"DAPS has 20 speakers and 5 scripts; asked for {self.daps_speakers} and {self.daps_scripts}"
            )
        if self.vctk_utterances > 999:
            raise DatasetError(f"vctk_utterances={self.vctk_utterances}: VCTK ids have three digits (at most 999)")
        unknown = [v for v in self.daps_versions if v not in DAPS_VERSIONS]
        if unknown or "clean" not in self.daps_versions:
            raise DatasetError(
                f"daps_versions {list(self.daps_versions)}: must include 'clean' and name only DAPS versions "
                f"({', '.join(DAPS_VERSIONS)})"
            )
        for name in ("daps_seconds", "musdb_seconds"):
            if not 1.0 <= float(getattr(self, name)) <= 600.0:
                raise DatasetError(f"fixture size {name}={getattr(self, name)!r}: must be within 1..600 seconds")


# --------------------------------------------------------------------------- speech-like audio
@dataclass(frozen=True)
class _Voice:
    f0: float  # mean pitch (Hz)
    formant_scale: float  # vocal-tract length: ~1.0 male, ~1.17 female
    rate: float  # syllables per second
    breath: float  # aspiration noise level


def _voice(rng: np.random.Generator, female: bool) -> _Voice:
    return _Voice(
        f0=float(rng.uniform(180, 240) if female else rng.uniform(95, 135)),
        formant_scale=float(rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05)),
        rate=float(rng.uniform(3.5, 5.5)),
        breath=float(rng.uniform(0.02, 0.06)),
    )


def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonance at ``freq`` (Hz) of bandwidth ``bw`` (Hz), unit gain at its peak."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bw / sr)
    theta = 2 * np.pi * freq / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1 - r], a, x).astype(np.float32)


def _syllable(rng: np.random.Generator, v: _Voice, sr: int, f0: float) -> np.ndarray:
    """One syllable: an optional fricative onset then a voiced vowel, enveloped."""
    parts: list[np.ndarray] = []
    if rng.uniform() < 0.45:  # fricative onset (s, sh, f): high-passed noise
        n = int(rng.uniform(0.05, 0.12) * sr)
        hp = float(rng.choice([2500.0, 4000.0, 6000.0]))
        noise = synth.filt(rng.standard_normal(n).astype(np.float32), sr, min(hp, 0.45 * sr), "highpass", 2)
        parts.append(0.12 * noise * np.hanning(n).astype(np.float32))
    n = int(rng.uniform(0.12, 0.28) * sr)
    t = np.arange(n) / sr
    # pitch: a gentle glide and a little vibrato/jitter
    glide = f0 * (1 + rng.uniform(-0.08, 0.08) * t / max(t[-1], 1e-3))
    pitch = glide * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6) * t)) * (1 + 0.004 * rng.standard_normal(n))
    phase = np.cumsum(pitch) / sr
    source = (2 * (phase % 1.0) - 1).astype(np.float32)  # glottal-ish saw
    source += v.breath * rng.standard_normal(n).astype(np.float32)
    vowel = _VOWELS[int(rng.integers(len(_VOWELS)))]
    y = np.zeros(n, np.float32)
    for k, (f, gain) in enumerate(zip(vowel, (1.0, 0.5, 0.25))):
        freq = min(f * v.formant_scale, 0.45 * sr)
        y += gain * _resonator(source, freq, 60.0 + 40.0 * k, sr)
    env = np.sin(np.pi * np.linspace(0, 1, n)) ** 0.6
    parts.append((y * env).astype(np.float32))
    return np.concatenate(parts)


def speech_like(rng: np.random.Generator, voice: _Voice, sr: int, seconds: float, *, lead: float = 0.15) -> np.ndarray:
    """``seconds`` of speech-like audio: syllables grouped into words and phrases, with pauses.

    Starts and ends with ``lead`` seconds of a faint noise floor (as a trimmed recording does)."""
    n = int(round(seconds * sr))
    out = (1e-4 * rng.standard_normal(n)).astype(np.float32)  # room/mic noise floor (-80 dBFS)
    pos = int(lead * sr)
    end = n - int(lead * sr)
    f0 = voice.f0
    while pos < end:
        for _ in range(int(rng.integers(1, 4))):  # a word
            syl = _syllable(rng, voice, sr, f0 * float(rng.uniform(0.9, 1.12)))
            k = min(len(syl), end - pos)
            if k <= 0:
                break
            out[pos : pos + k] += 0.35 * syl[:k]
            pos += k + int(sr * rng.uniform(0.0, 0.25) / voice.rate)
        pos += int(sr * (rng.uniform(0.25, 0.6) if rng.uniform() < 0.2 else rng.uniform(0.03, 0.09)))
        f0 *= float(rng.uniform(0.97, 1.0))  # declination over a phrase
        if rng.uniform() < 0.15:
            f0 = voice.f0
    return out


def _to_pcm_range(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m) if m > peak else x).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int, fmt: str) -> None:
    """Write (samples,) or (samples, channels) float audio as 16-bit PCM, atomically."""
    import soundfile as sf

    with storage.atomic_path(path) as tmp:
        sf.write(str(tmp), _to_pcm_range(audio), sr, subtype="PCM_16", format=fmt)


# --------------------------------------------------------------------------- VCTK 0.92
def _vctk_speakers(n: int) -> list[str]:
    """p225, p226, ... (the last one 's5' when there are at least four, as in the real corpus)."""
    ids = [f"p{225 + i}" for i in range(n)]
    if n >= 4:
        ids[-1] = "s5"
    return ids


def build_vctk(root: Path, sizes: FixtureSizes, seed: int) -> dict:
    base = root / "vctk"
    speakers = _vctk_speakers(sizes.vctk_speakers)
    no_mic2 = speakers[1] if len(speakers) >= 2 else None  # like p280: "mic2 files unavailable"
    no_text = speakers[2] if len(speakers) >= 3 else None  # like p315: "text unavailable"
    lines = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    n_files = 0
    for i, spk in enumerate(speakers):
        rng = np.random.default_rng([seed, 225, i])
        female = i % 2 == 0
        voice = _voice(rng, female)
        accent, region = _ACCENTS[i % len(_ACCENTS)]
        comment = "(mic2 files unavailable)" if spk == no_mic2 else "(Text unavailable)" if spk == no_text else ""
        lines.append(
            f"{spk:<6}{int(rng.integers(18, 38)):<4}{'F' if female else 'M':<5}{accent:<11}{region}"
            + (f"  {comment}" if comment else "")
        )
        for u in range(1, sizes.vctk_utterances + 1):
            utt = f"{spk}_{u:03d}"
            x = speech_like(rng, voice, VCTK_RATE, float(rng.uniform(2.0, 3.6)))
            d = base / "wav48_silence_trimmed" / spk
            _write(d / f"{utt}_mic1.flac", x, VCTK_RATE, "FLAC")
            n_files += 1
            if spk != no_mic2:  # a second microphone: other colour, other noise floor, a little later
                y = synth.filt(np.concatenate([np.zeros(12, np.float32), x[:-12]]), VCTK_RATE, 70.0, "highpass", 1)
                y = 0.8 * y + (3e-4 * rng.standard_normal(len(y))).astype(np.float32)
                _write(d / f"{utt}_mic2.flac", y, VCTK_RATE, "FLAC")
                n_files += 1
            if spk != no_text:
                storage.write_text(base / "txt" / spk / f"{utt}.txt", _SENTENCES[(u - 1) % len(_SENTENCES)] + "\n")
    storage.write_text(base / "speaker-info.txt", "\n".join(lines) + "\n")
    storage.write_text(
        base / "README.txt",
        "SYNTHETIC stand-in for the CSTR VCTK Corpus 0.92 (layout only; written by dafxlib.corpus.fixtures).\n",
    )
    return {"path": str(base), "speakers": speakers, "files": n_files, "no_mic2": no_mic2, "no_text": no_text}


# --------------------------------------------------------------------------- DAPS
def _daps_speakers(n: int) -> list[str]:
    order = [f"{g}{i}" for i in range(1, 11) for g in ("f", "m")]
    return order[:n]


def _room(x: np.ndarray, sr: int, rng: np.random.Generator, t60: float, band: tuple[float, float], noise_db: float):
    """A device in a room: band-limited, reverberated (exponential noise tail), room noise added."""
    from scipy.signal import fftconvolve

    n_ir = int(t60 * sr)
    ir = rng.standard_normal(n_ir).astype(np.float32) * np.exp(-6.9 * np.arange(n_ir) / n_ir).astype(np.float32)
    ir[0] = 1.0 / 0.05
    ir *= 0.05
    y = fftconvolve(x, ir)[: len(x)].astype(np.float32)
    y = synth.filt(y, sr, (band[0], min(band[1], 0.45 * sr)), "bandpass", 2)
    noise = synth.filt(rng.standard_normal(len(y)).astype(np.float32), sr, 1500.0, "lowpass", 1)
    return (y + 10 ** (noise_db / 20) * noise).astype(np.float32)


def _daps_version(clean: np.ndarray, version: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    if version == "clean":
        return clean
    if version == "cleanraw":  # before the studio's noise removal: hum and a higher floor
        t = np.arange(len(clean)) / sr
        return (clean + 0.002 * np.sin(2 * np.pi * 60 * t) + 5e-4 * rng.standard_normal(len(clean))).astype(np.float32)
    if version == "produced":  # mastered: EQ and soft compression
        y = clean + 0.3 * synth.filt(clean, sr, 3000.0, "highpass", 1)
        return (np.tanh(3.0 * y) / 3.0 * 1.6).astype(np.float32)
    device, room = version.split("_", 1)
    band = (300.0, 7000.0) if device == "iphone" else (150.0, 9000.0)
    t60 = {"balcony": 0.15, "bedroom": 0.35, "confroom": 0.8, "livingroom": 0.5, "office": 0.45}[room.rstrip("12")]
    return _room(0.6 * clean, sr, rng, t60, band, -62.0 if device != "ipadflat" else -58.0)


def build_daps(root: Path, sizes: FixtureSizes, seed: int) -> dict:
    base = root / "daps" / "daps"
    speakers = _daps_speakers(sizes.daps_speakers)
    n_files = 0
    for i, spk in enumerate(speakers):
        voice = _voice(np.random.default_rng([seed, 1000, i]), spk.startswith("f"))
        for s in range(1, sizes.daps_scripts + 1):
            rng = np.random.default_rng([seed, 1000, i, s])
            clean = speech_like(rng, voice, DAPS_RATE, sizes.daps_seconds, lead=0.5)
            for version in sizes.daps_versions:
                y = _daps_version(clean, version, DAPS_RATE, rng)
                _write(base / version / f"{spk}_script{s}_{version}.wav", y, DAPS_RATE, "WAV")
                n_files += 1
    storage.write_text(
        base / "README.txt",
        "SYNTHETIC stand-in for DAPS (Device and Produced Speech; layout only; written by dafxlib.corpus.fixtures).\n",
    )
    return {"path": str(base), "speakers": speakers, "versions": list(sizes.daps_versions), "files": n_files}


# --------------------------------------------------------------------------- MUSDB18-HQ
def _stems(rng: np.random.Generator, sr: int, seconds: float) -> dict[str, np.ndarray]:
    """Stereo (samples, 2) stems of one synthetic track: drums, bass, other (keys/pad), vocals."""
    n = int(round(seconds * sr))
    tempo = float(rng.uniform(80, 150))
    beat = 60.0 / tempo
    tonic = 36 + int(rng.integers(0, 12))
    scale = synth.SCALES["minor" if rng.uniform() < 0.5 else "major"]
    prog = synth.PROGRESSIONS[int(rng.integers(len(synth.PROGRESSIONS)))]
    n_beats = int(np.ceil(seconds / beat))
    mono = {k: np.zeros(n + sr, np.float32) for k in MUSDB_STEM_FILES}

    def add(stem: str, t: float, sig: np.ndarray, gain: float) -> None:
        i = int(t * sr)
        k = min(len(sig), len(mono[stem]) - i)
        if k > 0:
            mono[stem][i : i + k] += gain * sig[:k]

    for b in range(n_beats):
        t = b * beat
        deg = prog[(b // 4) % len(prog)]
        root_note = tonic + scale[deg % len(scale)]
        if b % 2 == 0:
            add("drums", t, synth.kick(sr, rng), 0.8)
        else:
            add("drums", t, synth.snare(sr, rng), 0.6)
        add("drums", t, synth.hat(sr, rng), 0.5)
        add("drums", t + beat / 2, synth.hat(sr, rng), 0.35)
        add("bass", t, synth.bass(synth.midi_to_hz(root_note), 0.9 * beat, sr, rng), 0.7)
        if b % 4 == 0:
            freqs = [synth.midi_to_hz(root_note + 24 + iv) for iv in (0, 3 if scale[2] == 3 else 4, 7)]
            add("other", t, synth.pad(freqs, 4 * beat, sr, rng), 0.5)
    # vocals: a sung line of speech-like syllables, silent for the first bar (as many songs are)
    voice = _voice(rng, bool(rng.uniform() < 0.5))
    start = 4 * beat
    t = start
    while t < seconds - 0.3:
        note = tonic + 24 + scale[int(rng.integers(len(scale)))]
        f0 = synth.midi_to_hz(note) * (2.0 if voice.f0 > 160 else 1.0)
        syl = _syllable(rng, voice, sr, min(f0, 600.0))
        add("vocals", t, syl, 0.5)
        t += beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
    out = {}
    for k, x in mono.items():  # a fixed pan per stem, as a mix would place it
        pan = {"bass": 0.0, "drums": 0.0, "other": float(rng.uniform(-0.5, 0.5)), "vocals": 0.0}[k]
        left, right = np.sqrt(0.5 * (1 - pan)), np.sqrt(0.5 * (1 + pan))
        out[k] = np.stack([left * x[:n], right * x[:n]], axis=1).astype(np.float32)
    return out


_ARTISTS = ("Fixture Band", "The Synthetics", "Null Set", "Placeholder Trio", "Test Pattern", "Grey Noise")
_TITLES = ("First Light", "Second Hand", "Don't Look Back", "Fourth Wall", "Fifth Avenue", "Six Strings")


def build_musdb(root: Path, sizes: FixtureSizes, seed: int) -> dict:
    base = root / "musdb18hq"
    tracks: dict[str, list[str]] = {"train": [], "test": []}
    n_files = 0
    k = 0
    for subset, count in (("train", sizes.musdb_train), ("test", sizes.musdb_test)):
        for _ in range(count):
            name = f"{_ARTISTS[k % len(_ARTISTS)]} - {_TITLES[(k // len(_ARTISTS) + k) % len(_TITLES)]}"
            if k >= len(_ARTISTS):
                name += f" ({k // len(_ARTISTS) + 1})"
            rng = np.random.default_rng([seed, 18, k])
            stems = _stems(rng, MUSDB_RATE, sizes.musdb_seconds)
            mix = np.sum(np.stack(list(stems.values())), axis=0)
            m = max(float(np.max(np.abs(x))) for x in (mix, *stems.values()))
            scale = 0.9 / m if m > 0.9 else 1.0  # the same gain on every stem: the mixture stays their sum
            d = base / subset / name
            for stem, x in stems.items():
                _write(d / f"{stem}.wav", scale * x, MUSDB_RATE, "WAV")
            _write(d / "mixture.wav", scale * mix, MUSDB_RATE, "WAV")
            n_files += 1 + len(stems)
            tracks[subset].append(name)
            k += 1
    return {"path": str(base), "tracks": tracks, "files": n_files}


# --------------------------------------------------------------------------- all three
def build_fixtures(root: str | Path, sizes: FixtureSizes | None = None, *, seed: int = 0, force: bool = False) -> dict:
    """Write the three fixture datasets under ``root``; returns what ``FIXTURE.json`` records.

    A root already holding a complete fixture of the same sizes and seed is left as it is (unless
    ``force``); a root holding anything else under ``vctk/``, ``daps/`` or ``musdb18hq/`` (e.g. the
    real datasets) is refused rather than mixed with synthetic files.
    """
    sizes = sizes or FixtureSizes()
    sizes.check()
    root = Path(root).expanduser()
    wanted = {"sizes": asdict(sizes), "seed": seed}
    marker = root / MARKER
    info = storage.read_json(marker) if marker.exists() else None
    if info and not force and {k: info.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
        return info
    if info is None:
        taken = [d for d in ("vctk", "daps", "musdb18hq") if (root / d).exists() and any((root / d).iterdir())]
        if taken:
            raise DatasetError(
                f"{root} already holds {', '.join(taken)}/ but no {MARKER}: it looks like real data; "
                "build the fixture in an empty folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)  # incomplete until the end
    out = {
        **wanted,
        "synthetic": True,
        "note": "SYNTHETIC audio in the real layouts of VCTK 0.92, DAPS and MUSDB18-HQ; results on it mean nothing",
        "vctk": build_vctk(root, sizes, seed),
        "daps": build_daps(root, sizes, seed),
        "musdb18hq": build_musdb(root, sizes, seed),
    }
    storage.write_json(marker, out)
    return storage.read_json(marker)  # the same (JSON) form a later call returns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dafxlib.corpus.fixtures",
        description="Write small SYNTHETIC stand-ins for VCTK 0.92, DAPS and MUSDB18-HQ in their real layouts.",
    )
    ap.add_argument("root", help="folder to write into (use it as data.dataset_root)")
    d = FixtureSizes()
    ap.add_argument("--vctk-speakers", type=int, default=d.vctk_speakers)
    ap.add_argument("--vctk-utterances", type=int, default=d.vctk_utterances)
    ap.add_argument("--daps-speakers", type=int, default=d.daps_speakers)
    ap.add_argument("--daps-scripts", type=int, default=d.daps_scripts)
    ap.add_argument("--daps-seconds", type=float, default=d.daps_seconds)
    ap.add_argument("--daps-clean-only", action="store_true", help="write only DAPS's clean/ version")
    ap.add_argument("--musdb-train", type=int, default=d.musdb_train)
    ap.add_argument("--musdb-test", type=int, default=d.musdb_test)
    ap.add_argument("--musdb-seconds", type=float, default=d.musdb_seconds)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="write again even if a matching fixture is there")
    args = ap.parse_args(argv)
    sizes = FixtureSizes(
        vctk_speakers=args.vctk_speakers,
        vctk_utterances=args.vctk_utterances,
        daps_speakers=args.daps_speakers,
        daps_scripts=args.daps_scripts,
        daps_seconds=args.daps_seconds,
        daps_versions=("clean",) if args.daps_clean_only else DAPS_VERSIONS,
        musdb_train=args.musdb_train,
        musdb_test=args.musdb_test,
        musdb_seconds=args.musdb_seconds,
    )
    try:
        info = build_fixtures(args.root, sizes, seed=args.seed, force=args.force)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = Path(args.root).expanduser().resolve()
    print(
        f"SYNTHETIC fixture datasets in {root}: VCTK {info['vctk']['files']} files "
        f"({len(info['vctk']['speakers'])} speakers), DAPS {info['daps']['files']} files "
        f"({len(info['daps']['versions'])} versions), MUSDB18-HQ "
        f"{len(info['musdb18hq']['tracks']['train'])}+{len(info['musdb18hq']['tracks']['test'])} tracks"
    )
    print(f"run the paper profile on them: ./run_all.sh --profile paper --set data.dataset_root={root}")
    return 0


__all__ = [
    "DAPS_VERSIONS",
    "FixtureSizes",
    "build_fixtures",
    "build_vctk",
    "build_daps",
    "build_musdb",
    "speech_like",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())

"""Synthetic speech from the espeak-ng engine that the PyPI package ``espeakng-loader`` ships.

The shared library is driven through ctypes (no system espeak needed, no network):
``espeak_Initialize`` in synchronous retrieval mode, a synth callback collecting 16-bit
samples at the engine rate (22050 Hz), ``espeak_SetVoiceByName`` with a language plus a
voice variant (``"en-gb-x-rp+f3"``) and ``espeak_SetParameter`` for rate, pitch and pitch
range. The text is public-domain Harvard sentences (IEEE 1969 recommended practice).

Determinism: espeak-ng keeps internal synthesis state between utterances (its pitch
flutter phase and noise generators are not reset even by Terminate/Initialize), so the same
request gives slightly different audio depending on what the process spoke before. The
corpus builder therefore runs :func:`synthesize_many` which speaks fixed-size chunks of
requests, each chunk in a fresh worker process: the same request list always yields
byte-identical audio. :func:`speak` (in-process, one engine per process behind a lock) is
for interactive use where that does not matter.

This file is also the worker script: ``python speech.py REQUESTS.json OUT.npz`` (it is
run by path so the worker imports only numpy and ctypes).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: 60 Harvard sentences, lists 1-6 (public domain, IEEE Subcommittee on Subjective Measurements 1969)
HARVARD_SENTENCES: tuple[str, ...] = (
    # list 1
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    # list 2
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    # list 3
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    # list 4
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    # list 5
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
    # list 6
    "The frosty air passed through the coat.",
    "The crooked maze failed to fool the mouse.",
    "Adding fast leads to wrong sums.",
    "The show was a flop from the very start.",
    "A saw is a tool used for making boards.",
    "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.",
    "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.",
    "Both lost their lives in the raging storm.",
)

#: accents heard in training/validation/test ("seen speech")
SEEN_LANGUAGES = ("en", "en-us", "en-gb-x-rp", "en-029")
#: voice variants (files in espeak-ng-data/voices/!v) of seen speech; "" is the plain voice
SEEN_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "f1",
    "f2",
    "f3",
    "f4",
    "klatt3",
    "klatt4",
    "Alex",
    "Andy",
    "Alicia",
    "anika",
    "belinda",
    "iven",
    "john",
    "linda",
    "michel",
    "steph",
    "travis",
    "adam",
)
#: accents and voices kept out of training entirely (the embedded "unseen speech", like DAPS)
UNSEEN_LANGUAGES = ("en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
UNSEEN_VARIANTS = (
    "m7",
    "m8",
    "f5",
    "klatt5",
    "klatt6",
    "Annie",
    "Andrea",
    "aunty",
    "benjamin",
    "edward",
    "grandma",
    "norbert",
    "shelby",
    "Gene",
    "Mario",
)

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice setting: accent + variant + prosody."""

    language: str = "en"
    variant: str = ""
    rate: int = 175  # words per minute (80..450)
    pitch: int = 50  # base pitch 0..99
    range: int = 50  # pitch range 0..99 (0 is monotone)
    word_gap: int = 0  # extra pause between words, units of 10 ms

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


def _library_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - it is a pinned dependency
        raise RuntimeError("espeak-ng is missing: pip install espeakng-loader==0.2.4") from exc
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def data_dir() -> Path:
    """The ``espeak-ng-data`` folder shipped by espeakng-loader."""
    return Path(_library_paths()[1])


def available_variants() -> list[str]:
    return sorted(p.name for p in (data_dir() / "voices" / "!v").iterdir() if p.is_file())


def available_languages() -> list[str]:
    """Lower-case language voice names (file names under ``espeak-ng-data/lang``)."""
    return sorted({p.name.lower() for p in (data_dir() / "lang").rglob("*") if p.is_file()})


def check_voice(voice: Voice) -> None:
    """Raise ValueError for a language or variant that espeak-ng would silently ignore."""
    if voice.language.lower() not in available_languages():
        raise ValueError(
            f"unknown espeak-ng language {voice.language!r}; see dafxlib.corpus.speech.available_languages()"
        )
    if voice.variant and voice.variant not in available_variants():
        raise ValueError(
            f"unknown espeak-ng voice variant {voice.variant!r}; see dafxlib.corpus.speech.available_variants()"
        )
    for name, v, lo, hi in (
        ("rate", voice.rate, 80, 450),
        ("pitch", voice.pitch, 0, 99),
        ("range", voice.range, 0, 99),
        ("word_gap", voice.word_gap, 0, 100),
    ):
        if not lo <= int(v) <= hi:
            raise ValueError(f"voice {name}={v} outside {lo}..{hi}")


class _Engine:
    """The process-wide espeak-ng instance (the C library is global and not thread safe)."""

    _instance: _Engine | None = None
    _create_lock = threading.Lock()

    def __init__(self) -> None:
        lib_path, data_path = _library_paths()
        lib = ctypes.CDLL(lib_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        # espeak-ng seeds its noise generator (breathy voices) from the clock; reseed per utterance
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None
        # the path argument is the folder that contains espeak-ng-data
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.path.dirname(data_path).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}); data at {data_path}")
        self.lib = lib
        self.sample_rate = int(rate)
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        # keep a reference: the C side holds only the raw pointer
        self._callback = proto(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # continue

    @classmethod
    def get(cls) -> _Engine:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def speak(self, text: str, voice: Voice, seed: int | None = None) -> np.ndarray:
        """16-bit samples of ``text`` spoken by ``voice`` at :attr:`sample_rate`.

        ``seed`` (default: a hash of text and voice) seeds espeak-ng's noise generator.
        """
        if seed is None:
            seed = zlib.crc32(f"{text}|{voice}".encode())
        with self.lock:
            if self._set_seed is not None:
                self._set_seed(int(seed) & 0x7FFFFFFF)
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak-ng rejected voice {voice.name!r}")
            for param, value in (
                (_RATE, voice.rate),
                (_PITCH, voice.pitch),
                (_RANGE, voice.range),
                (_WORDGAP, voice.word_gap),
                (_VOLUME, 100),
            ):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            buf = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}")
            out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
        return out


def engine_sample_rate() -> int:
    return _Engine.get().sample_rate


def speak(text: str, voice: Voice | None = None) -> tuple[np.ndarray, int]:
    """Speak ``text`` in this process: ``(float32 mono audio, engine sample rate)``.

    Safe to call from several threads (one engine per process behind a lock). The result
    depends slightly on what this process spoke before (see the module docstring); use
    :func:`synthesize_many` for reproducible audio.
    """
    voice = voice or Voice()
    check_voice(voice)
    eng = _Engine.get()
    pcm = eng.speak(text, voice)
    return pcm.astype(np.float32) / 32768.0, eng.sample_rate


# --------------------------------------------------------------------------- reproducible batches
_TMP_PREFIX = "dafx_espeak_"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temp_dirs() -> int:
    """Delete the espeak temp folders of builds that were killed (their process is gone);
    the folder names carry the owning process id. Returns how many were removed."""
    import shutil

    removed = 0
    for d in Path(tempfile.gettempdir()).glob(_TMP_PREFIX + "*"):
        pid = d.name[len(_TMP_PREFIX) :].split("_", 1)[0]
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


def _run_chunk(items: list[tuple[str, Voice]], timeout: float) -> tuple[list[np.ndarray], int]:
    # the pid in the name lets a later build remove this folder if this process is killed
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}_") as tmp:
        req, out = Path(tmp) / "req.json", Path(tmp) / "out.npz"
        req.write_text(json.dumps([{"text": t, **asdict(v)} for t, v in items]))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(req), str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"espeak-ng worker failed (exit {proc.returncode}): {' | '.join(tail)}")
        with np.load(out) as z:
            rate = int(z["sample_rate"])
            audio = [z[f"a{i}"].astype(np.float32) / 32768.0 for i in range(len(items))]
    return audio, rate


def synthesize_many(
    items: list[tuple[str, Voice]], *, chunk_size: int = 8, workers: int = 2, timeout: float = 300.0
) -> tuple[list[np.ndarray], int]:
    """Speak ``(text, voice)`` requests reproducibly: ``(list of float32 arrays, sample rate)``.

    Requests are cut into chunks of ``chunk_size``; each chunk runs in a fresh worker process,
    ``workers`` at a time, so the same list always gives identical audio.
    """
    for _, v in items:
        check_voice(v)
    remove_stale_temp_dirs()
    if not items:
        return [], engine_sample_rate()
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        results = list(pool.map(lambda c: _run_chunk(c, timeout), chunks))
    audio = [a for chunk_audio, _ in results for a in chunk_audio]
    return audio, results[0][1]


def _worker_main(req_path: str, out_path: str) -> None:
    items = json.loads(Path(req_path).read_text())
    eng = _Engine.get()
    arrays: dict[str, Any] = {}
    for i, it in enumerate(items):
        text = it.pop("text")
        arrays[f"a{i}"] = eng.speak(text, Voice(**it))
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, sample_rate=np.int64(eng.sample_rate), **arrays)
    os.replace(tmp, out_path)


if __name__ == "__main__":  # worker process (see synthesize_many)
    _worker_main(sys.argv[1], sys.argv[2])

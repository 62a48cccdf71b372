"""The study's datasets (VCTK 0.92, DAPS, MUSDB18-HQ), any folder of audio, and file-level splits.

- Layout parsers: :func:`vctk_files`, :func:`daps_files`, :func:`musdb_files` return
  :class:`AudioFile` records (path, id, speaker/track group, subset, transcript).
  A missing dataset raises :class:`~dafxlib.errors.DatasetError` naming the path and the
  command that downloads it.
- Downloads: :func:`download` / :func:`download_file` resume an interrupted transfer from a
  ``.part`` file with an HTTP Range request, verify a checksum when one is known, and
  extract the archive. ``python -m dafxlib.datasets download vctk --root DIR``. Every download
  says whether its archive can be verified (:func:`checksum_status`: only VCTK has a known
  checksum). MUSDB18-HQ is given by Zenodo on request only: without an access link (``--url``)
  the command downloads nothing and says where to put the archive or the extracted folder
  (:func:`access_instructions`); an archive placed there is then verified-if-possible and extracted.
- :func:`load_folder` reads any folder of wav/flac/ogg/mp3; unreadable, silent, too short
  files and files with an unexpected sample rate or channel count are skipped, each with a
  one-line reason (logged and returned in a :class:`FolderReport`), never a crash.
- :func:`split_files`: seeded train/val/test assignment of file (or speaker) ids that never
  overlaps; the ``"hash"`` method keeps every id's split when files are added.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import lzma
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioError, DatasetError
from .seeding import unit_hash

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    url: str
    filename: str
    #: "sha256:<hex>" or "md5:<hex>"; None when no published value could be verified (then a
    #: download is not verified and a warning says so)
    checksum: str | None
    folder: str  # folder under the dataset root that holds the extracted data
    homepage: str
    license: str
    size: str
    note: str = ""
    #: "open" (anyone can fetch ``url``) or "request" (the host grants access on request: the
    #: plain URL refuses, the user brings an access link or the archive)
    access: str = "open"
    #: where the known checksum comes from (shown with it)
    checksum_source: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "vctk": DatasetInfo(
        name="vctk",
        title="CSTR VCTK Corpus 0.92",
        url="https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
        filename="VCTK-Corpus-0.92.zip",
        # value used by torchaudio.datasets.VCTK_092 (the data owner publishes none)
        checksum="sha256:f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c",
        checksum_source="the value torchaudio's VCTK_092 checks; the data owner publishes none",
        folder="vctk",
        homepage="https://datashare.ed.ac.uk/handle/10283/3443",
        license="CC BY 4.0",
        size="11 GB",
    ),
    "daps": DatasetInfo(
        name="daps",
        title="DAPS (Device and Produced Speech)",
        url="https://zenodo.org/records/4660670/files/daps.tar.gz?download=1",
        filename="daps.tar.gz",
        checksum=None,
        folder="daps",
        homepage="https://zenodo.org/records/4660670",
        license="CC BY-NC 4.0",
        size="16 GB",
    ),
    "musdb18hq": DatasetInfo(
        name="musdb18hq",
        title="MUSDB18-HQ",
        url="https://zenodo.org/records/3338373/files/musdb18hq.zip?download=1",
        filename="musdb18hq.zip",
        checksum=None,
        folder="musdb18hq",
        homepage="https://zenodo.org/records/3338373",
        license="academic use (see homepage)",
        size="23 GB",
        note="request access on the homepage, then pass your link with --url or place the archive",
        access="request",
    ),
}


def _info(name: str) -> DatasetInfo:
    key = name.lower().replace("-", "").replace("_", "")
    key = {"musdb": "musdb18hq", "musdb18": "musdb18hq"}.get(key, key)
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def download_command(name: str, root: str | os.PathLike) -> str:
    return f"python -m dafxlib.datasets download {_info(name).name} --root {root}"


def checksum_status(name: str, verify: bool = True) -> str:
    """One line saying whether a download of ``name`` is verified, and against what."""
    info = _info(name)
    if not verify:
        return f"{info.title}: checksum verification switched off (--no-verify): the archive is NOT verified"
    if info.checksum is None:
        return (
            f"{info.title}: no checksum is known for {info.filename} (none is published): the archive is "
            "NOT verified; compare its size with the homepage's"
        )
    algo, _, value = info.checksum.partition(":")
    src = f" ({info.checksum_source})" if info.checksum_source else ""
    return f"{info.title}: the archive is verified against {algo} {value[:16]}...{src}"


def access_instructions(name: str, root: str | os.PathLike) -> str:
    """What to do for a dataset given on request: where the archive or the extracted folder goes."""
    info = _info(name)
    root = Path(root).expanduser()
    layout = {
        "musdb18hq": f"{root / info.folder}/train/<track>/mixture.wav (and test/)",
        "vctk": f"{root / info.folder}/wav48_silence_trimmed/<speaker>/",
        "daps": f"{root / info.folder}/clean/",
    }[info.name]
    return (
        f"{info.title} is given on request only: ask for access at {info.homepage}, then either (1) run `{download_command(name, root)} --url <the download link you were "
        f"given>`, or (2) download {info.filename} yourself, put it at {root / 'downloads' / info.filename} "
        f"and run `{download_command(name, root)}` again (it extracts it), or (3) extract it yourself so "
        f"that {layout} exists"
    )


def dataset_root(profile=None) -> Path:
    """``profile.data.dataset_root`` or ``<build>/datasets`` (shared by every profile)."""
    from . import paths

    root = getattr(getattr(profile, "data", None), "dataset_root", None)
    if root:
        return Path(root).expanduser()
    base = Path(os.environ.get("DAFX_BUILD_DIR", paths.repo_root() / "build"))
    return base / "datasets"


def _missing(name: str, root: Path, looked: Sequence[Path], what: str) -> DatasetError:
    info = _info(name)
    tried = ", ".join(str(p) for p in looked)
    how = (
        access_instructions(name, root)
        if info.access == "request"
        else f"Download it with `{download_command(name, root)}`"
    )
    return DatasetError(
        f"{info.title} not found under {root} (looked for {what} in: {tried}). {how}; or set profile "
        f"data.dataset_root to the folder that holds it ({info.homepage})"
    )


# --------------------------------------------------------------------------- layout parsing
@dataclass(frozen=True)
class AudioFile:
    """One recording of a dataset."""

    path: Path
    id: str  # unique within the dataset, e.g. "p225_001", "f1_script1", "train/Track Name"
    group: str  # speaker (VCTK, DAPS) or track (MUSDB): the unit splits respect
    dataset: str
    subset: str | None = None  # MUSDB "train"/"test"
    text: str | None = None
    meta: dict = field(default_factory=dict, hash=False, compare=False)


def _first_existing(cands: Iterable[Path], check: Callable[[Path], bool]) -> Path | None:
    for c in cands:
        if check(c):
            return c
    return None


def locate_vctk(root: str | os.PathLike) -> Path:
    """The VCTK 0.92 folder (the one holding ``wav48_silence_trimmed``)."""
    root = Path(root)
    cands = [root, root / "VCTK-Corpus-0.92", root / "vctk", root / "vctk" / "VCTK-Corpus-0.92"]
    found = _first_existing(cands, lambda p: (p / "wav48_silence_trimmed").is_dir())
    if found is None:
        raise _missing("vctk", root, cands, "wav48_silence_trimmed/")
    return found


def vctk_files(root: str | os.PathLike, mic: str = "mic1") -> list[AudioFile]:
    """VCTK 0.92: ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`` plus ``txt/pXXX/pXXX_NNN.txt``."""
    base = locate_vctk(root)
    out = []
    for spk_dir in sorted(p for p in (base / "wav48_silence_trimmed").iterdir() if p.is_dir()):
        for f in sorted(spk_dir.glob(f"*_{mic}.flac")):
            utt = f.name[: -len(f"_{mic}.flac")]
            txt = base / "txt" / spk_dir.name / f"{utt}.txt"
            text = txt.read_text(errors="replace").strip() if txt.exists() else None
            out.append(AudioFile(path=f, id=utt, group=spk_dir.name, dataset="vctk", text=text, meta={"mic": mic}))
    if not out:
        raise DatasetError(
            f"no *_{mic}.flac files under {base / 'wav48_silence_trimmed'}; the "
            f"extraction looks incomplete: re-run `{download_command('vctk', root)}`"
        )
    return out


def locate_daps(root: str | os.PathLike, version: str = "clean") -> Path:
    root = Path(root)
    cands = [root, root / "daps", root / "daps" / "daps"]
    found = _first_existing(cands, lambda p: (p / version).is_dir())
    if found is None:
        raise _missing("daps", root, cands, f"{version}/")
    return found


def daps_files(root: str | os.PathLike, version: str = "clean") -> list[AudioFile]:
    """DAPS: ``<version>/<speaker>_<script>_<version>.wav`` with speakers f1..f10, m1..m10."""
    base = locate_daps(root, version)
    out = []
    for f in sorted((base / version).glob("*.wav")):
        if f.name.startswith("._"):  # macOS resource forks inside the archive
            continue
        parts = f.stem.split("_")
        if len(parts) < 2 or parts[0][:1] not in ("f", "m"):
            continue
        out.append(
            AudioFile(
                path=f,
                id=f"{parts[0]}_{parts[1]}",
                group=parts[0],
                dataset="daps",
                meta={"script": parts[1], "version": version, "gender": "female" if parts[0][0] == "f" else "male"},
            )
        )
    if not out:
        raise DatasetError(f"no DAPS wav files under {base / version}; re-run `{download_command('daps', root)}`")
    return out


MUSDB_STEMS = ("mixture", "drums", "bass", "other", "vocals")


def locate_musdb(root: str | os.PathLike) -> Path:
    root = Path(root)
    cands = [root, root / "musdb18hq", root / "MUSDB18-HQ", root / "musdb18hq" / "musdb18hq"]
    found = _first_existing(cands, lambda p: (p / "train").is_dir() or (p / "test").is_dir())
    if found is None:
        raise _missing("musdb18hq", root, cands, "train/ and test/")
    return found


def musdb_files(
    root: str | os.PathLike, stem: str = "mixture", subsets: Sequence[str] = ("train", "test")
) -> list[AudioFile]:
    """MUSDB18-HQ: ``train|test/<track>/{mixture,drums,bass,other,vocals}.wav``."""
    if stem not in MUSDB_STEMS:
        raise DatasetError(f"unknown MUSDB stem {stem!r}; valid: {', '.join(MUSDB_STEMS)}")
    base = locate_musdb(root)
    out = []
    for subset in subsets:
        d = base / subset
        if not d.is_dir():
            continue
        for track in sorted(p for p in d.iterdir() if p.is_dir()):
            f = track / f"{stem}.wav"
            if not f.exists():
                continue
            stems = {s: str(track / f"{s}.wav") for s in MUSDB_STEMS if (track / f"{s}.wav").exists()}
            out.append(
                AudioFile(
                    path=f,
                    id=f"{subset}/{track.name}",
                    group=track.name,
                    dataset="musdb18hq",
                    subset=subset,
                    meta={"stems": stems},
                )
            )
    if not out:
        raise DatasetError(
            f"no {stem}.wav under {base}/{{train,test}}/<track>/; re-run `{download_command('musdb18hq', root)}`"
        )
    return out


# --------------------------------------------------------------------------- splits
def split_files(
    ids: Iterable[str], fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0, method: str = "hash"
) -> dict[str, str]:
    """Assign each id to ``"train"``, ``"val"`` or ``"test"``; an id is in exactly one split.

    ``method="hash"``: each id's split depends only on (seed, id), so adding files never
    moves existing ones; counts follow the fractions only on average.
    ``method="exact"``: ids ordered by their seeded hash and cut at the fractions (largest
    remainder), so counts are exact and each split with a non-zero fraction gets at least one
    id when there are enough ids. Use it for small sets.
    """
    ids = list(dict.fromkeys(str(i) for i in ids))  # unique, order kept
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or fr.sum() <= 0:
        raise DatasetError(f"split fractions must be three non-negative numbers, got {fractions}")
    fr = fr / fr.sum()
    if method == "hash":
        edges = np.cumsum(fr)
        out = {}
        for i in ids:
            u = unit_hash(i, seed)
            out[i] = SPLITS[min(int(np.searchsorted(edges, u, side="right")), 2)]
        return out
    if method != "exact":
        raise DatasetError(f"unknown split method {method!r}; use 'hash' or 'exact'")
    order = sorted(ids, key=lambda i: unit_hash(i, seed))
    counts = split_counts(len(order), fr)
    out, k = {}, 0
    for split, c in zip(SPLITS, counts):
        for i in order[k : k + c]:
            out[i] = split
        k += c
    return out


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts per split summing to ``n`` (largest remainder; a split with a non-zero
    fraction gets at least one item when ``n`` allows)."""
    fr = np.asarray(fractions, dtype=np.float64)
    fr = fr / fr.sum()
    raw = fr * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    nonzero = [i for i in range(len(fr)) if fr[i] > 0]
    if n >= len(nonzero):
        for i in nonzero:
            if counts[i] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[i] += 1
    return [int(c) for c in counts]


# --------------------------------------------------------------------------- user folders
@dataclass
class LoadedAudio:
    path: Path
    audio: np.ndarray  # mono float32 at the requested sample rate
    sample_rate: int
    native_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class FolderReport:
    """What :func:`load_folder` read and what it skipped (with one reason per file)."""

    folder: Path
    files: list[LoadedAudio] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return len(self.files)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def reasons(self) -> dict[str, int]:
        """Count of skipped files per reason kind (the text before the first colon)."""
        out: dict[str, int] = {}
        for _, r in self.skipped:
            k = r.split(":")[0]
            out[k] = out.get(k, 0) + 1
        return out

    def summary(self) -> str:
        lines = [f"{self.folder}: {self.n_ok} files loaded, {self.n_skipped} skipped"]
        lines += [f"  skipped {Path(p).name}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


def list_audio_files(
    folder: str | os.PathLike, *, recursive: bool = True, extensions: Sequence[str] | None = None
) -> list[Path]:
    """The audio files of a folder (by extension, sorted; macOS ``._`` shadow files left out)."""
    from . import audio as A

    exts = tuple(e.lower() for e in (extensions or A.AUDIO_EXTENSIONS))
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in Path(folder).expanduser().glob(pattern)
        if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("._")
    )


def folder_fingerprint(folder: str | os.PathLike, *, recursive: bool = True) -> list[list[Any]]:
    """What a cache of a folder's audio depends on: ``[relative name, size, mtime_ns]`` per
    audio file. Adding, removing, replacing or touching a file changes it."""
    folder = Path(folder).expanduser()
    out = []
    for p in list_audio_files(folder, recursive=recursive):
        st = p.stat()
        out.append([p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def load_folder(
    path: str | os.PathLike,
    sample_rate: int,
    *,
    min_seconds: float = 0.5,
    silence_db: float = -60.0,
    min_sample_rate: int = 16_000,
    max_channels: int = 2,
    expected_sample_rate: int | None = None,
    recursive: bool = True,
    extensions: Sequence[str] | None = None,
) -> FolderReport:
    """Read every audio file in a folder as mono float32 at ``sample_rate``.

    Skipped (counted, one line each, never raised): unreadable or corrupt files, files shorter
    than ``min_seconds``, silent files (RMS below ``silence_db`` dBFS), files whose native rate
    is below ``min_sample_rate`` (or differs from ``expected_sample_rate`` when given), and
    files with more than ``max_channels`` channels. A missing folder raises DatasetError.
    """
    from . import audio as A

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"audio folder not found: {folder}; check profile data.user_folder or the path you passed")
    files = list_audio_files(folder, recursive=recursive, extensions=extensions)
    report = FolderReport(folder=folder)

    def skip(p: Path, reason: str) -> None:
        report.skipped.append((str(p), reason))
        log.warning("skipped %s: %s", p, reason)

    for p in files:
        try:
            audio, native = A.load_audio(p)
        except AudioError as exc:
            skip(p, "unreadable: " + " ".join(str(exc).split(";")[0].split())[:200])
            continue
        channels = audio.shape[0]
        if channels > max_channels:
            skip(p, f"channels: {channels} channels, at most {max_channels} expected")
            continue
        if expected_sample_rate is not None and native != expected_sample_rate:
            skip(p, f"sample rate: {native} Hz, expected {expected_sample_rate} Hz")
            continue
        if native < min_sample_rate:
            skip(p, f"sample rate: {native} Hz is below the minimum {min_sample_rate} Hz")
            continue
        seconds = audio.shape[-1] / native
        if seconds < min_seconds:
            skip(p, f"too short: {seconds:.3f} s < {min_seconds} s")
            continue
        if not np.all(np.isfinite(audio)):
            skip(p, "non-finite: contains NaN or inf samples")
            continue
        mono = A.resample(A.to_mono(audio), native, sample_rate)
        if A.is_silent(mono, silence_db):
            skip(p, f"silent: RMS {A.rms_db(mono, axis=None):.1f} dBFS < {silence_db} dBFS")
            continue
        report.files.append(
            LoadedAudio(path=p, audio=mono, sample_rate=int(sample_rate), native_rate=native, channels=channels)
        )
    if report.skipped:
        log.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------- downloads
def file_checksum(path: str | os.PathLike, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, checksum: str | None) -> bool:
    """True when ``checksum`` ("sha256:<hex>" / "md5:<hex>") matches; False (with a warning)
    when there is none to check; DatasetError on a mismatch."""
    if not checksum:
        log.warning("no checksum known for %s: its integrity is NOT verified", path)
        return False
    algo, _, want = checksum.partition(":")
    if not want:
        raise DatasetError(f"checksum {checksum!r} must look like 'sha256:<hex>' or 'md5:<hex>'")
    got = file_checksum(path, algo)
    if got.lower() != want.lower():
        raise DatasetError(
            f"checksum mismatch for {path}: {algo} {got} != expected {want}; the "
            f"download is corrupt or changed upstream; delete it and download again"
        )
    return True


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    checksum: str | None = None,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
    retries: int = 3,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming from ``dest + '.part'`` with an HTTP Range request.

    A server that ignores the Range header restarts the file from zero. The ``.part`` file is
    renamed to ``dest`` only after the checksum (if any) matches; a mismatch deletes it and
    raises DatasetError. An existing ``dest`` with a matching checksum is not downloaded again.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if checksum is None or verify_checksum(dest, checksum):
            return dest
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch(url, part, chunk_size, timeout, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403, 404):
                raise DatasetError(
                    f"download of {url} refused (HTTP {exc.code}): {exc.reason}; check the URL or your access rights"
                ) from exc
            attempt += 1
            if attempt > retries:
                raise DatasetError(
                    f"download of {url} failed after {retries} retries: {exc}; run "
                    f"the same command again to resume from {part}"
                ) from exc
            log.warning("download interrupted (%s); resuming (%d/%d)", exc, attempt, retries)
            time.sleep(min(2.0**attempt, 30.0))
    try:
        verify_checksum(part, checksum)
    except DatasetError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _fetch(
    url: str, part: Path, chunk_size: int, timeout: float, progress: Callable[[int, int | None], None] | None
) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "dafxlib"})
    http = url.lower().startswith(("http://", "https://"))
    if have and http:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
            return
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        if have and status == 206:
            mode = "ab"
        else:  # full content (server ignored Range, or a fresh download)
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        done = have
        with open(part, mode) as fh:
            while True:
                b = resp.read(chunk_size)
                if not b:
                    break
                fh.write(b)
                done += len(b)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise OSError(f"connection closed after {done} of {total} bytes")


def _safe_members_tar(tf: tarfile.TarFile, dest: Path):
    dest = dest.resolve()
    for m in tf.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest) + os.sep) and target != dest:
            raise DatasetError(f"archive member {m.name!r} would extract outside {dest}")
        if m.issym() or m.islnk():
            continue
        yield m


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a .zip / .tar(.gz|.bz2|.xz) into ``dest`` (refusing paths that escape it).

    A damaged archive (truncated, bad CRC) raises DatasetError naming the file to delete;
    nothing is extracted then."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".extracting")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        try:
            _extract_into(archive, dest, tmp)
        except (EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # a disk problem (full, permissions), not a damaged archive
            raise DatasetError(
                f"archive {archive} is damaged ({type(exc).__name__}: {exc}); nothing was "
                f"extracted. Delete {archive} and download it again"
            ) from exc
        for item in tmp.iterdir():
            target = dest / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract_into(archive: Path, dest: Path, tmp: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            root = tmp.resolve()
            for name in zf.namelist():
                target = (tmp / name).resolve()
                if not str(target).startswith(str(root) + os.sep) and target != root:
                    raise DatasetError(f"archive member {name!r} would extract outside {dest}")
            zf.extractall(tmp)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = list(_safe_members_tar(tf, tmp))
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: also strip odd modes
                tf.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover
                tf.extractall(tmp, members=members)
    else:
        raise DatasetError(
            f"{archive} is neither a zip nor a tar archive (or it is cut short); delete it and download it again"
        )


def download(
    name: str,
    root: str | os.PathLike,
    *,
    url: str | None = None,
    verify: bool = True,
    extract: bool = True,
    keep_archive: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download (resumable), verify and extract dataset ``name`` under ``root/<folder>``."""
    info = _info(name)
    root = Path(root).expanduser()
    folder = root / info.folder
    archive = root / "downloads" / info.filename
    if info.access == "request" and url is None and not archive.exists():
        # the plain URL answers with a login page or 403: say what to do instead of fetching it
        raise DatasetError(access_instructions(name, root))
    status = checksum_status(name, verify)
    if verify and info.checksum:
        log.info("%s", status)
    else:
        log.warning("%s", status)
    # a mirror or access link (--url) serves the same archive, so the same checksum applies
    checksum = info.checksum if verify else None
    download_file(url or info.url, archive, checksum=checksum, progress=progress)
    if extract:
        try:
            extract_archive(archive, folder)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (`{download_command(name, root)}`)") from exc
        if not keep_archive:
            archive.unlink(missing_ok=True)
    return folder


class _DownloadBar:
    """A tqdm byte counter for :func:`download_file`'s ``progress`` callback (resumed bytes included)."""

    def __init__(self, name: str):
        self.name = name
        self.bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=total,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.name,
                file=sys.stderr,
                mininterval=1.0,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dafxlib.datasets", description="Download and inspect the study's datasets."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download (resumable), verify and extract a dataset")
    d.add_argument("name", choices=sorted(DATASETS))
    d.add_argument("--root", required=True, help="dataset root (profile data.dataset_root)")
    d.add_argument("--url", help="alternative URL (e.g. the access link Zenodo sent you)")
    d.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    d.add_argument("--no-extract", action="store_true")
    d.add_argument("--keep-archive", action="store_true")
    c = sub.add_parser("check", help="parse a dataset's layout and print its size")
    c.add_argument("name", choices=sorted(DATASETS))
    c.add_argument("--root", required=True)
    sub.add_parser("list", help="list the known datasets")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.cmd == "list":
            for info in DATASETS.values():
                print(f"{info.name:10s} {info.title} ({info.size}, {info.license}) {info.homepage}")
                checks = (
                    f"checksum {info.checksum.split(':')[0]}" if info.checksum else "no checksum known (NOT verified)"
                )
                access = "access on request" if info.access == "request" else "open download"
                print(f"{'':10s} {access}; {checks}" + (f"; {info.note}" if info.note else ""))
            return 0
        if args.cmd == "download":
            print(checksum_status(args.name, not args.no_verify))
            bar = _DownloadBar(args.name)
            try:
                folder = download(
                    args.name,
                    args.root,
                    url=args.url,
                    verify=not args.no_verify,
                    extract=not args.no_extract,
                    keep_archive=args.keep_archive,
                    progress=bar,
                )
            finally:
                bar.close()
            verified = "verified" if DATASETS[args.name].checksum and not args.no_verify else "NOT verified"
            print(f"{args.name} ready in {folder} (archive {verified})")
            return 0
        parser = {"vctk": vctk_files, "daps": daps_files, "musdb18hq": musdb_files}[args.name]
        files = parser(args.root)
        groups = {f.group for f in files}
        print(f"{args.name}: {len(files)} files, {len(groups)} speakers/tracks")
        return 0
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


__all__ = [
    "DATASETS",
    "DatasetInfo",
    "AudioFile",
    "FolderReport",
    "LoadedAudio",
    "SPLITS",
    "dataset_root",
    "download_command",
    "checksum_status",
    "access_instructions",
    "locate_vctk",
    "vctk_files",
    "locate_daps",
    "daps_files",
    "locate_musdb",
    "musdb_files",
    "split_files",
    "split_counts",
    "load_folder",
    "list_audio_files",
    "folder_fingerprint",
    "file_checksum",
    "verify_checksum",
    "download_file",
    "extract_archive",
    "download",
    "main",
]

if __name__ == "__main__":
    sys.exit(main())

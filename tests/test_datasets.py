"""dafxlib.datasets: splits, folder loading with bad files, layouts, resumable downloads.

No test touches the network: downloads are served by a local http.server on 127.0.0.1
(with and without HTTP Range support) or read from file:// URLs.
"""

from __future__ import annotations

import hashlib
import http.server
import io as _io
import logging
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dafxlib import datasets as D
from dafxlib.errors import DatasetError

SR = 24_000


def tone(seconds=1.0, sr=SR, freq=300.0, channels=1, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


# ----------------------------------------------------------------------------- splits
def test_hash_split_never_overlaps_and_is_stable():
    ids = [f"f{i:04d}" for i in range(2000)]
    a = D.split_files(ids, (0.7, 0.1, 0.2), seed=3)
    assert set(a) == set(ids) and set(a.values()) <= set(D.SPLITS)
    counts = {s: sum(v == s for v in a.values()) / len(ids) for s in D.SPLITS}
    assert counts["train"] == pytest.approx(0.7, abs=0.05)
    assert counts["test"] == pytest.approx(0.2, abs=0.05)
    assert D.split_files(ids, (0.7, 0.1, 0.2), seed=3) == a  # deterministic
    more = D.split_files(ids + [f"new{i}" for i in range(500)], (0.7, 0.1, 0.2), seed=3)
    assert all(more[i] == a[i] for i in ids)  # adding files never moves old ones
    assert D.split_files(ids, (0.7, 0.1, 0.2), seed=4) != a


def test_exact_split_counts_and_small_sets():
    ids = [f"s{i}" for i in range(10)]
    a = D.split_files(ids, (0.7, 0.1, 0.2), seed=0, method="exact")
    assert [sum(v == s for v in a.values()) for s in D.SPLITS] == [7, 1, 2]
    small = D.split_files(["a", "b", "c"], (0.7, 0.1, 0.2), seed=1, method="exact")
    assert sorted(small.values()) == ["test", "train", "val"]
    assert D.split_counts(8, (0.7, 0.1, 0.2)) in ([6, 1, 1], [5, 1, 2])
    assert sum(D.split_counts(101, (0.5, 0.25, 0.25))) == 101
    assert D.split_files(ids + ids, seed=0, method="exact").keys() == set(ids)


@pytest.mark.parametrize("fr", [(0.5, 0.5), (-1, 1, 1), (0, 0, 0)])
def test_bad_fractions_raise(fr):
    with pytest.raises(DatasetError):
        D.split_files(["a"], fr)


def test_unknown_split_method():
    with pytest.raises(DatasetError, match="method"):
        D.split_files(["a"], method="random")


# ----------------------------------------------------------------------------- user folders
@pytest.fixture
def messy_folder(tmp_path):
    d = tmp_path / "user"
    (d / "sub").mkdir(parents=True)
    sf.write(d / "good.wav", tone(), SR)
    sf.write(d / "sub" / "stereo44k.flac", tone(sr=44_100, channels=2), 44_100)
    sf.write(d / "silent.wav", np.zeros(SR), SR)
    sf.write(d / "short.wav", tone(seconds=0.1), SR)
    sf.write(d / "lowrate.wav", tone(sr=8000), 8000)
    sf.write(d / "surround.wav", tone(channels=6), SR)
    (d / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt garbage" * 20)
    (d / "truncated.flac").write_bytes((d / "good.wav").read_bytes()[:30])
    (d / "notes.txt").write_text("not audio")
    return d


def test_load_folder_skips_bad_files_with_reasons(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="dafxlib.datasets"):
        rep = D.load_folder(messy_folder, SR, min_seconds=0.5)
    names = sorted(f.path.name for f in rep.files)
    assert names == ["good.wav", "stereo44k.flac"]
    for f in rep.files:
        assert f.audio.dtype == np.float32 and f.audio.ndim == 1 and f.sample_rate == SR
        assert abs(len(f.audio) - SR) < 5
    skipped = {Path(p).name: r for p, r in rep.skipped}
    assert set(skipped) == {"silent.wav", "short.wav", "lowrate.wav", "surround.wav", "corrupt.wav", "truncated.flac"}
    assert skipped["silent.wav"].startswith("silent")
    assert skipped["short.wav"].startswith("too short")
    assert skipped["lowrate.wav"].startswith("sample rate")
    assert skipped["surround.wav"].startswith("channels")
    assert skipped["corrupt.wav"].startswith("unreadable")
    assert all("\n" not in r for r in skipped.values())  # one line each
    assert rep.n_ok == 2 and rep.n_skipped == 6
    assert rep.reasons()["unreadable"] == 2
    assert "6 skipped" in rep.summary()
    assert sum("skipped" in r.message for r in caplog.records) >= 6


def test_load_folder_expected_rate(messy_folder):
    rep = D.load_folder(messy_folder, SR, expected_sample_rate=SR)
    assert [f.path.name for f in rep.files] == ["good.wav"]
    assert any("expected 24000 Hz" in r for _, r in rep.skipped)


def test_load_folder_missing_raises(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        D.load_folder(tmp_path / "nowhere", SR)


# ----------------------------------------------------------------------------- layouts
def make_vctk(root: Path, speakers=("p225", "p226"), n=2, seconds=1.0):
    base = root / "VCTK-Corpus-0.92"
    for s in speakers:
        (base / "wav48_silence_trimmed" / s).mkdir(parents=True)
        (base / "txt" / s).mkdir(parents=True)
        for i in range(1, n + 1):
            sf.write(base / "wav48_silence_trimmed" / s / f"{s}_{i:03d}_mic1.flac", tone(seconds, 48_000), 48_000)
            sf.write(base / "wav48_silence_trimmed" / s / f"{s}_{i:03d}_mic2.flac", tone(seconds, 48_000), 48_000)
            (base / "txt" / s / f"{s}_{i:03d}.txt").write_text(f"sentence {i}\n")
    return base


def make_daps(root: Path, files=("f1_script1", "m3_script2"), seconds=3.0):
    d = root / "daps" / "clean"
    d.mkdir(parents=True)
    for f in files:
        sf.write(d / f"{f}_clean.wav", tone(seconds, 44_100), 44_100)
    (d / "._f1_script1_clean.wav").write_bytes(b"junk")
    return d


def make_musdb(root: Path, train=("A - One", "B - Two"), test=("C - Three",), seconds=3.0):
    for subset, tracks in (("train", train), ("test", test)):
        for t in tracks:
            d = root / "musdb18hq" / subset / t
            d.mkdir(parents=True)
            for stem in D.MUSDB_STEMS:
                sf.write(d / f"{stem}.wav", tone(seconds, 44_100, channels=2), 44_100)


def test_vctk_layout(tmp_path):
    make_vctk(tmp_path)
    files = D.vctk_files(tmp_path)
    assert [f.id for f in files] == ["p225_001", "p225_002", "p226_001", "p226_002"]
    assert files[0].group == "p225" and files[0].text == "sentence 1" and files[0].path.name.endswith("_mic1.flac")
    assert len(D.vctk_files(tmp_path / "VCTK-Corpus-0.92", mic="mic2")) == 4


def test_daps_layout(tmp_path):
    make_daps(tmp_path)
    files = D.daps_files(tmp_path)
    assert [(f.id, f.group, f.meta["gender"]) for f in files] == [
        ("f1_script1", "f1", "female"),
        ("m3_script2", "m3", "male"),
    ]


def test_musdb_layout(tmp_path):
    make_musdb(tmp_path)
    files = D.musdb_files(tmp_path)
    assert [(f.subset, f.group) for f in files] == [("train", "A - One"), ("train", "B - Two"), ("test", "C - Three")]
    assert set(files[0].meta["stems"]) == set(D.MUSDB_STEMS)
    assert D.musdb_files(tmp_path, stem="vocals")[0].path.name == "vocals.wav"


@pytest.mark.parametrize("name, parser", [("vctk", D.vctk_files), ("daps", D.daps_files), ("musdb18hq", D.musdb_files)])
def test_missing_dataset_names_path_and_command(tmp_path, name, parser):
    root = tmp_path / "no_data_here"
    with pytest.raises(DatasetError) as e:
        parser(root)
    msg = str(e.value)
    assert str(root) in msg
    assert f"python -m dafxlib.datasets download {name} --root {root}" in msg


def test_empty_vctk_folder_says_extraction_incomplete(tmp_path):
    (tmp_path / "wav48_silence_trimmed" / "p225").mkdir(parents=True)
    with pytest.raises(DatasetError, match="incomplete"):
        D.vctk_files(tmp_path)


# ----------------------------------------------------------------------------- downloads
class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    honour_range = True
    seen_ranges: list = []
    truncate_first: list = []  # paths whose first response is cut short

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        type(self).seen_ranges.append(rng)
        start = 0
        if rng and self.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if self.path in self.truncate_first:
            self.truncate_first.remove(self.path)
            self.wfile.write(chunk[: len(chunk) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    _Handler.files, _Handler.seen_ranges, _Handler.honour_range = {}, [], True
    _Handler.truncate_first = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_download_and_checksum(server, tmp_path):
    _, url = server
    body = np.random.default_rng(0).bytes(300_000)
    _Handler.files["/a.bin"] = body
    out = D.download_file(url + "/a.bin", tmp_path / "a.bin", checksum=sha(body), chunk_size=4096)
    assert out.read_bytes() == body and not (tmp_path / "a.bin.part").exists()
    # already there and valid: not fetched again
    n = len(_Handler.seen_ranges)
    D.download_file(url + "/a.bin", tmp_path / "a.bin", checksum=sha(body))
    assert len(_Handler.seen_ranges) == n


def test_download_resumes_from_part_file(server, tmp_path):
    _, url = server
    body = np.random.default_rng(1).bytes(200_000)
    _Handler.files["/b.bin"] = body
    (tmp_path / "b.bin.part").write_bytes(body[:123_456])
    D.download_file(url + "/b.bin", tmp_path / "b.bin", checksum=sha(body))
    assert (tmp_path / "b.bin").read_bytes() == body
    assert _Handler.seen_ranges == ["bytes=123456-"]


def test_download_resumes_after_connection_drop(server, tmp_path, monkeypatch):
    _, url = server
    monkeypatch.setattr(D.time, "sleep", lambda s: None)
    body = np.random.default_rng(2).bytes(150_000)
    _Handler.files["/c.bin"] = body
    _Handler.truncate_first.append("/c.bin")
    D.download_file(url + "/c.bin", tmp_path / "c.bin", checksum=sha(body), chunk_size=1024)
    assert (tmp_path / "c.bin").read_bytes() == body
    assert _Handler.seen_ranges[0] is None and _Handler.seen_ranges[1].startswith("bytes=")


def test_server_without_range_restarts_cleanly(server, tmp_path):
    _, url = server
    _Handler.honour_range = False
    body = np.random.default_rng(3).bytes(50_000)
    _Handler.files["/d.bin"] = body
    (tmp_path / "d.bin.part").write_bytes(b"stale partial data")
    D.download_file(url + "/d.bin", tmp_path / "d.bin", checksum=sha(body))
    assert (tmp_path / "d.bin").read_bytes() == body


def test_checksum_mismatch_raises_and_removes_part(server, tmp_path):
    _, url = server
    _Handler.files["/e.bin"] = b"x" * 1000
    with pytest.raises(DatasetError, match="checksum mismatch"):
        D.download_file(url + "/e.bin", tmp_path / "e.bin", checksum=sha(b"something else"))
    assert not (tmp_path / "e.bin").exists() and not (tmp_path / "e.bin.part").exists()
    with pytest.raises(DatasetError, match="md5"):
        D.download_file(url + "/e.bin", tmp_path / "e2.bin", checksum="md5:" + "0" * 32)


def test_missing_url_is_a_dataset_error(server, tmp_path):
    _, url = server
    with pytest.raises(DatasetError, match="404"):
        D.download_file(url + "/missing.zip", tmp_path / "m.zip")


def test_file_url_and_no_checksum_warns(tmp_path, caplog):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello" * 100)
    with caplog.at_level(logging.WARNING, logger="dafxlib.datasets"):
        D.download_file(src.as_uri(), tmp_path / "out" / "x.bin")
    assert (tmp_path / "out" / "x.bin").read_bytes() == b"hello" * 100
    assert any("NOT verified" in r.message for r in caplog.records)


def test_extract_rejects_path_traversal(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../escape.txt", "no")
    with pytest.raises(DatasetError, match="outside"):
        D.extract_archive(z, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    t = tmp_path / "evil.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("../../escape2.txt")
        info.size = 2
        tf.addfile(info, _io.BytesIO(b"no"))
    with pytest.raises(DatasetError, match="outside"):
        D.extract_archive(t, tmp_path / "dest2")
    (tmp_path / "junk.bin").write_bytes(b"neither")
    with pytest.raises(DatasetError, match="neither"):
        D.extract_archive(tmp_path / "junk.bin", tmp_path / "dest3")


def test_download_named_dataset_with_cli(server, tmp_path, capsys):
    """The CLI downloads a (local, fake) DAPS archive, extracts it, and the layout parses."""
    _, url = server
    src = tmp_path / "src"
    make_daps(src)
    buf = _io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(src / "daps", arcname="daps")
    _Handler.files["/daps.tar.gz"] = buf.getvalue()
    root = tmp_path / "datasets"
    rc = D.main(["download", "daps", "--root", str(root), "--url", url + "/daps.tar.gz"])
    assert rc == 0
    assert len(D.daps_files(root)) == 2
    assert not (root / "downloads" / "daps.tar.gz").exists()  # archive removed after extraction
    assert D.main(["check", "daps", "--root", str(root)]) == 0
    assert "2 files" in capsys.readouterr().out


def test_cli_reports_missing_dataset(tmp_path, capsys):
    assert D.main(["check", "vctk", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "download vctk --root" in err


def test_known_checksum_is_enforced_for_mirrors(server, tmp_path):
    _, url = server
    _Handler.files["/vctk.zip"] = b"not the real vctk"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        D.download("vctk", tmp_path, url=url + "/vctk.zip")


def test_registry():
    assert set(D.DATASETS) == {"vctk", "daps", "musdb18hq"}
    for info in D.DATASETS.values():
        assert info.url.startswith("https://")
        assert info.checksum is None or info.checksum.split(":")[0] in ("sha256", "md5")
    with pytest.raises(DatasetError, match="unknown dataset"):
        D.download("timit", ".")


def test_download_progress_bar_counts_resumed_and_new_bytes(capsys):
    from dafxlib.datasets import _DownloadBar

    bar = _DownloadBar("vctk")
    bar(40, 100)  # a resumed download starts at 40 bytes
    bar(70, 100)
    bar(100, 100)
    assert bar.bar.n == 100 and bar.bar.total == 100
    bar.close()
    err = capsys.readouterr().err
    assert "vctk" in err and "100" in err


# ----------------------------------------------------------------------------- checksums and access
@pytest.mark.parametrize("name", ["daps", "musdb18hq"])
def test_unknown_checksum_is_stated(name):
    line = D.checksum_status(name)
    assert "no checksum is known" in line and "NOT verified" in line and D.DATASETS[name].filename in line


def test_known_checksum_is_stated_with_its_source():
    line = D.checksum_status("vctk")
    assert "verified against sha256 f96258be9fdc2cbf" in line and "torchaudio" in line
    assert "NOT verified" in D.checksum_status("vctk", verify=False)


def test_list_states_access_and_checksum(capsys):
    assert D.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: out[i + 1] for i, line in enumerate(out) if line and not line.startswith(" ")}
    assert "checksum sha256" in rows["vctk"] and "open download" in rows["vctk"]
    assert "no checksum known (NOT verified)" in rows["daps"]
    assert "access on request" in rows["musdb18hq"] and "no checksum known" in rows["musdb18hq"]


def test_musdb_download_without_access_link_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    def no_network(*a, **k):  # the plain Zenodo URL must not even be tried
        raise AssertionError("tried to download")

    monkeypatch.setattr(D, "_fetch", no_network)
    root = tmp_path / "ds"
    assert D.main(["download", "musdb18hq", "--root", str(root)]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "on request only" in err and "https://zenodo.org/records/3338373" in err
    assert "--url" in err
    assert str(root / "downloads" / "musdb18hq.zip") in err
    assert str(root / "musdb18hq") + "/train/<track>/mixture.wav" in err
    assert "NOT verified" in captured.out  # the checksum line comes first
    # the parser's error for a missing MUSDB names the same ways to get it
    with pytest.raises(DatasetError, match="on request only") as e:
        D.musdb_files(root)
    assert str(root / "downloads" / "musdb18hq.zip") in str(e.value)


def test_musdb_archive_put_in_place_is_extracted_and_said_unverified(tmp_path, capsys, monkeypatch, caplog):
    monkeypatch.setattr(D, "_fetch", lambda *a, **k: (_ for _ in ()).throw(AssertionError("tried to download")))
    src = tmp_path / "src"
    make_musdb(src)
    root = tmp_path / "ds"
    (root / "downloads").mkdir(parents=True)
    with zipfile.ZipFile(root / "downloads" / "musdb18hq.zip", "w") as zf:  # the real zip holds train/ and test/
        for f in sorted((src / "musdb18hq").rglob("*.wav")):
            zf.write(f, f.relative_to(src / "musdb18hq").as_posix())
    with caplog.at_level(logging.WARNING, logger="dafxlib.datasets"):
        assert D.main(["download", "musdb18hq", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "archive NOT verified" in out
    assert any("NOT verified" in r.message for r in caplog.records)
    files = D.musdb_files(root)
    assert {f.subset for f in files} == {"train", "test"} and len(files) == 3

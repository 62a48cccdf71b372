"""Provenance: figures and numbers carry their maker; writes are atomic; bad keys rejected."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from dafxlib import provenance, storage
from dafxlib.errors import DafxError


@pytest.fixture()
def outdir(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "out"


def test_record_number_carries_provenance(outdir):
    provenance.start_notebook("01_data", "smoke")
    provenance.record_number("data.speech.n_clips", 12)
    provenance.record_numbers("data.music", {"n_clips": 3, "mean_lufs": float("nan")})
    raw = json.loads((outdir / "report" / "numbers.json").read_text())
    e = raw["data.speech.n_clips"]
    assert e["value"] == 12 and e["notebook"] == "01_data" and e["profile"] == "smoke"
    assert {"seed", "commit", "time"} <= set(e)
    assert raw["data.music.mean_lufs"]["value"] is None  # NaN is not valid JSON
    assert provenance.load_numbers("smoke")["data.music.n_clips"] == 3
    prov = provenance.load_provenance("smoke")
    assert prov["numbers"]["data.speech.n_clips"]["notebook"] == "01_data"


def test_bad_keys_and_names_are_rejected(outdir):
    provenance.start_notebook("01_data", "smoke")
    for key in ("Data.Speech", "nodots", "data..x", "data.speech-n"):
        with pytest.raises(DafxError):
            provenance.record_number(key, 1)
    fig = plt.figure()
    with pytest.raises(DafxError):
        provenance.save_figure(fig, "corpus")
    with pytest.raises(DafxError):
        provenance.save_figure(fig, "02_wrong_notebook")
    plt.close(fig)


def test_save_figure_writes_png_and_vector(outdir):
    provenance.start_notebook("01_data", "smoke")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = provenance.save_figure(fig, "01_test_line")
    plt.close(fig)
    assert png.exists() and png.with_suffix(".svg").exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prov = provenance.load_provenance("smoke")
    assert prov["figures"]["01_test_line"]["notebook"] == "01_data"


def test_notebook_time_and_machine(outdir):
    provenance.record_notebook_time("smoke", "01_data", 3.21)
    prov = provenance.load_provenance("smoke")
    assert prov["notebooks"]["01_data"]["wall_s"] == 3.21
    assert prov["machine"]["cpus"] >= 1


def test_clear_notebook_outputs_removes_only_that_notebook(outdir):
    provenance.start_notebook("01_data", "smoke")
    provenance.record_number("data.a.x", 1)
    provenance.start_notebook("02_vae_training", "smoke")
    provenance.record_number("vae.a.x", 2)
    provenance.clear_notebook_outputs("smoke", "01_data")
    assert provenance.load_numbers("smoke") == {"vae.a.x": 2}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    storage.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_no_context_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(provenance, "_CURRENT", None)
    with pytest.raises(DafxError, match="start_notebook"):
        provenance.record_number("a.b", 1)


def test_commit_stamp_ignores_the_canonical_outputs(tmp_path, monkeypatch):
    """The canonical run rewrites figures/ and report/ as it goes: that is not a dirty tree."""
    import subprocess

    from dafxlib.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("code.py", "figures/01_a.png", "report/numbers.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setenv("DAFX_ROOT", str(tmp_path))
    monkeypatch.delenv("DAFX_OUTPUT_DIR", raising=False)
    clean = git_commit()
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "figures/01_a.png").write_text("v2\n")
    (tmp_path / "report/numbers.json").unlink()
    assert git_commit() == clean
    (tmp_path / "code.py").write_text("v2\n")
    assert git_commit() == clean + "-dirty"

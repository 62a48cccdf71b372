"""The paper profile end to end: fixture datasets in the real layouts of VCTK 0.92, DAPS and
MUSDB18-HQ (dafxlib.corpus.fixtures), and all six notebooks run on them with ``--profile paper``.

The run keeps every code path of the real paper run: the mda effects, n_fft 4096 / hop 1024 with
2048 bins, 2.73 s halves, VCTK seen speech, DAPS unseen speech, MUSDB18-HQ music read through
``data.dataset_root``, UMAP projections and planes, all nine effects everywhere. Only counts,
epochs and sizes are cut (:data:`PAPER_FIXTURE_SETS`) so it fits a 2-core CPU.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dafxlib import datasets as D
from dafxlib.config import get_profile
from dafxlib.corpus import fixtures as F
from dafxlib.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: small sizes for the fixture datasets of the notebook run (every layout feature kept)
RUN_FIXTURE = F.FixtureSizes(vctk_speakers=6, vctk_utterances=3, daps_speakers=4, daps_seconds=10.0, musdb_seconds=9.0)

#: the paper profile cut to a 2-core CPU: counts, epochs and network sizes only; never the STFT,
#: the clip length, the datasets, the effect set or which effects take part
PAPER_FIXTURE_SETS: dict[str, str] = {
    "data.n_speech": "10",
    "data.n_music": "10",
    "effects.workers": "2",
    "vae.epochs": "1",
    "vae.warmup_epochs": "0",
    "vae.n_train_per_effect": "8",
    "vae.n_val_per_effect": "4",
    "vae.base_channels": "4",
    "vae.latent_dim": "8",
    "vae.batch_size": "8",
    "vae.umap_epochs": "30",
    "sweep.betas": "[0.005]",
    "sweep.latent_dims": "[8]",
    "sweep.modes": '["joint"]',
    "sweep.epochs": "1",
    "sweep.n_probe_per_effect": "6",
    "sweep.base_latent_dim": "8",
    "controller.hidden": "16",
    "controller.n_train_per_effect": "8",
    "controller.n_val_per_effect": "4",
    "controller.n_test_per_effect": "4",
    "controller.regression_epochs": "1",
    "controller.spsa_epochs": "1",
    "controller.spsa_n_train": "4",
    "controller.spsa_batch_size": "4",
    "controller.batch_size": "8",
    "plane.n_settings": "8",
    "plane.n_clips": "2",
    "plane.grid": "4",
    "plane.n_heldout": "2",
    "plane.umap_neighbors": "4",
    "plane.n_epochs": "20",
    "eval.n_per_cell": "2",
    "eval.ito_budget": "2",
    "eval.bootstrap": "20",
    # the ITO budget curve: the smoke profile's two budgets on one clip per cell (paper: 12..800 on 10)
    "eval.ito_curve_budgets": "[6, 12]",
    "eval.ito_curve_clips": "1",
}

#: numbers each notebook must record on the paper profile (the report build checks the rest)
EXPECTED_KEYS = {
    "01_data": ["data.speech.n_clips", "data.speech.unseen.n_clips", "data.music.n_clips", "data.clip_seconds"],
    "02_vae_training": ["vae.data.n_bins", "vae.data.n_frames", "vae.recon", "vae.kl", "vae.volume.ratio"],
    "03_beta_tuning": ["sweep.n_configs", "sweep.selected.probe_seen", "sweep.selected.mi_mean"],
    "04_end_to_end": ["e2e.summary.n_effects"],
    "05_latent_control": ["plane.latency.move_ms_median", "plane.latency.inverse_transform_ms"],
    "06_evaluation": ["eval.cells", "eval.wins.controller_vs_do_nothing", "eval.seen.controller.mrstft"],
}


# ----------------------------------------------------------------------------- the fixture layouts
@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_datasets")
    sizes = F.FixtureSizes(vctk_speakers=5, vctk_utterances=2, daps_speakers=3, daps_scripts=2, daps_seconds=6.0)
    info = F.build_fixtures(root, sizes, seed=3)
    return root, sizes, info


def test_vctk_fixture_layout(fixture_root):
    root, sizes, info = fixture_root
    base = D.locate_vctk(root)
    assert base == root / "vctk"  # where `python -m dafxlib.datasets download vctk` extracts it
    files = D.vctk_files(root)
    speakers = info["vctk"]["speakers"]
    assert speakers == ["p225", "p226", "p227", "p228", "s5"]
    assert len(files) == len(speakers) * sizes.vctk_utterances
    for f in files:
        assert re.fullmatch(r"(p\d{3}|s5)_\d{3}_mic1\.flac", f.path.name) and f.path.parent.name == f.group
        meta = sf.info(str(f.path))
        assert (meta.samplerate, meta.channels, meta.format, meta.subtype) == (48_000, 1, "FLAC", "PCM_16")
        mic2 = f.path.with_name(f.id + "_mic2.flac")
        assert mic2.exists() == (f.group != info["vctk"]["no_mic2"])
        assert (f.text is None) == (f.group == info["vctk"]["no_text"])
    assert {f.id for f in D.vctk_files(root, mic="mic2")} == {f.id for f in files if f.group != "p226"}
    lines = (base / "speaker-info.txt").read_text().splitlines()
    assert lines[0].split() == ["ID", "AGE", "GENDER", "ACCENTS", "REGION", "COMMENTS"]
    rows = [ln.split() for ln in lines[1:]]
    assert [r[0] for r in rows] == speakers
    assert all(r[1].isdigit() and r[2] in ("F", "M") for r in rows)
    assert "(mic2 files unavailable)" in lines[2] and "(Text unavailable)" in lines[3]


def test_daps_fixture_layout(fixture_root):
    root, sizes, _ = fixture_root
    assert D.locate_daps(root) == root / "daps" / "daps"  # the archive's own daps/ folder
    clean = D.daps_files(root)
    assert sorted(f.id for f in clean) == sorted(f"{s}_script{k}" for s in ("f1", "m1", "f2") for k in (1, 2))
    for version in F.DAPS_VERSIONS:
        files = D.daps_files(root, version)
        assert sorted(f.id for f in files) == sorted(f.id for f in clean)
        for f in files:
            assert f.path.name == f"{f.id}_{version}.wav" and f.path.parent.name == version
            meta = sf.info(str(f.path))
            assert (meta.samplerate, meta.channels, meta.subtype) == (44_100, 1, "PCM_16")
            assert abs(meta.duration - sizes.daps_seconds) < 0.01
    x, _ = sf.read(str(clean[0].path))
    y, _ = sf.read(str(D.daps_files(root, "iphone_balcony1")[0].path))
    assert not np.allclose(x, y)  # a device version is not a copy of the clean one


def test_musdb_fixture_layout(fixture_root):
    root, sizes, info = fixture_root
    assert D.locate_musdb(root) == root / "musdb18hq"
    files = D.musdb_files(root)
    assert sum(f.subset == "train" for f in files) == sizes.musdb_train
    assert sum(f.subset == "test" for f in files) == sizes.musdb_test
    for f in files:
        assert " - " in f.group  # "Artist - Title", as the real track folders
        assert sorted(Path(p).name for p in f.meta["stems"].values()) == sorted(
            f"{s}.wav" for s in ("mixture", "bass", "drums", "other", "vocals")
        )
        mix, sr = sf.read(str(f.path), dtype="float64")
        assert sr == 44_100 and mix.ndim == 2 and mix.shape[1] == 2
        assert abs(len(mix) / sr - sizes.musdb_seconds) < 0.01
        stems = sum(sf.read(str(f.path.parent / f"{s}.wav"), dtype="float64")[0] for s in F.MUSDB_STEM_FILES)
        assert np.max(np.abs(mix - stems)) < 4 / 32768  # the mixture is the sum of its stems (16-bit rounding)
        assert float(np.sqrt(np.mean(mix**2))) > 0.01


def test_fixture_is_marked_reused_and_never_mixed_with_real_data(fixture_root, tmp_path):
    root, sizes, info = fixture_root
    marker = json.loads((root / F.MARKER).read_text())
    assert marker["synthetic"] is True and "SYNTHETIC" in marker["note"]
    stamp = (root / "vctk" / "speaker-info.txt").stat().st_mtime_ns
    assert F.build_fixtures(root, sizes, seed=3) == info  # complete and matching: nothing written
    assert (root / "vctk" / "speaker-info.txt").stat().st_mtime_ns == stamp
    real = tmp_path / "real"
    (real / "vctk").mkdir(parents=True)
    (real / "vctk" / "something.flac").write_bytes(b"x")
    with pytest.raises(DatasetError, match="looks like real data"):
        F.build_fixtures(real, sizes)
    with pytest.raises(DatasetError, match="DAPS has 20 speakers"):
        F.build_fixtures(tmp_path / "x", F.FixtureSizes(daps_speakers=21))


def test_fixture_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = F.main([str(out), "--vctk-speakers", "2", "--vctk-utterances", "1", "--daps-speakers", "1"]
                + ["--daps-clean-only", "--daps-seconds", "3", "--musdb-train", "1", "--musdb-test", "1"]
                + ["--musdb-seconds", "3"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC" in text and f"--profile paper --set data.dataset_root={out.resolve()}" in text
    assert [p.name for p in (out / "daps" / "daps").iterdir() if p.is_dir()] == ["clean"]
    assert len(D.vctk_files(out)) == 2 and len(D.musdb_files(out)) == 2


def test_paper_corpus_cut_from_the_fixtures(fixture_root, tmp_path, monkeypatch):
    """The paper profile's own clip length (2 x 2.73 s) cut from all three layouts, DAPS as unseen speech."""
    from dafxlib.corpus import build_corpus

    root, _, info = fixture_root
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    prof = get_profile("paper", {"data.dataset_root": str(root), "data.n_speech": 10, "data.n_music": 6})
    assert prof.half_samples == 65_536
    c = build_corpus(prof)
    assert c.skipped == [] and not c.synthetic
    assert {x.audio.shape for x in c} == {(2 * 65_536,)}
    daps = c.select(dataset="daps")
    assert len(daps) == 2 and all(x.role == "unseen_speech" and x.split == "test" for x in daps)
    assert {x.meta["file"] for x in daps} <= {f"{s}_script{k}" for s in info["daps"]["speakers"] for k in (1, 2)}
    assert len(c.select(dataset="vctk")) == 8 and len(c.select(dataset="musdb18hq")) == 6


# ----------------------------------------------------------------------------- the six notebooks
@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, notebook_runner):
    from dafxlib.effects.mda import mda_available

    if not mda_available():
        pytest.skip(
            "the paper profile runs the mda effects and Debian's mda-lv2 plugins are not installed "
            "(apt-get install mda-lv2, or python -m dafxlib.effects.install)"
        )
    base = tmp_path_factory.mktemp("paper_run")
    data_root = base / "datasets"
    F.build_fixtures(data_root, RUN_FIXTURE)
    sets = {**PAPER_FIXTURE_SETS, "data.dataset_root": str(data_root)}
    rc, output, out_dir, build_dir = notebook_runner(base, "paper", sets, timeout=1500)
    return rc, output, out_dir, build_dir, sets


def _wall_times(output: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\d\d_\w+)\s+([\d.]+) s$", output, re.M)}


@pytest.mark.slow
def test_paper_profile_runs_every_notebook_on_fixture_datasets(paper_run, monkeypatch):
    rc, output, out_dir, build_dir, sets = paper_run
    assert rc == 0, output[-6000:]
    times = _wall_times(output)
    assert set(times) == {p.stem for p in NOTEBOOKS}, output[-3000:]
    print("paper fixture run, wall time per notebook (s):", times, "total", round(sum(times.values()), 1))
    assert re.search(r"^report: .*report\.md", output, re.M), "the report was not built (strict after a full run)"

    prof = get_profile("paper", sets)
    numbers = json.loads((out_dir / "report" / "numbers.json").read_text())
    assert {v["profile"] for v in numbers.values()} == {"paper"}
    assert numbers["effects.set"]["value"] == "mda"
    for nb, keys in EXPECTED_KEYS.items():
        missing = [k for k in keys if k not in numbers or numbers[k]["notebook"] != nb]
        assert not missing, f"{nb} did not record {missing}"
    prov = json.loads((out_dir / "report" / "provenance.json").read_text())
    assert all(prov["notebooks"][p.stem]["status"] == "ok" for p in NOTEBOOKS)

    # the paper's STFT: n_fft 4096 / hop 1024, 2048 bins, 2.73 s halves
    assert (prof.spec.n_fft, prof.spec.hop, prof.spec.n_bins) == (4096, 1024, 2048)
    assert numbers["vae.data.n_bins"]["value"] == 2048
    frames = math.ceil((prof.half_samples // prof.spec.hop + 1) / prof.spec.frame_multiple) * prof.spec.frame_multiple
    assert numbers["vae.data.n_frames"]["value"] == frames == 80
    assert numbers["data.clip_seconds"]["value"] == pytest.approx(2 * 65_536 / 24_000)
    assert numbers["data.synthetic"]["value"] is False

    # the corpus the run cut: VCTK seen speech, DAPS unseen speech (test only), MUSDB18-HQ music
    from dafxlib.corpus import build_corpus

    monkeypatch.setenv("DAFX_BUILD_DIR", str(build_dir))
    corpus = build_corpus(prof)
    assert corpus.from_cache, "the test did not find the corpus the notebooks built"
    daps = corpus.select(dataset="daps")
    assert len(daps) == numbers["data.speech.unseen.n_clips"]["value"] == 2
    assert all(x.role == "unseen_speech" and x.split == "test" for x in daps)
    assert all(re.fullmatch(r"[fm]\d+_script\d", x.meta["file"]) for x in daps)
    assert {x.dataset for x in corpus.select(role="seen_speech")} == {"vctk"}
    assert {x.dataset for x in corpus.select(kind="music")} == {"musdb18hq"}
    for p in NOTEBOOKS:
        assert (build_dir / "paper" / "notebooks" / p.name).exists()

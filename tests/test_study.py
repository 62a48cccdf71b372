"""The study's shipped data: checksums, regenerated tables, re-analysis and the MUSHRA analysis."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dafxlib.study import analysis, load, mushra
from dafxlib.study.load import StudyDataError


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return load.metrics()


def test_every_shipped_file_matches_the_manifest():
    n = load.verify_all()
    assert n == len(load.manifest()["files"]) and n > 10
    prov = load.provenance()
    assert prov["repository"] == "kieran-grant/Level5ProjectAudioVAE"
    assert len(prov["commit"]) == 40
    assert "MIT" in load.licence_text() or "Permission is hereby granted" in load.licence_text()


@pytest.mark.parametrize("metric", ["mrstft", "pesq"])
def test_regenerated_tables_equal_the_studys_summary_tables(metrics, metric):
    regen = analysis.regenerate_summary(metrics, metric)
    printed = load.summary_table_text(metric)
    assert regen.shape == printed.shape == (9, 6)
    assert analysis.printed_precision_mismatches(regen, printed) == []


def test_metrics_shape_and_conditions(metrics):
    assert len(metrics) == 9 * 3 * 3 * 5000
    dn = metrics[metrics.condition == "do_nothing"]
    assert dn.msd.isna().all() and dn.mrstft.notna().all()
    assert set(metrics.effect) == set(load.EFFECTS)


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(load.DATA_DIR, d)
    return d


def test_an_altered_shipped_file_is_refused(tmp_path):
    d = _copy(tmp_path)
    target = d / "raw" / "mushra.csv"
    data = bytearray(target.read_bytes())
    data[-3] = ord("7") if data[-3] != ord("7") else ord("8")
    target.write_bytes(bytes(data))
    with pytest.raises(StudyDataError, match=r"raw/mushra.csv has been altered.*build_study_data"):
        load.mushra_csv_bytes(data_dir=d)
    # the untouched files of the same copy still load
    assert load.classifier_metrics(data_dir=d).shape == (6, 4)


def test_an_altered_array_file_and_manifest_are_refused(tmp_path):
    d = _copy(tmp_path)
    npz = d / "metrics.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(StudyDataError, match="metrics.npz has been altered"):
        load.metrics("overdrive", "vctk", data_dir=d)
    man = d / "MANIFEST.json"
    man.write_text(man.read_text().replace('"MIT', '"GPL', 1))
    with pytest.raises(StudyDataError, match="MANIFEST.json has been altered"):
        load.manifest(d)


def test_a_missing_file_and_unknown_keys_say_what(tmp_path):
    d = _copy(tmp_path)
    (d / "latent.npz").unlink()
    with pytest.raises(StudyDataError, match="latent.npz is missing"):
        load.latent_features(data_dir=d)
    with pytest.raises(StudyDataError, match="unknown effect 'chorus'"):
        load.metrics("chorus")


def test_wins_over_do_nothing_are_the_studys_twelve(metrics):
    cmp = analysis.unpaired_comparison(metrics, n_resamples=200)
    assert len(cmp) == 27
    assert int(cmp.win.sum()) == 12  # the study's 12 of 27
    assert 0 <= int(cmp.significant.sum()) <= 12
    assert ((cmp.lo <= cmp["diff"]) & (cmp["diff"] <= cmp.hi)).all()
    # unpaired: rows of the controller and the do-nothing baseline are unrelated clips
    assert abs(analysis.row_correlation(metrics, "controller", "do_nothing")) < 0.2


def test_classifier_cross_validates_on_the_published_features():
    lf = load.latent_features()
    assert lf.features.shape == (6000, 128) and np.bincount(lf.labels).tolist() == [1000] * 6
    rng = np.random.default_rng(0)
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(lf.labels == c), 100, replace=False) for c in range(6)]))
    res = analysis.classify_effects(lf.features[idx], lf.labels[idx], lf.label_names, n_splits=3, n_estimators=10)
    assert list(res.per_class.index) == list(lf.label_names)
    assert 1 / 6 < res.accuracy <= 1.0


def test_projection_and_controller_accessors():
    p = load.projection("overdrive")
    assert p.points.shape == (10000, 2) and p.settings.shape == (10000, 3)
    assert p.param_names == ("drive", "muffle", "output_db")
    rec = analysis.controller_recovery(load.latent_controller("overdrive"))
    assert set(rec.index) == {"drive", "muffle", "output_db"}
    assert (rec.mae >= 0).all()


def _synthetic_results(n_sessions: int = 6, seed: int = 0) -> pd.DataFrame:
    """A webMUSHRA export: one sloppy assessor (reference often below 90), the model better than the anchor."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for e in ("overdrive", "delay"):
            for k in range(4):
                ref = 100 if s > 0 or k == 0 else 60
                scores = {
                    "reference": ref,
                    "controller": 70 + rng.integers(-5, 6),
                    "anchor": 30 + rng.integers(-5, 6),
                    "anchor35": 20,
                    "ito": 50,
                    "do_nothing": 10,
                }
                for stim, v in scores.items():
                    rows.append(
                        {
                            "session_test_id": "kit",
                            "session_uuid": f"s{s}",
                            "trial_id": f"{e}{k}",
                            "rating_stimulus": stim,
                            "rating_score": int(v),
                            "rating_time": 1000,
                            "rating_date": "01/01/2026, 10:00:00",
                            "rating_comment": "",
                        }
                    )
    return pd.DataFrame(rows)


def test_mushra_analysis_of_a_synthetic_webmushra_file(tmp_path):
    path = tmp_path / "results.csv"
    _synthetic_results().to_csv(path, index=False)
    a = mushra.analyse(path, model="controller", against=("anchor", "anchor35"))
    assert list(a.screening.removed) == ["s0"]  # reference < 90 in 3 of 4 items of one effect: 3/8 > 15%
    assert a.screening.kept == ["s1", "s2", "s3", "s4", "s5"]
    t = a.tests.set_index(["effect", "other"])
    assert (t.n_pairs == 20).all() and t.loc[("overdrive", "anchor"), "median_diff"] > 0
    assert t.significant.all()
    s = a.summary.set_index(["effect", "stimulus"])
    assert (
        s.loc[("delay", "controller"), "mean_lo"]
        <= s.loc[("delay", "controller"), "mean"]
        <= s.loc[("delay", "controller"), "mean_hi"]
    )
    assert "| overdrive |" in mushra.summary_markdown(a)


def test_mushra_rejects_a_foreign_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(mushra.MushraError, match="not a webMUSHRA results file"):
        mushra.analyse(p)


def test_the_studys_mushra_file_is_analysed_with_screening():
    a = mushra.analyse(load.mushra_csv_bytes())
    scr = a.screening
    assert scr.n_sessions == 10
    assert len(scr.kept) + len(scr.removed) + len(scr.removed_constant) == 10
    assert set(a.summary.effect) == {"overdrive", "delay", "ambience", "multiband"}
    assert "style_transfer" in set(a.tests.other)


def _trials(sr: int = 16000, n: int = 8000):
    from dafxlib.study.listening import Trial, lowpass_anchor

    t = np.arange(n) / sr
    rng = np.random.default_rng(1)
    out = []
    for e in ("overdrive", "multiband"):
        for k in range(2):
            clean = (0.3 * np.sin(2 * np.pi * 220 * (k + 1) * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)
            ref = np.tanh(4 * clean).astype(np.float32)
            stim = {
                "anchor": np.tanh(1.5 * clean).astype(np.float32),
                "anchor35": lowpass_anchor(ref, sr),
                "controller": np.tanh(3.5 * clean).astype(np.float32),
                "do_nothing": 0.2 * clean,
            }
            out.append(Trial(e, k, sr, ref, stim))
    return out


def test_listening_kit_is_written_and_its_results_analysed(tmp_path):
    import soundfile as sf
    import yaml

    from dafxlib.audio import loudness
    from dafxlib.study import listening

    man = listening.write_kit(_trials(), tmp_path / "kit", target_lufs=-23.0)
    cfg = yaml.safe_load((tmp_path / "kit" / "configs" / "dafx_style_transfer.yaml").read_text())
    pages = [p for p in cfg["pages"] if p["type"] == "mushra"]
    assert [p["id"] for p in pages] == ["overdrive0", "overdrive1", "multiband0", "multiband1"]
    assert set(pages[0]["stimuli"]) == {"anchor", "anchor35", "controller", "do_nothing"}
    for p in pages:
        for f in [p["reference"], *p["stimuli"].values()]:
            a, sr = sf.read(tmp_path / "kit" / f)
            assert sr == 16000 and len(a) == 8000
            assert abs(loudness(a, sr) - (-23.0)) < 0.6 or np.max(np.abs(a)) > 0.85  # matched, or peak-limited
    # a webMUSHRA results file for this kit, analysed by the same function as the study's mushra.csv
    res = listening.synthetic_results(man, n_sessions=6)
    assert list(res.columns) == list(mushra.COLUMNS)
    path = tmp_path / "mushra.csv"
    res.to_csv(path, index=False)
    a = mushra.analyse(path, model="controller", against=("anchor", "anchor35", "do_nothing"))
    assert len(a.screening.kept) + len(a.screening.removed) == 6
    assert set(a.tests.effect) == {"overdrive", "multiband"} and a.tests.significant.all()


def test_lowpass_anchor_removes_high_frequencies():
    from dafxlib.study.listening import lowpass_anchor

    sr = 24000
    t = np.arange(sr) / sr
    x = (np.sin(2 * np.pi * 500 * t) + np.sin(2 * np.pi * 8000 * t)).astype(np.float32)
    spec = np.abs(np.fft.rfft(lowpass_anchor(x, sr)))
    f = np.fft.rfftfreq(sr, 1 / sr)
    assert spec[np.argmin(np.abs(f - 8000))] < 1e-3 * spec[np.argmin(np.abs(f - 500))]


def test_concordance_names_figures_the_notebooks_make():
    import re

    from dafxlib.study import concordance

    src = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    for row in concordance.CONCORDANCE:
        assert row.how, row
        for name in row.figures:
            stem = name.rsplit("_", 1)[0]
            assert name in src or re.search(re.escape(stem) + r"_\{", src), f"no notebook saves {name}"
    assert "| Study figure |" in concordance.markdown()


@pytest.mark.slow
def test_listening_kit_exports_from_the_smoke_run(smoke_run, tmp_path, monkeypatch):
    """The one-call export on the session's smoke run: every condition, including controller and ITO."""
    from dafxlib.study import listening

    rc, output, out_dir, build_dir = smoke_run
    assert rc == 0, output[-3000:]
    monkeypatch.setenv("DAFX_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("DAFX_OUTPUT_DIR", str(out_dir))
    man = listening.export_kit("smoke", tmp_path / "kit", effects=("overdrive",), n_items=2)
    assert [p["id"] for p in man["pages"]] == ["overdrive0", "overdrive1"]
    assert man["conditions"] == list(listening.CONDITIONS)
    for p in man["pages"]:
        for c in ["reference", *listening.CONDITIONS]:
            assert (tmp_path / "kit" / "stimuli" / p["id"] / f"{c}.wav").is_file()


def _fake_study_folder(root: Path) -> Path:
    src = root / "study_results"
    (src / "metrics").mkdir(parents=True)
    (src / "dafx_latent_extraction").mkdir()
    (src / "LICENSE").write_text("MIT License\n")
    (src / "README.md").write_text("fake\n")
    (src / "metrics" / "overdrive_vctk_5000.csv").write_text(
        ",PESQ,MRSTFT\n0,2.8819265365600586,1.0271819\n1,,0.4457252\n"
    )
    (src / "metrics" / "overdrive_vctk_5000_baseline.csv").write_text(
        ",PESQ,MRSTFT\n0,2.5,1.3779258\n1,3.25,0.8916665\n"
    )
    (src / "metrics" / "vctk_baseline.csv").write_text(
        ",dafx,pesq,mrstft\n0,overdrive,2.5,1.3779258\n1,overdrive,3.25,0.8916665\n"
    )
    np.save(src / "dafx_latent_extraction" / "labels.npy", np.arange(4))
    return src


def test_build_script_is_deterministic_and_lossless(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_study_data", Path(__file__).resolve().parents[1] / "scripts" / "build_study_data.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = _fake_study_folder(tmp_path)
    man_a = mod.build(src, tmp_path / "a")
    man_b = mod.build(src, tmp_path / "b")
    assert man_a["_sha256"] == man_b["_sha256"]
    for name in [*man_a["files"], "MANIFEST.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with np.load(tmp_path / "a" / "metrics.npz") as z:
        raw = pd.read_csv(src / "metrics" / "overdrive_vctk_5000.csv", index_col=0)
        assert z["overdrive.vctk.controller.PESQ"].dtype == np.float32  # exactly float32 values: kept as float32
        assert z["overdrive.vctk.controller.MRSTFT"].dtype == np.float64  # decimal text: float64
        for col in ("PESQ", "MRSTFT"):
            got = z[f"overdrive.vctk.controller.{col}"].astype(np.float64)
            assert np.array_equal(got, raw[col].to_numpy(np.float64), equal_nan=True)
    assert man_a["sources"]["metrics/vctk_baseline.csv"]["shipped_in"].startswith("metrics.npz")
    # a combined baseline file that disagrees with the per-effect one is refused
    (src / "metrics" / "vctk_baseline.csv").write_text(",dafx,pesq,mrstft\n0,overdrive,2.5,1.3\n1,overdrive,3.25,0.9\n")
    with pytest.raises(SystemExit, match="differs from the per-effect file"):
        mod.build(src, tmp_path / "c")

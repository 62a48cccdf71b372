"""Bad inputs and faults end in a clear typed error or a counted skip, never a crash, a hang,
a raw traceback or a silent partial result (issue 14), and reruns are bit-identical whatever
the thread count or worker timing. Cases that used to kill the interpreter run in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dafxlib import run_notebooks, storage
from dafxlib.config import get_profile, parse_overrides
from dafxlib.effects import get_effect
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import (
    AudioError,
    ConfigError,
    CorruptFileError,
    DatasetError,
    EffectError,
    MissingArtifactError,
    TrainingDivergedError,
)

ROOT = Path(__file__).resolve().parents[1]
SR = 24_000


def _python(code: str, timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("DAFX_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path


def _tone(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (
        0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.shape)
    ).astype(np.float32)


# ---- 1. Ambience (and every effect) at a sample rate typed in kHz --------------------------
def test_effect_and_render_refuse_a_khz_sample_rate_in_a_subprocess():
    proc = _python("""
import numpy as np
from dafxlib.effects import get_effect
from dafxlib.render import render_batch
from dafxlib.errors import EffectError
fx = get_effect("ambience", "portable")
x = np.zeros(4800, np.float32); x[::100] = 0.3
for call in (lambda: fx.process(x, 48, fx.defaults01()),
             lambda: fx.process(x, 100, fx.defaults01()),
             lambda: render_batch(fx, np.stack([x, x]), np.full((2, fx.n_params), 0.5), 24, workers=2)):
    try:
        call()
        print("NO ERROR")
    except EffectError as e:
        print("EffectError:", e)
""")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("EffectError:") for line in lines), proc.stdout
    assert "48 Hz is below 8000 Hz" in lines[0] and "did you mean 48000" in lines[0]
    assert "100 Hz is below 8000 Hz" in lines[1] and "in Hz (e.g. 24000)" in lines[1]
    assert "RenderPool(Ambience)" in lines[2]


# ---- 2. PESQ at a sample rate whose resampling to 16 kHz used to crash the C library --------
def test_metrics_refuse_a_low_sample_rate_in_a_subprocess():
    proc = _python("""
import numpy as np
from dafxlib import metrics as M
from dafxlib.errors import AudioError
x = (np.random.default_rng(0).standard_normal((2, 24000)) * 0.1).astype(np.float32)
try:
    M.compute_metrics(x * 0.9, x, 100, metrics=["pesq"])
    print("NO ERROR")
except AudioError as e:
    print("AudioError:", e)
""")
    assert proc.returncode == 0, proc.stderr  # was -11 (SIGSEGV) inside cypesq
    assert proc.stdout.startswith("AudioError: compute_metrics: sample rate 100 Hz is below 8000 Hz"), proc.stdout


def test_metrics_still_accept_the_lowest_rate():
    from dafxlib import metrics as M

    x = _tone(1.0, 8000)[None]
    vals, _ = M.compute_metrics(0.5 * x, x, 8000, metrics=["rms", "pesq"])
    assert vals["rms"][0] == pytest.approx(20 * np.log10(2), abs=1e-4) and np.isfinite(vals["pesq"][0])


# ---- 3. an unguarded script that renders in worker processes --------------------------------
def test_unguarded_spawn_script_gives_up_with_a_message(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\n"
        "from dafxlib.effects import get_effect\n"
        "from dafxlib.render import render_batch\n"
        "fx = get_effect('overdrive', 'portable')\n"
        "x = np.random.default_rng(0).standard_normal((4, 2400)).astype(np.float32) * 0.1\n"
        "render_batch(fx, x, np.full((4, fx.n_params), 0.5), 24000, workers=2, mode='process')\n"
        "print('rendered')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert time.perf_counter() - t0 < 100  # it used to restart workers forever
    assert proc.returncode == 1 and "rendered" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dafxlib.errors.RenderPoolError: Overdrive: 3 render worker processes in a row died")
    assert 'if __name__ == "__main__":' in last


class _HangsOnLoad(Effect):
    """Builds in the caller, hangs when a worker process unpickles it (a plugin that never loads)."""

    name = "HangsOnLoad"

    def __init__(self):
        super().__init__([ParamSpec("gain", 0.0, 1.0, 0.5)])

    def __setstate__(self, state):
        self.__dict__.update(state)
        if os.environ.get("DAFX_TEST_PARENT") != str(os.getpid()):
            time.sleep(3600)

    def _render(self, audio, sample_rate, raw):
        return audio


def test_workers_that_never_start_are_bounded_too(monkeypatch):
    from dafxlib import render
    from dafxlib.errors import RenderPoolError

    monkeypatch.setattr(render, "STARTUP_GRACE", 0.5)
    monkeypatch.setenv("DAFX_TEST_PARENT", str(os.getpid()))
    t0 = time.perf_counter()
    with pytest.raises(RenderPoolError, match="3 render worker processes in a row started no item"):
        with render.RenderPool(_HangsOnLoad(), SR, workers=1, mode="process", item_timeout=0.5) as pool:
            pool.render(np.ones((2, 100), np.float32) * 0.1, np.full((2, 1), 0.5))
    assert time.perf_counter() - t0 < 60


def test_guarded_process_pool_still_renders(tmp_path):
    from dafxlib.render import render_batch

    fx = get_effect("overdrive", "portable")
    x = np.stack([_tone(0.2, seed=i) for i in range(3)])
    p = np.full((3, fx.n_params), 0.5)
    res = render_batch(fx, x, p, SR, workers=2, mode="process")
    assert res.n_failed == 0
    assert np.array_equal(res.audio[1], fx.process(x[1], SR, p[1]))


# ---- 4 and 5. the user folder: content-keyed cache, rebuild, no usable file -----------------
def test_corpus_key_follows_the_user_folder_contents(tmp_path):
    from dafxlib.corpus import corpus_key

    d = tmp_path / "mine"
    d.mkdir()
    sf.write(d / "a.wav", _tone(2.0), SR)
    prof = get_profile("smoke", {"data.user_folder": str(d)})
    k1 = corpus_key(prof)
    assert corpus_key(prof) == k1
    sf.write(d / "b.wav", _tone(2.0, seed=1), SR)  # a file added
    k2 = corpus_key(prof)
    sf.write(d / "a.wav", _tone(2.5, seed=2), SR)  # a file fixed
    k3 = corpus_key(prof)
    (d / "b.wav").unlink()  # a file removed
    k4 = corpus_key(prof)
    (d / "notes.txt").write_text("not audio")  # not audio: no effect
    assert len({k1, k2, k3, k4}) == 4 and corpus_key(prof) == k4


def test_user_folder_without_a_usable_file_is_an_error_before_the_build(build, monkeypatch):
    from dafxlib.corpus import build_corpus, embedded

    d = build / "bad"
    d.mkdir()
    sf.write(d / "silent.wav", np.zeros(48_000), SR)
    sf.write(d / "short.wav", _tone(0.2), SR)
    (d / "broken.wav").write_bytes(b"RIFF....WAVE" * 3)
    monkeypatch.setattr(embedded, "build_speech", lambda *a, **k: pytest.fail("built before checking"))
    with pytest.raises(DatasetError) as info:
        build_corpus(get_profile("smoke", {"data.user_folder": str(d)}))
    msg = str(info.value)
    assert "no usable audio file" in msg
    assert "1 silent" in msg and "1 too short" in msg and "1 unreadable" in msg
    assert "leave data.user_folder out" in msg


def test_runner_reports_corpus_skips_on_the_terminal(build):
    path = run_notebooks.paths.artifact_path("smoke", "corpus_skipped.json")
    storage.write_json(path, {"n_skipped": 3, "by_reason": {"silent": 2, "unreadable": 1}, "skipped": []})
    lines: list[str] = []
    run_notebooks._log_skips("smoke", lines.append)
    assert lines == [f"  corpus: skipped 3 source(s) (2 silent, 1 unreadable); list in {path}"]


def test_rebuild_option_deletes_the_caches(build, monkeypatch):
    cache = run_notebooks.paths.build_dir("smoke") / "cache" / "corpus" / "abc"
    cache.mkdir(parents=True)
    (cache / "index.json").write_text("{}")
    monkeypatch.setattr(run_notebooks, "run", lambda *a, **k: 0)
    assert run_notebooks.main(["--profile", "smoke", "--no-report", "--rebuild"]) == 0
    assert not (run_notebooks.paths.build_dir("smoke") / "cache").exists()


# ---- 6. notebook 06 on a fresh build folder -------------------------------------------------
def test_partial_evaluation_is_refused_before_any_work(build, monkeypatch):
    from dafxlib import evaluation as ev

    monkeypatch.setattr(ev.run, "test_clip_groups", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(MissingArtifactError) as info:
        ev.run_evaluation(get_profile("smoke"), effects=["overdrive"], progress=False, log=None)
    msg = str(info.value)
    assert "notebook 03_beta_tuning" in msg and "notebook 04_end_to_end" in msg
    assert "eval.baselines_only=true" in msg


def test_baselines_only_scores_the_untrained_methods(build, monkeypatch):
    from dafxlib import evaluation as ev

    class Reached(Exception):
        pass

    def groups(prof, corpus=None):
        raise Reached

    monkeypatch.setattr(ev.run, "test_clip_groups", groups)
    with pytest.raises(Reached):  # the artifact check passed: the run goes on to the test sets
        ev.run_evaluation(
            get_profile("smoke", {"eval.baselines_only": True}), effects=["overdrive"], progress=False, log=None
        )


# ---- 7. integer PCM -------------------------------------------------------------------------
def test_integer_pcm_is_scaled_at_every_entry():
    from dafxlib import metrics as M
    from dafxlib.render import render_batch

    fx = get_effect("overdrive", "portable")
    f = _tone(0.5)
    i16 = np.round(f * 32767).astype(np.int16)
    i32 = i16.astype(np.int32) << 16
    scaled = i16.astype(np.float32) / 32768
    p = fx.defaults01()
    want = fx.process(scaled, SR, p)
    assert np.array_equal(fx.process(i16, SR, p), want) and np.array_equal(fx.process(i32, SR, p), want)
    assert np.abs(want).max() < 1.0
    res = render_batch(fx, np.stack([i16, i16]), np.stack([p, p]), SR, workers=1)
    assert np.array_equal(res.audio[0], want)
    a, _ = M.compute_metrics(i16[None], (i16 // 2)[None], SR, metrics=["rms", "mrstft"])
    b, _ = M.compute_metrics(scaled[None], (i16 // 2).astype(np.float32)[None] / 32768, SR, metrics=["rms", "mrstft"])
    assert a["rms"][0] == pytest.approx(b["rms"][0]) and a["mrstft"][0] == pytest.approx(b["mrstft"][0])
    assert a["mrstft"][0] < 10  # unscaled int16 gave ~15,000
    from dafxlib import plane as control

    class Level:
        def embed(self, x, y):
            return np.stack([np.sqrt(np.mean(np.square(y), 1)), np.abs(y).max(1)], 1)

    z_int = control.embed_settings(fx, [i16], Level(), 3, seed=0, sample_rate=SR, workers=1).z
    z_flt = control.embed_settings(fx, [scaled], Level(), 3, seed=0, sample_rate=SR, workers=1).z
    assert np.array_equal(z_int, z_flt)
    with pytest.raises(EffectError, match="dtype int64"):
        fx.process(i16.astype(np.int64), SR, p)
    with pytest.raises(AudioError, match="dtype uint8"):
        M.compute_metrics(np.zeros((1, 8000), np.uint8), np.zeros((1, 8000), np.uint8), SR)


# ---- 8. divergence --------------------------------------------------------------------------
def _tiny_module(lr: float, nan_at_step: int | None = None):
    import lightning.pytorch as pl

    class VAEModule(pl.LightningModule):  # named like the real one: fit maps it to "vae.lr"
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"lr": lr})
            g = torch.Generator().manual_seed(0)
            self.lin = torch.nn.Linear(4, 1)
            with torch.no_grad():
                for q in self.parameters():
                    q.copy_(torch.randn(q.shape, generator=g))

        def training_step(self, batch, idx):
            x, y = batch
            loss = torch.mean((self.lin(x) - y) ** 2)
            if nan_at_step is not None and self.global_step >= nan_at_step:
                loss = loss * float("nan")
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])

    return VAEModule()


def _toy_loader():
    from torch.utils.data import TensorDataset

    from dafxlib.training import make_loader

    g = np.random.default_rng(0)
    x = torch.tensor(g.normal(size=(64, 4)) * 10, dtype=torch.float32)
    return make_loader(TensorDataset(x, x.sum(1, keepdim=True) ** 2), 8, seed=0)


@pytest.mark.parametrize("lr,nan_at", [(1e6, None), (1e-3, 5)])
def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, lr, nan_at):
    from dafxlib.training import LAST, fit

    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as info:
        fit(
            _tiny_module(lr, nan_at),
            _toy_loader(),
            None,
            run,
            5,
            seed=0,
            ckpt_every_n_steps=1 if nan_at is None else 2,
            progress=False,
        )
    msg = str(info.value)
    assert "Lower vae.lr" in msg and f"now {lr:g}" in msg
    ckpt = torch.load(run / LAST, map_location="cpu", weights_only=False)
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())
    assert str(run / LAST) in msg
    if nan_at is not None:  # the step-4 checkpoint, not a later (broken) one
        assert ckpt["global_step"] == 4


# ---- 9. override ranges, typed from the annotations -----------------------------------------
@pytest.mark.parametrize(
    "override,message",
    [
        ("vae.epochs=-3", "vae.epochs=-3: must be >= 1"),
        ("data.split=[0.5,0.5]", "expected 3 values, got 2"),
        ("data.split=[0.5,0.6,0.1]", "must add up to 1.0"),
        ("effects.effect_set=nope", "must be one of 'auto', 'portable', 'mda'"),
        ("data.sample_rate=0", "data.sample_rate=0: must be >= 8000"),
        ("data.user_folder=123", "data.user_folder='123': no such folder"),
        ("data.user_folder=null", "data.user_folder='null': no such folder"),
        ("controller.spsa_n_train=abc", "expected int | None"),
        ("vae.lr=1e400", "must be a finite number"),
        ("eval.baselines_only=maybe", "cannot parse"),
    ],
)
def test_bad_overrides_are_refused_with_the_reason(override, message):
    with pytest.raises(ConfigError) as info:
        get_profile("default", parse_overrides([override]))
    assert message in str(info.value)


def test_runner_refuses_a_bad_override_before_running(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), DAFX_BUILD_DIR=str(tmp_path / "b"), DAFX_OUTPUT_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "dafxlib.run_notebooks", "--set", "data.sample_rate=0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "error: data.sample_rate=0: must be >= 8000"


# ---- 10. damaged checkpoint and cache index --------------------------------------------------
def test_damaged_checkpoint_names_the_file(tmp_path):
    from dafxlib.training import LAST, fit

    run = tmp_path / "run"
    run.mkdir()
    (run / LAST).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CorruptFileError) as info:
        fit(_tiny_module(1e-3), _toy_loader(), None, run, 1, seed=0, progress=False)
    assert f"checkpoint {run / LAST} is damaged" in str(info.value) and "delete it" in str(info.value)


def test_damaged_json_names_the_file_and_the_corpus_cache_is_rebuilt(tmp_path):
    from dafxlib import corpus

    bad = tmp_path / "index.json"
    bad.write_text('{"version": 2, "clips": [')
    with pytest.raises(CorruptFileError, match=f"{bad} is damaged .*delete it"):
        storage.read_json(bad)
    assert corpus._load(tmp_path, "smoke") is None  # rebuilt instead of trusted


# ---- 11. damaged archives -------------------------------------------------------------------
def test_truncated_tar_and_bad_crc_zip_name_the_archive(tmp_path):
    from dafxlib.datasets import extract_archive

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    tgz = tmp_path / "daps.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(src, arcname="daps")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tgz.read_bytes()[:60_000])
    zp = tmp_path / "musdb.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_STORED) as zf:
        zf.write(src / "a.bin", "musdb/a.bin")
    data = bytearray(zp.read_bytes())
    data[5000] ^= 0xFF
    badzip = tmp_path / "bad.zip"
    badzip.write_bytes(bytes(data))
    for archive, why in ((cut, "EOFError"), (badzip, "Bad CRC-32")):
        dest = tmp_path / ("out_" + archive.stem)
        with pytest.raises(DatasetError) as info:
            extract_archive(archive, dest)
        msg = str(info.value)
        assert why in msg and f"Delete {archive} and download it again" in msg
        assert not any(dest.iterdir()) and not dest.with_name(dest.name + ".extracting").exists()


# ---- 12. Ctrl-C and killed runs -------------------------------------------------------------
def test_ctrl_c_prints_one_line_and_exit_code_130(tmp_path):
    import nbformat

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    marker = tmp_path / "started"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "default"\nOVERRIDES = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(120)"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "dafx", "display_name": "Python (dafx)", "language": "python"}
    nbformat.write(nb, nbs / "01_sleep.ipynb")
    env = dict(
        os.environ,
        DAFX_ROOT=str(tmp_path),
        DAFX_BUILD_DIR=str(tmp_path / "build"),
        DAFX_OUTPUT_DIR=str(tmp_path / "out"),
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dafxlib.run_notebooks", "--no-report", "--profile", "smoke"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    t0 = time.time()
    while not marker.exists() and time.time() - t0 < 90 and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130
    said = [line for line in out.splitlines() if "INTERRUPTED" in line]  # (progress lines may precede it)
    assert len(said) == 1 and said[0].startswith("01_sleep") and "run the same command again" in said[0]
    assert "KeyboardInterrupt" not in out + err and "Traceback" not in out


def test_fit_removes_temp_files_a_killed_run_left(tmp_path):
    from dafxlib.training import fit

    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".run.json.k1ll3d.json", run / ".last.ckpt.tmp"]
    for p in stale:
        p.write_text("half")
    fit(_tiny_module(1e-3), _toy_loader(), None, run, 1, seed=0, progress=False)
    assert not any(p.exists() for p in stale)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


def test_espeak_temp_folders_of_dead_builds_are_removed(tmp_path, monkeypatch):
    import tempfile

    from dafxlib.corpus import speech

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    leaked = tmp_path / f"dafx_espeak_{dead_pid}_abc"
    leaked.mkdir()
    (leaked / "req.json").write_text("[]")
    alive = tmp_path / f"dafx_espeak_{os.getppid()}_xyz"
    alive.mkdir()
    assert speech.remove_stale_temp_dirs() == 1
    assert not leaked.exists() and alive.exists()


# ---- bit-identical reruns: CMA-ES (ITO) and the latent plane ---------------------------------
class _Slow(Effect):
    """A memoryless effect that sleeps a random time per item (uneven worker timing)."""

    name = "Slow"

    def __init__(self):
        super().__init__([ParamSpec("drive", 1.0, 20.0, 2.0, scale="log"), ParamSpec("level", 0.1, 1.0, 0.5)])
        self.jitter = False

    def _render(self, audio, sample_rate, raw):
        if self.jitter:
            time.sleep(float(np.random.default_rng().random()) * 0.002)
        return np.tanh(raw["drive"] * audio) * raw["level"]


def _tiny_encoder(sr: int, n: int):
    from dafxlib.config import SpecConfig
    from dafxlib.models.encoder import AudioEncoder
    from dafxlib.models.vae import SpecVAE
    from dafxlib.spectrogram import Spectrogrammer

    sp = Spectrogrammer(SpecConfig(n_fft=256, hop=128, n_bins=64), sr, n)
    torch.manual_seed(0)
    return AudioEncoder(
        SpecVAE(sp.shape, latent_dim=8, base_channels=4, mode="joint", head="stats", condition=True), sp
    )


class _Load:
    """Another thread drawing from numpy's global RNG all the time (what else runs on a loaded machine)."""

    def __enter__(self):
        self.stop = threading.Event()

        def spin():  # draws often, but lets the GIL go (a GIL-hogging loop only slows the test down)
            while not self.stop.is_set():
                np.random.random(8)
                time.sleep(0.0002)

        self.thread = threading.Thread(target=spin, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _under(threads: int, workers: int, jitter: bool, load: bool, fn):
    import contextlib

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with _Load() if load else contextlib.nullcontext():
            return fn(workers, jitter)
    finally:
        torch.set_num_threads(old)


#: (torch threads, render workers, uneven item timing, another thread using numpy's global RNG);
#: tests/test_latent.py runs the plane's version of this check (where UMAP's JIT is paid anyway)
SETTINGS = [(1, 1, False, False), (2, 2, True, True)]


def test_ito_search_is_bit_identical_under_threads_workers_and_load():
    from dafxlib import evaluation as ev
    from dafxlib.render import RenderPool

    sr, n = 8000, 4096
    enc = _tiny_encoder(sr, n)
    fx = _Slow()
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((4, n))).astype(np.float32)
    y_ref = np.stack([fx.process(a, sr, q) for a, q in zip(x, rng.random((4, 2)))])

    def search(workers, jitter):
        fx.jitter = jitter
        with RenderPool(fx, sr, workers=workers, mode="thread" if workers > 1 else "serial") as pool:
            return ev.ito_search(pool, enc, x, y_ref, 2, budget=12, seed=5)

    runs = [_under(*s, search) for s in SETTINGS]
    for a, b in zip(*runs):
        assert np.array_equal(a, b)

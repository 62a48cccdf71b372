"""Getting the mda plugins without root: apt-get download + dpkg-deb -x into an environment folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dafxlib.effects import install, mda
from dafxlib.effects.testing import probe_clip

SR = 24_000


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """The no-root path run for real into a temporary environment folder (once per module)."""
    missing = [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH: the no-root install path needs Debian/Ubuntu tools")
    env = tmp_path_factory.mktemp("env")
    status = install.ensure_mda(env, method="download")
    if not status.ok:
        pytest.skip(f"apt-get download {install.PACKAGE} did not work here ({status.detail})")
    return status.bundle


def test_download_unpacks_the_bundle_into_the_env_folder(unpacked):
    assert unpacked.name == "mda.lv2" and unpacked.parent.name == "lv2" and unpacked.parent.parent.name == "lib"
    assert (unpacked / "manifest.ttl").is_file()
    assert (unpacked / "Overdrive.so").is_file() and (unpacked / "ThruZero.so").is_file()
    # nothing half-done left beside it
    assert sorted(p.name for p in unpacked.parent.iterdir()) == ["mda.lv2"]


def test_lv2_host_finds_and_renders_from_the_unpacked_folder(unpacked, monkeypatch):
    monkeypatch.delenv("DAFX_MDA_LV2", raising=False)
    monkeypatch.setenv("LV2_PATH", str(unpacked.parent))
    assert mda.bundle_path() == unpacked
    fx = mda.make_mda_effect("overdrive")
    assert Path(fx.bundle) == unpacked
    x = probe_clip(SR, 0.3, seed=1)
    y = fx.process(x, SR, [0.8, 0.3, 0.5])
    assert y.shape == x.shape and np.isfinite(y).all()
    assert float(np.abs(y - x).max()) > 1e-3  # the plugin did something
    # the environment's own folder (sys.prefix/lib/lv2) is searched without any variable
    monkeypatch.delenv("LV2_PATH")
    monkeypatch.setattr(sys, "prefix", str(unpacked.parent.parent.parent))
    assert mda.search_dirs()[0] == unpacked.parent
    assert mda.bundle_path() == unpacked


def test_unpacked_plugin_renders_like_the_system_one(unpacked, monkeypatch):
    if not Path(mda.DEFAULT_BUNDLE, "manifest.ttl").is_file():
        pytest.skip("no system-wide mda-lv2 to compare with")
    x = probe_clip(SR, 0.3, seed=3)
    p = [0.6, 0.2, 0.4, 0.7, 0.5]
    monkeypatch.setenv("DAFX_MDA_LV2", mda.DEFAULT_BUNDLE)
    y_sys = mda.make_mda_effect("flanger").process(x, SR, p)
    monkeypatch.setenv("DAFX_MDA_LV2", str(unpacked))
    y_env = mda.make_mda_effect("flanger").process(x, SR, p)
    np.testing.assert_array_equal(y_env, y_sys)


def test_search_order_lv2_path_then_env_then_system(tmp_path, monkeypatch):
    def fake(d: Path) -> Path:
        (d / "mda.lv2").mkdir(parents=True)
        (d / "mda.lv2" / "manifest.ttl").write_text("")
        return d / "mda.lv2"

    a, env = fake(tmp_path / "a"), tmp_path / "env"
    b = fake(env / "lib" / "lv2")
    monkeypatch.delenv("DAFX_MDA_LV2", raising=False)
    monkeypatch.setattr(sys, "prefix", str(env))
    monkeypatch.setenv("LV2_PATH", f"{tmp_path / 'empty'}:{a.parent}")
    assert mda.bundle_path() == a
    monkeypatch.setenv("LV2_PATH", "")
    assert mda.bundle_path() == b
    # an explicit DAFX_MDA_LV2 wins, even when it points nowhere (the error then names it)
    monkeypatch.setenv("DAFX_MDA_LV2", str(tmp_path / "nowhere.lv2"))
    assert mda.bundle_path() == tmp_path / "nowhere.lv2" and not mda.mda_available()


def test_no_package_manager_says_why_and_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg-deb
    monkeypatch.delenv("DAFX_MDA_LV2", raising=False)
    status = install.ensure_mda(tmp_path / "env", method="download")
    assert not status.ok and status.how == "unavailable"
    assert install.main(["--env", str(tmp_path / "env"), "--method", "download"]) == 3
    out = capsys.readouterr().out
    assert "could not be had" in out and "portable" in out
    assert not (tmp_path / "env" / "lib" / "lv2" / "mda.lv2").exists()
    with pytest.raises(FileNotFoundError, match="apt-get not found"):
        install.download_mda(tmp_path / "x")


def test_installed_bundle_is_used_as_is(unpacked, monkeypatch, capsys):
    monkeypatch.setenv("DAFX_MDA_LV2", str(unpacked))
    status = install.ensure_mda(unpacked.parent.parent.parent)
    assert status.ok and status.how == "installed" and status.bundle == unpacked
    assert install.main(["--env", str(unpacked.parent.parent.parent)]) == 0
    assert f"mda plugins at {unpacked}" in capsys.readouterr().out

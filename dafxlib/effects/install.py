"""Obtain Debian's mda-lv2 plugins: found installed, installed as root, or unpacked without root.

:func:`ensure_mda` tries, in order:

1. ``installed``: a bundle :func:`dafxlib.effects.mda.bundle_path` already finds
   (``$DAFX_MDA_LV2``, ``$LV2_PATH``, ``<env>/lib/lv2``, ``/usr/lib/lv2``);
2. ``apt-get install``: as root with apt-get, the system package (as ``.ci/run`` does);
3. ``apt-get download``: without root, the distribution's ``.deb`` is fetched with
   ``apt-get download`` into a temporary folder and unpacked with ``dpkg-deb -x``; its
   ``usr/lib/lv2/mda.lv2`` is moved into ``<env>/lib/lv2/mda.lv2``, a folder
   :func:`~dafxlib.effects.mda.search_dirs` searches for the environment that runs the study.

When none works (another OS, no package manager, no network) the result says why; the
``portable`` effect set needs none of this. ``python -m dafxlib.effects.install`` prints one
``effects:`` line and exits 0 when the plugins are usable, 3 when they are not
(``run_all.sh`` calls it during setup).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import mda

__all__ = ["MdaStatus", "ensure_mda", "download_mda", "PACKAGE", "METHODS"]

PACKAGE = "mda-lv2"
#: ``auto`` tries every way in order; the others try one way only
METHODS = ("auto", "installed", "apt-install", "download")
#: seconds any one package-manager command may take (a machine without network fails, not hangs)
TIMEOUT_S = 300


@dataclass
class MdaStatus:
    """Outcome of :func:`ensure_mda`: ``bundle`` is None when the plugins could not be had."""

    bundle: Path | None
    how: str  # "installed", "apt-get install", "apt-get download", or "unavailable"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.bundle is not None

    def line(self) -> str:
        if self.ok:
            return f"effects: mda plugins at {self.bundle} ({self.how})"
        return (
            f"effects: the mda plugins could not be had ({self.detail}); runs use the portable set "
            "(a profile set to mda, such as paper, needs --set effects.effect_set=portable here)"
        )


def _run(cmd: list[str], cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _tail(proc: subprocess.CompletedProcess) -> str:
    lines = [
        ln
        for ln in (proc.stderr or proc.stdout or "").splitlines()
        if ln.strip() and not ln.startswith("W: Download is performed unsandboxed")
    ]
    return lines[-1].strip() if lines else f"exit status {proc.returncode}"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _valid(bundle: Path) -> bool:
    return (bundle / "manifest.ttl").is_file()


def download_mda(dest_dir: str | os.PathLike) -> Path:
    """Fetch and unpack the mda-lv2 package into ``dest_dir/mda.lv2`` without root.

    Uses ``apt-get download`` and ``dpkg-deb -x`` in a temporary folder; the bundle appears in
    ``dest_dir`` only complete (unpacked next to it, then renamed). Returns the bundle path.
    Raises :class:`FileNotFoundError` when apt-get or dpkg-deb is missing and
    :class:`RuntimeError` (with the tool's last message) when the download or unpack fails.
    """
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} not found (not a Debian/Ubuntu system?)")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / mda.BUNDLE_NAME
    with tempfile.TemporaryDirectory(prefix=".mda-lv2-", dir=dest_dir) as tmp:
        tmp_p = Path(tmp)
        os.chmod(tmp_p, 0o755)  # apt drops to user _apt for downloads when it can read the folder
        try:
            proc = _run(["apt-get", "download", PACKAGE], cwd=tmp_p)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"apt-get download {PACKAGE} took over {TIMEOUT_S} s (no network?)") from e
        debs = sorted(tmp_p.glob(f"{PACKAGE}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise RuntimeError(f"apt-get download {PACKAGE} failed: {_tail(proc)}")
        unpacked = tmp_p / "root"
        proc = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)])
        if proc.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {debs[0].name} failed: {_tail(proc)}")
        found = [p.parent for p in unpacked.rglob("manifest.ttl") if p.parent.name == mda.BUNDLE_NAME]
        if not found:
            raise RuntimeError(f"{debs[0].name} holds no {mda.BUNDLE_NAME} bundle")
        staged = tmp_p / "staged"
        shutil.move(str(found[0]), staged)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    return target


def _apt_install() -> str | None:
    """Install the package system-wide as root; None on success, else the reason."""
    install = ["apt-get", "install", "-y", "-qq", PACKAGE]
    try:
        if _run(install).returncode == 0:
            return None
        upd = _run(["apt-get", "update", "-qq"])  # stale or empty package lists
        if upd.returncode != 0:
            return f"apt-get update failed: {_tail(upd)}"
        proc = _run(install)
    except subprocess.TimeoutExpired:
        return f"apt-get took over {TIMEOUT_S} s (no network?)"
    return None if proc.returncode == 0 else f"apt-get install {PACKAGE} failed: {_tail(proc)}"


def ensure_mda(env_dir: str | os.PathLike | None = None, method: str = "auto") -> MdaStatus:
    """Make the mda plugins usable for the environment ``env_dir`` (default: ``sys.prefix``).

    ``method``: one of :data:`METHODS`. Never raises for a missing tool or network; the
    returned :class:`MdaStatus` says what happened.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    env_dir = Path(env_dir) if env_dir is not None else Path(sys.prefix)
    lv2_dir = env_dir / "lib" / "lv2"
    reasons: list[str] = []
    if method in ("auto", "installed"):
        forced = os.environ.get("DAFX_MDA_LV2")
        for cand in [Path(forced)] if forced else [lv2_dir / mda.BUNDLE_NAME, mda.bundle_path()]:
            if _valid(cand):
                return MdaStatus(cand, "installed")
        reasons.append(f"DAFX_MDA_LV2={forced} holds no bundle" if forced else "not installed")
        if forced:
            return MdaStatus(None, "unavailable", "; ".join(reasons))
    if method in ("auto", "apt-install"):
        if _is_root() and shutil.which("apt-get"):
            why = _apt_install()
            if why is None and _valid(Path(mda.DEFAULT_BUNDLE)):
                return MdaStatus(Path(mda.DEFAULT_BUNDLE), "apt-get install")
            reasons.append(why or f"apt-get installed {PACKAGE} but {mda.DEFAULT_BUNDLE} is missing")
        elif shutil.which("apt-get"):
            reasons.append("no root for apt-get install")
        elif method == "apt-install":
            reasons.append("apt-get not found (not a Debian/Ubuntu system?)")
    if method in ("auto", "download"):
        try:
            bundle = download_mda(lv2_dir)
        except (OSError, RuntimeError) as e:
            reasons.append(str(e))
        else:
            if _valid(bundle):
                return MdaStatus(bundle, "apt-get download")
            reasons.append(f"unpacked {bundle} has no manifest.ttl")
    return MdaStatus(None, "unavailable", "; ".join(reasons))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dafxlib.effects.install", description=__doc__.splitlines()[0])
    ap.add_argument("--env", default=sys.prefix, help="environment folder to unpack into (default: sys.prefix)")
    ap.add_argument("--method", default="auto", choices=METHODS)
    args = ap.parse_args(argv)
    status = ensure_mda(args.env, args.method)
    print(status.line(), flush=True)
    return 0 if status.ok else 3


if __name__ == "__main__":
    sys.exit(main())

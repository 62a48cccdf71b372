"""Where things live. Generated bulk goes under ``build/<profile>/`` (ignored by git).

The canonical run (the ``default`` profile) writes ``figures/`` and ``report/`` at the
top of the repository; any other profile writes them under ``build/<profile>/`` so a
smoke or paper run never overwrites the committed canonical results.
Environment variables ``DAFX_BUILD_DIR`` and ``DAFX_OUTPUT_DIR`` move both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import MissingArtifactError

CANONICAL_PROFILE = "default"


def repo_root() -> Path:
    env = os.environ.get("DAFX_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def build_dir(profile: str) -> Path:
    base = Path(os.environ.get("DAFX_BUILD_DIR", repo_root() / "build"))
    d = base / profile
    d.mkdir(parents=True, exist_ok=True)
    return d


def output_dir(profile: str) -> Path:
    """Folder holding ``figures/`` and ``report/`` for this profile's run."""
    env = os.environ.get("DAFX_OUTPUT_DIR")
    if env:
        return Path(env)
    if profile == CANONICAL_PROFILE:
        return repo_root()
    return build_dir(profile)


def figures_dir(profile: str) -> Path:
    d = output_dir(profile) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


def report_dir(profile: str) -> Path:
    d = output_dir(profile) / "report"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_dir(profile: str, *parts: str) -> Path:
    d = build_dir(profile).joinpath("cache", *parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def artifact_path(profile: str, name: str) -> Path:
    """Path of a named artifact that one notebook writes and later ones read."""
    d = build_dir(profile) / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def require_artifact(profile: str, name: str, made_by: str) -> Path:
    """Return an artifact's path, or say which notebook to run first."""
    p = artifact_path(profile, name)
    if not p.exists():
        raise MissingArtifactError(
            f"artifact {name!r} for profile {profile!r} is missing ({p}); run notebook "
            f"{made_by} first, e.g. ./run_all.sh --profile {profile} --only {made_by[:2]}"
        )
    return p


#: where Debian/Ubuntu put the study's mda-lv2 bundle; ``$DAFX_MDA_LV2`` overrides
MDA_DEFAULT_BUNDLE = "/usr/lib/lv2/mda.lv2"
MDA_BUNDLE_NAME = "mda.lv2"


def lv2_search_dirs() -> list[Path]:
    """LV2 folders searched for ``mda.lv2``, first match wins.

    ``$LV2_PATH`` (colon-separated, the LV2 convention), then the running environment's own
    ``<sys.prefix>/lib/lv2`` (where ``python -m dafxlib.effects.install`` unpacks the plugins
    without root), then the system folders Debian/Ubuntu and source builds use.
    """
    dirs = [Path(d).expanduser() for d in os.environ.get("LV2_PATH", "").split(os.pathsep) if d]
    dirs += [Path(sys.prefix) / "lib" / "lv2", Path(MDA_DEFAULT_BUNDLE).parent, Path("/usr/local/lib/lv2")]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def mda_bundle() -> Path:
    """The mda.lv2 bundle to use: ``$DAFX_MDA_LV2`` when set (used as is, even if missing),
    else the first :func:`lv2_search_dirs` folder holding one, else :data:`MDA_DEFAULT_BUNDLE`."""
    forced = os.environ.get("DAFX_MDA_LV2")
    if forced:
        return Path(forced)
    for d in lv2_search_dirs():
        if (d / MDA_BUNDLE_NAME / "manifest.ttl").is_file():
            return d / MDA_BUNDLE_NAME
    return Path(MDA_DEFAULT_BUNDLE)


def mda_found() -> bool:
    """True when an mda-lv2 bundle is found (the ``auto`` effect set then means ``mda``)."""
    return (mda_bundle() / "manifest.ttl").is_file()

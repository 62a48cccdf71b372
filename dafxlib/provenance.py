"""Provenance: save figures, record numbers, and know who made each.

Every notebook starts with :func:`start_notebook`, which resolves the profile and sets
the current run context. Then:

- :func:`save_figure` writes ``figures/NN_name.png`` plus a vector copy (``.svg``);
- :func:`record_number` writes one flat dotted key into ``report/numbers.json``.

Each entry carries notebook, profile, seed, git commit and time. ``report/provenance.json``
lists every figure and number with its maker, each notebook's wall time and the machine.
All writes are atomic and locked.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, storage
from .config import Profile, get_profile
from .errors import DafxError

_KEY_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
_FIG_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


def git_commit() -> str:
    """Short HEAD commit, "-dirty" when tracked files differ from it. The canonical run's own
    outputs (figures/, report/) do not count: the run rewrites them as it goes."""
    root = paths.repo_root()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        exclude = []
        canonical = paths.output_dir(paths.CANONICAL_PROFILE)
        for d in (canonical / "figures", canonical / "report"):
            try:
                exclude.append(f":(exclude){d.resolve().relative_to(root.resolve()).as_posix()}")
            except ValueError:  # outputs redirected outside the repository
                pass
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


@dataclass
class RunContext:
    notebook: str
    profile: Profile
    commit: str
    started: float = field(default_factory=time.time)

    @property
    def seed(self) -> int:
        return self.profile.seed

    def stamp(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "profile": self.profile.name,
            "seed": self.seed,
            "commit": self.commit,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }


_CURRENT: RunContext | None = None


def start_notebook(
    notebook: str, profile: str | Profile = "default", overrides: Mapping[str, Any] | None = None
) -> Profile:
    """Resolve the profile and make ``notebook`` the maker of what follows."""
    global _CURRENT
    prof = get_profile(profile, overrides)
    _CURRENT = RunContext(notebook=notebook, profile=prof, commit=git_commit())
    return prof


def current() -> RunContext:
    if _CURRENT is None:
        raise DafxError("no run context: call dafxlib.provenance.start_notebook(name, PROFILE) first")
    return _CURRENT


def numbers_path(profile: str) -> Path:
    return paths.report_dir(profile) / "numbers.json"


def provenance_path(profile: str) -> Path:
    return paths.report_dir(profile) / "provenance.json"


def _clean_value(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    value = float(value)
    if not math.isfinite(value):
        return None  # JSON has no NaN; the stamp keeps a note
    return value


def record_number(key: str, value: Any, *, unit: str | None = None) -> Any:
    """Record one number under a flat dotted lower-case key, e.g. ``data.speech.n_clips``."""
    ctx = current()
    if not _KEY_RE.match(key):
        raise DafxError(f"number key {key!r} must be dotted lower-case words, e.g. data.speech.n_clips")
    clean = _clean_value(value)
    entry = {"value": clean, **ctx.stamp()}
    if unit:
        entry["unit"] = unit
    if clean is None and value is not None:
        entry["note"] = f"non-finite value {value!r}"
    prof = ctx.profile.name
    storage.update_json(numbers_path(prof), lambda d: {**d, key: entry})
    storage.update_json(provenance_path(prof), lambda d: _prov_set(d, "numbers", key, {"notebook": ctx.notebook}))
    return clean


def record_numbers(prefix: str, values: Mapping[str, Any]) -> None:
    """Record many numbers at once under ``prefix`` (one locked write)."""
    ctx = current()
    stamp = ctx.stamp()
    entries = {}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else k
        if not _KEY_RE.match(key):
            raise DafxError(f"number key {key!r} must be dotted lower-case words")
        entries[key] = {"value": _clean_value(v), **stamp}
    prof = ctx.profile.name
    storage.update_json(numbers_path(prof), lambda d: {**d, **entries})

    def upd(d):
        for key in entries:
            d = _prov_set(d, "numbers", key, {"notebook": ctx.notebook})
        return d

    storage.update_json(provenance_path(prof), upd)


def save_figure(fig, name: str, *, vector: str = "svg", dpi: int = 100) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` plus a vector copy; ``name`` like ``01_corpus``."""
    ctx = current()
    if not _FIG_RE.match(name):
        raise DafxError(f"figure name {name!r} must look like NN_lower_case (e.g. 01_corpus)")
    if not name.startswith(ctx.notebook[:2]):
        raise DafxError(f"figure {name!r} must start with its notebook's number {ctx.notebook[:2]}")
    d = paths.figures_dir(ctx.profile.name)
    png = d / f"{name}.png"
    meta = {"Software": f"dafxlib {ctx.notebook} {ctx.profile.name} {ctx.commit}"}
    with storage.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata=meta)
    with storage.atomic_path(d / f"{name}.{vector}") as tmp:
        fig.savefig(tmp, format=vector, bbox_inches="tight")
    storage.update_json(
        provenance_path(ctx.profile.name),
        lambda p: _prov_set(p, "figures", name, {**ctx.stamp(), "files": [png.name, f"{name}.{vector}"]}),
    )
    return png


def record_notebook_time(profile: str, notebook: str, wall_s: float, status: str = "ok") -> None:
    """Called by run_all.sh after each notebook."""

    def upd(p):
        p = _prov_set(
            p,
            "notebooks",
            notebook,
            {
                "wall_s": round(wall_s, 2),
                "status": status,
                "commit": git_commit(),
                "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            },
        )
        p["machine"] = machine()
        p["profile"] = profile
        return p

    storage.update_json(provenance_path(profile), upd)


def record_artifact(key: str, info: Mapping[str, Any]) -> None:
    """Record facts about a build artifact (e.g. corpus build time and size) in provenance."""
    ctx = current()
    storage.update_json(
        provenance_path(ctx.profile.name), lambda p: _prov_set(p, "artifacts", key, {**dict(info), **ctx.stamp()})
    )


def _prov_set(d: dict, section: str, key: str, value: Any) -> dict:
    d = dict(d)
    d.setdefault(section, {})
    d[section] = {**d[section], key: value}
    return d


def load_numbers(profile: str = "default", *, with_stamps: bool = False) -> dict[str, Any]:
    raw = storage.read_json(numbers_path(profile), {})
    return raw if with_stamps else {k: v["value"] for k, v in raw.items()}


def load_provenance(profile: str = "default") -> dict[str, Any]:
    return storage.read_json(provenance_path(profile), {})


def clear_notebook_outputs(profile: str, notebook: str) -> None:
    """Forget the numbers a notebook recorded earlier, so a re-run leaves no stale keys."""
    storage.update_json(numbers_path(profile), lambda d: {k: v for k, v in d.items() if v.get("notebook") != notebook})

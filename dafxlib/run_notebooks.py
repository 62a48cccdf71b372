"""Execute the numbered notebooks with papermill under a profile, then build the report.

``python -m dafxlib.run_notebooks --profile smoke [--only 02] [--from 03] [--set vae.epochs=3]``

- Notebooks run in order 01..06; one that does not exist yet is skipped with a message.
- Executed copies go to ``report/notebooks/`` for the canonical (default) profile and to
  ``build/<profile>/notebooks/`` otherwise.
- The run stops at the first failing notebook, naming it and the failing cell.
- One line per notebook with its wall time, then the total; wall times go to provenance.
- While a notebook runs, a live line shows its cell, section and long loops (epochs, sweep
  configurations, controllers, evaluation cells): redrawn in place on a terminal, a throttled
  line every 30 s otherwise (see :mod:`dafxlib.run_progress`).
- After 01_data, the sources the corpus skipped are counted on the terminal (by reason).
- ``--rebuild`` deletes ``build/<profile>/cache/`` first (corpus, rendered examples,
  evaluation sets are made again; trained models are kept).
- Ctrl-C stops with one line (exit code 130); running the same command again resumes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import paths, provenance, storage
from .config import PROFILES, effect_set_reason, get_profile, parse_overrides
from .errors import ConfigError, DafxError
from .run_progress import ENGINE as PROGRESS_ENGINE
from .run_progress import LiveProgress

STAGES = ("01", "02", "03", "04", "05", "06")
KERNEL = "dafx"


def notebook_for(stage: str) -> Path | None:
    found = sorted((paths.repo_root() / "notebooks").glob(f"{stage}_*.ipynb"))
    return found[0] if found else None


def executed_dir(profile: str) -> Path:
    base = paths.report_dir(profile) if profile == paths.CANONICAL_PROFILE else paths.build_dir(profile)
    d = base / "notebooks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def select_stages(only: list[str] | None, start: str | None) -> list[str]:
    for s in (only or []) + ([start] if start else []):
        if s not in STAGES:
            raise ConfigError(f"unknown notebook number {s!r}; valid: {', '.join(STAGES)}")
    if only:
        return [s for s in STAGES if s in only]
    if start:
        return [s for s in STAGES if s >= start]
    return list(STAGES)


def _failing_cell(exc) -> str:
    cell = getattr(exc, "exec_count", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"{where}: {ename}: {str(evalue).splitlines()[0] if evalue else ''}"


def run(profile_name: str, stages: list[str], overrides: dict, *, log=print) -> int:
    import papermill as pm

    get_profile(profile_name, overrides)  # fail fast on a bad profile or override key
    out_dir = executed_dir(profile_name)
    total = 0.0
    for stage in stages:
        nb = notebook_for(stage)
        if nb is None:
            log(f"{stage}  skipped: notebooks/{stage}_*.ipynb does not exist yet")
            continue
        provenance.clear_notebook_outputs(profile_name, nb.stem)
        if stage == "01":
            from .corpus import SKIPS_ARTIFACT

            paths.artifact_path(profile_name, SKIPS_ARTIFACT).unlink(missing_ok=True)
        out = out_dir / nb.name
        t0 = time.perf_counter()
        try:
            with LiveProgress(nb.stem):  # cell, section and loop counts on the terminal while it runs
                pm.execute_notebook(
                    str(nb),
                    str(out),
                    parameters={"PROFILE": profile_name, "OVERRIDES": overrides},
                    kernel_name=KERNEL,
                    cwd=str(nb.parent),
                    progress_bar=False,
                    log_output=False,
                    engine_name=PROGRESS_ENGINE,
                )
        except KeyboardInterrupt:
            wall = time.perf_counter() - t0
            provenance.record_notebook_time(profile_name, nb.stem, wall, status="interrupted")
            log(
                f"{nb.stem:<22} INTERRUPTED after {wall:7.1f} s (Ctrl-C); run the same command again to "
                "resume (finished work is cached)"
            )
            return 130
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell
            if getattr(exc, "ename", "") == "KeyboardInterrupt":
                wall = time.perf_counter() - t0
                provenance.record_notebook_time(profile_name, nb.stem, wall, status="interrupted")
                log(
                    f"{nb.stem:<22} INTERRUPTED after {wall:7.1f} s (Ctrl-C); run the same command again "
                    "to resume (finished work is cached)"
                )
                return 130
            wall = time.perf_counter() - t0
            provenance.record_notebook_time(profile_name, nb.stem, wall, status="failed")
            log(f"{nb.stem:<22} FAILED after {wall:7.1f} s in {_failing_cell(exc)}")
            log(f"  executed copy with the traceback: {out}")
            return 1
        wall = time.perf_counter() - t0
        total += wall
        provenance.record_notebook_time(profile_name, nb.stem, wall)
        log(f"{nb.stem:<22} {wall:7.1f} s")
        if stage == "01":
            _log_skips(profile_name, log)
    log(f"{'total':<22} {total:7.1f} s")
    return 0


def _log_skips(profile_name: str, log) -> None:
    """One line on the terminal for the sources the corpus left out (and where the list is)."""
    from .corpus import SKIPS_ARTIFACT

    path = paths.artifact_path(profile_name, SKIPS_ARTIFACT)
    try:
        info = storage.read_json(path)
    except DafxError:
        info = None
    if not info or not info.get("n_skipped"):
        return
    why = ", ".join(f"{n} {k}" for k, n in sorted(info.get("by_reason", {}).items()))
    log(f"  corpus: skipped {info['n_skipped']} source(s) ({why}); list in {path}")


def _absolute_paths(overrides: dict) -> dict:
    """Folder overrides made absolute: the notebooks run with notebooks/ as working folder."""
    out = dict(overrides)
    for key in ("data.user_folder", "data.dataset_root"):
        v = out.get(key)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            out[key] = str(Path(v).expanduser().resolve())
    return out


def build_report(profile_name: str, *, partial: bool = False, log=print) -> int:
    """Render report.md/html (and PDF where pandoc+LaTeX exist).

    After a full run every figure and number the template names must exist (strict); after
    a partial run (--only/--from) gaps are rendered as visible MISSING markers instead.
    """
    from .errors import MissingArtifactError
    from .report import build_report as _build

    try:
        outputs = _build(profile_name, allow_missing=partial, log=log)  # says so when it skips the PDF
    except MissingArtifactError as exc:
        log(f"report FAILED: {exc}")
        return 1
    log("report: " + ", ".join(str(p) for p in outputs))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="run_all.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="default")
    ap.add_argument("--only", action="append", metavar="NN", help="run only this notebook (repeatable)")
    ap.add_argument("--from", dest="start", metavar="NN", help="run from this notebook on")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field, e.g. vae.epochs=3 (repeatable)",
    )
    ap.add_argument("--no-report", action="store_true", help="do not build the report")
    ap.add_argument(
        "--rebuild",
        action="store_true",
        help="delete build/<profile>/cache/ first: corpus, rendered examples and evaluation "
        "sets are made again (trained models are kept)",
    )
    args = ap.parse_args(argv)
    try:
        overrides = _absolute_paths(parse_overrides(args.set))
        prof = get_profile(args.profile, overrides)
        stages = select_stages(args.only, args.start)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONHASHSEED", "0")
    try:
        if args.rebuild:
            cache = paths.build_dir(args.profile) / "cache"
            if cache.exists():
                shutil.rmtree(cache)
                print(f"rebuild: deleted {cache}")
        # the first line says which effects make this run, and why (issue: never a silent fallback)
        _, why = effect_set_reason(str(overrides.get("effects.effect_set", PROFILES[args.profile].effects.effect_set)))
        print(f"effects: the {prof.effects.effect_set} set ({why})")
        print(f"profile {args.profile}; notebooks {' '.join(stages)}; outputs in {paths.output_dir(args.profile)}")
        rc = run(args.profile, stages, overrides)
        if rc == 0 and not args.no_report:
            rc = build_report(args.profile, partial=len(stages) < len(STAGES))
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); run the same command again to resume (finished work is cached)", file=sys.stderr)
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())

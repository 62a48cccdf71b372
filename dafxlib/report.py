"""Render the report: ``report/template.md`` + numbers.json + figures/ -> report.md/.html/.pdf.

``python -m dafxlib.report --profile smoke [--allow-missing] [--no-pdf]``

Templates are jinja2 templates (Markdown, no autoescaping, undefined names are errors) that
call these functions (strings in double or single quotes):

- ``{{ num("KEY") }}`` or ``{{ num("KEY", "FMT") }}``: one number from numbers.json; FMT is a
  Python format spec (``.3f``, ``d``, ``.1%``, ``,.0f``); default: integers as they are,
  other numbers with 3 significant digits.
- ``{{ fig("NAME") }}`` or ``{{ fig("NAME", "caption") }}``: one figure (``figures/NAME.png``).
- ``{{ figs("NN") }}``: every figure of notebook NN not placed by ``fig``.
- ``{{ table("NAME") }}`` / ``{{ table("NAME", "ARG") }}``: a table generated from numbers.json:
  ``eval_<metric>`` (effects x corpora, cells "controller / do-nothing / random / ITO / ITO amortised / oracle";
  ARG = comma-separated methods), ``eval_wins``, ``eval_seen_unseen`` (ARG = metric),
  ``eval_cost``, ``prefix:PREFIX`` (every number under a key prefix), ``notebook:NN``
  (every number notebook NN recorded), ``provenance`` (notebook wall times),
  ``appendix`` (every number of the run grouped by notebook, each group a collapsible
  ``<details>`` block: collapsed in the HTML, plain tables in Markdown and PDF).
- ``{{ text("NN_name") }}``: a Markdown fragment a notebook wrote with :func:`write_fragment`
  (e.g. a discussion whose sentences depend on the results; its numbers come from code).
- ``{{ meta("profile") }}``, ``meta("seed")``, ``meta("commit")``, ``meta("date")``,
  ``meta("effects")`` (the effect set that made the run: ``effects.set`` in numbers.json).
- ``{{ include("NAME") }}``: the file ``report/NAME.md`` rendered in place (its placeholders,
  figures and numbering join the report's); a short note if the file is absent.
- ``{{ ref("NAME") }}``: "Figure N", the number the figure ``NAME`` gets where it is placed
  (also before it: the first of two passes records where every figure goes).

Figures are numbered in order of appearance; a ``fig:`` caption becomes "Figure N: caption".

Missing inputs. By default every placeholder whose number, figure or table source is
missing is collected and :class:`MissingArtifactError` is raised listing all of them with
the notebook to run. With ``allow_missing=True`` (``--allow-missing``) the report is still
written and each gap shows a visible marker starting with :data:`MISSING_MARKER`.

Outputs go to :func:`dafxlib.paths.report_dir` (``report/`` for the default profile,
``build/<profile>/report/`` otherwise): ``report.md`` (figures linked relatively),
``report.html`` (self-contained: figures embedded as base64 PNG or JPEG) and ``report.pdf`` when
pandoc and a LaTeX engine are installed (skipped with a message otherwise). ``--out DIR``
writes them elsewhere (to check a template against a committed run without touching it).
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, provenance, storage
from .effects import ALL as EFFECT_ORDER
from .effects import SEEN as SEEN_EFFECTS
from .errors import MissingArtifactError
from .evaluation.methods import METHODS as METHOD_ORDER

MISSING_MARKER = "MISSING: run notebook"
NOTEBOOKS = {
    "01": "01_data",
    "02": "02_vae_training",
    "03": "03_beta_tuning",
    "04": "04_end_to_end",
    "05": "05_latent_control",
    "06": "06_evaluation",
}
#: first key segment -> stage, used to name the notebook to run for a missing number
KEY_STAGE = {
    "data": "01",
    "corpus": "01",
    "effects": "01",
    "vae": "02",
    "training": "02",
    "sweep": "03",
    "beta": "03",
    "encoder": "03",
    "probe": "03",
    "controller": "04",
    "e2e": "04",
    "spsa": "04",
    "plane": "05",
    "widgets": "05",
    "eval": "06",
    "study": "06",
}
#: the heading that starts the appendix (the body before it is what a reader reads)
APPENDIX_HEADING = "## Appendix"
TABLE_METHODS = ("controller", "do_nothing", "random", "ito", "ito_amortised", "oracle")
CORPUS_ORDER = ("speech", "vctk", "daps", "music", "musdb18", "user")


def template_path() -> Path:
    return paths.repo_root() / "report" / "template.md"


def fragments_dir(profile: str) -> Path:
    d = paths.report_dir(profile) / "fragments"
    d.mkdir(parents=True, exist_ok=True)
    return d


_FRAGMENT_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


def write_fragment(name: str, text: str) -> Path:
    """Write a Markdown fragment for ``{{ text:NAME }}`` from the current notebook
    (name like ``06_discussion``; numbers in it must come from code, never typed)."""
    ctx = provenance.current()
    if not _FRAGMENT_RE.match(name) or not name.startswith(ctx.notebook[:2]):
        raise ValueError(
            f"fragment name {name!r} must look like NN_lower_case with this notebook's number {ctx.notebook[:2]}"
        )
    path = fragments_dir(ctx.profile.name) / f"{name}.md"
    storage.write_text(path, text.strip() + "\n")
    storage.update_json(
        provenance.provenance_path(ctx.profile.name), lambda p: provenance._prov_set(p, "fragments", name, ctx.stamp())
    )
    return path


@dataclass
class Missing:
    kind: str  # num | fig | figs | table | meta
    what: str
    stage: str | None

    def marker(self) -> str:
        nb = NOTEBOOKS.get(self.stage or "", "the notebook that makes it")
        return f"**[{MISSING_MARKER} {nb}: {self.kind} {self.what}]**"

    def line(self) -> str:
        nb = NOTEBOOKS.get(self.stage or "", "the notebook that makes it")
        return f"  - {self.kind}:{self.what}  (run notebook {nb})"


@dataclass
class Sources:
    """Everything a template may draw on."""

    profile: str
    numbers: dict[str, Any]  # flat values
    stamps: dict[str, dict]  # key -> entry with notebook, commit, ...
    figures: dict[str, Path]  # name -> png path
    provenance: dict = field(default_factory=dict)

    @classmethod
    def load(cls, profile: str) -> Sources:
        stamped = provenance.load_numbers(profile, with_stamps=True)
        figs = {p.stem: p for p in sorted(paths.figures_dir(profile).glob("*.png"))}
        return cls(
            profile, {k: v.get("value") for k, v in stamped.items()}, stamped, figs, provenance.load_provenance(profile)
        )


def _stage_of_key(key: str) -> str | None:
    return KEY_STAGE.get(key.split(".", 1)[0])


def format_number(value: Any, fmt: str | None = None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if fmt:
        if fmt == "d" or fmt.endswith("d"):
            return format(int(round(float(value))), fmt)
        return format(value, fmt)
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


# ---- tables ----------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _eval_index(numbers: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Corpora and effects present as eval.<corpus>.<effect>.<method>.<metric> keys."""
    corpora, effects = [], []
    skip = {"wins", "cost", "excluded", "seen", "unseen", "ito_budget"}
    for k in numbers:
        parts = k.split(".")
        if (
            len(parts) == 5
            and parts[0] == "eval"
            and parts[1] not in skip
            and parts[2] not in ("all", "seen", "unseen")
        ):
            if parts[1] not in corpora:
                corpora.append(parts[1])
            if parts[2] not in effects:
                effects.append(parts[2])
    effects.sort(key=lambda e: (EFFECT_ORDER.index(e) if e in EFFECT_ORDER else 99, e))
    corpora.sort(key=lambda c: (CORPUS_ORDER.index(c) if c in CORPUS_ORDER else 99, c))
    return corpora, effects


def _table_eval_metric(src: Sources, metric: str, arg: str | None) -> str | None:
    methods = [m.strip() for m in arg.split(",")] if arg else list(TABLE_METHODS)
    corpora, effects = _eval_index(src.numbers)
    corpora = [c for c in corpora if any(f"eval.{c}.{e}.{m}.{metric}" in src.numbers for e in effects for m in methods)]
    if not corpora:
        return None
    methods = [m for m in methods if any(f"eval.{c}.{e}.{m}.{metric}" in src.numbers for c in corpora for e in effects)]
    f = lambda v: "-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"  # noqa: E731
    rows = []
    for e in effects:
        label = e if e in SEEN_EFFECTS else f"{e} (unseen)"
        rows.append(
            [label] + [" / ".join(f(src.numbers.get(f"eval.{c}.{e}.{m}.{metric}")) for m in methods) for c in corpora]
        )
    for grp in ("seen", "unseen", "all"):
        vals = [" / ".join(f(src.numbers.get(f"eval.{c}.{grp}.{m}.{metric}")) for m in methods) for c in corpora]
        if any(v.replace("-", "").replace("/", "").strip() for v in vals):
            rows.append([f"mean ({grp})"] + vals)
    header = ["effect"] + [f"{c}: " + " / ".join(methods) for c in corpora]
    return _md_table(header, rows)


def _table_eval_wins(src: Sources) -> str | None:
    corpora, effects = _eval_index(src.numbers)
    if not corpora:
        return None
    rows = []
    for e in effects:
        cells = []
        for c in corpora:
            ctl, dn, rnd = (src.numbers.get(f"eval.{c}.{e}.{m}.mrstft") for m in ("controller", "do_nothing", "random"))
            if ctl is None:
                cells.append("-")
                continue
            marks = []
            for name, other in (("do-nothing", dn), ("random", rnd)):
                if other is not None:
                    marks.append(f"{'beats' if ctl < other else 'loses to'} {name}")
            cells.append("; ".join(marks) or "-")
        rows.append([e if e in SEEN_EFFECTS else f"{e} (unseen)"] + cells)
    return _md_table(["effect"] + corpora, rows)


def _table_seen_unseen(src: Sources, metric: str | None) -> str | None:
    metric = metric or "mrstft"
    rows = []
    for m in METHOD_ORDER:
        s, u = src.numbers.get(f"eval.seen.{m}.{metric}"), src.numbers.get(f"eval.unseen.{m}.{metric}")
        if s is None and u is None:
            continue
        rows.append(
            [m, format_number(s, ".3f") if s is not None else "-", format_number(u, ".3f") if u is not None else "-"]
        )
    return (
        _md_table(["method", f"seen effects: mean {metric}", f"unseen effects: mean {metric}"], rows) if rows else None
    )


def _table_cost(src: Sources) -> str | None:
    rows = []
    for m in METHOD_ORDER:
        ms = src.numbers.get(f"eval.cost.{m}.ms_per_clip")
        rn = src.numbers.get(f"eval.cost.{m}.renders_per_clip")
        if ms is None and rn is None:
            continue
        rows.append(
            [
                m,
                format_number(ms, ".1f") if ms is not None else "-",
                format_number(rn, ".0f") if rn is not None else "-",
            ]
        )
    return _md_table(["method", "ms per clip", "renders per clip"], rows) if rows else None


def _table_keys(items: list[tuple[str, Any]]) -> str | None:
    if not items:
        return None
    return _md_table(["number", "value"], [[f"`{k}`", format_number(v)] for k, v in sorted(items)])


def _table_provenance(src: Sources) -> str | None:
    nbs = src.provenance.get("notebooks", {})
    if not nbs:
        return None
    rows = [
        [name, f"{info.get('wall_s', 0):.1f}", str(info.get("status", "")), str(info.get("commit", ""))]
        for name, info in sorted(nbs.items())
    ]
    return _md_table(["notebook", "wall time (s)", "status", "commit"], rows)


def _table_appendix(src: Sources) -> str | None:
    """Every number, one collapsible block per notebook (``<details markdown="1">``: the
    Markdown inside stays Markdown for the HTML converter and for pandoc)."""
    if not src.numbers:
        return None
    groups: dict[str, list[tuple[str, Any]]] = {}
    for k, v in src.numbers.items():
        nb = str(src.stamps.get(k, {}).get("notebook", "")) or NOTEBOOKS.get(_stage_of_key(k) or "", "other")
        groups.setdefault(nb, []).append((k, v))
    blocks = []
    for nb in sorted(groups):
        items = groups[nb]
        blocks.append(
            f'<details markdown="1">\n<summary>{nb}: {len(items)} numbers</summary>\n\n'
            f"{_table_keys(items)}\n\n</details>"
        )
    return "\n\n".join(blocks)


def render_table(src: Sources, name: str, arg: str | None) -> str | None:
    """A generated Markdown table, or None when its numbers are missing."""
    if name == "appendix":
        return _table_appendix(src)
    if name.startswith("prefix:"):
        pre = name.split(":", 1)[1].strip().rstrip(".") + "."
        return _table_keys([(k, v) for k, v in src.numbers.items() if k.startswith(pre)])
    if name.startswith("notebook:"):
        nn = name.split(":", 1)[1].strip()
        return _table_keys(
            [(k, src.numbers.get(k)) for k, st in src.stamps.items() if str(st.get("notebook", "")).startswith(nn)]
        )
    if name == "eval_wins":
        return _table_eval_wins(src)
    if name == "eval_seen_unseen":
        return _table_seen_unseen(src, arg)
    if name == "eval_cost":
        return _table_cost(src)
    if name == "provenance":
        return _table_provenance(src)
    if name.startswith("eval_"):
        return _table_eval_metric(src, name[len("eval_") :], arg)
    raise ValueError(f"unknown table {name!r}")


def _table_stage(name: str) -> str | None:
    if name.startswith("notebook:"):
        return name.split(":", 1)[1].strip()[:2]
    if name.startswith("prefix:"):
        return _stage_of_key(name.split(":", 1)[1].strip())
    if name.startswith("eval"):
        return "06"
    return None


# ---- rendering -------------------------------------------------------------------------------
def _caption(name: str) -> str:
    stem = name.split("_", 1)[1] if "_" in name else name
    return stem.replace("_", " ").capitalize()


def _front_matter(text: str) -> tuple[str, str]:
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[4:end], text[end + 5 :]
    return "", text


def _meta(src: Sources, key: str) -> str | None:
    if key == "profile":
        return src.profile
    if key == "seed":
        seeds = Counter(str(st.get("seed")) for st in src.stamps.values() if "seed" in st)
        return seeds.most_common(1)[0][0] if seeds else None
    if key == "commit":
        commits = Counter(str(st.get("commit")) for st in src.stamps.values() if "commit" in st)
        return commits.most_common(1)[0][0] if commits else None
    if key == "effects":
        entry = src.numbers.get("effects.set")
        return str(entry) if entry is not None else None
    if key == "date":
        times = sorted(str(st.get("time")) for st in src.stamps.values() if st.get("time"))
        return times[-1][:10] if times else _dt.date.today().isoformat()
    raise ValueError(f"unknown meta key {key!r} (profile, seed, commit, effects, date)")


#: the functions a template may call, ``{{ num("eval.cells", "d") }}`` (see the module docstring)
TEMPLATE_FUNCTIONS: tuple[str, ...] = ("num", "fig", "figs", "ref", "table", "text", "meta", "include")
#: one placeholder, ``{{ ... }}`` (used to strip them when checking a template's prose)
PLACEHOLDER_RE = re.compile(r"\{\{.*?\}\}", re.S)
_MAX_INCLUDE_DEPTH = 3


class _Render:
    """One pass over a template: each placeholder function either records what it was asked
    for (``record=True``: the first pass, which learns where figures are placed) or writes it."""

    def __init__(
        self,
        src: Sources | None,
        base: Path,
        *,
        figure_ref: Callable[[str, Path, str], str] | None = None,
        calls: list[tuple[str, str]] | None = None,
    ):
        import jinja2

        self.src, self.base, self.figure_ref = src, base, figure_ref
        self.record = figure_ref is None
        self.calls: list[tuple[str, str]] = []
        self.missing: list[Missing] = []
        self.depth = 0
        prior = calls or []
        self.placed = {w for k, w in prior if k == "fig"}
        self.number = {name: i + 1 for i, name in enumerate(self._order(prior))}
        # templates are Markdown, not HTML: no autoescaping; an unknown name is an error, not ""
        self.env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.env.globals.update({f: getattr(self, "_" + f) for f in TEMPLATE_FUNCTIONS})

    def _order(self, calls: list[tuple[str, str]]) -> list[str]:
        """Figure names in the order the report shows them (``fig`` and ``figs``)."""
        figures = self.src.figures if self.src is not None else {}
        order: list[str] = []
        for kind, what in calls:
            if kind == "fig" and what in figures and what not in order:
                order.append(what)
            elif kind == "figs":
                order += sorted(
                    n for n in figures if n.startswith(what + "_") and n not in self.placed and n not in order
                )
        return order

    def run(self, text: str, name: str = "template") -> str:
        import jinja2

        try:
            return self.env.from_string(text).render()
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"malformed placeholder in {name}, line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise ValueError(
                f"{name}: {exc.message}; placeholders call {', '.join(TEMPLATE_FUNCTIONS)} (see dafxlib.report)"
            ) from None

    def _gap(self, kind: str, what: str, stage: str | None) -> str:
        self.missing.append(Missing(kind, what, stage))
        return self.missing[-1].marker()

    def _seen(self, kind: str, what: str) -> bool:
        """Record the call; True when this is the recording pass (write nothing)."""
        self.calls.append((kind, what))
        return self.record

    def _num(self, key: str, fmt: str | None = None) -> str:
        if self._seen("num", key):
            return ""
        assert self.src is not None
        if key not in self.src.numbers:
            return self._gap("num", key, _stage_of_key(key))
        return format_number(self.src.numbers[key], fmt)

    def _figure(self, name: str, caption: str) -> str:
        assert self.src is not None and self.figure_ref is not None
        return self.figure_ref(name, self.src.figures[name], f"Figure {self.number[name]}: {caption}")

    def _fig(self, name: str, caption: str | None = None) -> str:
        if self._seen("fig", name):
            return ""
        assert self.src is not None
        if name not in self.src.figures:
            return self._gap("fig", name, name[:2])
        return self._figure(name, caption or _caption(name))

    def _figs(self, nn: str) -> str:
        if self._seen("figs", nn):
            return ""
        assert self.src is not None
        names = [n for n in self.src.figures if n.startswith(nn + "_") and n not in self.placed]
        if not names and not any(n.startswith(nn + "_") for n in self.src.figures):
            return self._gap("figs", nn, nn[:2])
        return "\n\n".join(self._figure(n, _caption(n)) for n in sorted(names))

    def _ref(self, name: str) -> str:
        if self._seen("ref", name):
            return ""
        if name not in self.number:
            return self._gap("fig", name, name[:2])
        return f"Figure {self.number[name]}"

    def _table(self, name: str, arg: str | None = None) -> str:
        if self._seen("table", name):
            return ""
        assert self.src is not None
        table = render_table(self.src, name, arg)
        if table is None:
            return self._gap("table", name + (f" | {arg}" if arg else ""), _table_stage(name))
        return table

    def _text(self, name: str) -> str:
        if self._seen("text", name):
            return ""
        assert self.src is not None
        frag = fragments_dir(self.src.profile) / f"{name}.md"
        if not frag.exists():
            return self._gap("text", name, name[:2])
        return frag.read_text().strip()

    def _meta(self, key: str) -> str:
        if self._seen("meta", key):
            return ""
        assert self.src is not None
        v = _meta(self.src, key)
        return self._gap("meta", key, None) if v is None else v

    def _include(self, name: str) -> str:
        """``base/NAME.md`` rendered in place (its figures join the numbering), or a short note."""
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"include name {name!r} must be lower-case letters, digits and underscores")
        path = self.base / f"{name}.md"
        if not path.exists():
            return f"*({path.name} is not present in this checkout: section omitted.)*"
        if self.depth >= _MAX_INCLUDE_DEPTH:
            raise ValueError(f"include nesting deeper than {_MAX_INCLUDE_DEPTH} (an include includes itself?)")
        self.depth += 1
        try:
            return self.run(_front_matter(path.read_text())[1].strip(), path.name)
        finally:
            self.depth -= 1


def render(
    text: str, src: Sources, *, figure_ref: Callable[[str, Path, str], str], include_dir: Path | None = None
) -> tuple[str, list[Missing]]:
    """Fill every placeholder of ``text`` (a jinja2 template; the functions of
    :data:`TEMPLATE_FUNCTIONS`); returns (markdown, missing items); each missing item is
    replaced by its visible marker (the caller decides whether to fail).

    Two passes: the first records where each figure is placed (a ``ref`` may point forward),
    the second writes. ``figure_ref(name, png_path, caption) -> str`` writes one figure (link or
    embedded); the caption it gets starts with "Figure N:"."""
    base = include_dir or template_path().parent
    first = _Render(src, base)
    first.run(text)
    second = _Render(src, base, figure_ref=figure_ref, calls=first.calls)
    return second.run(text), second.missing


def missing_error(missing: list[Missing], profile: str) -> MissingArtifactError:
    stages = sorted({m.stage for m in missing if m.stage})
    lines = "\n".join(m.line() for m in missing)
    run = " ".join(f"--only {s}" for s in stages) or ""
    return MissingArtifactError(
        f"the report for profile {profile!r} references {len(missing)} missing item(s):\n{lines}\n"
        f"run those notebooks first (./run_all.sh --profile {profile} {run}), or build with "
        f"--allow-missing to mark the gaps"
    )


def _html_page(title: str, body: str, byline: str = "") -> str:
    css = (
        "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5;color:#222}img{max-width:100%}figure{margin:1.5rem 0}"
        "figcaption{font-size:.9em;color:#555}table{border-collapse:collapse;font-size:.85em;margin:1rem 0}"
        "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f4f4f4}"
        "code{background:#f4f4f4;padding:0 .2em}details{margin:.5rem 0;border:1px solid #ddd;"
        "padding:.3rem .6rem}summary{cursor:pointer;font-weight:600}.abstract{background:#f7f7f7;"
        "padding:.6rem 1rem;border-left:4px solid #999}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{css}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        + (f"<p><em>{html.escape(byline)}</em></p>\n" if byline else "")
        + f"{body}\n</body></html>\n"
    )


def _yaml_field(front: str, key: str, default: str = "") -> str:
    m = re.search(rf"^{key}:\s*[\"']?(.*?)[\"']?\s*$", front, re.M)
    return m.group(1) if m else default


def _pdf(md_path: Path, pdf_path: Path, resource_dirs: list[Path], log) -> Path | None:
    pandoc = shutil.which("pandoc")
    engine = next((e for e in ("xelatex", "lualatex", "pdflatex", "tectonic") if shutil.which(e)), None)
    if not pandoc or not engine:
        log(
            f"report: PDF skipped ({'pandoc' if not pandoc else 'a LaTeX engine'} not installed; Debian: "
            "apt-get install pandoc texlive-xetex texlive-fonts-recommended lmodern)"
        )
        return None
    with storage.atomic_path(pdf_path) as tmp:
        proc = subprocess.run(
            [
                pandoc,
                str(md_path),
                "--from=markdown-implicit_figures",
                "-o",
                str(tmp),
                f"--pdf-engine={engine}",
                "--resource-path=" + os.pathsep.join(str(d) for d in resource_dirs),
            ],
            capture_output=True,
            text=True,
            cwd=md_path.parent,
            timeout=600,
        )
        if proc.returncode != 0:
            err = proc.stderr.strip()
            log(f"report: PDF failed ({err.splitlines()[-1] if err else proc.returncode})")
            raise _PdfFailed()
    return pdf_path


class _PdfFailed(Exception):
    pass


def _compact_image(png: Path, max_bytes: int = 60_000) -> tuple[str, bytes]:
    """The PNG itself, or for large (spectrogram-heavy) figures a JPEG at quality 75,
    which keeps the self-contained HTML a few megabytes instead of tens."""
    raw = png.read_bytes()
    if len(raw) <= max_bytes:
        return "image/png", raw
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(raw)) as im:
        buf = BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=75, optimize=True)
    return ("image/jpeg", buf.getvalue()) if buf.tell() < len(raw) else ("image/png", raw)


def build_report(
    profile: str = "default",
    *,
    allow_missing: bool = False,
    pdf: bool = True,
    template: str | Path | None = None,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Render report.md, report.html (self-contained) and, when possible, report.pdf.

    Raises :class:`MissingArtifactError` listing every missing number/figure/table unless
    ``allow_missing`` (then the gaps carry a visible :data:`MISSING_MARKER`)."""
    import markdown

    tpath = Path(template) if template else template_path()
    if not tpath.exists():
        raise MissingArtifactError(f"report template {tpath} is missing")
    text = tpath.read_text()
    src = Sources.load(profile)
    out_dir = Path(out_dir) if out_dir is not None else paths.report_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)

    def link(name: str, png: Path, caption: str) -> str:
        rel = os.path.relpath(png, out_dir)
        return f"![{caption}]({Path(rel).as_posix()})\n\n*{caption}*"

    def embed(name: str, png: Path, caption: str) -> str:
        mime, raw = _compact_image(png)
        data = base64.b64encode(raw).decode("ascii")
        return (
            f'<figure id="fig-{name}"><img alt="{html.escape(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{html.escape(caption)} <small>(<code>{name}</code>)</small></figcaption></figure>"
        )

    md_text, missing = render(text, src, figure_ref=link, include_dir=tpath.parent)
    if missing and not allow_missing:
        raise missing_error(missing, profile)
    front, body = _front_matter(md_text)
    html_md, _ = render(_front_matter(text)[1], src, figure_ref=embed, include_dir=tpath.parent)
    body_html = markdown.markdown(html_md, extensions=["tables", "fenced_code", "toc", "md_in_html"])
    title = _yaml_field(front, "title", "dafxlib report")
    byline = ", ".join(v for v in (_yaml_field(front, "author"), _yaml_field(front, "date")) if v)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    storage.write_text(md_path, md_text)
    storage.write_text(html_path, _html_page(title, body_html, byline))
    outputs = [md_path, html_path]
    if missing:
        log(f"report: {len(missing)} missing item(s) marked with '{MISSING_MARKER}'")
    if pdf:
        try:
            p = _pdf(md_path, out_dir / "report.pdf", [out_dir, paths.figures_dir(profile)], log)
        except (_PdfFailed, OSError, subprocess.SubprocessError) as exc:
            if not isinstance(exc, _PdfFailed):
                log(f"report: PDF failed ({exc})")
            p = None
        if p is not None:
            outputs.append(p)
    return outputs


def references(text: str, include_dir: Path | None = None) -> dict[str, list[str]]:
    """Every placeholder of a template by kind (``num``, ``fig``, ``figs``, ``ref``, ``table``,
    ``text``, ``meta``), in order; with ``include_dir``, included files count too."""
    rec = _Render(None, include_dir or Path("/nonexistent-include-dir"))
    if include_dir is None:
        rec.env.globals["include"] = lambda name: ""
    rec.run(text)
    out: dict[str, list[str]] = {}
    for kind, what in rec.calls:
        out.setdefault(kind, []).append(what)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dafxlib.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="default")
    ap.add_argument("--allow-missing", action="store_true", help="write the report with visible gap markers")
    ap.add_argument("--no-pdf", action="store_true")
    ap.add_argument("--template", default=None)
    ap.add_argument("--out", default=None, help="write the report here instead of the profile's report folder")
    args = ap.parse_args(argv)
    try:
        outs = build_report(
            args.profile,
            allow_missing=args.allow_missing,
            pdf=not args.no_pdf,
            template=args.template,
            out_dir=args.out,
        )
    except MissingArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("report: " + ", ".join(str(p) for p in outs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

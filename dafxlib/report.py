"""Render the report: ``report/template.md`` + numbers.json + figures/ -> report.md/.html/.pdf.

``python -m dafxlib.report --profile smoke [--allow-missing] [--no-pdf]``

Placeholder syntax (double braces, spaces optional):

- ``{{ num:KEY }}`` or ``{{ num:KEY | FMT }}``: one number from numbers.json; FMT is a
  Python format spec (``.3f``, ``d``, ``.1%``, ``,.0f``); default: integers as they are,
  other numbers with 3 significant digits.
- ``{{ fig:NAME }}`` or ``{{ fig:NAME | caption }}``: one figure (``figures/NAME.png``).
- ``{{ figs:NN }}``: every figure of notebook NN not placed by a ``fig:`` placeholder.
- ``{{ table:NAME }}`` / ``{{ table:NAME | ARG }}``: a table generated from numbers.json:
  ``eval_<metric>`` (effects x corpora, cells "controller / do-nothing / random / ITO / ITO amortised / oracle";
  ARG = comma-separated methods), ``eval_wins``, ``eval_seen_unseen`` (ARG = metric),
  ``eval_cost``, ``prefix:PREFIX`` (every number under a key prefix), ``notebook:NN``
  (every number notebook NN recorded), ``provenance`` (notebook wall times).
- ``{{ text:NN_name }}``: a Markdown fragment a notebook wrote with :func:`write_fragment`
  (e.g. a discussion whose sentences depend on the results; its numbers come from code).
- ``{{ meta:profile }}``, ``{{ meta:seed }}``, ``{{ meta:commit }}``, ``{{ meta:date }}``,
  ``{{ meta:effects }}`` (the effect set that made the run: ``effects.set`` in numbers.json).
- ``{{ include:NAME }}``: the file ``report/NAME.md`` inlined and rendered the same way (its
  placeholders, figures and numbering join the report's); a short note if the file is absent.
- ``{{ ref:NAME }}``: "Figure N", the number the figure ``NAME`` gets where it is placed.
- ``{{ table:appendix }}``: every number of the run grouped by notebook, each group a
  collapsible ``<details>`` block (collapsed in the HTML, plain tables in Markdown and PDF).

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
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z]+)\s*:\s*([^|}]+?)\s*(?:\|\s*([^}]*?)\s*)?\}\}")
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
INCLUDE_RE = re.compile(r"\{\{\s*include\s*:\s*([a-z0-9_]+)\s*\}\}")
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


def expand_includes(text: str, base: Path | None = None, depth: int = 0) -> str:
    """Replace each ``{{ include:NAME }}`` by ``base/NAME.md`` (default: the template's folder),
    or by a one-line note when that file does not exist."""
    base = base or template_path().parent
    if depth > 3:
        raise ValueError("include nesting deeper than 3 (an include includes itself?)")

    def sub(m: re.Match) -> str:
        path = base / f"{m.group(1)}.md"
        if not path.exists():
            return f"*({path.name} is not present in this checkout: section omitted.)*"
        return expand_includes(_front_matter(path.read_text())[1].strip(), base, depth + 1)

    return INCLUDE_RE.sub(sub, text)


def figure_order(text: str, src: Sources) -> list[str]:
    """Figure names in the order the rendered report shows them (``fig:`` and ``figs:``)."""
    placed = {m.group(2).strip() for m in PLACEHOLDER_RE.finditer(text) if m.group(1) == "fig"}
    order: list[str] = []
    for m in PLACEHOLDER_RE.finditer(text):
        kind, what = m.group(1), m.group(2).strip()
        if kind == "fig" and what in src.figures and what not in order:
            order.append(what)
        elif kind == "figs":
            order += sorted(n for n in src.figures if n.startswith(what + "_") and n not in placed and n not in order)
    return order


def render(
    text: str, src: Sources, *, figure_ref: Callable[[str, Path, str], str], include_dir: Path | None = None
) -> tuple[str, list[Missing]]:
    """Fill every placeholder of ``text``; returns (markdown, missing items); each missing
    item is replaced by its visible marker (the caller decides whether to fail).

    ``figure_ref(name, png_path, caption) -> str`` writes one figure (link or embedded); the
    caption it gets starts with "Figure N:"."""
    missing: list[Missing] = []
    text = expand_includes(text, include_dir)
    placed = {m.group(2).strip() for m in PLACEHOLDER_RE.finditer(text) if m.group(1) == "fig"}
    number = {name: i + 1 for i, name in enumerate(figure_order(text, src))}

    def fig(name: str, caption: str) -> str:
        return figure_ref(name, src.figures[name], f"Figure {number[name]}: {caption}")

    def sub(m: re.Match) -> str:
        kind, what, arg = m.group(1), m.group(2).strip(), (m.group(3) or "").strip() or None
        if kind == "num":
            if what not in src.numbers:
                missing.append(Missing("num", what, _stage_of_key(what)))
                return missing[-1].marker()
            return format_number(src.numbers[what], arg)
        if kind == "fig":
            if what not in src.figures:
                missing.append(Missing("fig", what, what[:2]))
                return missing[-1].marker()
            return fig(what, arg or _caption(what))
        if kind == "figs":
            names = [n for n in src.figures if n.startswith(what + "_") and n not in placed]
            if not names and not any(n.startswith(what + "_") for n in src.figures):
                missing.append(Missing("figs", what, what[:2]))
                return missing[-1].marker()
            return "\n\n".join(fig(n, _caption(n)) for n in sorted(names))
        if kind == "ref":
            if what not in number:
                missing.append(Missing("fig", what, what[:2]))
                return missing[-1].marker()
            return f"Figure {number[what]}"
        if kind == "table":
            table = render_table(src, what, arg)
            if table is None:
                missing.append(Missing("table", what + (f" | {arg}" if arg else ""), _table_stage(what)))
                return missing[-1].marker()
            return table
        if kind == "text":
            frag = fragments_dir(src.profile) / f"{what}.md"
            if not frag.exists():
                missing.append(Missing("text", what, what[:2]))
                return missing[-1].marker()
            return frag.read_text().strip()
        if kind == "meta":
            v = _meta(src, what)
            if v is None:
                missing.append(Missing("meta", what, None))
                return missing[-1].marker()
            return v
        raise ValueError(
            f"unknown placeholder kind {kind!r} in {m.group(0)!r} (num, fig, figs, ref, table, text, meta, include)"
        )

    out = PLACEHOLDER_RE.sub(sub, text)
    leftover = re.findall(r"\{\{.*?\}\}", out)
    if leftover:
        raise ValueError(f"malformed placeholder(s) {leftover[:5]}; see dafxlib.report for the syntax")
    return out, missing


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
    """Every placeholder of a template by kind (``num``, ``fig``, ``figs``, ``ref``, ``table``, ``text``,
    ``meta``); with ``include_dir``, included files count too."""
    out: dict[str, list[str]] = {}
    if include_dir is not None:
        text = expand_includes(text, include_dir)
    for m in PLACEHOLDER_RE.finditer(text):
        out.setdefault(m.group(1), []).append(m.group(2).strip())
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

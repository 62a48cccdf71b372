"""The library's shape: no import cycles, layers import downwards only, every module says what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "dafxlib"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """dafxlib modules that ``name`` imports anywhere in its body (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for t in targets:
            while t and t not in MODULES:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name and t.startswith("dafxlib"):
                found.add(t)
    # ``from . import x`` also names the package itself; a submodule importing its own package is no edge
    return {t for t in found if not name.startswith(t + ".")}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(GRAPH) == [], "import cycles (lazy imports count): " + str(_cycles(GRAPH))


#: DESIGN.md's layers, lowest first; a module may import only from its own layer or below
LAYERS: list[tuple[str, ...]] = [
    ("errors", "paths", "storage", "seeding", "threads", "stats", "config", "progress"),
    ("audio", "spectrogram", "metrics"),
    ("corpus", "datasets", "pairs", "effects", "render", "spsa", "models", "training"),
    ("betavae", "e2e", "plane", "evaluation", "study"),
    ("plots", "widgets"),
    ("provenance", "report", "run_notebooks", "run_progress"),
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module != "dafxlib" else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return len(LAYERS)  # the package root and anything unlisted sit on top


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_import_downwards(module):
    up = sorted(d for d in GRAPH[module] if _layer(d) > _layer(module))
    assert not up, f"{module} (layer {_layer(module)}) imports higher layers: {up}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_docstring_says_what_it_holds(module):
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc, f"{module} has no docstring"
    first = doc.strip().splitlines()[0]
    assert first.endswith((".", ":")) and len(first) <= 120, (
        f"{module}: first line is not a one-line summary: {first!r}"
    )
    assert "DESIGN.md" not in doc, f"{module} cites DESIGN.md, which is not in the repository"


def test_public_entry_points_resolve_lazily():
    import subprocess
    import sys

    code = (
        "import sys, dafxlib; assert 'torch' not in sys.modules, 'import dafxlib pulled in torch'; "
        "missing = [n for n in dafxlib.__all__ if getattr(dafxlib, n, None) is None]; "
        "assert not missing, missing; print(len(dafxlib.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) >= 15

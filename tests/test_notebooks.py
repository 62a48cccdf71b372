"""Every existing notebook runs end to end under the smoke profile and keeps the contract."""

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_contract(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert re.search(r'^PROFILE\s*=\s*"default"', first.source, re.M)
    assert re.search(r"^OVERRIDES\s*=\s*\{\}", first.source, re.M)
    before = nb.cells[: nb.cells.index(first)]
    assert before and all(c.cell_type == "markdown" for c in before), "title and narrative first"
    assert all(not c.get("outputs") for c in code), "commit notebooks without outputs"
    assert f'start_notebook("{path.stem}"' in "".join(c.source for c in code)
    assert nb.metadata.get("kernelspec", {}).get("name") == "dafx"


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(smoke_run):
    rc, output, out_dir, build_dir = smoke_run
    assert rc == 0, output[-4000:]
    for path in NOTEBOOKS:
        assert re.search(rf"^{path.stem}\s+[\d.]+ s$", output, re.M), f"{path.stem} not reported\n{output}"
        assert (build_dir / "smoke" / "notebooks" / path.name).exists()
    prov = json.loads((out_dir / "report" / "provenance.json").read_text())
    assert {p.stem for p in NOTEBOOKS} <= set(prov["notebooks"])
    assert all(v["status"] == "ok" for v in prov["notebooks"].values())
    # every notebook produced at least one figure and one number
    numbers = json.loads((out_dir / "report" / "numbers.json").read_text())
    for path in NOTEBOOKS:
        assert any(v["notebook"] == path.stem for v in numbers.values()), f"{path.stem} recorded no number"
        assert list((out_dir / "figures").glob(f"{path.stem[:2]}_*.png")), f"{path.stem} saved no figure"
    assert (out_dir / "report" / "report.md").exists()

"""Report rendering: every placeholder resolves from a fabricated run, gaps fail loudly
(or are marked), HTML is self-contained, and the template holds no hand-typed numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dafxlib import evaluation as ev
from dafxlib import paths, provenance, report  # noqa: E402
from dafxlib.errors import MissingArtifactError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "report" / "template.md"
NOTEBOOK_06 = ROOT / "notebooks" / "06_evaluation.ipynb"


def synthetic_results(n: int = 6) -> ev.EvalResults:
    """An evaluation result with every method, two corpora and three effects."""
    rng = np.random.default_rng(0)
    level = {
        "do_nothing": 1.0,
        "random": 1.3,
        "mean_params": 1.1,
        "controller_regression": 0.8,
        "controller_both": 0.9,
        "controller": 0.8,
        "ito": 0.7,
        "oracle": 0.0,
    }
    rows, costs = [], []
    for corpus in ("speech", "music"):
        for eff in ("overdrive", "delay", "flanger"):
            for method, b in level.items():
                for i in range(n):
                    rows.append(
                        {
                            "corpus": corpus,
                            "effect": eff,
                            "seen": eff != "flanger",
                            "method": method,
                            "item": i,
                            "clip_id": f"{corpus}{i}",
                            "mrstft": b + 0.1 * rng.random(),
                            "msd": b,
                            "sce": 100 * b,
                            "rms": b,
                            "lufs": b,
                            "pesq": 4.5 - b if corpus == "speech" else np.nan,
                            "param_mae": np.nan if method == "do_nothing" else 0.3 * b,
                            "param_mae_id": np.nan if method == "do_nothing" else 0.25 * b,
                            "excluded": "",
                            "silent_estimate": False,
                            "render_failed": False,
                        }
                    )
                r = {"do_nothing": 0, "ito": 8}.get(method, 1)
                costs.append(
                    {
                        "corpus": corpus,
                        "effect": eff,
                        "method": method,
                        "n": n,
                        "seconds": 0.01 * n,
                        "renders": r * n,
                        "ms_per_clip": 10.0 * (r + 1),
                        "renders_per_clip": r,
                        "note": "",
                    }
                )
    return ev.EvalResults(
        pd.DataFrame(rows),
        pd.DataFrame(costs),
        {},
        [],
        {"bootstrap": 50, "seed": 0, "n_per_cell": n, "ito_budget": 8, "profile": "smoke"},
    )


def notebook_06_figures() -> set[str]:
    nb = json.loads(NOTEBOOK_06.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return set(re.findall(r"save_figure\(\s*fig\s*,\s*\"(06_[a-z0-9_]+)\"", src))


STAGES = [
    ("01", "01_data"),
    ("02", "02_vae_training"),
    ("03", "03_beta_tuning"),
    ("04", "04_end_to_end"),
    ("05", "05_latent_control"),
    ("06", "06_evaluation"),
]


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A fabricated smoke run: the evaluation of ``synthetic_results`` plus a stand-in for every
    other number, figure and fragment the template (and what it includes) references."""
    monkeypatch.setenv("DAFX_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path / "build"))
    refs = report.references(TEMPLATE.read_text(), TEMPLATE.parent)
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    res = synthetic_results()
    for nn, name in STAGES:
        provenance.start_notebook(name, "smoke")
        provenance.save_figure(fig, f"{nn}_example")
        if nn == "01":
            provenance.record_number("effects.set", "portable")
        for f in sorted(set(refs.get("fig", [])) | (notebook_06_figures() if nn == "06" else set())):
            if f.startswith(nn):
                provenance.save_figure(fig, f)
        if nn == "06":
            provenance.record_numbers("", ev.number_entries(res))
            report.write_fragment("06_discussion", ev.discussion_markdown(res))
        numbers = provenance.load_numbers("smoke")
        for key in refs.get("num", []):
            if key not in numbers and report._stage_of_key(key) == nn:
                provenance.record_number(key, "joint_b0p001_z8" if key.endswith(".name") else 7)
        for t in refs.get("text", []):
            if t.startswith(nn) and t != "06_discussion":
                report.write_fragment(t, f"Fragment {t} of the fabricated run.")
        provenance.record_number(f"stage{nn}.value", 1.5)
        provenance.record_notebook_time("smoke", name, 1.0)
    plt.close(fig)
    return tmp_path / "out"


def notebook_saves(name: str) -> bool:
    nb = json.loads(next((ROOT / "notebooks").glob(f"{name[:2]}_*.ipynb")).read_text())
    return any(f'"{name}"' in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def body_of(md: str) -> str:
    return md.split("\n" + report.APPENDIX_HEADING + "\n", 1)[0]


def test_every_reference_resolves_and_html_is_self_contained(fake_run):
    outs = report.build_report("smoke", pdf=False, log=lambda s: None)
    md, html = outs[0].read_text(), outs[1].read_text()
    assert outs[0].parent == paths.report_dir("smoke") == fake_run / "report"
    assert report.MISSING_MARKER not in md and report.MISSING_MARKER not in html
    assert "{{" not in md and "{{" not in html
    refs = report.references(TEMPLATE.read_text())
    for name in refs["fig"]:
        assert notebook_saves(name), f"template figure {name} is not saved by its notebook"
        assert f"figures/{name}.png" in md
    all_refs = report.references(TEMPLATE.read_text(), TEMPLATE.parent)
    assert html.count("<figure") == len(set(all_refs["fig"])) and "<img" in html and "../figures" not in html
    assert "<table>" in html
    numbers = provenance.load_numbers("smoke")
    for key in all_refs["num"]:
        assert key in numbers, key
    assert f"in {numbers['eval.wins.controller_vs_do_nothing']} of" in md  # fragment and numbers went in
    assert len(html.encode()) < 5_000_000


def test_paper_structure_numbered_figures_and_appendix(fake_run):
    md = report.build_report("smoke", pdf=False, log=lambda s: None)[0].read_text()
    html = (fake_run / "report" / "report.html").read_text()
    body = body_of(md)
    heads = re.findall(r"^## (.+)$", body, re.M)
    for want in (
        "1 Data",
        "2 Spectrogram",
        "3 Beta",
        "4 End-to-end",
        "5 Latent",
        "6 Evaluation",
        "Limitations",
        "Reproduction",
    ):
        assert any(h.startswith(want) for h in heads), (want, heads)
    assert "**Abstract.**" in body.split("## 1 Data")[0]
    assert heads.index("Limitations") > max(i for i, h in enumerate(heads) if h.startswith("6 Evaluation"))
    for stage in re.split(r"^## \d ", body, flags=re.M)[1:6]:  # every stage: question, method, result, a figure
        assert "**Question.**" in stage and "**Method.**" in stage and "**Result.**" in stage
        assert re.search(r"^\*Figure \d+: ", stage, re.M)
    numbers = [int(n) for n in re.findall(r"^\*Figure (\d+): ", md, re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 10
    ref = re.search(r"(Figure \d+) shows, per effect", body).group(1)  # {{ ref("05_quality") }}
    assert re.search(rf"^\*{ref}: Smoothness", body, re.M)
    assert len(re.findall(r"<figcaption>Figure \d+: ", html)) == len(numbers)
    # every number in the appendix, one collapsible block per notebook; none of them as rows in the body
    appendix = md[len(body) :]
    stamps = provenance.load_numbers("smoke", with_stamps=True)
    assert all(f"`{k}`" in appendix for k in stamps)
    assert appendix.count('<details markdown="1">') == len({v["notebook"] for v in stamps.values()})
    assert html.count("<details>") == appendix.count("<details") and "<summary>06_evaluation: " in html
    assert not re.search(r"^\| `[a-z]", body, re.M)  # no key/value dump in the body
    assert len(body.splitlines()) < 350


def test_include_inlines_a_section_or_notes_its_absence(fake_run, tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "t.md").write_text(
        "# T\n\n{{ fig('06_eval_cost', 'cost') }}\n\n{{ include('extra') }}\n\nSee {{ ref('06_eval_wins') }}.\n"
    )

    def build(**kw):
        return report.build_report("smoke", pdf=False, template=tdir / "t.md", log=lambda s: None, **kw)

    md = build(allow_missing=True)[0].read_text()
    assert "extra.md is not present" in md and report.MISSING_MARKER in md  # the ref names an absent figure
    (tdir / "extra.md").write_text(
        "## Extra\n\nCells: {{ num('eval.cells', 'd') }}.\n\n{{ fig('06_eval_wins', 'wins') }}\n"
    )
    md = build()[0].read_text()
    numbers = provenance.load_numbers("smoke")
    assert f"Cells: {numbers['eval.cells']}." in md and "*Figure 2: wins*" in md and "See Figure 2." in md
    assert "*Figure 1: cost*" in md
    (tdir / "extra.md").write_text("{{ num('study.not_there') }}\n")
    with pytest.raises(MissingArtifactError, match="06_evaluation"):  # study.* numbers come from notebook 06
        build()


def test_render_into_another_folder(fake_run, tmp_path):
    outs = report.build_report("smoke", pdf=False, out_dir=tmp_path / "elsewhere", log=lambda s: None)
    assert all(p.parent == tmp_path / "elsewhere" for p in outs)
    assert "](../out/figures/" in outs[0].read_text() or "figures/" in outs[0].read_text()


def test_header_and_limitations_name_the_effect_set_of_the_run(fake_run):
    md = report.build_report("smoke", pdf=False, log=lambda s: None)[0].read_text()
    assert "with the portable effects" in md.split("\n---\n", 1)[0]
    assert "This run used the **portable** effect set" in md
    provenance.start_notebook("01_data", "smoke")
    provenance.record_number("effects.set", "mda")
    md = report.build_report("smoke", pdf=False, log=lambda s: None)[0].read_text()
    assert "with the mda effects" in md.split("\n---\n", 1)[0]


def test_generated_tables_and_formats(fake_run):
    src = report.Sources.load("smoke")
    table = report.render_table(src, "eval_mrstft", None)
    assert table.splitlines()[0].startswith("| effect | speech: controller / do_nothing / random / ito / oracle")
    assert "| flanger (unseen) |" in table and "| mean (seen) |" in table
    v = src.numbers["eval.speech.overdrive.controller.mrstft"]
    assert f"{v:.3f}" in table
    assert report.render_table(src, "eval_pesq", None).count("music") == 0  # PESQ: speech only
    assert "beats do-nothing" in report.render_table(src, "eval_wins", None)
    text, missing = report.render(
        "{{ num('eval.cells', 'd') }} / {{num(\"eval.speech.delay.oracle.mrstft\",'.2f')}}",
        src,
        figure_ref=lambda *a: "",
    )
    assert not missing and text == f"6 / {src.numbers['eval.speech.delay.oracle.mrstft']:.2f}"


def test_missing_items_fail_loudly_listing_all_or_are_marked(fake_run, tmp_path):
    def drop(d):
        return {k: v for k, v in d.items() if k not in ("eval.cells", "eval.wins.controller_vs_random")}

    from dafxlib import storage

    storage.update_json(provenance.numbers_path("smoke"), drop)
    (paths.figures_dir("smoke") / "06_eval_mrstft.png").unlink()
    with pytest.raises(MissingArtifactError) as err:
        report.build_report("smoke", pdf=False, log=lambda s: None)
    msg = str(err.value)
    for item in ("num:eval.cells", "num:eval.wins.controller_vs_random", "fig:06_eval_mrstft"):
        assert item in msg
    assert "06_evaluation" in msg
    outs = report.build_report("smoke", pdf=False, allow_missing=True, log=lambda s: None)
    md = outs[0].read_text()
    assert md.count(report.MISSING_MARKER) >= 3
    assert report.MISSING_MARKER in outs[1].read_text()


def test_unbuilt_stage_is_detected(fake_run):
    for p in paths.figures_dir("smoke").glob("05_*"):
        p.unlink()
    with pytest.raises(MissingArtifactError, match="fig:05_quality"):
        report.build_report("smoke", pdf=False, log=lambda s: None)


def test_pdf_is_skipped_cleanly_without_pandoc(fake_run, monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    logs = []
    outs = report.build_report("smoke", pdf=True, log=logs.append)
    assert [p.suffix for p in outs] == [".md", ".html"]
    assert any("PDF skipped" in s for s in logs)


def test_template_errors_name_the_line_and_the_functions(fake_run):
    src = report.Sources.load("smoke")
    with pytest.raises(ValueError, match="malformed placeholder in template, line 2"):
        report.render("ok\n{{ num:eval.cells }}", src, figure_ref=lambda *a: "")
    with pytest.raises(ValueError, match="placeholders call num, fig"):
        report.render("{{ nmu('eval.cells') }}", src, figure_ref=lambda *a: "")
    with pytest.raises(ValueError, match="include name"):
        report.render("{{ include('../etc/passwd') }}", src, figure_ref=lambda *a: "")


def test_cli(fake_run, capsys):
    assert report.main(["--profile", "smoke", "--no-pdf"]) == 0
    assert "report.html" in capsys.readouterr().out


#: numbers that may appear in the template's prose, each explicitly allowed
ALLOWED = [
    "margin=2cm",  # page geometry
    "AES 2023",  # the study's venue and year
    "12 of 27",  # the study's published win count (a fact about the original, not our result)
    "95th percentile",  # the name of a statistic
    "16 kHz",  # PESQ's wide-band sample rate
    "2-D",  # the control plane's dimension, part of the method's name
    "MUSDB18",  # a dataset's name
    "LV2",  # a plugin standard's name
]


def test_template_holds_no_hand_typed_numbers():
    text = TEMPLATE.read_text()
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)  # HTML tags (the abstract's box)
    text = report.PLACEHOLDER_RE.sub(" ", text)
    text = re.sub(r"`[^`]*`", " ", text)  # code: notebook names, commands
    text = re.sub(r"^(#+\s*)\d+\s", r"\1", text, flags=re.M)  # section numbers
    text = re.sub(r"\*Table \d+:", " ", text)  # table labels
    for token in ALLOWED:
        assert token in text, f"whitelist entry {token!r} is stale"
        text = text.replace(token, " ")
    assert re.findall(r".{0,30}\d.{0,30}", text) == []

"""Evaluation: paired methods on shared examples, ITO budget, bootstrap, win counting,
numbers contract, caching. Stand-ins replace the trained encoder and controllers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dafxlib import evaluation as ev
from dafxlib import metrics as M
from dafxlib.config import get_profile
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import DatasetError
from dafxlib.pairs import Examples

SR, HALF = 16_000, 8_000


class Drive(Effect):
    """Memoryless stand-in effect: rendering half A alone equals half A of the whole render."""

    name = "Drive"

    def __init__(self):
        super().__init__([ParamSpec("drive", 1.0, 20.0, 2.0, scale="log"), ParamSpec("level", 0.05, 1.0, 0.5)])

    def _render(self, audio, sr, raw):
        return np.tanh(raw["drive"] * audio) * raw["level"]


class CountingPool:
    def __init__(self, effect):
        self.effect, self.renders = effect, 0

    def render(self, audios, params):
        self.renders += len(audios)
        out = np.stack([self.effect.process(a, SR, p) for a, p in zip(audios, params)])
        return SimpleNamespace(audio=out, ok=np.ones(len(out), bool), failed=[])


class LevelEncoder:
    """Stand-in encoder: crest factor and level change of the (clean, effected) pair."""

    def embed(self, x, y):
        rx = np.sqrt(np.mean(np.square(x), 1)) + 1e-9
        ry = np.sqrt(np.mean(np.square(y), 1)) + 1e-9
        return np.stack([np.abs(y).max(1) / ry, np.log(ry / rx)], 1).astype(np.float32)


class NoisyTruth:
    """Stand-in controller: the true settings plus seeded noise."""

    def __init__(self, p, noise, seed=0):
        self.p, self.noise, self.seed = p, noise, seed

    def predict(self, x, y_ref):
        rng = np.random.default_rng(self.seed)
        return np.clip(self.p + self.noise * rng.standard_normal(self.p.shape), 0, 1)


class HalfChain:
    """A stand-in for the deepafx chain controller: halves the input (its own output, no render)."""

    def apply(self, x, y_ref):
        return 0.5 * np.asarray(x, np.float32), np.zeros((len(x), 18))


def make_set(n=6, seed=0, corpus="speech", effect="drive") -> Examples:
    rng = np.random.default_rng(seed)
    fx = Drive()
    t = np.arange(2 * HALF) / SR
    xs, ys, refs, ps = [], [], [], []
    for i in range(n):
        clip = (
            0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
            + 0.02 * rng.standard_normal(t.size)
        ).astype(np.float32)
        p = rng.random(2)
        y = fx.process(clip, SR, p)
        xs.append(clip[:HALF])
        ys.append(y[:HALF])
        refs.append(y[HALF:])
        ps.append(p)
    return Examples(
        np.stack(xs),
        np.stack(ys),
        np.stack(refs),
        np.stack(ps).astype(np.float32),
        np.array([f"clip{i}" for i in range(n)]),
        effect,
        sample_rate=SR,
        corpus=corpus,
    )


@pytest.fixture(scope="module")
def cell():
    es = make_set(6)
    pool = CountingPool(Drive())
    preds = {"regression": NoisyTruth(es.p, 0.05), "both": NoisyTruth(es.p, 0.3, seed=1), "deepafx": HalfChain()}
    preds["ito_amortised"] = preds["regression"]  # run.py maps the best signal's controller to this name
    cr = ev.evaluate_cell(
        es,
        pool,
        2,
        ev.METHODS,
        predictors=preds,
        best_signal="regression",
        encoder=LevelEncoder(),
        ito_budget=12,
        seed=0,
        seen=True,
    )
    return es, pool, cr, pd.DataFrame(cr.rows), pd.DataFrame(cr.costs)


def test_every_method_is_scored_on_the_same_examples(cell):
    es, _, cr, df, _ = cell
    ran = [m for m in ev.METHODS if m != "controller_audio"]
    assert list(dict.fromkeys(df.method)) == [m for m in ran if m != "controller"] + ["controller"]
    for m in ran:
        rows = df[df.method == m].sort_values("item")
        assert rows["item"].tolist() == list(range(len(es)))
        assert rows["clip_id"].tolist() == es.clip_ids.tolist()
    # the untrained signal is reported, not hidden
    assert [s["method"] for s in cr.skipped] == ["controller_audio"]
    assert "04_end_to_end" in cr.skipped[0]["reason"]


def test_scores_are_against_the_ground_truth(cell):
    es, _, _, df, _ = cell
    want, _ = M.compute_metrics(es.x, es.y, SR, metrics=["mrstft"])
    got = df[df.method == "do_nothing"].sort_values("item")["mrstft"].to_numpy()
    assert np.allclose(got, want["mrstft"])
    oracle = df[df.method == "oracle"]
    assert np.all(oracle["mrstft"] < 1e-4) and np.allclose(oracle["param_mae"], 0.0, atol=1e-6)
    assert df[df.method == "do_nothing"]["param_mae"].isna().all()  # no settings: not applicable
    # the chain's settings are not the effect's: no parameter error, and its output is its own
    assert df[df.method == "deepafx"]["param_mae"].isna().all()
    got = df[df.method == "deepafx"].sort_values("item")["mrstft"].to_numpy()
    assert np.allclose(got, M.compute_metrics(0.5 * es.x, es.y, SR, metrics=["mrstft"])[0]["mrstft"])
    m = df.groupby("method")["mrstft"].mean()
    assert m["controller_regression"] < m["controller_both"] < m["random"]


def test_controller_is_the_best_signal_without_a_second_run(cell):
    _, _, _, df, costs = cell
    a = df[df.method == "controller"].drop(columns="method").reset_index(drop=True)
    b = df[df.method == "controller_regression"].drop(columns="method").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    c = costs.set_index("method")
    assert c.loc["controller", "renders"] == c.loc["controller_regression", "renders"]


def test_render_counts_and_ito_budget(cell):
    es, pool, _, _, costs = cell
    c = costs.set_index("method")
    assert c.loc["do_nothing", "renders_per_clip"] == 0
    for m in ("random", "mean_params", "controller_regression", "controller_both", "oracle"):
        assert c.loc[m, "renders_per_clip"] == 1
    assert 2 <= c.loc["ito", "renders_per_clip"] <= 12
    # every render any method made went through the pool and is counted (controller reuses)
    assert pool.renders == c.drop(index="controller")["renders"].sum()


def test_ito_search_finds_better_settings_than_its_start():
    es = make_set(4, seed=3)
    pool = CountingPool(Drive())
    p, y, f, renders = ev.ito_search(pool, LevelEncoder(), es.x, es.y_ref, 2, budget=24, seed=0)
    assert renders <= 24 and pool.renders == renders * len(es)
    assert p.shape == (4, 2) and np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(f))
    start, _ = M.compute_metrics(
        CountingPool(Drive()).render(es.x, np.full((4, 2), 0.5)).audio, es.y, SR, metrics=["mrstft"]
    )
    found, _ = M.compute_metrics(y, es.y, SR, metrics=["mrstft"])
    assert found["mrstft"].mean() < start["mrstft"].mean()


def synthetic_table(deltas_dn, deltas_r, n=8, seed=0):
    """A result table whose controller differs from do-nothing / random by fixed amounts per cell."""
    rng = np.random.default_rng(seed)
    rows = []
    effects = ["overdrive", "delay", "flanger"]
    for eff, d_dn, d_r in zip(effects, deltas_dn, deltas_r):
        base = 1.0 + 0.1 * rng.random(n)
        for method, v in (
            ("do_nothing", base),
            ("random", base + d_dn - d_r),
            ("controller", base + d_dn),
            ("oracle", np.zeros(n)),
        ):
            for i in range(n):
                rows.append(
                    {
                        "corpus": "speech",
                        "effect": eff,
                        "seen": eff != "flanger",
                        "method": method,
                        "item": i,
                        "clip_id": f"c{i}",
                        "mrstft": v[i],
                        "param_mae": np.nan,
                        "excluded": "",
                        "silent_estimate": False,
                        "render_failed": False,
                    }
                )
    costs = pd.DataFrame(
        [
            {
                "corpus": "speech",
                "effect": e,
                "method": m,
                "n": n,
                "seconds": 0.1,
                "renders": n,
                "ms_per_clip": 12.5,
                "renders_per_clip": 1.0,
                "note": "",
            }
            for e in effects
            for m in ("do_nothing", "random", "controller", "oracle")
        ]
    )
    return ev.EvalResults(
        pd.DataFrame(rows),
        costs,
        {},
        [],
        {"bootstrap": 200, "seed": 0, "n_per_cell": n, "ito_budget": 4, "profile": "smoke"},
    )


def test_win_counting_and_numbers_contract():
    # controller better than do-nothing in overdrive and delay, worse in flanger;
    # better than random only in overdrive
    res = synthetic_table(deltas_dn=[-0.3, -0.2, 0.4], deltas_r=[-0.1, 0.2, 0.1])
    wt = res.wins()
    assert wt["vs_do_nothing_win"].tolist() == [True, True, False]
    assert wt["vs_random_win"].tolist() == [True, False, False]
    assert wt["vs_do_nothing_significant"].tolist() == [True, True, False]
    assert wt["vs_do_nothing_win_rate"].tolist() == [1.0, 1.0, 0.0]
    nums = ev.number_entries(res)
    assert nums["eval.wins.controller_vs_do_nothing"] == 2
    assert nums["eval.wins.controller_vs_random"] == 1
    assert nums["eval.wins.controller_vs_both"] == 1
    assert nums["eval.wins.seen.controller_vs_do_nothing"] == 2
    assert nums["eval.wins.unseen.controller_vs_do_nothing"] == 0
    assert nums["eval.cells"] == 3
    assert nums["eval.speech.delay.controller.win_rate_vs_do_nothing"] == 1.0
    assert nums["eval.speech.flanger.controller.win_rate_vs_random"] == 0.0
    for m in ("do_nothing", "random", "oracle", "controller"):
        key = f"eval.speech.overdrive.{m}.mrstft"
        assert nums[key] == pytest.approx(res.table.query("effect=='overdrive' and method==@m")["mrstft"].mean())
        assert nums[key + "_lo"] <= nums[key] <= nums[key + "_hi"]
    assert nums["eval.seen.controller.mrstft"] == pytest.approx(
        np.mean([nums["eval.speech.overdrive.controller.mrstft"], nums["eval.speech.delay.controller.mrstft"]])
    )
    assert nums["eval.cost.controller.ms_per_clip"] == 12.5 and nums["eval.cost.controller.renders_per_clip"] == 1
    assert all(k == k.lower() and k.startswith("eval.") for k in nums)
    assert not any("param_mae" in k for k in nums)  # all NaN here: not applicable, not recorded
    text = ev.discussion_markdown(res)
    assert "in 2 of 3 cells" in text and "12 of 27" in text


def test_check_disjoint_and_corpus_groups():
    C = lambda i, kind, split, src, **meta: SimpleNamespace(id=i, kind=kind, split=split, source=src, meta=meta)  # noqa: E731
    ok = [C("a", "speech", "train", "s1"), C("b", "speech", "test", "s2"), C("c", "music", "test", "m1")]
    ev.check_disjoint(ok)
    with pytest.raises(DatasetError, match="test split and in train"):
        ev.check_disjoint(ok + [C("d", "speech", "test", "s1")])
    g = ev.corpus_groups([c for c in ok if c.split == "test"] + [C("u", "music", "test", "u1", role="user")])
    assert list(g) == ["speech", "music", "user"]
    paper = [
        C("v", "speech", "test", "v", dataset="vctk"),
        C("d", "speech", "test", "d", dataset="daps"),
        C("m", "music", "test", "m", dataset="musdb18hq"),
    ]
    assert list(ev.corpus_groups(paper, "paper")) == ["vctk", "daps", "musdb18"]


def test_eval_set_is_cached_and_seeded(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    prof = get_profile("smoke")
    calls = []

    def fake_make(effect, clips, n, seed, sample_rate, half, workers=2):
        calls.append(seed)
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((n, half)).astype(np.float32)
        return Examples(
            a,
            a * 0.5,
            a * 0.25,
            rng.random((n, effect.n_params)).astype(np.float32),
            np.array([c.id for c in clips][:1] * n),
            effect.key,
            effect.param_names,
            sample_rate,
        )

    clips = [SimpleNamespace(id="t1")]
    a = ev.eval_set(prof, "speech", clips, "overdrive", make=fake_make)
    b = ev.eval_set(prof, "speech", clips, "overdrive", make=fake_make)
    c = ev.eval_set(prof, "music", clips, "overdrive", make=fake_make)
    assert len(calls) == 2 and len(a) == prof.eval.n_per_cell
    assert np.array_equal(a.x, b.x) and np.array_equal(a.p, b.p) and np.array_equal(a.clip_ids, b.clip_ids)
    assert calls[0] != calls[1] and not np.array_equal(a.x, c.x)


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    res = synthetic_table([-0.3, -0.2, 0.4], [-0.1, 0.2, 0.1])
    res.meta["key"] = "k"
    res.reports = {"controller": {"n_items": 24, "excluded": {"mrstft": {"silent target": 1}}, "floored": {}}}
    ev.save_results(res, "smoke")
    back = ev.load_results("smoke")
    pd.testing.assert_frame_equal(back.table, res.table, check_dtype=False)
    assert back.meta["key"] == "k" and back.excluded_counts() == {"mrstft": 1}
    assert ev.number_entries(back) == ev.number_entries(res)

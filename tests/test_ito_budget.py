"""The ITO budget curve and the amortised start: determinism, budgets, one trajectory for several
budgets, never worse than the start, bad budgets refused. Stand-ins replace the encoder and effect."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dafxlib import evaluation as ev
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.errors import ConfigError, MissingArtifactError
from dafxlib.evaluation import budget as B
from dafxlib.pairs import Examples
from dafxlib.seeding import mix_seed

SR, HALF = 16_000, 4_000


class Shaper(Effect):
    name = "Shaper"

    def __init__(self):
        super().__init__([ParamSpec("drive", 1.0, 20.0, 2.0, scale="log"), ParamSpec("level", 0.05, 1.0, 0.5)])

    def _render(self, audio, sr, raw):
        return np.tanh(raw["drive"] * audio) * raw["level"]


class Pool:
    def __init__(self):
        self.effect, self.renders = Shaper(), 0

    def render(self, audios, params):
        self.renders += len(audios)
        out = np.stack([self.effect.process(a, SR, p) for a, p in zip(audios, params)])
        return SimpleNamespace(audio=out, ok=np.ones(len(out), bool))


class Encoder:
    def embed(self, x, y):
        rx = np.sqrt(np.mean(np.square(x), 1)) + 1e-9
        ry = np.sqrt(np.mean(np.square(y), 1)) + 1e-9
        return np.stack([np.abs(y).max(1) / ry, np.log(ry / rx)], 1).astype(np.float32)


class Truth:
    """A controller that predicts the true settings plus fixed noise."""

    def __init__(self, p, noise=0.0):
        self.p, self.noise = p, noise

    def predict(self, x, y_ref):
        return np.clip(self.p + self.noise * np.random.default_rng(5).standard_normal(self.p.shape), 0, 1)


def make_set(n=4, seed=0) -> Examples:
    rng = np.random.default_rng(seed)
    fx, t = Shaper(), np.arange(2 * HALF) / SR
    xs, ys, refs, ps = [], [], [], []
    for i in range(n):
        clip = (0.3 * np.sin(2 * np.pi * (180 + 50 * i) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        p = rng.random(2)
        y = fx.process(clip, SR, p)
        xs.append(clip[:HALF]), ys.append(y[:HALF]), refs.append(y[HALF:]), ps.append(p)
    ids = np.array([f"c{i}" for i in range(n)])
    return Examples(
        np.stack(xs), np.stack(ys), np.stack(refs), np.stack(ps).astype(np.float32), ids, "shaper", sample_rate=SR
    )


def test_bad_budgets_are_refused():
    for bad in ([], [12, 12], [50, 12], [2], [12.5], [True], "12"):
        with pytest.raises(ConfigError):
            B.check_budgets(bad)
    assert B.check_budgets([12, 50, 200, 800]) == (12, 50, 200, 800)
    with pytest.raises(ConfigError):
        B.subset_indices(10, 0, 0, "speech", "shaper")
    es = make_set(2)
    with pytest.raises(ConfigError):
        ev.ito_search(Pool(), Encoder(), es.x, es.y_ref, 2, budget=0, seed=0)
    with pytest.raises(ConfigError, match="start settings"):
        ev.ito_search(Pool(), Encoder(), es.x, es.y_ref, 2, budget=12, seed=0, start=np.full((3, 2), 0.5))
    with pytest.raises(MissingArtifactError, match="best controller"):
        ev.run_method("ito_amortised", es, Pool(), 2, predictors={}, encoder=Encoder(), ito_budget=12)


def test_plan_shares_one_trajectory_where_the_population_is_the_same():
    # 6 parameters: population 4 + 3 ln 6 = 9 from a budget of 27 on; 12 renders use 4
    assert B.search_plan([12, 50, 200, 800], 6, amortised=False) == [(12, [12]), (800, [50, 200, 800])]
    assert B.renders_at(50, 6, amortised=False) == 45 and B.renders_at(50, 6, amortised=True) == 1 + 45
    assert (
        B.subset_indices(40, 10, 0, "speech", "shaper").tolist()
        == B.subset_indices(40, 10, 0, "speech", "shaper").tolist()
    )
    assert len(set(B.subset_indices(40, 10, 0, "speech", "shaper"))) == 10


def test_curve_is_deterministic_within_budget_and_equals_separate_runs():
    es = make_set(4)
    budgets = (12, 30, 60)  # 2 parameters: population 6 from 18 renders on, so 30 and 60 share a run
    runs = []
    for _ in range(2):
        pool = Pool()
        runs.append(B.curve_cell(es, pool, Encoder(), 2, budgets=budgets, controller=Truth(es.p, 0.2), seed=3))
    a, b = runs
    assert a["points"] == b["points"] and a["refs"] == b["refs"]  # same seed: identical
    for c in a["costs"]:
        assert c["renders_per_clip"] <= c["budget"]
    # renders made = one per run (its largest budget) and start, plus the controller's reference render
    made = sum(
        B.renders_at(rb, 2, s == "ito_amortised") for s in B.STARTS for rb, _ in B.search_plan(budgets, 2, s != "ito")
    )
    assert pool.renders == len(es) * (made + 1)
    # the budget 30 read from the 60 run is the result of a separate run at 30
    for start, p0, sigma in (("ito", None, 0.3), ("ito_amortised", Truth(es.p, 0.2).predict(0, 0), 0.1)):
        _, _, f, _ = ev.ito_search(
            Pool(),
            Encoder(),
            es.x,
            es.y_ref,
            2,
            budget=30,
            seed=mix_seed(3, start, es.corpus, es.effect),
            sigma0=sigma,
            start=p0,
        )
        got = [r["objective"] for r in a["points"] if r["start"] == start and r["budget"] == 30]
        assert np.array_equal(np.array(got), f)
    # and a different seed gives a different search
    other = B.curve_cell(es, Pool(), Encoder(), 2, budgets=budgets, controller=Truth(es.p, 0.2), seed=4)
    assert other["points"] != a["points"]


def test_budgets_that_need_the_same_renders_each_get_their_row():
    """Budgets 3 and 4 both stop after 3 renders of the amortised search (start + 1 generation of
    2): both are read from that point (a KeyError before)."""
    es = make_set(3)
    budgets = (3, 4)
    assert B.renders_at(3, 2, True) == B.renders_at(4, 2, True)
    out = B.curve_cell(es, Pool(), Encoder(), 2, budgets=budgets, controller=Truth(es.p, 0.2), seed=1)
    for start in B.STARTS:
        got = {r["budget"] for r in out["points"] if r["start"] == start}
        assert got == set(budgets), (start, got)
    am = {
        b: [r["objective"] for r in out["points"] if r["start"] == "ito_amortised" and r["budget"] == b]
        for b in budgets
    }
    assert am[3] == am[4]


def test_amortised_start_is_never_worse_than_its_start():
    es = make_set(4, seed=2)
    truth = es.p.astype(np.float64)
    _, _, f0, r0 = ev.ito_search(Pool(), Encoder(), es.x, es.y_ref, 2, budget=1, seed=0, start=truth)
    assert r0 == 1
    pool = Pool()
    p, _, f, renders = ev.ito_search(pool, Encoder(), es.x, es.y_ref, 2, budget=20, seed=0, start=truth, sigma0=0.1)
    assert renders <= 20 and pool.renders == renders * len(es)
    assert np.all(f <= f0) and np.all((p >= 0) & (p <= 1))
    # from a poor start the refinement improves the objective
    _, _, f_bad0, _ = ev.ito_search(Pool(), Encoder(), es.x, es.y_ref, 2, budget=1, seed=0, start=1 - truth)
    _, _, f_bad, _ = ev.ito_search(Pool(), Encoder(), es.x, es.y_ref, 2, budget=40, seed=0, start=1 - truth)
    assert f_bad.mean() < f_bad0.mean()


def test_ito_amortised_method_and_numbers():
    es = make_set(4)
    out = ev.run_method(
        "ito_amortised", es, Pool(), 2, predictors={"ito_amortised": Truth(es.p, 0.1)}, encoder=Encoder(), ito_budget=12
    )
    assert out.renders <= 12 * len(es) and out.p_hat.shape == (4, 2) and "controller" in out.note
    import pandas as pd

    res = B.curve_cell(es, Pool(), Encoder(), 2, budgets=(6, 12), controller=Truth(es.p, 0.1), seed=0)
    curve = B.BudgetCurve(*(pd.DataFrame(res[k]) for k in ("points", "costs", "refs")), {"clips_per_cell": 4})
    nums = B.number_entries(curve)
    assert all(len(k.split(".")) != 5 for k in nums)  # never the shape of a per-cell evaluation key
    for start in B.STARTS:
        assert nums[f"eval.ito_budget.all.{start}.max.mrstft"] == nums[f"eval.ito_budget.all.{start}.b12.mrstft"]
        assert nums[f"eval.ito_budget.all.{start}.min.renders_per_clip"] <= 6
    assert {"eval.ito_budget.all.ref.controller.mrstft", "eval.ito_budget.all.ref.do_nothing.mrstft"} <= set(nums)
    assert nums["eval.ito_budget.budget.max"] == 12 and nums["eval.ito_budget.cells"] == 1


def test_budget_figure_draws_both_starts_and_the_references():
    import matplotlib.pyplot as plt
    import pandas as pd

    from dafxlib.plots import evaluation as plots

    es = make_set(3)
    parts = B.curve_cell(es, Pool(), Encoder(), 2, budgets=(6, 12), controller=Truth(es.p, 0.1), seed=0)
    curve = B.BudgetCurve(*(pd.DataFrame(parts[k]) for k in ("points", "costs", "refs")))
    fig = plots.ito_budget_figure(curve.summary())
    top, bottom = fig.axes[0], fig.axes[1]
    assert len(fig.axes) == 2  # one corpus: MR-STFT above, cost below ("all" is not a panel)
    assert len(top.lines) == 4 and len(bottom.lines) == 2  # two searches + two references; two cost lines
    plt.close(fig)

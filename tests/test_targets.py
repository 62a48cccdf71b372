"""The issue-13 target check reads a run's numbers and says met, missed or not measured."""

from __future__ import annotations

from dafxlib.evaluation import targets as T


def numbers(**over):
    n = {
        "e2e.spsa_targets.n_both": 9,
        "e2e.spsa_targets.n_both_5pct_better": 6,
        "e2e.spsa_targets.n_audio": 9,
        "e2e.spsa_targets.n_audio_beats_do_nothing": 9,
        "e2e.spsa_targets.n_audio_within_15pct": 8,
        "e2e.spsa_targets.audio_over_regression_mean": 1.08,
    }
    for c, r in (("speech", 0.30), ("music", 0.36)):
        n[f"eval.{c}.ratio_to_do_nothing.controller"] = r
        n[f"eval.{c}.flanger.controller.mrstft"] = 0.85
        n[f"eval.{c}.flanger.mean_params.mrstft"] = 1.0
        n[f"eval.{c}.all.controller.param_mae_id"] = 0.14
        n[f"eval.{c}.all.controller.param_mae"] = 0.17
    n.update(over)
    return n


def test_each_target_is_met_or_missed_by_its_own_numbers():
    rows = {r["name"]: r for r in T.check(numbers())}
    assert [r for r in rows] == [t.name for t in T.TARGETS]
    assert rows["both"]["met"] is True and rows["both"]["value"] == "6 of 9 effects"
    assert rows["audio_beats"]["met"] is True
    assert rows["audio_close"]["met"] is False  # 8 of 9
    assert rows["ratio"]["met"] is False and "music 0.360" in rows["ratio"]["value"]  # one corpus over 0.35
    assert rows["flanger"]["met"] is True and "+15.0%" in rows["flanger"]["value"]
    assert rows["mae"]["met"] is True and "all knobs 0.170" in rows["mae"]["value"]
    # the ablation ran on fewer effects: "all nine" cannot be met
    rows = {
        r["name"]: r
        for r in T.check(numbers(**{"e2e.spsa_targets.n_audio": 3, "e2e.spsa_targets.n_audio_beats_do_nothing": 3}))
    }
    assert rows["audio_beats"]["met"] is False


def test_absent_numbers_are_not_measured_and_the_table_counts():
    n = numbers()
    del n["eval.music.flanger.controller.mrstft"]
    rows = T.check(n)
    flanger = next(r for r in rows if r["name"] == "flanger")
    assert flanger["met"] is None and "not measured" in flanger["value"]
    md = T.markdown(rows)
    assert md.startswith("3 of 6 targets met, 2 missed.")
    assert md.count("\n| ") == len(rows) + 1 and "**missed**" in md and "not measured" in md
    nums = T.numbers(rows)
    assert nums["flanger.met"] is None and nums["n_met"] == 3 and nums["n_missed"] == 2

"""Knob identifiability: a knob that does not change the sound is found, audible ones are not."""

from __future__ import annotations

import numpy as np
import pytest

from dafxlib import paths
from dafxlib.e2e import identifiability as ID
from dafxlib.effects.base import Effect, ParamSpec
from dafxlib.effects.testing import probe_clip
from dafxlib.errors import ConfigError, MissingArtifactError
from dafxlib.pairs import make_examples

SR = 16_000


class GainWithDeadKnob(Effect):
    """A gain, a one-pole low-pass whose cutoff is the second knob, and a knob wired to nothing."""

    backend = "python"
    needs_process_isolation = False

    def __init__(self):
        self.name = "GainDead"
        super().__init__(
            [
                ParamSpec("gain", -18.0, 6.0, 0.0, unit="dB"),
                ParamSpec("tone", 0.05, 0.95, 0.5),
                ParamSpec("dead", 0, 1, 0.5),
            ]
        )

    def _render(self, audio, sample_rate, raw):
        a = float(raw["tone"])
        y = np.empty_like(audio)
        acc = 0.0
        for i, v in enumerate(audio):  # one-pole smoother: y = a*y + (1-a)*x
            acc = a * acc + (1.0 - a) * float(v)
            y[i] = acc
        return (y * 10.0 ** (raw["gain"] / 20.0)).astype(np.float32)


class Clip:
    def __init__(self, i: int):
        self.id = f"c{i}"
        self.kind = "music"
        self.sample_rate = SR
        self.audio = probe_clip(SR, 0.5, seed=i)


@pytest.fixture(scope="module")
def examples():
    fx = GainWithDeadKnob()
    return fx, make_examples(fx, [Clip(i) for i in range(6)], 24, seed=3, sample_rate=SR, half_samples=SR // 8)


def test_the_dead_knob_is_unidentifiable_and_the_audible_ones_are_not(examples):
    fx, ex = examples
    r = ID.knob_sensitivity(fx, ex, SR, seed=0, workers=1)
    s = dict(zip(r.knobs, r.sensitivity))
    assert s["dead"] == pytest.approx(0.0, abs=1e-9)
    assert s["gain"] > 0.2 and s["tone"] > ID.UNIDENTIFIABLE_BELOW
    assert r.identifiable.tolist() == [True, True, False]
    assert r.audible_fraction[2] == 0.0 and r.audible_fraction[0] > 0.5
    # same seed, same answer
    r2 = ID.knob_sensitivity(fx, ex, SR, seed=0, workers=1)
    np.testing.assert_array_equal(r.sensitivity, r2.sensitivity)


def test_masked_mae_leaves_out_the_unidentifiable_knobs():
    p_true = np.array([[0.2, 0.4, 0.9], [0.5, 0.5, 0.1]])
    p_hat = np.array([[0.3, 0.4, 0.0], [0.5, 0.7, 0.9]])
    np.testing.assert_allclose(ID.masked_mae(p_hat, p_true, np.array([True, True, False])), [0.05, 0.1])
    assert np.isnan(ID.masked_mae(p_hat, p_true, np.zeros(3, bool))).all()
    with pytest.raises(ConfigError, match="do not fit"):
        ID.masked_mae(p_hat, p_true, np.array([True, False]))


def test_artifact_round_trip_and_missing_artifact(examples, tmp_path, monkeypatch):
    monkeypatch.setenv("DAFX_BUILD_DIR", str(tmp_path))
    with pytest.raises(MissingArtifactError, match="04_end_to_end"):
        ID.load_masks("smoke")
    fx, ex = examples
    r = ID.knob_sensitivity(fx, ex, SR, seed=0, workers=1)
    ID.save("smoke", [r])
    assert paths.artifact_path("smoke", ID.ARTIFACT).exists()
    assert ID.load_masks("smoke")[fx.key].tolist() == [True, True, False]
    nums = ID.summary_numbers({fx.key: r})
    assert nums[f"{fx.key}.n_identifiable"] == 2 and nums["n_unidentifiable"] == 1


def test_bad_input_is_refused(examples):
    fx, ex = examples
    with pytest.raises(ConfigError, match="at least 2"):
        ID.knob_sensitivity(fx, ex, SR, seed=0, n=1)
    with pytest.raises(ConfigError, match="threshold"):
        ID.knob_sensitivity(fx, ex, SR, seed=0, threshold=1.5)


def test_the_evaluation_scores_parameter_error_over_identifiable_knobs(examples):
    import dataclasses

    from dafxlib import evaluation as ev
    from dafxlib.render import RenderPool

    fx, ex = examples
    es = dataclasses.replace(ex, corpus="music")
    mask = np.array([True, True, False])
    with RenderPool(fx, SR, workers=1) as pool:
        cr = ev.evaluate_cell(es, pool, 3, ["do_nothing", "mean_params", "oracle"], seed=0, knob_mask=mask)
    rows = {(r["method"], r["item"]): r for r in cr.rows}
    for i in range(len(es)):
        assert rows[("oracle", i)]["param_mae_id"] == 0.0
        want = np.abs(0.5 - np.asarray(es.p[i], np.float64))[:2].mean()
        assert rows[("mean_params", i)]["param_mae_id"] == pytest.approx(want)
        assert rows[("mean_params", i)]["param_mae"] == pytest.approx(
            np.abs(0.5 - np.asarray(es.p[i], np.float64)).mean()
        )
        assert np.isnan(rows[("do_nothing", i)]["param_mae_id"])  # no settings, no parameter error

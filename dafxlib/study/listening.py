"""A MUSHRA listening-test kit for this run: loudness-matched stimuli plus a webMUSHRA configuration.

:func:`export_kit` takes test-set examples of chosen effects (the cached evaluation sets of notebook 06),
renders each condition, and :func:`write_kit` writes them as WAV files with a webMUSHRA YAML config.
Conditions (webMUSHRA stimulus keys, which become ``rating_stimulus`` in its results CSV):

- ``reference``: the ground truth y (the input through the effect at the true settings); webMUSHRA
  shows it as the reference and hides a copy among the stimuli;
- ``anchor``: the study's anchor, the effect at random settings;
- ``anchor35``: the low anchor of ITU-R BS.1534-3, the reference low-passed at 3.5 kHz;
- ``controller``: this run's end-to-end controller (its best training signal);
- ``ito``: inference-time optimisation (CMA-ES) with the profile's render budget;
- ``do_nothing``: the clean input.

Every stimulus is loudness-matched (BS.1770 integrated loudness, default -23 LUFS, peak-limited).
Page ids are ``<effect><example>`` as in the study's test, so the results file that webMUSHRA writes is
read unchanged by :func:`dafxlib.study.mushra.analyse` (``model="controller"``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import audio as A
from .. import storage
from ..errors import ConfigError

CONDITIONS: tuple[str, ...] = ("anchor", "anchor35", "controller", "ito", "do_nothing")
LOWPASS_HZ = 3500.0


@dataclass
class Trial:
    """One MUSHRA page: the reference and the conditions' audio, all mono float32 of one length."""

    effect: str
    example: int
    sample_rate: int
    reference: np.ndarray
    stimuli: dict[str, np.ndarray]
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def page_id(self) -> str:
        return f"{self.effect}{self.example}"


def lowpass_anchor(reference: np.ndarray, sample_rate: int, cutoff_hz: float = LOWPASS_HZ) -> np.ndarray:
    """BS.1534-3's low anchor: the reference low-passed at 3.5 kHz (8th-order Butterworth, zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    if cutoff_hz >= sample_rate / 2:
        raise ConfigError(f"low-pass anchor at {cutoff_hz} Hz needs a sample rate above {2 * cutoff_hz} Hz")
    sos = butter(8, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, np.asarray(reference, np.float64)).astype(np.float32)


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML scalar


def webmushra_yaml(
    trials: Sequence[Trial],
    stimuli_dir: str,
    *,
    test_id: str = "dafx_style_transfer",
    title: str = "Audio-effect style transfer",
) -> str:
    """The webMUSHRA configuration (one mushra page per trial, conditions as stimuli)."""
    lines = [
        f"testname: {_yaml_str(title)}",
        f"testId: {_yaml_str(test_id)}",
        "bufferSize: 2048",
        "stopOnErrors: true",
        "showButtonPreviousPage: true",
        "remoteService: service/write.php",
        "",
        "pages:",
        "    - type: generic",
        "      id: first_page",
        "      name: Welcome",
        "      content: "
        + _yaml_str(
            "Each page plays a reference: a clip through an audio effect at "
            "some settings. Rate how close each sound is to the reference "
            "(100 = identical). One of them is the reference itself."
        ),
    ]
    for t in trials:
        lines += [
            "    - type: mushra",
            f"      id: {_yaml_str(t.page_id)}",
            f"      name: {_yaml_str(f'{t.effect} {t.example}')}",
            "      content: " + _yaml_str("How close is each sound to the reference?"),
            "      showWaveform: true",
            "      enableLooping: true",
            f"      reference: {_yaml_str(f'{stimuli_dir}/{t.page_id}/reference.wav')}",
            "      createAnchor35: false",
            "      createAnchor70: false",
            "      stimuli:",
        ]
        for name in t.stimuli:
            lines.append(f"          {name}: {_yaml_str(f'{stimuli_dir}/{t.page_id}/{name}.wav')}")
    lines += [
        "    - type: finish",
        "      name: Thank you",
        "      content: " + _yaml_str("Thank you."),
        "      showResults: true",
        "      writeResults: true",
    ]
    return "\n".join(lines) + "\n"


def write_kit(
    trials: Sequence[Trial], out_dir: str | Path, *, target_lufs: float = -23.0, test_id: str = "dafx_style_transfer"
) -> dict:
    """Write loudness-matched WAVs under ``out_dir/stimuli/<page>/`` and ``out_dir/configs/<test_id>.yaml``
    (copy both into webMUSHRA's folder); return a manifest (also written as ``manifest.json``)."""
    import soundfile as sf

    if not trials:
        raise ConfigError("no trials to export")
    out = Path(out_dir)
    pages = []
    for t in trials:
        sounds = {"reference": t.reference, **t.stimuli}
        n = {len(v) for v in sounds.values()}
        if len(n) != 1:
            raise ConfigError(f"trial {t.page_id}: stimuli have different lengths {sorted(n)}")
        levels = {}
        for name, a in sounds.items():
            x = A.loudness_normalise(A.fade(np.asarray(a, np.float32), t.sample_rate), t.sample_rate, target_lufs)
            levels[name] = A.loudness(x, t.sample_rate)
            with storage.atomic_path(out / "stimuli" / t.page_id / f"{name}.wav") as tmp:
                sf.write(tmp, x, t.sample_rate, subtype="PCM_16", format="WAV")
        pages.append({"id": t.page_id, "effect": t.effect, "example": t.example, "lufs": levels, **t.info})
    storage.write_text(out / "configs" / f"{test_id}.yaml", webmushra_yaml(trials, "stimuli", test_id=test_id))
    manifest = {
        "test_id": test_id,
        "target_lufs": target_lufs,
        "conditions": list(trials[0].stimuli),
        "pages": pages,
        "results": "webMUSHRA writes results/<test_id>/mushra.csv; analyse it with "
        "dafxlib.study.mushra.analyse(path, model='controller')",
    }
    storage.write_json(out / "manifest.json", manifest)
    return manifest


def export_kit(
    profile,
    out_dir: str | Path,
    effects: Sequence[str] = ("overdrive", "multiband"),
    *,
    n_items: int = 3,
    corpus: str | None = None,
    conditions: Sequence[str] = CONDITIONS,
    target_lufs: float = -23.0,
) -> dict:
    """One call: pick ``n_items`` test examples per effect from this run's evaluation set (corpus: the
    first speech corpus unless given), render every condition and write the kit (:func:`write_kit`).
    Needs the artifacts of notebooks 01, 03 (encoder, for ITO) and 04 (controllers); a missing one
    raises MissingArtifactError naming the notebook."""
    from .. import evaluation as ev
    from ..config import get_profile
    from ..effects import get_effect
    from ..render import RenderPool

    prof = get_profile(profile) if isinstance(profile, str) else profile
    bad = sorted(set(conditions) - set(CONDITIONS))
    if bad:
        raise ConfigError(f"unknown listening-test condition(s) {bad}; valid: {', '.join(CONDITIONS)}")
    groups = ev.test_clip_groups(prof)
    corpus = corpus or next((c for c in groups if c in ev.SPEECH_CORPORA), next(iter(groups)))
    if corpus not in groups:
        raise ConfigError(f"corpus {corpus!r} has no test clips; have {', '.join(groups)}")
    encoder = None
    if "ito" in conditions or "controller" in conditions:
        from ..models.encoder import load_selected_encoder

        encoder = load_selected_encoder(prof)
    trials = []
    for e in effects:
        effect = get_effect(e, prof.effects.effect_set)
        es = ev.eval_set(
            prof, corpus, groups[corpus], effect.key, fingerprint=ev.effect_fingerprint(effect, prof.data.sample_rate)
        )
        k = min(n_items, len(es))
        es = dataclasses.replace(es, x=es.x[:k], y=es.y[:k], y_ref=es.y_ref[:k], p=es.p[:k], clip_ids=es.clip_ids[:k])
        outs: dict[str, np.ndarray] = {}
        with RenderPool(effect, prof.data.sample_rate, workers=prof.effects.workers) as pool:
            if "anchor" in conditions:
                outs["anchor"] = ev.run_method("random", es, pool, effect.n_params, seed=prof.seed).y_hat
            if "controller" in conditions:
                from ..e2e import best_signal, load_controller

                sig = best_signal(prof, effect.key)
                pred = {sig: load_controller(prof, effect.key, sig, encoder=encoder)}
                outs["controller"] = ev.run_method(
                    f"controller_{sig}", es, pool, effect.n_params, predictors=pred
                ).y_hat
            if "ito" in conditions:
                outs["ito"] = ev.run_method(
                    "ito", es, pool, effect.n_params, encoder=encoder, ito_budget=prof.eval.ito_budget, seed=prof.seed
                ).y_hat
        for i in range(k):
            stim = {}
            for c in conditions:
                if c == "anchor35":
                    stim[c] = lowpass_anchor(es.y[i], prof.data.sample_rate)
                elif c == "do_nothing":
                    stim[c] = es.x[i]
                else:
                    stim[c] = outs[c][i]
            trials.append(
                Trial(
                    effect.key,
                    i,
                    prof.data.sample_rate,
                    es.y[i],
                    stim,
                    {"clip_id": es.clip_ids[i], "corpus": corpus, "true_settings": [float(v) for v in es.p[i]]},
                )
            )
    return write_kit(trials, out_dir, target_lufs=target_lufs)


def synthetic_results(
    manifest: Mapping, *, n_sessions: int = 6, seed: int = 0, means: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """A made-up webMUSHRA results table for a kit (for testing the analysis end to end, never as data):
    one row per (session, page, stimulus) with the columns webMUSHRA writes."""
    means = dict(
        means or {"reference": 98, "controller": 70, "ito": 60, "anchor": 35, "anchor35": 20, "do_nothing": 15}
    )
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for page in manifest["pages"]:
            for stim in ["reference", *manifest["conditions"]]:
                sd = 2.0 if stim == "reference" else 8.0  # assessors mostly find the hidden reference
                v = float(np.clip(means.get(stim, 50) + rng.normal(0, sd), 0, 100))
                rows.append(
                    {
                        "session_test_id": manifest["test_id"],
                        "session_uuid": f"synthetic-{s}",
                        "trial_id": page["id"],
                        "rating_stimulus": stim,
                        "rating_score": int(round(v)),
                        "rating_time": 1000,
                        "rating_date": "01/01/2026, 00:00:00",
                        "rating_comment": "",
                    }
                )
    return pd.DataFrame(rows)

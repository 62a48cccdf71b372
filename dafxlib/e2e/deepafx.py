"""The DeepAFx-ST-style comparison: a controller that sets a differentiable EQ + compressor, trained by autodiff.

The study planned to compare its black-box controller with DeepAFx-ST, which replaces the
effect by a differentiable processing chain and trains the controller through it by ordinary
backpropagation. Here the chain is :class:`dafxlib.effects.differentiable.DiffChain` (parametric
EQ, feed-forward compressor, makeup gain; 18 normalised knobs) and the controller is the same
:class:`~dafxlib.models.controller.ControllerMLP` on the same frozen-encoder features of
(x, y_ref) as the black-box controllers, trained per effect on the same training examples with
the same audio-loss family: auraloss MR-STFT (at ``DeepAFxConfig.loss_fft_sizes``, cheaper than
the black-box controllers' loss) + L1 between ``chain(x, p_hat)`` and the effected target ``y``.

Training cost is kept small: the chain runs on the whole clip, the loss on a random crop of
``crop_samples`` per example (the loss, not the chain, dominates a step on a CPU); a few epochs;
the epoch with the lowest validation loss is kept. The head of the network starts at a near-
identity setting (gains 0 dB, threshold high, ratio low), so training starts from do-nothing.

Artifacts: ``controllers/<effect>_deepafx.pt`` (weights, feature blocks, encoder fingerprint,
chain settings, validation and test scores, history), written atomically and reused when the
identity (configuration, data, encoder, seed) is unchanged; :func:`load_deepafx` reads one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .. import paths, storage
from ..config import Profile
from ..effects.differentiable import N_PARAMS, PARAM_NAMES, DiffChain, flat_params
from ..errors import ConfigError, MissingArtifactError, TrainingDivergedError
from ..models.controller import ControllerFeatures, ControllerMLP
from ..pairs import Examples
from ..seeding import stable_hash
from ..threads import torch_threads
from .artifacts import FORMAT_VERSION, MADE_BY, _profile, encoder_fingerprint, load_checked_blob
from .data import load_data, make_features
from .scoring import score
from .train import audio_loss_fn

METHOD = "deepafx"
#: bump when the chain or the training procedure changes
CHAIN_VERSION = 2
#: the head's starting setting: the chain's identity setting pulled into [0.1, 0.9] (sigmoid not saturated)
_INIT_LO, _INIT_HI = 0.1, 0.9


def artifact_name(effect_key: str) -> str:
    return f"controllers/{effect_key.lower()}_{METHOD}.pt"


class DeepAFxPredictor:
    """A trained chain controller: ``predict(x, y_ref)`` -> chain settings (B, 18), ``process(x, p)``
    -> the chain's output, ``apply(x, y_ref)`` -> (y_hat, p)."""

    def __init__(
        self,
        model: ControllerMLP,
        features: ControllerFeatures | None,
        effect_key: str,
        sample_rate: int,
        hop: int,
        info: dict | None = None,
    ):
        self.model = model.eval()
        self.features = features
        self.effect_key = effect_key
        self.chain = DiffChain(sample_rate, hop=hop)
        self.param_names = list(PARAM_NAMES)
        self.info = dict(info or {})

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(feats), dtype=torch.float32)).numpy().astype(np.float64)

    def predict(self, x: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
        if self.features is None:
            raise ConfigError(f"deepafx controller for {self.effect_key} was loaded without a feature extractor")
        return self.predict_features(self.features(x, y_ref))

    def process(self, x: np.ndarray, p: np.ndarray, batch_size: int = 64) -> np.ndarray:
        x = np.asarray(x, np.float32)
        p = np.clip(np.asarray(p, np.float32), 0.0, 1.0)
        out = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                out.append(self.chain(torch.from_numpy(x[s : s + batch_size]), torch.from_numpy(p[s : s + batch_size])))
        return torch.cat(out).numpy().astype(np.float32)

    def apply(self, x: np.ndarray, y_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.predict(x, y_ref)
        return self.process(x, p), p

    def __repr__(self) -> str:
        return f"<DeepAFxPredictor {self.effect_key} P={N_PARAMS}>"


@dataclass
class DeepAFxResult:
    """One effect's chain controller: scores, cost and whether the artifact was reused."""

    effect_key: str
    predictor: DeepAFxPredictor
    val_mrstft: float
    test_mrstft: np.ndarray
    do_nothing_mrstft: np.ndarray
    wall_s: float
    steps: int
    reused: bool
    history: list[dict[str, float]] = field(default_factory=list)


def _new_model(in_dim: int, profile: Profile, seed: int, feats: np.ndarray) -> ControllerMLP:
    cfg = profile.controller
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ControllerMLP(in_dim, N_PARAMS, hidden=cfg.hidden, n_hidden=cfg.n_hidden)
    model.set_standardisation(feats)
    start = flat_params().clamp(_INIT_LO, _INIT_HI)
    with torch.no_grad():
        model.head.bias.copy_(torch.log(start / (1 - start)))
    return model


def _ident(profile: Profile, key: str, train: Examples, val: Examples, fingerprint: str, seed: int) -> dict:
    return {
        "v": FORMAT_VERSION,
        "chain": CHAIN_VERSION,
        "effect": key,
        "effect_set": profile.effects.effect_set,
        "deepafx": asdict(profile.deepafx),
        "net": {"hidden": profile.controller.hidden, "n_hidden": profile.controller.n_hidden},
        "train": train.identity(),
        "val": val.identity(),
        "encoder": fingerprint,
        "seed": seed,
        "sr": profile.data.sample_rate,
    }


def _chain_output(chain: DiffChain, model: ControllerMLP, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return chain(x, model(feats))


def _eval_loss(chain, model, loss_fn, l1_weight: float, data: Examples, crop: int, bs: int = 64) -> float:
    """Mean training loss over ``data``: the chain on whole clips, the loss on each clip's middle ``crop``."""
    n = data.half_samples
    a = (n - min(crop, n)) // 2
    cols = slice(a, a + min(crop, n))
    tot = 0.0
    with torch.no_grad():
        for s in range(0, len(data), bs):
            f = torch.from_numpy(data.feature_matrix()[s : s + bs])
            x, y = torch.from_numpy(data.x[s : s + bs]), torch.from_numpy(data.y[s : s + bs])
            y_hat = _chain_output(chain, model, f, x)[:, cols]
            y = y[:, cols]
            loss = loss_fn(y_hat[:, None], y[:, None]) + l1_weight * (y_hat - y).abs().mean()
            tot += float(loss) * len(x)
    return tot / max(len(data), 1)


def train_deepafx(
    profile: Profile,
    effect_key: str,
    train: Examples,
    val: Examples,
    *,
    fingerprint: str,
    features: ControllerFeatures | None = None,
    seed: int | None = None,
) -> tuple[DeepAFxPredictor, dict[str, Any], bool]:
    """Train (or reuse) the chain controller of one effect; returns (predictor, artifact blob, reused)."""
    with torch_threads(profile.controller.torch_threads):
        return _train(profile, effect_key, train, val, fingerprint=fingerprint, features=features, seed=seed)


def _train(
    profile: Profile,
    effect_key: str,
    train: Examples,
    val: Examples,
    *,
    fingerprint: str,
    features: ControllerFeatures | None,
    seed: int | None,
) -> tuple[DeepAFxPredictor, dict[str, Any], bool]:
    cfg = profile.deepafx
    key = effect_key.lower()
    seed = profile.seed if seed is None else int(seed)
    sr = profile.data.sample_rate
    if len(train) < 1 or len(val) < 1:
        raise ConfigError(f"deepafx training for {key} needs training and validation examples")
    ident = _ident(profile, key, train, val, fingerprint, seed)
    h = stable_hash(ident)
    art = paths.artifact_path(profile.name, artifact_name(key))
    if art.exists():
        blob = torch.load(art, map_location="cpu", weights_only=False)
        if blob.get("hash") == h:
            return _predictor_from_blob(blob, features), blob, True

    t0 = time.perf_counter()
    chain = DiffChain(sr, hop=cfg.compressor_hop)
    feats_np = train.feature_matrix()
    model = _new_model(feats_np.shape[1], profile, seed, feats_np)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = audio_loss_fn(cfg.loss_fft_sizes, cfg.loss_hop_fraction)
    gen = torch.Generator().manual_seed(int(seed) * 1009 + 17)
    n, length = len(train), train.half_samples
    crop = length if cfg.crop_samples is None else min(int(cfg.crop_samples), length)
    feats_t, x_t, y_t = (torch.from_numpy(np.ascontiguousarray(a)) for a in (feats_np, train.x, train.y))
    best = (_eval_loss(chain, model, loss_fn, cfg.l1_weight, val, crop), -1)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = [{"epoch": -1, "step": 0, "val_loss": best[0]}]
    steps = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        run = 0.0
        model.train()
        for s in range(0, n, cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            y_hat = _chain_output(chain, model, feats_t[idx], x_t[idx])
            y = y_t[idx]
            if crop < length:
                off = torch.randint(0, length - crop + 1, (len(idx), 1), generator=gen)
                cols = off + torch.arange(crop)[None]
                y_hat, y = torch.gather(y_hat, 1, cols), torch.gather(y, 1, cols)
            loss = loss_fn(y_hat[:, None], y[:, None]) + cfg.l1_weight * (y_hat - y).abs().mean()
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"deepafx training for {key}: non-finite loss at step {steps}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            run += float(loss.detach()) * len(idx)
            steps += 1
        model.eval()
        v = _eval_loss(chain, model, loss_fn, cfg.l1_weight, val, crop)
        history.append({"epoch": epoch, "step": steps, "train_loss": run / n, "val_loss": v})
        if v < best[0]:
            best = (v, epoch)
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    train_s = time.perf_counter() - t0
    pred = DeepAFxPredictor(model, features, key, sr, cfg.compressor_hop)
    y_val = pred.process(val.x, pred.predict_features(val.feature_matrix()))
    val_mrstft = float(np.nanmean(score(None, val, None, sr, y_hat=y_val)["mrstft"]))
    blob = {
        "format": FORMAT_VERSION,
        "hash": h,
        "ident": ident,
        "effect_key": key,
        "method": METHOD,
        "param_names": list(PARAM_NAMES),
        "model_config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_blocks": list(features.blocks) if features else list(profile.controller.features),
        "encoder": fingerprint,
        "chain": {"sample_rate": sr, "hop": cfg.compressor_hop, "version": CHAIN_VERSION},
        "val": {"mrstft": val_mrstft, "loss": best[0], "best_epoch": best[1]},
        "history": history,
        "wall_s": train_s,
        "steps": steps,
    }
    storage.torch_save(blob, art)
    pred.info = {"hash": h, "val": blob["val"], "encoder": fingerprint}
    return pred, blob, False


def _predictor_from_blob(blob: Mapping[str, Any], features: ControllerFeatures | None) -> DeepAFxPredictor:
    model = ControllerMLP(**blob["model_config"])
    model.load_state_dict(blob["state_dict"])
    ch = blob["chain"]
    info = {"hash": blob.get("hash"), "val": blob.get("val", {}), "encoder": blob.get("encoder")}
    return DeepAFxPredictor(model, features, blob["effect_key"], int(ch["sample_rate"]), int(ch["hop"]), info)


def load_deepafx(
    profile: Profile | str, effect_key: str, *, encoder: Any = None, level_fn: Any = None
) -> DeepAFxPredictor:
    """The chain controller notebook 04 trained for ``effect_key`` (MissingArtifactError when it is
    missing or was trained on another encoder than the selected one: re-run notebook 04)."""
    profile = _profile(profile)
    key = effect_key.lower()
    path = paths.require_artifact(profile.name, artifact_name(key), made_by=MADE_BY)
    blob, encoder, blocks = load_checked_blob(profile, path, encoder, what="deepafx controller")
    if int(blob["chain"]["sample_rate"]) != profile.data.sample_rate:
        raise MissingArtifactError(
            f"deepafx controller {path.name} was trained at {blob['chain']['sample_rate']} Hz, the profile runs at "
            f"{profile.data.sample_rate} Hz; re-run notebook {MADE_BY}"
        )
    features = ControllerFeatures(encoder, profile.data.sample_rate, blocks=blocks, level_fn=level_fn)
    return _predictor_from_blob(blob, features)


def run_deepafx(
    profile: Profile | str,
    encoder: Any = None,
    effects: Sequence[str] | None = None,
    *,
    level_fn: Any = None,
    do_nothing: Mapping[str, np.ndarray] | None = None,
    log=print,
) -> dict[str, DeepAFxResult]:
    """Notebook 04's DeepAFx-ST-style comparison: per effect, train (or reuse) the chain controller on
    the black-box controllers' training examples and score it on their test examples.
    ``do_nothing`` (effect -> per-clip test MR-STFT of y_hat = x, e.g. from :func:`run_end_to_end`'s
    results) saves scoring it again; it is computed where missing."""
    from ..corpus import build_corpus
    from ..effects import ALL

    profile = _profile(profile)
    if encoder is None and "embedding" in profile.controller.features:
        from ..models.encoder import load_selected_encoder

        encoder = load_selected_encoder(profile)
    features = make_features(profile, encoder, level_fn)
    fp = encoder_fingerprint(encoder, profile.data.sample_rate, profile.half_samples)
    corpus = build_corpus(profile)
    cfg = profile.controller
    sr = profile.data.sample_rate
    out: dict[str, DeepAFxResult] = {}
    for key in list(effects or ALL):
        train, val, test = (
            load_data(profile, key, split, n, features, fingerprint=fp, corpus=corpus)
            for split, n in (
                ("train", cfg.n_train_per_effect),
                ("val", cfg.n_val_per_effect),
                ("test", cfg.n_test_per_effect),
            )
        )
        pred, blob, reused = train_deepafx(profile, key, train, val, fingerprint=fp, features=features)
        with torch_threads(cfg.torch_threads):
            y_hat = pred.process(test.x, pred.predict_features(test.feature_matrix()))
        test_mr = score(None, test, None, sr, y_hat=y_hat)["mrstft"]
        dn = (do_nothing or {}).get(key)
        if dn is None or len(dn) != len(test):
            dn = score(None, test, None, sr, y_hat=test.x)["mrstft"]
        out[key] = DeepAFxResult(
            key,
            pred,
            float(blob["val"]["mrstft"]),
            np.asarray(test_mr, np.float64),
            np.asarray(dn, np.float64),
            float(blob.get("wall_s", 0.0)),
            int(blob.get("steps", 0)),
            reused,
            list(blob.get("history", [])),
        )
        log(
            f"  {key:>9s} deepafx    val MR-STFT {out[key].val_mrstft:.3f}  test {np.nanmean(test_mr):.3f}"
            f" (do-nothing {np.nanmean(dn):.3f})  ({'reused' if reused else f'{out[key].wall_s:.1f} s'})"
        )
    return out


def deepafx_numbers(
    results: Mapping[str, DeepAFxResult], controller_mrstft: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Flat numbers for ``provenance.record_numbers("e2e.deepafx", ...)``: per effect the test MR-STFT,
    do-nothing's, their ratio, training seconds and steps; with ``controller_mrstft`` (effect -> the
    black-box controller's test MR-STFT on the same clips) the ratio to it and the count of effects
    where the chain controller is better."""
    out: dict[str, float] = {}
    for key, r in results.items():
        t, dn = float(np.nanmean(r.test_mrstft)), float(np.nanmean(r.do_nothing_mrstft))
        out[f"{key}.test_mrstft"] = t
        out[f"{key}.do_nothing_mrstft"] = dn
        out[f"{key}.ratio_do_nothing"] = t / dn if dn > 0 else math.nan
        out[f"{key}.val_mrstft"] = r.val_mrstft
        out[f"{key}.train_seconds"] = r.wall_s
        out[f"{key}.steps"] = r.steps
        if controller_mrstft and key in controller_mrstft:
            out[f"{key}.ratio_controller"] = t / controller_mrstft[key] if controller_mrstft[key] > 0 else math.nan
    keys = list(results)
    out["n_effects"] = len(keys)
    out["n_beat_do_nothing"] = sum(out[f"{k}.test_mrstft"] < out[f"{k}.do_nothing_mrstft"] for k in keys)
    out["train_seconds"] = float(sum(r.wall_s for r in results.values()))
    out["mean_ratio_do_nothing"] = float(np.nanmean([out[f"{k}.ratio_do_nothing"] for k in keys])) if keys else math.nan
    if controller_mrstft:
        both = [k for k in keys if k in controller_mrstft]
        out["n_beat_controller"] = sum(out[f"{k}.test_mrstft"] < controller_mrstft[k] for k in both)
        out["n_within_10pct_controller"] = sum(out[f"{k}.ratio_controller"] <= 1.1 for k in both)
    return out


def deepafx_markdown(numbers: Mapping[str, float], tolerance: float = 0.1) -> str:
    """A sentence for the report from :func:`deepafx_numbers` (with the controller ratios): which
    effects the differentiable stand-in matches within ``tolerance`` of the black-box controller's
    test MR-STFT (or beats), and which need the black box."""
    from ..effects import ALL, DISPLAY_NAMES

    ratios = {k: float(numbers[f"{k}.ratio_controller"]) for k in ALL if f"{k}.ratio_controller" in numbers}
    if not ratios:
        return "No chain controller was compared with a black-box controller in this run."
    fmt = lambda ks: ", ".join(f"{DISPLAY_NAMES[k]} ({ratios[k]:.2f})" for k in ks) or "none"  # noqa: E731
    close = sorted((k for k, r in ratios.items() if r <= 1 + tolerance), key=ratios.__getitem__)
    far = sorted((k for k, r in ratios.items() if r > 1 + tolerance), key=ratios.__getitem__)
    return (
        f"Test MR-STFT of the chain controller over the black-box controller's, same clips (below 1: the "
        f"stand-in is better). Within {tolerance:.0%} or better, where the differentiable stand-in suffices: "
        f"{fmt(close)}. More than {tolerance:.0%} worse, where the black-box controller is needed: {fmt(far)}."
    )

"""The end-to-end controller: features of (x, y_ref) -> normalised effect parameters.

Inputs (:class:`ControllerFeatures`, computed once per dataset because the encoder is frozen):

- ``embedding``: the frozen selected encoder's mean embedding of the pair (x, y_ref)
  (:meth:`dafxlib.models.encoder.AudioEncoder.embed`; joint or siamese as notebook 03 chose);
- ``level``: :func:`dafxlib.models.encoder.level_features` of x and y_ref. The spectrogram
  representation normalises each image, which hides level; without these an output-gain
  knob is unlearnable (one of the study's failures);
- ``descriptors``: cheap hand-made audio descriptors of x, of y_ref and their difference
  (:func:`descriptor_features`: log band energies, spectral shape, crest factor, level
  dynamics, envelope modulation and lagged autocorrelation). They describe what the effect
  did to the spectrum, dynamics and time structure, which a small VAE trained on four
  effects may not encode for unseen ones.

:class:`ControllerMLP` standardises the features with training-set statistics (buffers),
applies LayerNorm, two hidden layers and a sigmoid head whose last layer starts with tiny
weights and zero bias, so every initial prediction is ~0.5 (the centre of the box).
:class:`ControllerPredictor` bundles features + MLP: ``predict(x, y_ref) -> p01``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft as sfft
import torch
from torch import nn

from ..audio import peak_db, rms_db
from ..errors import AudioError, ConfigError
from ..spectrogram import frame_spectrum

FEATURE_BLOCKS = ("embedding", "level", "descriptors")

# ---- hand-made descriptors -----------------------------------------------------------------
_N_BANDS = 16
_LAG_EDGES_S = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
_MOD_EDGES_HZ = (0.5, 2.0, 5.0, 10.0, 20.0)


def descriptor_names() -> list[str]:
    names = [f"band{i:02d}_db" for i in range(_N_BANDS)]
    names += [
        "centroid_oct",
        "spread_oct",
        "flatness",
        "rolloff_oct",
        "rms_db",
        "peak_db",
        "crest_db",
        "frame_db_std",
        "frame_db_p90_p10",
        "zcr",
    ]
    names += [f"mod_{lo:g}_{hi:g}hz" for lo, hi in zip(_MOD_EDGES_HZ[:-1], _MOD_EDGES_HZ[1:])]
    names += [f"acf_{lo * 1e3:g}_{hi * 1e3:g}ms" for lo, hi in zip(_LAG_EDGES_S[:-1], _LAG_EDGES_S[1:])]
    names += [
        "acf_peak_lag_log2s",
        "acf_peak",
        "acf_peak2_lag_log2s",
        "acf_peak2",
        "env_mod_peak_log2hz",
        "env_mod_peak",
    ]
    return names


def descriptor_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Descriptors of a batch of mono clips (B, N) -> (B, D) float32 (see :func:`descriptor_names`).

    Band energies (16 log-spaced bands from 50 Hz, dB), spectral centroid / spread / rolloff
    (octaves re 1 kHz) and flatness, level (RMS, peak, crest factor in dB, spread of frame
    levels), zero-crossing rate, envelope modulation energy in 4 rate bands (0.5-20 Hz, for
    tremolo / rotary / LFO effects), the largest normalised autocorrelation in 8 lag bands
    (2-640 ms, for delays and flangers), the lags (log2 s) and heights of the two strongest
    autocorrelation peaks between 2 and 800 ms (echo times; at least 2 ms apart), and the
    dominant envelope modulation rate (log2 Hz, 0.3-20 Hz) with its prominence. The last six
    lowered the test MR-STFT of a regression controller on Flanger, RingMod and Delay with the
    mda set (measured on the default profile's data; Leslie unchanged).
    """
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] < 64:
        raise AudioError(f"descriptor_features expects audio (B, N>=64), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise AudioError("descriptor_features: audio contains NaN or inf")
    b, n = a.shape
    sr = float(sample_rate)
    n_fft = 1024 if n >= 4096 else 256
    hop = n_fft // 4
    mag = frame_spectrum(a, n_fft, hop, center=False, window="symmetric")  # (B, T, F)
    power = mag.astype(np.float64) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    eps = 1e-10
    # band energies
    edges = np.geomspace(50.0, sr / 2, _N_BANDS + 1)
    mean_pow = power.mean(axis=1)  # (B, F)
    bands = np.stack(
        [
            mean_pow[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
            if np.any((freqs >= lo) & (freqs < hi))
            else np.zeros(b)
            for lo, hi in zip(edges[:-1], edges[1:])
        ],
        axis=1,
    )
    band_db = 10 * np.log10(bands + eps)
    # spectral shape from the long-term spectrum
    tot = mean_pow.sum(axis=1) + eps
    logf = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    centroid = (mean_pow * logf).sum(axis=1) / tot
    spread = np.sqrt(np.maximum((mean_pow * (logf[None] - centroid[:, None]) ** 2).sum(axis=1) / tot, 0))
    flat = np.exp(np.log(mean_pow + eps).mean(axis=1)) / (mean_pow.mean(axis=1) + eps)
    cum = np.cumsum(mean_pow, axis=1) / tot[:, None]
    rolloff = logf[np.minimum((cum < 0.85).sum(axis=1), len(freqs) - 1)]
    # level and dynamics
    level_db = np.asarray(rms_db(a, axis=1))
    pk_db = np.asarray(peak_db(a, axis=1))
    frame_db = 10 * np.log10(power.sum(axis=2) / n_fft + eps)  # (B, T)
    p90, p10 = np.percentile(frame_db, 90, axis=1), np.percentile(frame_db, 10, axis=1)
    zcr = (np.abs(np.diff(np.signbit(a), axis=1)).mean(axis=1)).astype(np.float64)
    # envelope modulation (frame RMS envelope spectrum)
    env = np.sqrt(power.sum(axis=2))
    env = env / (env.mean(axis=1, keepdims=True) + eps) - 1.0
    env_rate = sr / hop
    env_spec = np.abs(np.fft.rfft(env, axis=1)) ** 2 / max(env.shape[1], 1)
    env_f = np.fft.rfftfreq(env.shape[1], 1.0 / env_rate)
    mods = np.stack(
        [
            np.log10(env_spec[:, (env_f >= lo) & (env_f < hi)].mean(axis=1) + 1e-6)
            if np.any((env_f >= lo) & (env_f < hi))
            else np.full(b, -6.0)
            for lo, hi in zip(_MOD_EDGES_HZ[:-1], _MOD_EDGES_HZ[1:])
        ],
        axis=1,
    )
    # lagged autocorrelation (normalised), maximum per lag band
    m = sfft.next_fast_len(2 * n, real=True)
    spec = sfft.rfft(a - a.mean(axis=1, keepdims=True), m, axis=1)
    acf = sfft.irfft(np.abs(spec) ** 2, m, axis=1)[:, :n].astype(np.float64)
    acf = acf / (acf[:, :1] + eps)
    acf_bands = []
    for lo, hi in zip(_LAG_EDGES_S[:-1], _LAG_EDGES_S[1:]):
        l0, l1 = int(lo * sr), min(int(hi * sr), n - 1)
        acf_bands.append(acf[:, l0:l1].max(axis=1) if l1 > l0 else np.zeros(b))
    acfs = np.stack(acf_bands, axis=1)
    # the strongest and second-strongest echo: lag (log2 seconds) and height of the largest local
    # maxima of the normalised autocorrelation between 2 ms and 800 ms (delay time, comb spacing)
    l0, l1 = int(0.002 * sr), min(int(0.8 * sr), n - 2)
    seg = acf[:, l0:l1]
    is_peak = (seg[:, 1:-1] > seg[:, :-2]) & (seg[:, 1:-1] >= seg[:, 2:])
    peaks = np.where(is_peak, seg[:, 1:-1], -np.inf)
    rows = np.arange(b)
    first = peaks.argmax(axis=1)
    near = np.abs(np.arange(peaks.shape[1])[None, :] - first[:, None]) <= int(0.002 * sr)
    second = np.where(near, -np.inf, peaks).argmax(axis=1)
    lag1, lag2 = (first + 1 + l0) / sr, (second + 1 + l0) / sr
    pk1 = np.where(np.isfinite(peaks[rows, first]), peaks[rows, first], 0.0)
    pk2 = np.where(np.isfinite(peaks[rows, second]) & ~near[rows, second], peaks[rows, second], 0.0)
    # the dominant envelope modulation rate (0.3-20 Hz) and its strength (LFO rate of tremolo,
    # rotary speaker, flanger sweeps)
    sel = (env_f >= 0.3) & (env_f < 20.0)
    if np.any(sel):
        ms = env_spec[:, sel]
        j = ms.argmax(axis=1)
        mod_rate = np.log2(env_f[sel][j])
        mod_peak = np.log10(ms[rows, j] / (ms.mean(axis=1) + 1e-12) + 1e-6)
    else:
        mod_rate, mod_peak = np.zeros(b), np.zeros(b)
    extra = np.stack([np.log2(lag1), pk1, np.log2(lag2), pk2, mod_rate, mod_peak], axis=1)
    out = np.concatenate(
        [
            band_db,
            np.stack(
                [
                    centroid,
                    spread,
                    flat,
                    rolloff,
                    level_db,
                    pk_db,
                    pk_db - level_db,
                    frame_db.std(axis=1),
                    p90 - p10,
                    zcr,
                ],
                1,
            ),
            mods,
            acfs,
            extra,
        ],
        axis=1,
    )
    return out.astype(np.float32)


class ControllerFeatures:
    """Feature extractor of (x, y_ref) pairs for the controller.

    ``blocks`` picks among ``embedding`` (needs ``encoder``), ``level`` and ``descriptors``.
    ``level_fn(x, y) -> (B, k)`` defaults to :func:`dafxlib.models.encoder.level_features`.
    """

    def __init__(
        self,
        encoder: Any,
        sample_rate: int,
        blocks: Sequence[str] = FEATURE_BLOCKS,
        level_fn: Any = None,
        batch_size: int = 64,
    ):
        blocks = tuple(blocks)
        bad = [b for b in blocks if b not in FEATURE_BLOCKS]
        if bad or not blocks:
            raise ConfigError(f"unknown controller feature block(s) {bad or blocks}; valid: {FEATURE_BLOCKS}")
        if "embedding" in blocks and encoder is None:
            raise ConfigError("the 'embedding' feature block needs an encoder (load_selected_encoder(profile))")
        self.encoder = encoder
        self.sample_rate = int(sample_rate)
        self.blocks = blocks
        self.batch_size = int(batch_size)
        if level_fn is None and "level" in blocks:
            from .encoder import level_features as level_fn  # noqa: N813
        self.level_fn = level_fn

    def __call__(self, x: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        y_ref = np.asarray(y_ref, dtype=np.float32)
        if x.ndim == 1:
            x, y_ref = x[None], y_ref[None]
        if x.shape != y_ref.shape or x.ndim != 2:
            raise AudioError(
                f"controller features need x and y_ref of one shape (B, N); got {x.shape} and {y_ref.shape}"
            )
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            xs, ys = x[s : s + self.batch_size], y_ref[s : s + self.batch_size]
            parts = []
            for blk in self.blocks:
                if blk == "embedding":
                    parts.append(np.asarray(self.encoder.embed(xs, ys), dtype=np.float32).reshape(len(xs), -1))
                elif blk == "level":
                    parts.append(np.asarray(self.level_fn(xs, ys), dtype=np.float32).reshape(len(xs), -1))
                else:
                    dx = descriptor_features(xs, self.sample_rate)
                    dy = descriptor_features(ys, self.sample_rate)
                    parts.append(np.concatenate([dx, dy, dy - dx], axis=1))
            out.append(np.concatenate(parts, axis=1))
        feats = np.concatenate(out, axis=0)
        if not np.all(np.isfinite(feats)):
            raise AudioError("controller features contain NaN or inf (silent or broken input audio?)")
        return feats


class ControllerMLP(nn.Module):
    """Standardise -> LayerNorm -> MLP -> sigmoid; outputs start at ~0.5.

    ``feat_mean`` / ``feat_std`` buffers hold training-set statistics
    (:meth:`set_standardisation`), so checkpoints carry them.
    """

    def __init__(
        self,
        in_dim: int,
        n_params: int,
        hidden: int = 256,
        n_hidden: int = 2,
        dropout: float = 0.0,
        init_scale: float = 1e-3,
    ):
        super().__init__()
        if in_dim < 1 or n_params < 1 or hidden < 1 or n_hidden < 1:
            raise ConfigError(
                f"ControllerMLP needs positive sizes, got in_dim={in_dim}, n_params={n_params}, "
                f"hidden={hidden}, n_hidden={n_hidden}"
            )
        self.in_dim, self.n_params, self.hidden, self.n_hidden = int(in_dim), int(n_params), int(hidden), int(n_hidden)
        self.feat_mean: torch.Tensor
        self.feat_std: torch.Tensor
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        self.norm = nn.LayerNorm(in_dim)
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(n_hidden):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, n_params)
        nn.init.uniform_(self.head.weight, -init_scale, init_scale)
        nn.init.zeros_(self.head.bias)

    def set_standardisation(self, features: np.ndarray | torch.Tensor) -> None:
        f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        if f.ndim != 2 or f.shape[1] != self.in_dim:
            raise ConfigError(f"standardisation features must be (n, {self.in_dim}), got {tuple(f.shape)}")
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0, unbiased=False).clamp_min(1e-4) if len(f) > 1 else torch.ones(self.in_dim))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2 or features.shape[1] != self.in_dim:
            raise ConfigError(f"controller expects features (B, {self.in_dim}), got {tuple(features.shape)}")
        z = (features - self.feat_mean) / self.feat_std
        return self.head(self.body(self.norm(z)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))

    def config(self) -> dict[str, int]:
        return {"in_dim": self.in_dim, "n_params": self.n_params, "hidden": self.hidden, "n_hidden": self.n_hidden}


class ControllerPredictor:
    """A trained controller with its feature extractor: ``predict(x, y_ref) -> p01 (B, P)``."""

    def __init__(
        self,
        model: ControllerMLP,
        features: ControllerFeatures | None,
        effect_key: str,
        signal: str,
        param_names: Sequence[str] = (),
        info: dict | None = None,
    ):
        self.model = model.eval()
        self.features = features
        self.effect_key = effect_key
        self.signal = signal
        self.param_names = list(param_names)
        self.info = dict(info or {})

    @property
    def n_params(self) -> int:
        return self.model.n_params

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            p = self.model(torch.as_tensor(np.asarray(feats), dtype=torch.float32))
        return p.numpy().astype(np.float64)

    def predict(self, x: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
        """Normalised parameters (B, P) that should make effect(x) sound like y_ref."""
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 1
        if self.features is None:
            raise ConfigError(f"controller {self.effect_key}/{self.signal} was loaded without a feature extractor")
        p = self.predict_features(self.features(x, y_ref))
        return p[0] if single else p

    def __repr__(self) -> str:
        return f"<ControllerPredictor {self.effect_key}/{self.signal} P={self.n_params} blocks={getattr(self.features, 'blocks', None)}>"

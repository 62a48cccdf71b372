"""Settings of one effect rendered on clean clips and embedded with the frozen encoder, with timbral descriptors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import as_float_audio
from ..errors import ConfigError, EffectError
from ..threads import torch_threads

#: descriptor name -> short label used in number keys
DESCRIPTORS: tuple[str, ...] = ("centroid_hz", "lf_ratio", "rms_db")


DESCRIPTOR_LABELS = {
    "centroid_hz": "spectral centroid (Hz)",
    "lf_ratio": "low-frequency energy ratio",
    "rms_db": "RMS (dBFS)",
}


_RHO_KEYS = {"centroid_hz": "rho_centroid", "lf_ratio": "rho_lowfreq", "rms_db": "rho_rms"}


_CHUNK = 64


@dataclass
class SettingsEmbedding:
    """Embeddings of random settings of one effect (each averaged over the same clips)."""

    effect_key: str
    param_names: list[str]
    z: np.ndarray  #: (n, D) float32 mean embedding over clips
    params01: np.ndarray  #: (n, P) float32 true normalised parameters
    descriptors: dict[str, np.ndarray]  #: name -> (n,) mean over clips
    clip_ids: list[str]
    n_failed: int = 0  #: settings dropped because a render failed on some clip

    def __len__(self) -> int:
        return int(self.z.shape[0])


def descriptors(audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Brightness, depth and level of each row of ``audio`` (B, N): see :mod:`dafxlib.metrics`."""
    from .. import metrics

    a = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return {
        "centroid_hz": metrics.spectral_centroid(a, sample_rate),
        "lf_ratio": metrics.low_frequency_ratio(a, sample_rate),
        "rms_db": metrics.rms_db(a),
    }


def render(effect, audios: np.ndarray, params01: np.ndarray, sample_rate: int, workers: int = 2):
    """Render each row of ``audios`` with the matching settings; returns (audio (B,N), ok (B,))."""
    from ..render import render_batch

    res = render_batch(
        effect,
        np.ascontiguousarray(as_float_audio(audios, effect.name), dtype=np.float32),
        np.ascontiguousarray(params01, dtype=np.float32),
        sample_rate,
        workers=workers,
        reuse=True,
    )
    return np.asarray(res.audio, dtype=np.float32), np.asarray(res.ok, dtype=bool)


def embed_settings(
    effect,
    clips: Sequence[np.ndarray],
    encoder,
    n_settings: int,
    *,
    seed: int,
    sample_rate: int,
    clip_ids: Sequence[str] | None = None,
    workers: int = 2,
    params01: np.ndarray | None = None,
) -> SettingsEmbedding:
    """Embed ``n_settings`` uniform random settings of ``effect``, each on every clip.

    ``clips`` are mono clean signals (the clips' half A); ``encoder.embed(x, y)`` gives
    (B, D). A setting whose render fails on any clip is dropped and counted in ``n_failed``.
    Pass ``params01`` to embed given settings instead of random ones."""
    if len(clips) == 0:
        raise ConfigError("embed_settings needs at least one clip (profile.plane.n_clips >= 1)")
    if params01 is None:
        if n_settings < 1:
            raise ConfigError(f"n_settings must be >= 1, got {n_settings}")
        params01 = np.random.default_rng(seed).random((n_settings, effect.n_params))
    params01 = np.asarray(params01, dtype=np.float32)
    n = params01.shape[0]
    z_sum, ok_all = None, np.ones(n, dtype=bool)
    desc_sum = {k: np.zeros(n) for k in DESCRIPTORS}
    for clip in clips:
        clip = np.asarray(as_float_audio(clip, effect.name), dtype=np.float32).reshape(-1)  # int PCM scaled
        for s in range(0, n, _CHUNK * 4):
            p = params01[s : s + _CHUNK * 4]
            x = np.broadcast_to(clip, (p.shape[0], clip.shape[0]))
            y, ok = render(effect, x, p, sample_rate, workers)
            ok_all[s : s + p.shape[0]] &= ok
            xc = np.ascontiguousarray(x)
            with torch_threads(1):  # conv results depend on the thread count for some batch shapes
                emb = np.concatenate(
                    [
                        np.asarray(encoder.embed(xc[i : i + _CHUNK], y[i : i + _CHUNK]), dtype=np.float64)
                        for i in range(0, p.shape[0], _CHUNK)
                    ]
                )
            if z_sum is None:
                z_sum = np.zeros((n, emb.shape[1]))
            z_sum[s : s + p.shape[0]] += emb
            for k, v in descriptors(y, sample_rate).items():
                desc_sum[k][s : s + p.shape[0]] += v
    if z_sum is None:
        raise EffectError(f"{effect.name}: no settings were embedded (no clips given?)")
    keep = ok_all & np.all(np.isfinite(z_sum), axis=1)
    if not keep.any():
        raise EffectError(
            f"{effect.name}: only {int(keep.sum())} of {n} settings rendered on every clip; "
            "check the effect with dafxlib.render.render_batch"
        )
    c = float(len(clips))
    return SettingsEmbedding(
        effect_key=effect.key,
        param_names=list(effect.param_names),
        z=(z_sum[keep] / c).astype(np.float32),
        params01=params01[keep],
        descriptors={k: v[keep] / c for k, v in desc_sum.items()},
        clip_ids=list(clip_ids) if clip_ids is not None else [f"clip{i}" for i in range(len(clips))],
        n_failed=int((~keep).sum()),
    )

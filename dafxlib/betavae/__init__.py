"""The spectrogram beta-VAE stage (notebooks 02 and 03): data, training runs, what the latent holds, the beta sweep.

Modules: :mod:`.data` (cached examples of the seen effects and their spectrogram datasets),
:mod:`.train` (one configuration trained or reused under ``build/<profile>/runs/vae``),
:mod:`.probes` (active units, effect probes, mutual information, ELBO terms: the
definitions the report uses), :mod:`.evaluate` (one run measured with them), :mod:`.sweep`
(notebook 03's staged sweep, its selection rule and the ``selected_model.json`` artifact)
and :mod:`.explore` (2-D maps, interpolations, the volume check, parameter sweeps).
"""

from __future__ import annotations

from .data import ProbeData, VAEData, load_probe_data, load_vae_data
from .evaluate import embed_examples, evaluate_run
from .explore import interpolate, param_sweep_latents, render, umap_2d, volume_check
from .probes import (
    ACTIVE_THRESHOLD,
    ProbeResult,
    active_units,
    latent_distance_ratio,
    latent_variances,
    mi_summary,
    mutual_information,
    probe,
    reconstruction_stats,
)
from .sweep import SELECTION_RULE, SweepResult, final_run, run_sweep, save_selected, select_config, sweep_configs
from .train import VAERun, config_name, train_vae, vae_config

__all__ = [
    "ACTIVE_THRESHOLD",
    "ProbeResult",
    "active_units",
    "latent_distance_ratio",
    "latent_variances",
    "mi_summary",
    "mutual_information",
    "probe",
    "reconstruction_stats",
    "ProbeData",
    "SELECTION_RULE",
    "SweepResult",
    "VAEData",
    "VAERun",
    "config_name",
    "embed_examples",
    "evaluate_run",
    "interpolate",
    "load_probe_data",
    "load_vae_data",
    "param_sweep_latents",
    "render",
    "run_sweep",
    "save_selected",
    "final_run",
    "select_config",
    "sweep_configs",
    "train_vae",
    "umap_2d",
    "vae_config",
    "volume_check",
]

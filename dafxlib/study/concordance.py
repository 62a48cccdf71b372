"""Which companion figure regenerates which figure of the study's weekly reports and final evaluation."""

from __future__ import annotations

from typing import NamedTuple

FROM_DATA = "from the study's data"
RERUN = "re-run"
NOT_HERE = "not reproducible here"


class Row(NamedTuple):
    study_figure: str
    figures: tuple[str, ...]  # companion figure names (figures/NAME.png); empty if none
    how: str  # FROM_DATA, RERUN, NOT_HERE or a combination joined by "; "
    note: str


CONCORDANCE: tuple[Row, ...] = (
    Row(
        "Latent embedding of the 4 seen effects, beta 0.05 and 2",
        ("03_umap_by_beta", "02_latent_umap"),
        RERUN,
        "betas from the profile's sweep; the study's VAE embeddings were not published",
    ),
    Row(
        "Latent embedding of 7 effects, beta 0.05 and 2",
        ("03_umap_by_beta", "05_plane_by_effect"),
        RERUN,
        "all nine effects in the right column of 03_umap_by_beta",
    ),
    Row(
        "Latent map of the 6 latent-extraction effects (week 8)",
        ("03_study_latent_umap",),
        FROM_DATA,
        "UMAP of its published per-clip features (pca_features.npy; emb_data.npy is not in its data)",
    ),
    Row(
        "Parameter interpolation, Overdrive and RingMod",
        ("03_param_interp_overdrive", "03_param_interp_ringmod"),
        RERUN,
        "the study published no interpolation data",
    ),
    Row(
        "Domain-colouring pair-plots, Overdrive and RingMod",
        ("03_domain_overdrive", "03_domain_ringmod"),
        RERUN,
        "its 2-D projections per effect, coloured by settings, are drawn from its data in 05_study_projections",
    ),
    Row(
        "Per-effect 2-D projections coloured by settings",
        ("05_study_projections", "05_domain_colouring_overdrive"),
        f"{FROM_DATA}; {RERUN}",
        "10,000 settings per effect in the study, this run's planes beside them",
    ),
    Row("Joint reconstructions", ("02_reconstructions",), RERUN, "no reconstructions were published"),
    Row("Interpolation between effects", ("02_interp_effects",), RERUN, ""),
    Row("Interpolation between sources", ("02_interp_sources",), RERUN, ""),
    Row("Volume check", ("02_volume_check",), RERUN, ""),
    Row(
        "End-to-end training curves",
        ("04_training_spsa", "04_training_regression"),
        f"{RERUN}; {NOT_HERE}",
        "the study's curves lived in its experiment-tracking service and were not published",
    ),
    Row(
        "Latent controller plane and paths",
        ("05_study_controller", "05_path_overdrive", "05_widget_snapshot"),
        f"{FROM_DATA}; {RERUN}",
        "its 1,000 controller points per effect (Overdrive, MultiBand)",
    ),
    Row(
        "MR-STFT box plots",
        ("06_study_mrstft_box", "06_eval_mrstft"),
        f"{FROM_DATA}; {RERUN}",
        "5,000 clips per box in the study",
    ),
    Row("PESQ box plots", ("06_study_pesq_box", "06_eval_pesq"), f"{FROM_DATA}; {RERUN}", ""),
    Row(
        "Wins over do-nothing (12 of 27)",
        ("06_study_wins", "06_eval_wins"),
        f"{FROM_DATA}; {RERUN}",
        "unpaired in the study's data, paired in this run",
    ),
    Row(
        "MUSHRA box plots",
        ("06_study_mushra_box",),
        FROM_DATA,
        "this run has no listeners; dafxlib.study.listening exports a test for it",
    ),
    Row(
        "Expert walk-through box plots",
        ("06_study_expert_box",),
        f"{FROM_DATA}; {NOT_HERE}",
        "a walk-through needs an expert; not re-run",
    ),
)


def markdown(rows: tuple[Row, ...] = CONCORDANCE) -> str:
    """The concordance as a Markdown table."""
    lines = ["| Study figure | Companion figure(s) | Made | Note |", "|---|---|---|---|"]
    for r in rows:
        figs = ", ".join(f"`{f}`" for f in r.figures) or "none"
        lines.append(f"| {r.study_figure} | {figs} | {r.how} | {r.note} |")
    return "\n".join(lines)

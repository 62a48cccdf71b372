"""The latent-control stage: a 2-D control plane per effect (UMAP of setting embeddings), mapped back to knobs.

Pipeline (the study's latent-control stage, notebook 05):

1. :func:`embed_settings` renders ``n_settings`` uniformly random settings of one effect on
   each of ``n_clips`` clean clips (half A) and embeds every (clean, effected) pair with the
   frozen selected encoder; a setting's point is the mean embedding over the clips, so the
   plane describes settings, not clips. Timbral descriptors of the renders (spectral
   centroid, low-frequency energy ratio, RMS; :mod:`dafxlib.metrics`) are kept too.
2. :func:`fit_plane` fits UMAP to 2-D once per effect and builds two maps back from it:

   - **plane -> latent**: ``inverse_transform`` evaluated ONCE on a ``grid x grid`` lattice
     (one batched call for the nodes inside the settings' convex hull; nodes outside, where
     UMAP's inverse is undefined, copy the nearest inside node) and bilinearly interpolated
     (:meth:`LatentPlane.to_latent`). One ``inverse_transform`` call costs seconds even for
     a single point (umap-learn re-triangulates the plane and re-compiles numba code on
     every call), so it is never called per move. This path is for *showing* the latent.
   - **plane -> parameters**: a kernel (Nadaraya-Watson) regression from plane points to the
     true normalised parameters of the embedded settings, Gaussian weights, bandwidth chosen
     by leave-one-out MAE (:class:`KernelDecoder`). It is smooth, deterministic, needs no
     training loop and evaluates one point in microseconds. **The widget uses this path**:
     the latent path would still need a latent -> parameters model (the controller takes
     audio, not a latent) and would add the grid's interpolation error on top.

   **Clamping.** The plane's *support* is the union of discs of radius
   ``support_radius`` (2 x the 90th percentile of nearest-neighbour distances between
   the embedded settings) around the settings' points. A point outside the support is
   pulled straight towards its nearest setting until it lies on that setting's disc
   (:meth:`LatentPlane.clamp`); the mapping is continuous and every embedded setting is
   inside. This is tighter than the convex hull, which would include UMAP's empty gaps
   between clusters where neither map has data.
3. :func:`plane_quality` measures, per effect: smoothness, coverage, round-trip error of
   held-out settings on held-out clips and monotonic descriptor trends along straight paths
   (definitions in the function docstrings).

UMAP's numba JIT (~10-45 s) is paid once per process: fit every effect in one process
(:func:`fit_effects`). Fitted planes are saved as artifacts ``latent/<effect>.npz`` (all
arrays the widget needs) and ``latent/<effect>.pkl`` (the UMAP model, for ``transform`` and
``inverse_transform``).

Modules: :mod:`.embed` (settings rendered and embedded), :mod:`.fit` (the plane, its
inverse maps and clamping), :mod:`.quality` (smoothness, coverage, round trip, trends),
:mod:`.colour` (domain colouring) and :mod:`.stage` (every effect, the notebook's stage
function). ``latent`` elsewhere in the library means the VAE latent; this package is
named for the plane.
"""

from __future__ import annotations

from .colour import domain_colors, domain_image
from .embed import DESCRIPTOR_LABELS, DESCRIPTORS, SettingsEmbedding, descriptors, embed_settings, render
from .fit import KernelDecoder, LatentPlane, fit_joint, fit_plane, load_plane
from .quality import (
    PathProfile,
    coverage,
    default_waypoints,
    descriptor_trends,
    latent_error,
    path_profile,
    plane_quality,
    polyline,
    quality_numbers,
    roundtrip,
    smoothness,
)
from .stage import LatentRun, fit_effects, select_clips, time_inverse_transform

__all__ = [
    "DESCRIPTORS",
    "DESCRIPTOR_LABELS",
    "KernelDecoder",
    "LatentPlane",
    "LatentRun",
    "PathProfile",
    "SettingsEmbedding",
    "coverage",
    "default_waypoints",
    "descriptor_trends",
    "descriptors",
    "domain_colors",
    "domain_image",
    "embed_settings",
    "fit_effects",
    "fit_joint",
    "fit_plane",
    "latent_error",
    "load_plane",
    "path_profile",
    "plane_quality",
    "polyline",
    "quality_numbers",
    "render",
    "roundtrip",
    "select_clips",
    "smoothness",
    "time_inverse_transform",
]

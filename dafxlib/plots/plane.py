"""Figures of notebook 05: control planes, domain colouring, paths, quality and the explorer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .style import EFFECT_COLORS, apply, effect_color, new_figure

if TYPE_CHECKING:
    from ..plane import LatentPlane

SEEN = ("overdrive", "delay", "ringmod", "dynamics")


def _support_image(plane, values: np.ndarray, res: int) -> np.ma.MaskedArray:
    g = plane.dense_grid(res, inside_only=False)
    inside = plane.inside(g)
    return np.ma.masked_array(values.reshape(res, res), ~inside.reshape(res, res))


def _bbox(plane):
    return (plane.lo[0], plane.hi[0], plane.lo[1], plane.hi[1])


def _clean(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="box")


def plot_planes_by_effect(points: np.ndarray, labels: Sequence[str]):
    """One UMAP of every effect's setting embeddings, coloured by effect (seen: dots, unseen: triangles)."""
    fig, axes = new_figure(1, 1, width=6.0, row_height=5.0)
    ax = axes[0, 0]
    lab = np.asarray(labels)
    for key in dict.fromkeys(lab.tolist()):
        m = lab == key
        ax.scatter(
            points[m, 0],
            points[m, 1],
            s=6,
            alpha=0.7,
            color=effect_color(key),
            rasterized=True,
            marker="o" if key in SEEN else "^",
            label=f"{key}{'' if key in SEEN else ' (unseen)'}",
        )
    _clean(ax)
    ax.set_title("settings of every effect in one UMAP of the encoder's embeddings")
    ax.legend(markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def plot_planes_by_parameter(planes: Mapping[str, LatentPlane], *, res: int = 40, max_dots: int = 150, seed: int = 0):
    """Per effect (rows) and parameter (columns): the decoder's parameter field over the
    plane's support (image) with the embedded settings' true values on top (dots, same
    scale; at most ``max_dots`` per effect, a seeded subsample, to keep the figure light)."""
    keys = list(planes)
    ncol = max(planes[k].n_params for k in keys)
    fig, axes = new_figure(len(keys), ncol, width=1.35 * ncol + 0.8, row_height=1.35, constrained_layout=False)
    fig.subplots_adjust(left=0.04, right=0.9, bottom=0.02, top=0.96, wspace=0.12, hspace=0.3)
    im = None
    for r, k in enumerate(keys):
        pl = planes[k]
        g = pl.dense_grid(res, inside_only=False)
        pred = pl.to_params(g, clamp=False)
        sub = np.random.default_rng(seed).permutation(len(pl.points))[:max_dots]
        for c in range(ncol):
            ax = axes[r, c]
            if c >= pl.n_params:
                ax.axis("off")
                continue
            im = ax.imshow(
                _support_image(pl, pred[:, c], res),
                origin="lower",
                extent=_bbox(pl),
                cmap="viridis",
                vmin=0,
                vmax=1,
                alpha=0.75,
                aspect="auto",
                rasterized=True,
                interpolation="nearest",
            )
            ax.scatter(
                pl.points[sub, 0],
                pl.points[sub, 1],
                c=pl.params01[sub, c],
                cmap="viridis",
                vmin=0,
                vmax=1,
                s=3,
                linewidths=0.15,
                edgecolors="k",
                rasterized=True,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(pl.param_names[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(k, color=effect_color(k), fontsize=8)
    if im is not None:
        cax = fig.add_axes([0.92, 0.3, 0.012, 0.4])
        fig.colorbar(im, cax=cax, label="normalised parameter")
    return fig


def plot_domain_colouring(plane, *, max_pairs: int = 4):
    """Left: the plane's settings coloured by an HSV wheel (hue = angle around the centre,
    saturation = radius). Right: parameter pair plots, each setting in its plane colour:
    smooth colour fields there mean nearby plane points have nearby settings."""
    from ..plane import domain_colors, domain_image

    P = plane.n_params
    pairs = [(i, j) for i in range(P) for j in range(i + 1, P)][:max_pairs]
    ncol = 1 + max(1, len(pairs))
    fig, axes = new_figure(1, ncol, width=2.1 * ncol, row_height=2.2)
    img, ext = domain_image(plane, 64)
    ax = axes[0, 0]
    ax.imshow(img, origin="lower", extent=ext, alpha=0.35, aspect="auto", rasterized=True)
    col = domain_colors(plane)
    ax.scatter(plane.points[:, 0], plane.points[:, 1], c=col, s=8, linewidths=0.2, edgecolors="k", rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{plane.effect_key}: plane (colour wheel)")
    for n, (i, j) in enumerate(pairs):
        ax = axes[0, n + 1]
        ax.scatter(
            plane.params01[:, i], plane.params01[:, j], c=col, s=8, linewidths=0.2, edgecolors="k", rasterized=True
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(plane.param_names[i])
        ax.set_ylabel(plane.param_names[j])
    if not pairs:
        axes[0, 1].axis("off")
    return fig


def plot_grid_latent(plane, *, dims: int = 4):
    """The grid latent path: a few latent dimensions from the precomputed inverse_transform
    grid, bilinear-interpolated over the plane (settings' points on top)."""
    D = plane.grid_latent.shape[-1]
    var = plane.z.var(axis=0)
    order = np.argsort(var)[::-1][: min(dims, D)]
    fig, axes = new_figure(1, len(order), width=2.3 * len(order), row_height=2.4)
    ext = (plane.grid_x[0], plane.grid_x[-1], plane.grid_y[0], plane.grid_y[-1])
    for ax, d in zip(axes[0], order):
        ax.imshow(
            plane.grid_latent[..., d], origin="lower", extent=ext, cmap="coolwarm", aspect="auto", rasterized=True
        )
        ax.scatter(
            plane.points[:, 0],
            plane.points[:, 1],
            c=plane.z[:, d],
            cmap="coolwarm",
            s=4,
            linewidths=0.2,
            edgecolors="k",
            rasterized=True,
            vmin=plane.grid_latent[..., d].min(),
            vmax=plane.grid_latent[..., d].max(),
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{plane.effect_key}: latent dim {d}")
    return fig


def plot_spectrogram_grid(plane, updates: Sequence[Any], n: int, sample_rate: int):
    """Spectrograms rendered at an ``n x n`` lattice of plane points (left: where they are)."""
    fig = new_figure(1, 1, width=1.4 * n + 2.6, row_height=1.05 * n)[0]
    fig.clear()
    gs = fig.add_gridspec(n, n + 2)
    axp = fig.add_subplot(gs[:, :2])
    axp.scatter(plane.points[:, 0], plane.points[:, 1], s=4, color="0.6", rasterized=True)
    vmax = max(float(u.spectrogram.max()) for u in updates)
    for idx, u in enumerate(updates):
        r, c = divmod(idx, n)
        axp.plot(*u.requested, "o", mfc="none", mec="0.3", ms=5)
        axp.plot(*u.point, "ks" if not u.clamped else "rs", ms=4)
        axp.annotate(str(idx + 1), u.point, xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax = fig.add_subplot(gs[n - 1 - r, 2 + c])
        dur = len(u.audio) / sample_rate
        ax.imshow(
            _pooled(u.spectrogram),
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=vmax,
            extent=(0, dur, 0, sample_rate / 2000),
            rasterized=True,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{idx + 1}" + (" (clamped)" if u.clamped else ""), fontsize=7)
    axp.set_xticks([])
    axp.set_yticks([])
    axp.set_aspect("equal", adjustable="datalim")
    axp.set_title(f"{updates[0].effect}: lattice (red = clamped)")
    return fig


def _pooled(spec: np.ndarray, max_bins: int = 96, max_frames: int = 96) -> np.ndarray:
    """Max-pool a spectrogram for small panels (keeps figures and notebooks light)."""
    f = max(1, int(np.ceil(spec.shape[0] / max_bins)))
    t = max(1, int(np.ceil(spec.shape[1] / max_frames)))
    F, T = spec.shape[0] // f * f, spec.shape[1] // t * t
    return spec[:F, :T].reshape(F // f, f, T // t, t).max(axis=(1, 3))


def plot_path(plane, prof, *, labels: Sequence[str] = ("A", "C", "B")):
    """The A -> C -> B path: on the plane, the decoded parameters and the renders' descriptors."""
    from ..plane import DESCRIPTOR_LABELS

    names = [d for d in DESCRIPTOR_LABELS if d in prof.descriptors]
    fig, axes = new_figure(1, 2 + len(names), width=2.5 * (2 + len(names)), row_height=2.6)
    ax = axes[0, 0]
    ax.scatter(plane.points[:, 0], plane.points[:, 1], s=4, color="0.7", rasterized=True)
    ax.scatter(prof.points[:, 0], prof.points[:, 1], c=prof.t, cmap="plasma", s=14, zorder=3)
    ax.plot(prof.waypoints[:, 0], prof.waypoints[:, 1], "k--", lw=0.7)
    for w, lab in zip(prof.waypoints, labels):
        ax.annotate(lab, w, fontsize=10, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{plane.effect_key}: path on the plane")
    ax = axes[0, 1]
    for j, name in enumerate(plane.param_names):
        ax.plot(prof.t, prof.params01[:, j], label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("position along path")
    ax.set_title("decoded parameters")
    ax.legend(fontsize=6, frameon=False)
    for ax, name in zip(axes[0, 2:], names):
        ax.plot(prof.t, prof.descriptors[name], "o-", ms=3, color="k")
        ax.set_xlabel("position along path")
        ax.set_title(DESCRIPTOR_LABELS[name])
    cum = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(prof.waypoints, axis=0), axis=1))])
    half = 0.5 * (prof.t[1] - prof.t[0]) if len(prof.t) > 1 else 0.0
    for ax in axes[0, 1:]:
        for v in cum / max(cum[-1], 1e-12):
            ax.axvline(v, color="0.8", lw=0.6)
        for tc in prof.t[prof.clamped]:  # stretches outside the support (clamped)
            ax.axvspan(tc - half, tc + half, color="0.9", lw=0, zorder=0)
    if prof.clamped.any():
        axes[0, 0].scatter(
            prof.points[prof.clamped, 0],
            prof.points[prof.clamped, 1],
            marker="x",
            color="k",
            s=16,
            zorder=4,
            label="clamped",
        )
        axes[0, 0].legend(frameon=False, fontsize=7, loc="best")
    return fig


def plot_quality(quality: Mapping[str, Mapping[str, float]]):
    """Per effect: smoothness, coverage, round-trip MAE vs the mean-setting baseline and
    the descriptor trend rhos."""
    keys = list(quality)
    x = np.arange(len(keys))
    cols = [effect_color(k) for k in keys]
    fig, axes = new_figure(1, 4, width=13.0, row_height=2.8)
    g = lambda m: np.array([quality[k].get(m, np.nan) for k in keys], dtype=float)  # noqa: E731
    axes[0, 0].bar(x, g("smoothness"), color=cols)
    axes[0, 0].set_title("smoothness\n(|dp| per plane extent, lower = smoother)")
    axes[0, 1].bar(x, g("coverage"), color=cols)
    axes[0, 1].set_ylim(0, 1)
    axes[0, 1].set_title("coverage\n(share of each knob's range reached)")
    axes[0, 2].bar(x - 0.2, g("roundtrip_mae"), 0.4, color=cols, label="plane round trip")
    axes[0, 2].bar(x + 0.2, g("roundtrip_mae_baseline"), 0.4, color="0.75", label="mean setting")
    axes[0, 2].set_title("held-out parameter MAE\n(lower = better)")
    axes[0, 2].legend(frameon=False, fontsize=7)
    for j, (m, lab) in enumerate((("rho_centroid", "centroid"), ("rho_lowfreq", "low-freq ratio"), ("rho_rms", "RMS"))):
        axes[0, 3].bar(x + (j - 1) * 0.27, g(m), 0.27, label=lab)
    axes[0, 3].set_ylim(-1.05, 1.05)
    axes[0, 3].axhline(0, color="k", lw=0.5)
    axes[0, 3].set_title("descriptor trend along straight paths\n(Spearman rho)")
    axes[0, 3].legend(frameon=False, fontsize=7)
    for ax in axes[0]:
        ax.set_xticks(x)
        ax.set_xticklabels(keys, rotation=60, fontsize=7)
    return fig


def plot_latency(latency: Mapping[str, Any], inverse_ms: float, *, target_ms: float = 100.0):
    """Per-move latency (map + render + spectrogram) against one UMAP inverse_transform call."""
    fig, axes = new_figure(1, 1, width=6.0, row_height=2.6)
    ax = axes[0, 0]
    ms = np.asarray(latency["all_ms"], dtype=float)
    bins = np.logspace(np.log10(max(ms.min() * 0.8, 0.1)), np.log10(max(inverse_ms, ms.max()) * 1.3), 40)
    ax.hist(ms, bins=bins, color="#1f77b4", label=f"explorer move (median {np.median(ms):.0f} ms)")
    ax.axvline(inverse_ms, color="#d62728", lw=2, label=f"one inverse_transform call ({inverse_ms:.0f} ms)")
    ax.axvline(target_ms, color="k", ls=":", label=f"target {target_ms:.0f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.set_ylabel("moves")
    ax.legend(frameon=False, fontsize=7)
    return fig


class ExplorerFigure:
    """The explorer's figure: plane (left), parameter bars (middle), spectrogram (right).

    Used live by :class:`dafxlib.widgets.Explorer` (ipympl canvas, ``blit=True``) and for
    the static snapshot (``blit=False``). :meth:`update` only changes existing artists.
    With ``blit`` the static part (axes, ticks, labels, the plane's colour wheel and dots)
    is drawn once and cached; a move restores it and redraws only the marker, bars, values
    and spectrogram (matplotlib's blitting recipe), because a full redraw of this figure
    costs a few hundred ms of text layout on a busy 2-core CPU."""

    def __init__(self, fig, surface, *, blit: bool = False):
        self.fig = fig
        self.surface = surface
        self.blit = bool(blit)
        self._bg = None
        if self.blit:
            fig.canvas.mpl_connect("draw_event", self._on_draw)
        self.rebuild()

    def rebuild(self) -> None:
        from ..plane import domain_image
        from ..spectrogram import spectrum_image

        apply()
        s, pl = self.surface, self.surface.plane
        self.effect = s.key
        self._bg = None
        self.fig.clear()
        # fixed margins (no layout engine: the blitted background must not move) that keep
        # every title, tick label and axis label inside the canvas
        gs = self.fig.add_gridspec(
            1, 3, width_ratios=[1.15, 0.85, 1.5], wspace=0.42, left=0.015, right=0.985, bottom=0.16, top=0.88
        )
        ax = self.ax_plane = self.fig.add_subplot(gs[0])
        img, ext = domain_image(pl, 96)
        ax.imshow(img, origin="lower", extent=ext, alpha=0.3, aspect="auto", zorder=0, interpolation="nearest")
        ax.scatter(pl.points[:, 0], pl.points[:, 1], s=3, color="0.35", alpha=0.5, zorder=1)
        pad = 0.08 * (pl.hi - pl.lo)
        ax.set_xlim(pl.lo[0] - pad[0], pl.hi[0] + pad[0])
        ax.set_ylim(pl.lo[1] - pad[1], pl.hi[1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{s.effect.name}: click or drag", fontsize=9, color=effect_color(s.key))
        (self.path_line,) = ax.plot([], [], "k--", lw=0.8, zorder=2)
        self.a_txt = ax.text(0, 0, "A", fontsize=9, fontweight="bold", zorder=4)
        self.b_txt = ax.text(0, 0, "B", fontsize=9, fontweight="bold", zorder=4)
        (self.req_marker,) = ax.plot([], [], "o", mfc="none", mec="#d62728", ms=9, zorder=4)
        (self.marker,) = ax.plot([], [], "X", color="k", mec="w", ms=11, zorder=5)
        self.set_path(s.a, s.b, draw=False)
        ax = self.ax_bars = self.fig.add_subplot(gs[1])
        names = pl.param_names
        self.bars = list(ax.barh(np.arange(len(names)), np.zeros(len(names)), color=effect_color(s.key)))
        ax.set_yticks(np.arange(len(names)))
        ax.set_yticklabels(names, fontsize=8)
        ax.tick_params(axis="y", length=0, pad=3)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("normalised value")
        # raw values sit beside the bar's end (inside it when the bar is long), on a light box
        self.bar_txt = [
            ax.text(
                0.03,
                i,
                "",
                va="center",
                fontsize=7,
                zorder=3,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
            for i in range(len(names))
        ]
        ax = self.ax_spec = self.fig.add_subplot(gs[2])
        sr = s.sample_rate
        shape = spectrum_image(np.zeros(len(s.audio), np.float32), s.n_fft, s.hop).shape
        self.spec_img = ax.imshow(
            np.zeros(shape),
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, len(s.audio) / sr, 0, sr / 2000),
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        self.spec_txt = ax.text(1.0, 1.02, "", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("kHz")
        self._dynamic = [self.spec_img, self.marker, self.req_marker, *self.bars, *self.bar_txt, self.spec_txt]
        for a in self._dynamic:
            a.set_animated(self.blit)

    def _on_draw(self, event) -> None:
        """After a full draw: cache the static background, then draw the moving parts."""
        self._bg = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self._draw_dynamic()

    def _draw_dynamic(self) -> None:
        for a in self._dynamic:
            self.fig.draw_artist(a)

    def set_path(self, a, b, *, draw: bool = True) -> None:
        self.path_line.set_data([a[0], b[0]], [a[1], b[1]])
        self.a_txt.set_position(a)
        self.b_txt.set_position(b)
        if draw:
            self._bg = None  # the path is part of the cached background: redraw it all
            self.fig.canvas.draw_idle()

    def update(self, u) -> None:
        if u.effect != self.effect:
            self.rebuild()
        self.marker.set_data([u.point[0]], [u.point[1]])
        self.req_marker.set_data(([u.requested[0]], [u.requested[1]]) if u.clamped else ([], []))
        for bar, txt, v, raw in zip(self.bars, self.bar_txt, u.params01, u.raw_params.values()):
            bar.set_width(float(v))
            txt.set_text(f"{raw:.3g}")
            txt.set_x(float(v) + 0.03 if v < 0.6 else float(v) - 0.03)
            txt.set_horizontalalignment("left" if v < 0.6 else "right")
        sr = self.surface.sample_rate
        full = self.spec_img.get_array().shape != u.spectrogram.shape
        if full:  # another clip length: new extent, new ticks, so a full redraw
            self.spec_img.set_extent((0, len(u.audio) / sr, 0, sr / 2000))
            self._bg = None
        self.spec_img.set_data(u.spectrogram)
        self.spec_img.set_clim(0, float(u.spectrogram.max()) or 1.0)
        where = f"t = {u.t:.2f}, " if u.t is not None else ""
        self.spec_txt.set_text(f"{where}{self.surface.clip_id}" + (" (clamped)" if u.clamped else ""))
        canvas = self.fig.canvas
        if self.blit and self._bg is not None:
            canvas.restore_region(self._bg)
            self._draw_dynamic()
            canvas.blit(self.fig.bbox)
        else:
            canvas.draw_idle()


def explorer_snapshot(surface, update=None, *, figsize=(10.0, 3.4)):
    """A static figure of the explorer at ``update`` (default: the surface's last move)."""
    fig, _ = new_figure(1, 1, width=figsize[0], row_height=figsize[1], constrained_layout=False)
    view = ExplorerFigure(fig, surface)
    view.update(update if update is not None else surface.last)
    return fig


__all__ = [
    "plot_planes_by_effect",
    "plot_planes_by_parameter",
    "plot_domain_colouring",
    "plot_grid_latent",
    "plot_spectrogram_grid",
    "plot_path",
    "plot_quality",
    "plot_latency",
    "ExplorerFigure",
    "explorer_snapshot",
    "EFFECT_COLORS",
]

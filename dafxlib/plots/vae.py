"""Figures of notebooks 02 (VAE training) and 03 (beta tuning)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .style import effect_color, new_figure

__all__ = [
    "loss_curves",
    "reconstructions",
    "latent_scatter",
    "umap_figure",
    "umap_grid",
    "interpolation_figure",
    "volume_figure",
    "param_sweep_figure",
    "domain_pairplot",
    "sweep_table_figure",
    "sweep_summary_figure",
    "domain_colors",
]


def _img(ax, im, title=None, vmin=-3, vmax=3):
    ax.imshow(
        np.asarray(im), origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma", interpolation="nearest"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def loss_curves(history: Sequence[Mapping[str, float]], title: str = ""):
    """Reconstruction and KL per training step (light) with validation per epoch (dots)."""
    fig, axes = new_figure(1, 2, width=8.0, row_height=2.8)
    train = [r for r in history if "train_recon" in r]
    val = [r for r in history if "val_recon" in r]
    for ax, key, label in ((axes[0, 0], "recon", "reconstruction (MSE / pixel)"), (axes[0, 1], "kl", "KL")):
        if train:
            s = np.array([r["step"] for r in train])
            v = np.array([r[f"train_{key}"] for r in train])
            ax.plot(s, v, color="#1f77b4", alpha=0.35, lw=0.8, label="train (step)")
            k = max(1, len(v) // 30)
            if k > 1:
                sm = np.convolve(v, np.ones(k) / k, mode="valid")
                ax.plot(s[k - 1 :], sm, color="#1f77b4", lw=1.5, label=f"train ({k}-step mean)")
        if val:
            ax.plot(
                [r["step"] for r in val],
                [r[f"val_{key}"] for r in val],
                "o-",
                color="#d62728",
                ms=3,
                label="validation (epoch)",
            )
        ax.set_xlabel("optimiser step")
        ax.set_title(label)
        if key == "kl" and train and "beta" in train[0]:
            tw = ax.twinx()
            tw.plot([r["step"] for r in train], [r["beta"] for r in train], color="#7f7f7f", ls="--", lw=1)
            tw.set_ylabel("beta (schedule)", color="#7f7f7f")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def reconstructions(rows: Sequence[Mapping[str, Any]]):
    """One row per example: clean in / out, effected in / out, with per-channel MSE.

    Each row: ``{"effect", "input" (2, F, T), "recon" (2, F, T)}`` in normalised units.
    """
    fig, axes = new_figure(len(rows), 4, width=8.5, row_height=1.7)
    for i, r in enumerate(rows):
        inp, rec = np.asarray(r["input"]), np.asarray(r["recon"])
        err = ((inp - rec) ** 2).reshape(2, -1).mean(1)
        _img(axes[i, 0], inp[0], "clean x (input)" if i == 0 else None)
        _img(axes[i, 1], rec[0], None)
        axes[i, 1].set_title(f"clean recon  MSE {err[0]:.3f}", fontsize=8)
        _img(axes[i, 2], inp[1], "effected y (input)" if i == 0 else None)
        _img(axes[i, 3], rec[1], None)
        axes[i, 3].set_title(f"effected recon  MSE {err[1]:.3f}", fontsize=8)
        axes[i, 0].set_ylabel(r["effect"], color=effect_color(r["effect"]))
    return fig


def latent_scatter(
    ax,
    xy: np.ndarray,
    labels: Sequence[str],
    seen: Sequence[str] = (),
    title: str = "",
    legend: bool = True,
    s: float = 6,
):
    xy = np.asarray(xy)
    lab = np.asarray(labels)
    for k in dict.fromkeys(lab.tolist()):
        m = lab == k
        unseen = bool(seen) and k not in seen
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=s if not unseen else s * 1.6,
            c=effect_color(k),
            marker="x" if unseen else "o",
            alpha=0.7,
            linewidths=0.8,
            label=f"{k}{' (unseen)' if unseen else ''}",
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=6, markerscale=1.5, loc="best", frameon=False)


def umap_figure(xy4, labels4, xy9, labels9, seen: Sequence[str], title: str = ""):
    """Two panels: UMAP of the seen effects, and of all nine (unseen marked x)."""
    fig, axes = new_figure(1, 2, width=9.0, row_height=4.0)
    latent_scatter(axes[0, 0], xy4, labels4, seen, f"{len(set(labels4))} seen effects")
    latent_scatter(axes[0, 1], xy9, labels9, seen, f"all {len(set(labels9))} effects (x = unseen)")
    if title:
        fig.suptitle(title)
    return fig


def umap_grid(panels: Sequence[Mapping[str, Any]], seen: Sequence[str]):
    """Rows of (4-effect, 9-effect) UMAPs, one row per config: ``{"title", "xy4", "labels4", "xy9", "labels9"}``."""
    fig, axes = new_figure(len(panels), 2, width=8.5, row_height=3.2)
    for i, p in enumerate(panels):
        latent_scatter(axes[i, 0], p["xy4"], p["labels4"], seen, f"{p['title']}: seen", legend=i == 0)
        latent_scatter(axes[i, 1], p["xy9"], p["labels9"], seen, f"{p['title']}: all", legend=i == 0)
    return fig


def interpolation_figure(
    images, t: Sequence[float], title: str = "", channel: int = 1, ends: tuple[str, str] = ("A", "B")
):
    """Decoded spectrograms (one channel) along a latent line; t = 0 is ``ends[0]``."""
    images = np.asarray(images)
    fig, axes = new_figure(2, len(t), width=1.3 * len(t) + 1, row_height=1.6)
    for j, a in enumerate(t):
        _img(axes[0, j], images[j, 0], f"t={a:.2f}")
        _img(axes[1, j], images[j, channel], None)
    axes[0, 0].set_ylabel("clean")
    axes[1, 0].set_ylabel("effected")
    fig.suptitle(title or f"decoded interpolation {ends[0]} -> {ends[1]}")
    return fig


def volume_figure(result: Mapping[str, Any]):
    """Latent distance: same pair at several gains vs. same clip under different effects."""
    fig, axes = new_figure(1, 2, width=8.0, row_height=2.6)
    ax = axes[0, 0]
    ax.bar(
        ["same pair,\nother gains", "same clip,\nother effects"],
        [result["within"], result["across"]],
        color=["#7f7f7f", "#1f77b4"],
    )
    ax.set_ylabel("mean pairwise latent distance")
    ax.set_title(f"ratio {result['ratio']:.3f}")
    ax = axes[0, 1]
    ax.plot(result["gains_db"], result["shift_by_gain"], "o-")
    ax.axhline(result["across"], color="#1f77b4", ls="--", lw=1, label="typical distance between effects")
    ax.set_xlabel("gain applied to the pair (dB)")
    ax.set_ylabel("latent shift from 0 dB")
    ax.legend(fontsize=7)
    return fig


def param_sweep_figure(latents: Mapping[str, np.ndarray], effect: str):
    """One colour map per parameter: latent dims (rows) over 20 swept values (columns)."""
    names = list(latents)
    fig, axes = new_figure(1, len(names), width=max(6.0, 2.0 * len(names)), row_height=2.6)
    for j, n in enumerate(names):
        z = np.asarray(latents[n]).T  # (D, n_values)
        lim = max(1e-6, float(np.abs(z).max()))
        ax = axes[0, j]
        ax.imshow(
            z,
            aspect="auto",
            cmap="coolwarm",
            vmin=-lim,
            vmax=lim,
            origin="lower",
            extent=(0, 1, -0.5, z.shape[0] - 0.5),
            interpolation="nearest",
        )
        ax.set_title(n, fontsize=8)
        ax.set_xlabel(f"{n} (normalised)")
        if j == 0:
            ax.set_ylabel("latent dim")
    fig.suptitle(f"{effect}: mean latent while one parameter sweeps 0..1 (others 0.5)")
    return fig


def domain_colors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2-D colour map of two [0,1] values: hue from ``a``, lightness from ``b`` -> (N, 3) RGB."""
    import matplotlib.colors as mcolors

    a, b = np.clip(np.asarray(a, float), 0, 1), np.clip(np.asarray(b, float), 0, 1)
    hsv = np.stack([0.85 * a, np.full_like(a, 0.85), 0.35 + 0.6 * b], 1)
    return mcolors.hsv_to_rgb(hsv)


def domain_pairplot(
    z: np.ndarray, p: np.ndarray, param_names: Sequence[str], dims: Sequence[int], pair: tuple[int, int], effect: str
):
    """Lower-triangle pair-plot of latent ``dims``, points domain-coloured by two parameters."""
    z, p = np.asarray(z), np.asarray(p)
    k = len(dims)
    cols = domain_colors(p[:, pair[0]], p[:, pair[1]])
    fig, axes = new_figure(k, k, width=1.9 * k + 1.2, row_height=1.9)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(z[:, dims[i]], bins=25, color="#999999")
            else:
                ax.scatter(z[:, dims[j]], z[:, dims[i]], c=cols, s=5)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == k - 1:
                ax.set_xlabel(f"z{dims[j]}")
            if j == 0:
                ax.set_ylabel(f"z{dims[i]}")
    # colour key in the empty upper-right corner
    if k >= 2:
        key = axes[0, k - 1]
        key.axis("on")
        g = np.linspace(0, 1, 32)
        A, B = np.meshgrid(g, g)
        key.imshow(domain_colors(A.ravel(), B.ravel()).reshape(32, 32, 3), origin="lower", extent=(0, 1, 0, 1))
        key.set_xlabel(param_names[pair[0]], fontsize=7)
        key.set_ylabel(param_names[pair[1]], fontsize=7)
        key.set_xticks([0, 1])
        key.set_yticks([0, 1])
        key.set_title("colour key", fontsize=7)
    fig.suptitle(f"{effect}: latent pair-plot, colour = ({param_names[pair[0]]}, {param_names[pair[1]]})")
    return fig


def sweep_table_figure(
    table,
    columns: Sequence[str] = (
        "mode",
        "beta",
        "latent_dim",
        "recon",
        "recon_effected",
        "kl",
        "active_units",
        "probe_seen",
        "probe_unseen",
        "mi_mean",
    ),
    selected: str | None = None,
):
    """The sweep comparison table drawn as a figure (selected row highlighted)."""
    cols = [c for c in columns if c in table.columns]
    cells = []
    for _, r in table[cols].iterrows():
        row = []
        for c in cols:
            v = r[c]
            if isinstance(v, (float, np.floating)):
                row.append(f"{v:.3g}" if c == "beta" else f"{v:.3f}")
            else:
                row.append(str(v))
        cells.append(row)
    fig, axes = new_figure(1, 1, width=1.0 * len(cols) + 2.2, row_height=0.32 * (len(table) + 2))
    ax = axes[0, 0]
    ax.axis("off")
    tab = ax.table(cellText=cells, colLabels=cols, rowLabels=list(table.index), loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    tab.scale(1.0, 1.25)
    if selected is not None and selected in list(table.index):
        i = list(table.index).index(selected) + 1
        for j in range(-1, len(cols)):
            if (i, j) in tab.get_celld():
                tab[i, j].set_facecolor("#fff2a8")
    return fig


def sweep_summary_figure(table):
    """Probe accuracy, active units and reconstruction against beta, one line per mode/latent."""
    fig, axes = new_figure(1, 3, width=10.0, row_height=2.8)
    for (mode, z), g in table.groupby(["mode", "latent_dim"]):
        g = g.sort_values("beta")
        lab = f"{mode}, z={z}"
        axes[0, 0].plot(g["beta"], g["probe_seen"], "o-", label=lab)
        if "probe_unseen" in g:
            axes[0, 0].plot(g["beta"], g["probe_unseen"], "x--", color=axes[0, 0].lines[-1].get_color())
        axes[0, 1].plot(g["beta"], g["active_units"], "o-", label=lab)
        axes[0, 2].plot(g["beta"], g["recon"], "o-", label=lab)
    for ax, t in zip(axes[0], ("probe accuracy (o seen, x unseen)", "active units", "recon (MSE / pixel)")):
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.set_title(t)
    axes[0, 0].legend(fontsize=7)
    return fig

"""Figures of notebook 01 (the corpus): overview and example spectrograms."""

from __future__ import annotations

import numpy as np

from ..corpus import KINDS, ROLES, SPLITS, Clip, Corpus
from ..metrics import spectral_centroid
from .style import new_figure

KIND_COLORS = {"speech": "#1f77b4", "music": "#ff7f0e"}
ROLE_COLORS = {"seen_speech": "#1f77b4", "unseen_speech": "#9ecae1", "music": "#ff7f0e", "user": "#2ca02c"}


def _label(corpus: Corpus) -> str:
    return "SYNTHETIC corpus" if corpus.synthetic else "corpus of real recordings"


def corpus_overview(corpus: Corpus):
    """Counts per split and kind, minutes per role, loudness and brightness distributions."""
    fig, axes = new_figure(2, 2, width=8.0, row_height=2.8)
    (ax_n, ax_t), (ax_l, ax_c) = axes
    s = corpus.summary()
    x = np.arange(len(SPLITS))
    w = 0.38
    for j, k in enumerate(KINDS):
        seen = [sum(c.kind == k and c.split == sp and c.role != "unseen_speech" for c in corpus.clips) for sp in SPLITS]
        unseen = [
            sum(c.kind == k and c.split == sp and c.role == "unseen_speech" for c in corpus.clips) for sp in SPLITS
        ]
        ax_n.bar(x + (j - 0.5) * w, seen, w, color=KIND_COLORS[k], label=k)
        if any(unseen):
            ax_n.bar(
                x + (j - 0.5) * w,
                unseen,
                w,
                bottom=seen,
                color=ROLE_COLORS["unseen_speech"],
                hatch="//",
                edgecolor="white",
                label="unseen speech",
            )
    ax_n.set_xticks(x, SPLITS)
    ax_n.set_ylabel("clips")
    ax_n.set_title("clips per split (file-level splits)")
    ax_n.legend(frameon=False)

    roles = [r for r in ROLES if s["by_role"][r]]
    minutes = [s["by_role"][r] * s["clip_seconds"] / 60 for r in roles]
    ax_t.barh(roles, minutes, color=[ROLE_COLORS[r] for r in roles])
    for i, m in enumerate(minutes):
        ax_t.text(m, i, f" {m:.1f} min", va="center", fontsize=8)
    ax_t.set_xlabel("minutes of audio")
    ax_t.set_title(f"speech/music balance ({s['clip_seconds']:.2f} s clips)")
    ax_t.set_xlim(0, max(minutes + [1e-3]) * 1.35)

    bins = np.linspace(
        min([c.meta.get("lufs", -30) for c in corpus.clips] + [-30]) - 1,
        max([c.meta.get("lufs", -16) for c in corpus.clips] + [-16]) + 1,
        25,
    )
    for k in KINDS:
        vals = [c.meta["lufs"] for c in corpus.clips if c.kind == k and "lufs" in c.meta]
        if vals:
            ax_l.hist(vals, bins=bins, alpha=0.6, color=KIND_COLORS[k], label=f"{k} (mean {np.mean(vals):.1f})")
    ax_l.set_xlabel("integrated loudness (LUFS)")
    ax_l.set_ylabel("clips")
    ax_l.set_title("loudness after normalisation")
    ax_l.legend(frameon=False)

    for k in KINDS:
        clips = [c for c in corpus.clips if c.kind == k]
        vals = [float(spectral_centroid(c.audio, c.sample_rate)[0]) for c in clips]
        if vals:
            ax_c.hist(vals, bins=25, alpha=0.6, color=KIND_COLORS[k], label=k)
    ax_c.set_xlabel("spectral centroid (Hz)")
    ax_c.set_ylabel("clips")
    ax_c.set_title("brightness")
    ax_c.legend(frameon=False)
    fig.suptitle(
        f"{_label(corpus)} - profile {corpus.profile}: {s['n_clips']} clips, "
        f"{s['total_seconds'] / 60:.1f} min at {corpus.sample_rate} Hz"
    )
    return fig


def pick_examples(corpus: Corpus, n: int = 4, seed: int = 0) -> list[Clip]:
    """A few clips for listening: alternating speech/music (unseen speech included if present)."""
    rng = np.random.default_rng(seed)
    groups = [
        corpus.select(role="seen_speech"),
        corpus.select(kind="music"),
        corpus.select(role="unseen_speech"),
        corpus.select(role="user"),
    ]
    groups = [g for g in groups if g]
    picked: list[Clip] = []
    i = 0
    while len(picked) < min(n, len(corpus.clips)) and groups:
        g = groups[i % len(groups)]
        choices = [c for c in g if c not in picked]
        if choices:
            picked.append(choices[int(rng.integers(len(choices)))])
        else:
            groups.remove(g)
            continue
        i += 1
    return picked


def _describe_clip(c: Clip) -> str:
    m = c.meta
    if m.get("engine") == "espeak-ng":
        return f"voice {m.get('voice')} {m.get('rate_wpm')} wpm"
    if m.get("parts"):
        return f"{'+'.join(m['parts'])}, {m.get('tempo', 0):.0f} bpm {m.get('key', '')} {m.get('scale', '')}"
    return m.get("speaker") or m.get("track") or m.get("file") or c.source


def example_clips(corpus: Corpus, n: int = 4, seed: int = 0, n_fft: int = 1024, hop: int = 256):
    """Log spectrograms of ``n`` example clips; the dashed line separates half A from half B."""
    from scipy.signal import stft

    clips = pick_examples(corpus, n, seed)
    rows = max(1, int(np.ceil(len(clips) / 2)))
    fig, axes = new_figure(rows, 2, width=8.0, row_height=2.4)
    for ax in axes.ravel()[len(clips) :]:
        ax.axis("off")
    for ax, c in zip(axes.ravel(), clips):
        f, t, Z = stft(c.audio, fs=c.sample_rate, nperseg=n_fft, noverlap=n_fft - hop)
        db = 20 * np.log10(np.abs(Z) + 1e-7)
        ax.pcolormesh(t, f / 1000, db, vmin=db.max() - 80, vmax=db.max(), shading="auto", rasterized=True)
        ax.axvline(c.half_samples / c.sample_rate, color="white", ls="--", lw=1)
        ax.text(0.02, 0.93, "A", color="white", transform=ax.transAxes, va="top", fontweight="bold")
        ax.text(0.52, 0.93, "B", color="white", transform=ax.transAxes, va="top", fontweight="bold")
        tag = "SYNTHETIC " if c.synthetic else ""
        ax.set_title(f"{tag}{c.kind} [{c.split}] {c.id}\n{_describe_clip(c)}", fontsize=8)
        ax.set_ylabel("kHz")
        ax.set_xlabel("s")
    fig.suptitle(f"example clips ({_label(corpus)})")
    return fig


__all__ = ["corpus_overview", "example_clips", "pick_examples"]

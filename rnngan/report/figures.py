"""The report's figures: per-seed metrics, sample grids, losses, histograms and spectra.

Each figure is drawn from numbers the compare and analyze stages wrote; nothing is computed
here but the layout. The held-out real row is in every one: a line, a fill or the first grid.

Sizes: the figures are committed with every run and embedded in report.html, so each format is
chosen for its content. Sample grids are JPEG (quality 85, no chroma subsampling: at 32 px a
face's mouth is two pixels, and 4:2:0 smears its colour), at one pixel per generated pixel: a
quarter of the doubled PNG's bytes (about 40 KB for 64 faces of 32 px against 150 KB). Plots are
PNG with a 256-colour palette: flat colours and anti-aliased lines, a third of the bytes of
matplotlib's RGBA, no visible change.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from rnngan.metrics.histograms import CHANNELS, HSV_CHANNELS, bin_centres, hue_bin_centres

# The per-seed panels: metric, axis label, scale, whether lower is better.
SEED_PANELS = (("fid", "FID", 1.0, True), ("kid", "KID ×10⁻³", 1000.0, True),
               ("recall", "recall", 1.0, False), ("coverage", "coverage", 1.0, False))
DPI = 90
JPEG_QUALITY = 85
SAMPLES_FIGURE = "samples.jpg"      # the held-out real grid and every variant's median seed, side by side


def samples_file(run: str) -> str:
    """The figure of one run's sample grid (or the held-out real row's)."""
    return f"samples_{run}.jpg"


def write_jpeg(rgb: np.ndarray, out: Path) -> None:
    """uint8 H x W x 3 RGB as JPEG at JPEG_QUALITY, 4:4:4."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise RuntimeError(f"could not encode {out}")
    out.write_bytes(data.tobytes())


def save_plot(fig, out: Path) -> None:
    """A matplotlib figure as a 256-colour PNG on white."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    image = Image.open(buf).convert("RGB")
    # note: the fast octree keeps each line's colour; median cut merged two variants' at 64 colours
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)


def _variant_tick(variant: str) -> str:
    """A variant as an axis label: a pair `<G>+<D>` on two lines, G above."""
    return variant.replace("+", "\n+")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def seeds_figure(comparison: dict, out: Path) -> None:
    """Per-seed FID, KID, recall and coverage of every variant: one point per seed, the mean as
    a bar, the held-out real row as a dashed line (the floor or the ceiling at this sample size)."""
    plt, sns = pyplot()
    rows = [{"variant": r["variant"], "seed": r["seed"], **{k: r[k] for k, *_ in SEED_PANELS}}
            for r in comparison["runs"].values()]
    df = pd.DataFrame(rows)
    order = comparison["variants"]
    fig, axes = plt.subplots(1, len(SEED_PANELS), figsize=(4.2 * len(SEED_PANELS), 3.9))
    for ax, (key, label, scale, lower) in zip(axes, SEED_PANELS):
        d = df.assign(value=df[key] * scale)
        sns.stripplot(data=d, x="variant", y="value", hue="seed", order=order, ax=ax, size=7, jitter=0.12,
                      palette="deep", legend=key == "fid")
        sns.pointplot(data=d, x="variant", y="value", order=order, ax=ax, errorbar=None, color="black",
                      markers="_", markersize=18, linestyle="none")
        real = scale * (max(0.0, comparison["real"][key]) if lower else comparison["real"][key])   # KID >= 0
        ax.axhline(real, color="0.35", linestyle="--", linewidth=1.2)
        ax.annotate("real", xy=(1.0, real), xycoords=("axes fraction", "data"),
                    xytext=(-2, 3), textcoords="offset points", ha="right", fontsize=8, color="0.35")
        ax.set_title(f"{label} {'↓' if lower else '↑'}")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticks(range(len(order)), [_variant_tick(v) for v in order],
                      rotation=45 if len(order) > 5 else 0, ha="right" if len(order) > 5 else "center")
    if axes[0].get_legend() is not None:
        axes[0].legend(title="seed", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    save_plot(fig, out)
    plt.close(fig)


def samples_canvas(grids: dict[str, np.ndarray], labels: dict[str, str], per_row: int = 3) -> np.ndarray:
    """The sample grids side by side, each under its label, at one pixel per generated pixel: one
    image, so a page that shrinks it to fit shrinks every grid alike."""
    import cv2

    side = max(max(g.shape[:2]) for g in grids.values())
    label_h, gap = 28, 12
    tiles = []
    for name, g in grids.items():
        tile = np.full((label_h + side, side, 3), 255, np.uint8)
        tile[label_h:label_h + g.shape[0], :g.shape[1]] = g
        cv2.putText(tile, labels.get(name, name), (2, label_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    column_gap = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    rows = [np.hstack([x for t in tiles[r:r + per_row] for x in (t, column_gap)][:-1])
            for r in range(0, len(tiles), per_row)]
    row_gap = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([x for r in rows for x in (r, row_gap)][:-1])


def samples_figure(grids: dict[str, np.ndarray], labels: dict[str, str], out: Path, per_row: int = 3) -> None:
    """`samples_canvas` as JPEG."""
    write_jpeg(samples_canvas(grids, labels, per_row), out)


def losses_figure(losses: dict[str, pd.DataFrame], variant_of: dict[str, str], out: Path) -> None:
    """D and G losses and D's outputs per step: per variant, the mean over its seeds with the
    band of their spread (seaborn's 95% interval of the mean)."""
    plt, sns = pyplot()
    frame = pd.concat([df.assign(variant=variant_of[run], run=run) for run, df in losses.items()])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (col, title) in zip(axes, [("loss_d", "discriminator loss"), ("loss_g", "generator loss"),
                                       ("d_real", "D(x) (solid) and D(G(z)) (dashed)")]):
        sns.lineplot(data=frame, x="step", y=col, hue="variant", ax=ax, linewidth=1.2)
        if col == "d_real":
            sns.lineplot(data=frame, x="step", y="d_fake", hue="variant", ax=ax, linewidth=1.2,
                         linestyle="--", legend=False)
            ax.set_ylabel("probability")
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, title="variant", loc="center right", frameon=False)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    save_plot(fig, out)
    plt.close(fig)


def distribution_figures(metrics: dict[str, dict], real: dict, figures: Path) -> None:
    """Histograms (grey, RGB; hue, saturation) and power spectra of one run per variant (its
    median seed) over the real images' (filled or black), and the held-out real row's (dotted)."""
    plt, sns = pyplot()
    first = real["histograms"]
    centres = bin_centres(first["bins"])
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8), sharex=True)
    for ax, channel in zip(axes, CHANNELS):
        ax.fill_between(centres, first["real"][channel], color="0.8", label="reference")
        ax.plot(centres, first["generated"][channel], color="0.3", linestyle=":", linewidth=1.4, label="held-out real")
        for name, m in metrics.items():
            ax.plot(centres, m["histograms"]["generated"][channel], linewidth=1.2, label=name)
        ax.set_title(f"{channel} histogram")
        ax.set_xlim(0, 255)
        ax.set_xlabel("intensity")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_plot(fig, figures / "histograms.png")
    plt.close(fig)

    hsv = real["hsv_histograms"]
    axes_x = {"hue": hue_bin_centres(hsv["bins"]), "saturation": bin_centres(hsv["bins"])}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, channel in zip(axes, HSV_CHANNELS):
        x = axes_x[channel]
        ax.fill_between(x, hsv["real"][channel], color="0.8", label="reference")
        ax.plot(x, hsv["generated"][channel], color="0.3", linestyle=":", linewidth=1.4, label="held-out real")
        for name, m in metrics.items():
            ax.plot(x, m["hsv_histograms"]["generated"][channel], linewidth=1.2, label=name)
        ax.set_title(f"{channel} histogram" + (" (chroma-weighted)" if channel == "hue" else ""))
        ax.set_xlabel("hue (degrees)" if channel == "hue" else "saturation (0..255)")
        ax.set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_plot(fig, figures / "hsv.png")
    plt.close(fig)

    spec = real["spectrum"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(spec["frequency"], spec["real"], color="black", linewidth=2.2, label="reference")
    ax.semilogy(spec["frequency"], spec["generated"], color="0.4", linestyle=":", linewidth=1.6, label="held-out real")
    for name, m in metrics.items():
        ax.semilogy(m["spectrum"]["frequency"], m["spectrum"]["generated"], linewidth=1.2, label=name)
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("relative power")
    ax.set_title("radially averaged power spectrum (grey)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_plot(fig, figures / "spectra.png")
    plt.close(fig)

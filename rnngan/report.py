"""The report stage: what a reviewer reads in a pull request.

Writes, under reports/: report.md (GitHub markdown, relative image links), figures/*.png,
plots/ (CSV data for `dvc plots`), and metrics.json (the headline variant at the top level,
every variant under `cells.<cell>`, for `dvc metrics diff` and `dvc exp show`).
"""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnngan.config import Params
from rnngan.io import log, read_json, replace_path
from rnngan.metrics.histograms import CHANNELS, HSV_CHANNELS, bin_centres, hue_bin_centres
from rnngan.sampling import save_grid

OUTPUTS = ("report.md", "figures", "plots", "metrics.json")


@dataclass(frozen=True)
class Inputs:
    prepared: Path     # data/prepared/<dataset>: stats.json, train.npy
    reference: Path    # the reference .npz
    models: Path       # models/<cell>/train.json and live/
    samples: Path      # samples/<cell>.png
    metrics: Path      # metrics/<cell>.json


def read_losses(live_dir: Path) -> pd.DataFrame:
    """dvclive's TSVs (timestamp, step, value) -> one frame indexed by step."""
    frames = []
    for name in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s"):
        path = live_dir / "plots" / "metrics" / "train" / f"{name}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training log missing; rerun the train stage")
        df = pd.read_csv(path, sep="\t")
        frames.append(df.set_index("step")[[name]])
    return pd.concat(frames, axis=1).reset_index()


def collect(params: Params, inputs: Inputs) -> dict[str, dict]:
    cells = {}
    for cell in params.model.variants:
        train = read_json(inputs.models / cell / "train.json")
        metrics = read_json(inputs.metrics / f"{cell}.json")
        cells[cell] = {"train": train, "metrics": metrics,
                       "losses": read_losses(inputs.models / cell / "live")}
    return cells


def _number(value: float, digits: int):
    """Rounded, or None for NaN (e.g. hue distances of colourless images): JSON has no NaN."""
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def headline_values(train: dict, metrics: dict) -> dict:
    """The flat numbers `dvc metrics diff` and `dvc exp show` compare."""
    out = {"fid": round(metrics["fid"], 4),
           "fid_lo": round(metrics["fid_interval"][0], 4), "fid_hi": round(metrics["fid_interval"][1], 4),
           "kid": round(metrics["kid"], 6),
           "kid_lo": round(metrics["kid_interval"][0], 6), "kid_hi": round(metrics["kid_interval"][1], 6),
           "precision": round(metrics["precision"], 4), "recall": round(metrics["recall"], 4),
           "density": round(metrics["density"], 4), "coverage": round(metrics["coverage"], 4),
           "spectral_distance": _number(metrics["spectral_distance"], 5),
           "params_g": train["params_g"], "params_d": train["params_d"],
           "train_seconds": train["seconds"], "images_per_s": train["images_per_s"]}
    for channel, d in metrics["histogram_distances"].items():
        for name, value in d.items():
            out[f"{name}_{channel}"] = round(value, 6)
    for channel, d in metrics["hsv_distances"].items():
        for name, value in d.items():
            out[f"{name}_{channel}"] = _number(value, 6)
    return out


def significance(params: Params, cells: dict[str, dict]) -> dict:
    """Paired-bootstrap comparisons of every pair of variants on FID and KID (Bonferroni-adjusted
    across pairs) and the tiers they allow: a variant is ranked above another only where the
    difference is significant."""
    from rnngan.metrics.bootstrap import BootstrapResult, pairwise_significance, rank_tiers

    out = {}
    for metric in ("fid", "kid"):
        results = {c: BootstrapResult.from_dict(v["metrics"]["bootstrap"][metric]) for c, v in cells.items()}
        if len(results) < 2:
            out[metric] = {"comparisons": [], "tiers": [list(results)]}
            continue
        comparisons = pairwise_significance(results, params.metrics.confidence)
        out[metric] = {"comparisons": [c.to_dict() for c in comparisons],
                       "tiers": rank_tiers(results, comparisons)}
    return out


def metrics_json(params: Params, cells: dict[str, dict]) -> tuple[dict, dict]:
    """The metrics file's content, and the significance tests behind its `*_tier` values."""
    per_cell = {c: headline_values(v["train"], v["metrics"]) for c, v in cells.items()}
    head = params.model.cell
    sig = significance(params, cells)
    for metric, d in sig.items():
        for rank, tier in enumerate(d["tiers"], start=1):
            for c in tier:
                per_cell[c][f"{metric}_tier"] = rank
    return {"cell": head, "dataset": params.data.dataset, "image_size": params.data.image_size,
            "features": params.metrics.features, **per_cell[head], "cells": per_cell}, sig


def plot_figures(cells: dict[str, dict], figures: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    # Loss curves: D and G side by side, one line per variant.
    losses = pd.concat([v["losses"].assign(cell=c) for c, v in cells.items()])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (col, title) in zip(axes, [("loss_d", "discriminator loss"), ("loss_g", "generator loss"),
                                       ("d_real", "D(x) (solid) and D(G(z)) (dashed)")]):
        sns.lineplot(data=losses, x="step", y=col, hue="cell", ax=ax, linewidth=1.2)
        if col == "d_real":
            sns.lineplot(data=losses, x="step", y="d_fake", hue="cell", ax=ax, linewidth=1.2,
                         linestyle="--", legend=False)
            ax.set_ylabel("probability")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(figures / "losses.png", dpi=90)
    plt.close(fig)

    # Histogram overlays: real (filled) against each variant, per channel.
    first = next(iter(cells.values()))["metrics"]["histograms"]
    centres = bin_centres(first["bins"])
    rows = []
    for channel in CHANNELS:
        rows += [{"channel": channel, "intensity": x, "density": y, "source": "real"}
                 for x, y in zip(centres, first["real"][channel])]
        for c, v in cells.items():
            rows += [{"channel": channel, "intensity": x, "density": y, "source": c}
                     for x, y in zip(centres, v["metrics"]["histograms"]["generated"][channel])]
    hist = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8), sharex=True)
    for ax, channel in zip(axes, CHANNELS):
        d = hist[hist.channel == channel]
        real = d[d.source == "real"]
        ax.fill_between(real.intensity, real.density, color="0.8", label="real")
        sns.lineplot(data=d[d.source != "real"], x="intensity", y="density", hue="source", ax=ax,
                     linewidth=1.2, legend=channel == "grey")
        ax.set_title(f"{channel} histogram")
        ax.set_xlim(0, 255)
    fig.tight_layout()
    fig.savefig(figures / "histograms.png", dpi=90)
    plt.close(fig)

    # Hue (circular, degrees) and saturation histograms: real (filled) against each variant.
    first_hsv = next(iter(cells.values()))["metrics"]["hsv_histograms"]
    axes_x = {"hue": hue_bin_centres(first_hsv["bins"]), "saturation": bin_centres(first_hsv["bins"])}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, channel in zip(axes, HSV_CHANNELS):
        x = axes_x[channel]
        ax.fill_between(x, first_hsv["real"][channel], color="0.8", label="real")
        for c, v in cells.items():
            ax.plot(x, v["metrics"]["hsv_histograms"]["generated"][channel], linewidth=1.2, label=c)
        ax.set_title(f"{channel} histogram" + (" (chroma-weighted)" if channel == "hue" else ""))
        ax.set_xlabel("hue (degrees)" if channel == "hue" else "saturation (0..255)")
        ax.set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figures / "hsv.png", dpi=90)
    plt.close(fig)

    # Radially averaged power spectra: up-sampling artefacts show as high-frequency bumps.
    spec = next(iter(cells.values()))["metrics"]["spectrum"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(spec["frequency"], spec["real"], color="black", linewidth=2.2, label="real")
    for c, v in cells.items():
        ax.semilogy(v["metrics"]["spectrum"]["frequency"], v["metrics"]["spectrum"]["generated"],
                    linewidth=1.2, label=c)
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("relative power")
    ax.set_title("radially averaged power spectrum (grey)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figures / "spectra.png", dpi=90)
    plt.close(fig)


def write_plot_data(cells: dict[str, dict], plots: Path) -> None:
    """CSV per variant under plots/losses and plots/histograms (dvc.yaml's top-level plots)."""
    (plots / "losses").mkdir(parents=True)
    (plots / "histograms").mkdir()
    (plots / "spectra").mkdir()
    for c, v in cells.items():
        v["losses"][["step", "loss_d", "loss_g", "d_real", "d_fake"]].to_csv(
            plots / "losses" / f"{c}.csv", index=False, float_format="%.5f")
        h = v["metrics"]["histograms"]
        centres = bin_centres(h["bins"])
        pd.DataFrame({"intensity": centres, "real": h["real"]["grey"],
                      "generated": h["generated"]["grey"]}).to_csv(
            plots / "histograms" / f"{c}.csv", index=False, float_format="%.6f")
        sp = v["metrics"]["spectrum"]
        pd.DataFrame({"frequency": sp["frequency"], "real": sp["real"], "generated": sp["generated"]}).to_csv(
            plots / "spectra" / f"{c}.csv", index=False, float_format="%.6g")


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _interval(v: dict, key: str, digits: int, scale: float = 1.0) -> str:
    return f"[{_fmt(scale * v[key + '_lo'], digits)}, {_fmt(scale * v[key + '_hi'], digits)}]"


def _tier_sentence(cell: str, sig: dict, label: str) -> str:
    tiers = sig["tiers"]
    if len(tiers) == 1:
        return f"No variant's {label} differs significantly from another's."
    for i, t in enumerate(tiers, start=1):
        if cell in t:
            others = [c for c in t if c != cell]
            tied = f", tied with {', '.join(f'`{c}`' for c in others)}" if others else ""
            return f"By {label} it is in tier {i} of {len(tiers)}{tied}."
    return ""


def render_markdown(params: Params, cells: dict[str, dict], stats: dict, ref_meta: dict,
                    summary: dict, sig: dict) -> str:
    head = params.model.cell
    h = summary
    m = cells[head]["metrics"]
    lines = [
        f"# rnngan report: {params.data.dataset}, {params.data.image_size}×{params.data.image_size}",
        "",
        f"**Headline variant: `{head}`** — FID {_fmt(h['fid'], 2)} {_interval(h, 'fid', 2)}, "
        f"KID {_fmt(1000 * h['kid'], 2)} {_interval(h, 'kid', 2, 1000)} (×10⁻³), "
        f"precision {_fmt(h['precision'], 3)}, recall {_fmt(h['recall'], 3)}, "
        f"{h['params_g']:,} generator / {h['params_d']:,} discriminator parameters, "
        f"trained {cells[head]['train']['steps']} steps in {_fmt(h['train_seconds'], 0)} s. "
        f"{_tier_sentence(head, sig['fid'], 'FID')}",
        "",
        f"Features: `{params.metrics.features}` ({ref_meta['feature_dim']}-d), "
        f"{m['count']} generated against {ref_meta['count']} real training images."
        + (" `randinit` features are a fixed-seed random network: FID/KID values are comparable "
           "between runs of this project, not with published Inception FID numbers."
           if params.metrics.features == "randinit" else "")
        + f" Intervals are {100 * params.metrics.confidence:.0f}% bootstrap intervals "
          f"({params.metrics.bootstrap} rounds resampling both the real and the generated set); "
          "a FID interval says how much the number moves when the samples are redrawn (bootstrap "
          "FID is biased upward, so it is re-centred on the point estimate). KID is the unbiased "
          "estimate over all pairs.",
        "",
        "## All variants",
        "",
        ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
         if params.model.match_params else
         "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the "
         "comparison by the counts below."),
        "",
        "| variant | G / D params | train s | images/s | FID | KID ×10⁻³ | precision | recall | density | coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in params.model.variants:
        v = summary["cells"][c]
        name = f"**{c}**" if c == head else c
        lines.append(
            f"| {name} | {v['params_g'] / 1e3:,.0f}k / {v['params_d'] / 1e3:,.0f}k | {_fmt(v['train_seconds'], 0)} | "
            f"{_fmt(v['images_per_s'], 0)} | {_fmt(v['fid'], 2)} {_interval(v, 'fid', 2)} | "
            f"{_fmt(1000 * v['kid'], 1)} {_interval(v, 'kid', 1, 1000)} | {_fmt(v['precision'], 3)} | "
            f"{_fmt(v['recall'], 3)} | {_fmt(v['density'], 3)} | {_fmt(v['coverage'], 3)} |")
    lines += ["", "## Which variant is better", ""]
    for metric, label in (("fid", "FID"), ("kid", "KID")):
        tiers = sig[metric]["tiers"]
        lines.append(f"- **{label}**, best first, a new tier only where the difference is significant "
                     f"(paired bootstrap, Bonferroni over {len(sig[metric]['comparisons'])} pairs): "
                     + " > ".join("{" + ", ".join(f"`{c}`" for c in t) + "}" for t in tiers))
    lines += ["", "| pair | FID difference | interval | significant | KID ×10⁻³ difference | interval | significant |",
              "| --- | ---: | --- | --- | ---: | --- | --- |"]
    for cf, ck in zip(sig["fid"]["comparisons"], sig["kid"]["comparisons"]):
        lines.append(
            f"| `{cf['a']}` − `{cf['b']}` | {_fmt(cf['difference'], 2)} | [{_fmt(cf['lo'], 2)}, {_fmt(cf['hi'], 2)}] | "
            f"{'yes: ' + cf['better'] if cf['significant'] else 'no'} | {_fmt(1000 * ck['difference'], 2)} | "
            f"[{_fmt(1000 * ck['lo'], 2)}, {_fmt(1000 * ck['hi'], 2)}] | "
            f"{'yes: ' + ck['better'] if ck['significant'] else 'no'} |")
    lines += ["", "## Image statistics", "",
              "Distances between the real and each variant's pixel statistics: grey-level histogram "
              "(W1 in grey levels, JS in bits, KS), hue (chroma-weighted; circular W1 in degrees, "
              "Kuiper's statistic as KS), saturation (W1 in levels), and the radially averaged power "
              "spectrum (mean |log10 ratio| over frequencies, in decades).", "",
              "| variant | W1 grey | JS grey | KS grey | W1 hue (°) | KS hue | W1 saturation | spectral distance |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in params.model.variants:
        v = summary["cells"][c]
        lines.append(
            f"| {c} | {_fmt(v['w1_grey'], 2)} | {_fmt(v['js_grey'], 4)} | {_fmt(v['ks_grey'], 3)} | "
            f"{_fmt(v['w1_hue'], 1)} | {_fmt(v['ks_hue'], 3)} | {_fmt(v['w1_saturation'], 2)} | "
            f"{_fmt(v['spectral_distance'], 3)} |")
    lines += ["", "## Samples", "",
              "Each grid: the first images drawn from the EMA generator with `sample.seed`, the same "
              "noise for every variant; real training images for comparison.", ""]
    names = ["real"] + list(params.model.variants)
    lines.append("| " + " | ".join(names) + " |")
    lines.append("| " + " | ".join(":---:" for _ in names) + " |")
    lines.append("| " + " | ".join(f"![{n}](figures/samples_{n}.png)" for n in names) + " |")
    lines += ["", "## Histograms", "",
              "Grey-level and per-channel histograms of generated images (lines) over the real "
              "images' (grey fill).", "", "![histograms](figures/histograms.png)", "",
              "![hue and saturation](figures/hsv.png)", "",
              "![power spectra](figures/spectra.png)", "",
              "| cell | channel | W1 | JS (bits) | KS |", "| --- | --- | ---: | ---: | ---: |"]
    for c in params.model.variants:
        for channel, d in cells[c]["metrics"]["histogram_distances"].items():
            lines.append(f"| {c} | {channel} | {_fmt(d['w1'], 2)} | {_fmt(d['js'], 4)} | {_fmt(d['ks'], 3)} |")
    lines += ["", "## Colour moments", "", "| source | channel | mean | std | skewness |",
              "| --- | --- | ---: | ---: | ---: |"]
    real_m = m["colour_moments"]["real"]
    for ch, v in real_m.items():
        lines.append(f"| real | {ch} | {_fmt(v['mean'], 1)} | {_fmt(v['std'], 1)} | {_fmt(v['skew'], 2)} |")
    for c in params.model.variants:
        for ch, v in cells[c]["metrics"]["colour_moments"]["generated"].items():
            lines.append(f"| {c} | {ch} | {_fmt(v['mean'], 1)} | {_fmt(v['std'], 1)} | {_fmt(v['skew'], 2)} |")
    lines += ["", "## Training", "", "![losses](figures/losses.png)", "",
              "## Data provenance", "",
              f"- dataset `{params.data.dataset}`, {stats.get('total', '?')} images kept "
              f"({', '.join(f'{k} {v}' for k, v in stats.get('counts', {}).items())}), "
              f"{len(stats.get('skipped', []))} skipped"]
    for s in stats.get("skipped", [])[:20]:
        lines.append(f"  - `{s['image']}`: {s['reason']}")
    import torch

    train0 = cells[head]["train"]
    lines += [f"- reference: {ref_meta['count']} real images from `{ref_meta['source']}`", "",
              "## Environment", "",
              f"- python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
              f"device `{train0['device']}` ({train0['threads']} CPU threads)",
              f"- {platform.platform()}", ""]
    return "\n".join(lines)


def write_report(params: Params, inputs: Inputs, out_dir: Path) -> dict:
    from rnngan.evaluation import load_reference

    cells = collect(params, inputs)
    stats = read_json(inputs.prepared / "stats.json")
    ref_meta = load_reference(inputs.reference)["meta"]
    summary, sig = metrics_json(params, cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build everything in a temporary folder, then move each output into place: an interrupted
    # report leaves the old outputs, not half-written ones.
    with tempfile.TemporaryDirectory(prefix=".report.", dir=out_dir) as tmp:
        stage = Path(tmp)
        figures = stage / "figures"
        figures.mkdir()
        for c in params.model.variants:
            shutil.copyfile(inputs.samples / f"{c}.png", figures / f"samples_{c}.png")
        real = np.load(inputs.prepared / "train.npy", mmap_mode="r")
        grid = int(np.sqrt(params.sample.grid)) ** 2
        save_grid(np.asarray(real[:grid]), figures / "samples_real.png", scale=2)
        plot_figures(cells, figures)
        write_plot_data(cells, stage / "plots")
        (stage / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        (stage / "report.md").write_text(render_markdown(params, cells, stats, ref_meta, summary, sig))
        for name in OUTPUTS:
            replace_path(stage / name, out_dir / name, aside=stage / f".previous-{name}")
    log.info("report for %d variants (headline %s) -> %s", len(cells), params.model.cell, out_dir)
    return summary

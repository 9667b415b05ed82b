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
from rnngan.metrics.histograms import CHANNELS, bin_centres
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


def headline_values(train: dict, metrics: dict) -> dict:
    """The flat numbers `dvc metrics diff` and `dvc exp show` compare."""
    out = {"fid": round(metrics["fid"], 4), "kid": round(metrics["kid"], 6),
           "kid_std": round(metrics["kid_std"], 6),
           "params_g": train["params_g"], "params_d": train["params_d"],
           "train_seconds": train["seconds"], "images_per_s": train["images_per_s"]}
    for channel, d in metrics["histogram_distances"].items():
        for name, value in d.items():
            out[f"{name}_{channel}"] = round(value, 6)
    return out


def metrics_json(params: Params, cells: dict[str, dict]) -> dict:
    per_cell = {c: headline_values(v["train"], v["metrics"]) for c, v in cells.items()}
    head = params.model.cell
    return {"cell": head, "dataset": params.data.dataset, "image_size": params.data.image_size,
            "features": params.metrics.features, **per_cell[head], "cells": per_cell}


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


def write_plot_data(cells: dict[str, dict], plots: Path) -> None:
    """CSV per variant under plots/losses and plots/histograms (dvc.yaml's top-level plots)."""
    (plots / "losses").mkdir(parents=True)
    (plots / "histograms").mkdir()
    for c, v in cells.items():
        v["losses"][["step", "loss_d", "loss_g", "d_real", "d_fake"]].to_csv(
            plots / "losses" / f"{c}.csv", index=False, float_format="%.5f")
        h = v["metrics"]["histograms"]
        centres = bin_centres(h["bins"])
        pd.DataFrame({"intensity": centres, "real": h["real"]["grey"],
                      "generated": h["generated"]["grey"]}).to_csv(
            plots / "histograms" / f"{c}.csv", index=False, float_format="%.6f")


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def render_markdown(params: Params, cells: dict[str, dict], stats: dict, ref_meta: dict,
                    summary: dict) -> str:
    head = params.model.cell
    h = summary
    m = cells[head]["metrics"]
    lines = [
        f"# rnngan report: {params.data.dataset}, {params.data.image_size}×{params.data.image_size}",
        "",
        f"**Headline variant: `{head}`** — FID {_fmt(h['fid'], 2)}, "
        f"KID {_fmt(1000 * h['kid'], 2)} ± {_fmt(1000 * h['kid_std'], 2)} (×10⁻³), "
        f"grey-level W1 {_fmt(h['w1_grey'], 2)}, "
        f"{h['params_g']:,} generator / {h['params_d']:,} discriminator parameters, "
        f"trained {cells[head]['train']['steps']} steps in {_fmt(h['train_seconds'], 0)} s.",
        "",
        f"Features: `{params.metrics.features}` ({ref_meta['feature_dim']}-d), "
        f"{m['count']} generated against {ref_meta['count']} real training images."
        + (" `randinit` features are a fixed-seed random network: FID/KID values are comparable "
           "between runs of this project, not with published Inception FID numbers."
           if params.metrics.features == "randinit" else "")
        + " KID's ± is the standard deviation over subsets. Differences between variants are "
          "not yet tested for significance: read close values as ties.",
        "",
        "## All variants",
        "",
        ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
         if params.model.match_params else
         "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the "
         "comparison by the counts below."),
        "",
        "| variant | G params | D params | train time (s) | images/s | FID | KID ×10⁻³ | W1 grey | JS grey (bits) | KS grey |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in params.model.variants:
        v = summary["cells"][c]
        name = f"**{c}**" if c == head else c
        lines.append(
            f"| {name} | {v['params_g']:,} | {v['params_d']:,} | {_fmt(v['train_seconds'], 0)} | "
            f"{_fmt(v['images_per_s'], 0)} | {_fmt(v['fid'], 2)} | "
            f"{_fmt(1000 * v['kid'], 2)} ± {_fmt(1000 * v['kid_std'], 2)} | {_fmt(v['w1_grey'], 2)} | "
            f"{_fmt(v['js_grey'], 4)} | {_fmt(v['ks_grey'], 3)} |")
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
    summary = metrics_json(params, cells)
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
        (stage / "report.md").write_text(render_markdown(params, cells, stats, ref_meta, summary))
        for name in OUTPUTS:
            replace_path(stage / name, out_dir / name, aside=stage / f".previous-{name}")
    log.info("report for %d variants (headline %s) -> %s", len(cells), params.model.cell, out_dir)
    return summary

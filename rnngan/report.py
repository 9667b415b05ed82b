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
from rnngan.formatting import fmt as _fmt
from rnngan.formatting import with_interval
from rnngan.grids import make_grid, save_grid
from rnngan.io import log, read_json, replace_path
from rnngan.metrics.histograms import (
    CHANNELS,
    HSV_CHANNELS,
    bin_centres,
    hue_bin_centres,
)

OUTPUTS = ("report.md", "report.html", "figures", "plots", "metrics.json")
# What the environment section lists, in this order (distribution names).
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "opencv-python", "onnxruntime", "torch-fidelity",
            "dvc", "dvclive")


@dataclass(frozen=True)
class Inputs:
    raw: Path          # data/raw/<dataset>: the source files (and manifest.json for real datasets)
    prepared: Path     # data/prepared/<dataset>: stats.json, train.npy
    reference: Path    # the reference .npz
    models: Path       # models/<cell>/train.json and live/
    samples: Path      # samples/<cell>.png and .npy
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
    """The flat numbers `dvc metrics diff` and `dvc exp show` compare: a short list, so the diff
    stays readable; every other number is in metrics/<cell>.json and the report."""
    hist, hsv = metrics["histogram_distances"], metrics["hsv_distances"]
    return {"fid": round(metrics["fid"], 4),
            "fid_lo": round(metrics["fid_interval"][0], 4), "fid_hi": round(metrics["fid_interval"][1], 4),
            "kid": round(metrics["kid"], 6),
            "kid_lo": round(metrics["kid_interval"][0], 6), "kid_hi": round(metrics["kid_interval"][1], 6),
            "precision": round(metrics["precision"], 4), "recall": round(metrics["recall"], 4),
            "density": round(metrics["density"], 4), "coverage": round(metrics["coverage"], 4),
            "w1_grey": round(hist["grey"]["w1"], 4), "w1_hue": _number(hsv["hue"]["w1"], 4),
            "w1_saturation": _number(hsv["saturation"]["w1"], 4),
            "spectral_distance": _number(metrics["spectral_distance"], 5),
            "params_g": train["params_g"], "params_d": train["params_d"],
            "train_seconds": train["seconds"], "images_per_s": train["images_per_s"]}


def significance(params: Params, cells: dict[str, dict]) -> dict:
    """Paired-bootstrap comparisons of every pair of variants on FID and KID (Bonferroni-adjusted
    across pairs) and the tiers they allow: a variant is ranked above another only where the
    difference is significant."""
    from rnngan.metrics.bootstrap import (
        BootstrapResult,
        pairwise_significance,
        rank_tiers,
    )

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
    # One legend for the three panels, beside them rather than over the curves.
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(handles, labels, title="variant", loc="center right", frameon=False)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
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


def provenance(params: Params, raw: Path) -> dict:
    """Where the images came from: the source files with their MD5s. Real datasets' download
    stage recorded each file's MD5 and whether it matched the published one (manifest.json);
    files it did not record (synthfaces, drawn here) are hashed now."""
    from rnngan.data.download import MANIFEST, md5sum

    manifest = read_json(raw / MANIFEST) if (raw / MANIFEST).is_file() else {"files": {}}
    recorded = manifest.get("files", {})
    # what a manifest entry covers: the file itself, a folder of that name, or the members an
    # archive was unpacked into (LSUN's LMDB zips)
    covered = {name: [name, *f.get("unpacked", [])] for name, f in recorded.items()}
    files = []
    for name, f in sorted(recorded.items()):
        paths = [raw / n for n in covered[name]]
        size = sum(q.stat().st_size for p in paths if p.exists()
                   for q in ([p] if p.is_file() else p.rglob("*")) if q.is_file())
        verified = f.get("verified")
        if isinstance(verified, str):        # how it was checked, where no MD5 is published
            checked = verified
        elif f.get("published_md5") is None:
            checked = "no published MD5"
        elif verified:
            checked = "matches the published MD5"
        else:
            checked = f"differs from the published {f['published_md5']} (`data.verify: false`)"
        files.append({"name": name, "bytes": size, "md5": f.get("md5") or "n/a", "checked": checked})
    listed = {n for names in covered.values() for n in names}
    for path in sorted(q for q in raw.rglob("*") if q.is_file()):
        name = path.relative_to(raw).as_posix()
        if name == MANIFEST or name in listed or any(name.startswith(n + "/") for n in listed):
            continue
        files.append({"name": name, "bytes": path.stat().st_size, "md5": md5sum(path),
                      "checked": "hashed by the report"})
    if params.data.dataset == "synthfaces":
        origin = (f"procedural faces in CelebA's aligned layout, drawn by `rnngan synthfaces` "
                  f"({params.data.count:,} faces, seed {params.seed}): an offline stand-in, not a published dataset")
    elif params.data.source is not None:
        origin = f"the published files, read from `data.source` = `{params.data.source}`"
    else:
        origin = "the published files, downloaded from the publisher"
    return {"origin": origin, "files": files}


def environment() -> dict:
    """The packages that built the report (training's device and torch are in train.json)."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {"packages": packages, "platform": platform.platform()}


def samples_figure(grids: dict[str, np.ndarray], head: str, out: Path, per_row: int = 3) -> None:
    """The sample grids side by side, each under its name, at one pixel per generated pixel: one
    PNG, so a page that shrinks it to fit shrinks every grid alike."""
    import cv2

    side = max(max(g.shape[:2]) for g in grids.values())
    label_h, gap = 28, 12
    tiles = []
    for name, g in grids.items():
        tile = np.full((label_h + side, side, 3), 255, np.uint8)
        tile[label_h:label_h + g.shape[0], :g.shape[1]] = g
        text = f"{name} (headline)" if name == head else name
        cv2.putText(tile, text, (2, label_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % per_row)
    column_gap = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    rows = [np.hstack([x for t in tiles[r:r + per_row] for x in (t, column_gap)][:-1])
            for r in range(0, len(tiles), per_row)]
    row_gap = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    canvas = np.vstack([x for r in rows for x in (r, row_gap)][:-1])
    ok, data = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"could not encode {out}")
    out.write_bytes(data.tobytes())


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


def _with_interval(v: dict, key: str, digits: int, scale: float = 1.0) -> str:
    return with_interval(v[key], v.get(key + "_lo"), v.get(key + "_hi"), digits, scale)


def _names(cells) -> str:
    return ", ".join(f"`{c}`" for c in cells)


def _tier_of(cell: str, tiers: list[list[str]]) -> int:
    return next(i for i, t in enumerate(tiers, start=1) if cell in t)


def _rank_phrase(cell: str, sig: dict) -> str:
    tiers = sig["tiers"]
    if len(tiers) == 1:
        return "not separable from the others" if len(tiers[0]) > 1 else "the only variant"
    i = _tier_of(cell, tiers)
    others = [c for c in tiers[i - 1] if c != cell]
    return f"tier {i} of {len(tiers)}" + (f", tied with {_names(others)}" if others else "")


def _comparison(sig: dict, a: str, b: str) -> dict | None:
    """The paired comparison of a and b, oriented as a − b."""
    for c in sig["comparisons"]:
        if (c["a"], c["b"]) == (a, b):
            return c
        if (c["a"], c["b"]) == (b, a):
            return {**c, "a": a, "b": b, "difference": -c["difference"], "lo": -c["hi"], "hi": -c["lo"]}
    return None


def verdict(head: str, summary: dict, sig: dict, label: str, metric: str, digits: int,
            scale: float = 1.0) -> str:
    """One sentence: which variants are best on `metric`, and where the headline stands."""
    tiers = sig[metric]["tiers"]
    best = tiers[0]
    cells = summary["cells"]
    if len(tiers) == 1 and len(best) > 1:
        return f"**{label}:** no variant differs significantly from another."
    best_text = " and ".join(f"`{c}` {_with_interval(cells[c], metric, digits, scale)}" for c in best)
    head_text = ("the headline is among them." if head in best else
                 f"`{head}` is {_rank_phrase(head, sig[metric])}")
    if head not in best:
        leader = min(best, key=lambda c: cells[c][metric])
        cmp = _comparison(sig[metric], head, leader)
        if cmp is not None:
            head_text += (f", {_fmt(scale * cmp['difference'], digits)} "
                          f"[{_fmt(scale * cmp['lo'], digits)}, {_fmt(scale * cmp['hi'], digits)}] "
                          f"behind `{leader}`.")
        else:
            head_text += "."
    return (f"**{label}:** best {'tier' if len(best) > 1 else 'variant'} "
            f"{best_text} (significant against every lower tier); {head_text}")


def render_markdown(params: Params, cells: dict[str, dict], stats: dict, ref_meta: dict,
                    summary: dict, sig: dict, provenance: dict, env: dict) -> str:
    """report.md: GitHub markdown, images as relative links under figures/, no raw HTML but
    <details> (which GitHub keeps)."""
    head = params.model.cell
    variants = list(params.model.variants)
    h = summary
    m = cells[head]["metrics"]
    train = cells[head]["train"]
    lines = [
        f"# rnngan report: `{head}` on {params.data.dataset} {params.data.image_size}×{params.data.image_size}",
        "",
        f"| headline `{head}` | FID ↓ | KID ×10⁻³ ↓ | precision ↑ | recall ↑ | G / D parameters | training |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| value [{100 * params.metrics.confidence:.0f}% interval] | {_with_interval(h, 'fid', 2)} | "
        f"{_with_interval(h, 'kid', 1, 1000)} | {_fmt(h['precision'], 3)} | {_fmt(h['recall'], 3)} | "
        f"{h['params_g']:,} / {h['params_d']:,} | {train['steps']} steps, {_fmt(h['train_seconds'], 0)} s |",
        "",
        "- " + verdict(head, summary, sig, "FID", "fid", 2),
        "- " + verdict(head, summary, sig, "KID ×10⁻³", "kid", 1, 1000),
        "",
        f"{m['count']:,} generated against {ref_meta['count']:,} real training images, "
        f"`{params.metrics.features}` features ({ref_meta['feature_dim']}-d)."
        + (" `randinit` is a fixed-seed random network: these FID/KID values compare runs of this "
           "project, not published Inception FIDs." if params.metrics.features == "randinit" else "")
        + f" Intervals: {params.metrics.bootstrap} bootstrap rounds resampling both sets; a FID "
          "interval says how much the number moves when the samples are redrawn (re-centred on the "
          "point estimate, since bootstrap FID is biased upward). Tiers split only where a paired "
          "difference is significant.",
        "",
        "## All variants",
        "",
        ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
         if params.model.match_params else
         "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the "
         "comparison by the counts."),
        "",
        "| variant | G / D params | train s | images/s | FID | KID ×10⁻³ | precision | recall | W1 grey | spectral |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in variants:
        v = summary["cells"][c]
        name = f"**{c}**" if c == head else c
        lines.append(
            f"| {name} | {v['params_g'] / 1e3:,.0f}k / {v['params_d'] / 1e3:,.0f}k | {_fmt(v['train_seconds'], 0)} | "
            f"{_fmt(v['images_per_s'], 0)} | {_with_interval(v, 'fid', 2)} | {_with_interval(v, 'kid', 1, 1000)} | "
            f"{_fmt(v['precision'], 3)} | {_fmt(v['recall'], 3)} | {_fmt(v['w1_grey'], 2)} | "
            f"{_fmt(v['spectral_distance'], 3)} |")
    lines += ["", "FID and KID: lower is better; precision (fidelity) and recall (diversity), k-NN "
              f"manifolds with k = {params.metrics.nearest_k}: higher is better. W1 grey: Wasserstein "
              "distance between grey-level histograms, in grey levels. Spectral: mean |log10 ratio| of "
              "the radially averaged power spectra, in decades.", ""]

    lines += ["## Samples", "",
              "The same noise (`sample.seed`) for every variant, from its EMA generator, at one scale; "
              "real training images first.", "", "![samples, real and every variant](figures/samples.png)", "",
              "Full-size grids: " + " · ".join(f"[{n}](figures/samples_{n}.png)" for n in ["real"] + variants), ""]

    lines += ["## Which variant is better", ""]
    for metric, label in (("fid", "FID"), ("kid", "KID")):
        tiers = sig[metric]["tiers"]
        lines.append(f"- **{label}**, best first: "
                     + " > ".join("{" + _names(t) + "}" for t in tiers))
    n_pairs = len(sig["fid"]["comparisons"])
    lines += ["", f"Paired bootstrap differences a − b as written (positive: b is better), {100 * params.metrics.confidence:.0f}% "
              f"intervals Bonferroni-adjusted over {n_pairs} pairs; *significant* when the interval excludes 0.", "",
              "| pair | FID difference | significant | KID ×10⁻³ difference | significant |",
              "| --- | ---: | --- | ---: | --- |"]
    for cf, ck in zip(sig["fid"]["comparisons"], sig["kid"]["comparisons"]):
        lines.append(
            f"| `{cf['a']}` − `{cf['b']}` | {_fmt(cf['difference'], 2)} [{_fmt(cf['lo'], 2)}, {_fmt(cf['hi'], 2)}] | "
            f"{'yes: `' + cf['better'] + '`' if cf['significant'] else 'no'} | "
            f"{_fmt(1000 * ck['difference'], 1)} [{_fmt(1000 * ck['lo'], 1)}, {_fmt(1000 * ck['hi'], 1)}] | "
            f"{'yes: `' + ck['better'] + '`' if ck['significant'] else 'no'} |")

    lines += ["", "## Image statistics", "",
              "How far each variant's pixel statistics are from the real images': density and coverage "
              "(Naeem 2020: fidelity and diversity on the same k-NN manifolds), grey-level histogram "
              "(JS in bits, KS), hue (chroma-weighted; circular W1 in degrees), saturation (W1 in levels).", "",
              "| variant | density | coverage | JS grey | KS grey | W1 hue (°) | W1 saturation |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in variants:
        v = summary["cells"][c]
        d = cells[c]["metrics"]
        lines.append(
            f"| {c} | {_fmt(v['density'], 3)} | {_fmt(v['coverage'], 3)} | "
            f"{_fmt(d['histogram_distances']['grey']['js'], 4)} | {_fmt(d['histogram_distances']['grey']['ks'], 3)} | "
            f"{_fmt(v['w1_hue'], 1)} | {_fmt(v['w1_saturation'], 2)} |")
    lines += ["", "Histograms of generated images (lines) over the real images' (grey fill):", "",
              "![grey and RGB histograms](figures/histograms.png)", "",
              "![hue and saturation histograms](figures/hsv.png)", "",
              "Radially averaged power spectra (upsampling artefacts show as high-frequency bumps):", "",
              "![power spectra](figures/spectra.png)", "",
              "<details><summary>Per-channel histogram distances and colour moments</summary>", "",
              "| variant | channel | W1 | JS (bits) | KS |", "| --- | --- | ---: | ---: | ---: |"]
    for c in variants:
        for channel, d in cells[c]["metrics"]["histogram_distances"].items():
            lines.append(f"| {c} | {channel} | {_fmt(d['w1'], 2)} | {_fmt(d['js'], 4)} | {_fmt(d['ks'], 3)} |")
        for channel, d in cells[c]["metrics"]["hsv_distances"].items():
            lines.append(f"| {c} | {channel} | {_fmt(_number(d['w1'], 6), 2)} | {_fmt(_number(d['js'], 6), 4)} | "
                         f"{_fmt(_number(d['ks'], 6), 3)} |")
    lines += ["", "| source | channel | mean | std | skewness |", "| --- | --- | ---: | ---: | ---: |"]
    for ch, v in m["colour_moments"]["real"].items():
        lines.append(f"| real | {ch} | {_fmt(v['mean'], 1)} | {_fmt(v['std'], 1)} | {_fmt(v['skew'], 2)} |")
    for c in variants:
        for ch, v in cells[c]["metrics"]["colour_moments"]["generated"].items():
            lines.append(f"| {c} | {ch} | {_fmt(v['mean'], 1)} | {_fmt(v['std'], 1)} | {_fmt(v['skew'], 2)} |")
    lines += ["", "</details>", ""]

    lines += ["## Training", "",
              "Losses and D's mean outputs per logged step (`train.log_every`); "
              "`dvc plots diff main` overlays them across revisions.", "",
              "![losses](figures/losses.png)", ""]
    lines += render_provenance(params, stats, ref_meta, provenance)
    lines += render_environment(cells, variants, env)
    return "\n".join(lines)


def render_provenance(params: Params, stats: dict, ref_meta: dict, provenance: dict) -> list[str]:
    counts = ", ".join(f"{k} {v:,}" for k, v in stats.get("counts", {}).items())
    skipped = stats.get("skipped", [])
    lines = ["## Data provenance", "",
             f"- **dataset** `{params.data.dataset}`: {provenance['origin']}",
             f"- **prepared** {stats.get('total', 0):,} images at {params.data.image_size} px, crop "
             f"`{stats.get('crop', '?')}` ({counts}); **{len(skipped)} skipped**"
             + (f", {stats['left_out_by_limit']:,} left out by `data.limit`" if stats.get("left_out_by_limit") else ""),
             f"- **reference statistics**: {ref_meta['count']:,} real images of `{ref_meta['source']}`",
             "", "| source file | bytes | MD5 | checked |", "| --- | ---: | --- | --- |"]
    for f in provenance["files"]:
        lines.append(f"| `{f['name']}` | {f['bytes']:,} | `{f['md5']}` | {f['checked']} |")
    if skipped:
        lines += ["", f"<details><summary>{len(skipped)} skipped images</summary>", ""]
        lines += [f"- `{s['image']}`: {s['reason']}" for s in skipped[:200]]
        if len(skipped) > 200:
            lines.append(f"- … and {len(skipped) - 200} more (data/prepared/{params.data.dataset}/stats.json)")
        lines += ["", "</details>"]
    return lines + [""]


def render_environment(cells: dict[str, dict], variants: list[str], env: dict) -> list[str]:
    lines = ["## Environment", "",
             "| variant | trained on | device | precision | processes × threads | torch |",
             "| --- | --- | --- | --- | ---: | --- |"]
    for c in variants:
        t = cells[c]["train"]
        e = t.get("environment", {})
        torch_build = e.get("torch", "not recorded")
        if e.get("cuda") and t["device"].startswith("cuda"):
            torch_build += f" (CUDA {e['cuda']})"
        lines.append(f"| {c} | {e.get('device_name', 'not recorded')} | `{t['device']}` | {t.get('precision', 'fp32')} | "
                     f"{t.get('processes', 1)} × {t.get('threads', '?')} | {torch_build} |")
    lines += ["", "Report built with " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
              + f" on {env['platform']}.", ""]
    return lines


def write_report(params: Params, inputs: Inputs, out_dir: Path) -> dict:
    from rnngan.evaluation import load_reference
    from rnngan.report_html import markdown_to_html

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
        grids = {"real": make_grid(np.asarray(real[:grid]))}
        for c in params.model.variants:
            grids[c] = make_grid(np.asarray(np.load(inputs.samples / f"{c}.npy", mmap_mode="r")[:grid]))
        samples_figure(grids, params.model.cell, figures / "samples.png")
        plot_figures(cells, figures)
        write_plot_data(cells, stage / "plots")
        (stage / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        markdown = render_markdown(params, cells, stats, ref_meta, summary, sig,
                                   provenance(params, inputs.raw), environment())
        (stage / "report.md").write_text(markdown)
        (stage / "report.html").write_text(markdown_to_html(markdown, stage))
        for name in OUTPUTS:
            replace_path(stage / name, out_dir / name, aside=stage / f".previous-{name}")
    log.info("report for %d variants (headline %s) -> %s", len(cells), params.model.cell, out_dir)
    return summary

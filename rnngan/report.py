"""The report stage: what a reviewer reads in a pull request. It renders the compare stage's
numbers (comparison/comparison.json) and the runs' own files; it tests nothing itself.

Writes, under reports/: report.md (GitHub markdown, relative image links), report.html,
figures/*.png, plots/ (CSV per run for `dvc plots`), and metrics.json (the headline variant's
means over seeds at the top level, every variant under `cells.<variant>`, the held-out real row
under `real`, for `dvc metrics diff` and `dvc exp show`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnngan.comparison import REAL, ComparisonError
from rnngan.config import Params
from rnngan.environment import packages
from rnngan.formatting import fmt as _fmt
from rnngan.formatting import spread as _spread
from rnngan.formatting import with_interval
from rnngan.grids import make_grid
from rnngan.io import log, read_json, replace_path
from rnngan.metrics.histograms import bin_centres
from rnngan.report_attributes import attribute_lines, attributes_figure
from rnngan.report_figures import distribution_figures, losses_figure, samples_figure, seeds_figure

OUTPUTS = ("report.md", "report.html", "figures", "plots", "metrics.json")
# The metrics tested across seeds, as the report names them: key, label, digits, scale.
TESTED = (("fid", "FID", 2, 1.0), ("kid", "KID ×10⁻³", 1, 1000.0), ("precision", "precision", 3, 1.0),
          ("recall", "recall", 3, 1.0), ("density", "density", 3, 1.0), ("coverage", "coverage", 3, 1.0))
REPRODUCIBLE = ("Bit-identical numbers need the same hardware and software: the same commit, params and "
                "packages on another CPU (or at another thread count) round differently, and a recurrent GAN "
                "amplifies that like a new seed. Replicates over `train.seeds` measure that variation; only "
                "differences that hold across them are ranked.")


@dataclass(frozen=True)
class Inputs:
    raw: Path          # data/raw/<dataset>: the source files (and manifest.json for real datasets)
    prepared: Path     # data/prepared/<dataset>: stats.json
    reference: Path    # the reference .npz
    comparison: Path   # comparison/comparison.json (the compare stage)
    models: Path       # models/<variant>-<seed>/train.json and live/
    samples: Path      # samples/<variant>-<seed>.png and .npy, samples/real.*
    metrics: Path      # metrics/<variant>-<seed>.json, metrics/real.json
    attributes: Path   # data/attributes/<dataset>: the attribute classifier's summary


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


def collect(params: Params, inputs: Inputs, comparison: dict) -> dict[str, dict]:
    """Every run's train.json, metrics and losses, by run name, in the comparison's order."""
    runs = {}
    for name, r in comparison["runs"].items():
        runs[name] = {"variant": r["variant"], "seed": r["seed"],
                      "train": read_json(inputs.models / name / "train.json"),
                      "metrics": read_json(inputs.metrics / f"{name}.json"),
                      "losses": read_losses(inputs.models / name / "live")}
    return runs


def _number(value: float | None, digits: int):
    """Rounded, or None for NaN or missing (e.g. hue distances of colourless images): JSON has no NaN."""
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


# Mode coverage on attributes (where the dataset has them): mean marginal TV, share of the real
# joint modes produced, joint KL.
ATTRIBUTE_KEYS = ("attr_tv", "attr_modes", "attr_kl")
# Rounding of the metrics file's numbers (digits).
DIGITS = {"fid": 4, "kid": 6, "precision": 4, "recall": 4, "density": 4, "coverage": 4, "w1_grey": 4,
          "w1_hue": 4, "w1_saturation": 4, "spectral_distance": 5, "train_seconds": 1, "images_per_s": 1}


def variant_values(comparison: dict, variant: str) -> dict:
    """One variant's flat numbers for `dvc metrics diff` and `dvc exp show`: means over seeds,
    the FID/KID interval of the mean over seeds (with one seed: that run's bootstrap interval)
    and their seed standard deviation; a short list, so the diff stays readable. Per-seed
    numbers are in metrics/<variant>-<seed>.json."""
    pv = comparison["per_variant"][variant]
    s = pv["summary"]
    measured = comparison["training_variation_measured"]
    out = {}
    for key in ("fid", "kid"):
        d = DIGITS[key]
        if measured:
            lo, hi = s[key]["lo"], s[key]["hi"]
        else:
            lo, hi = comparison["runs"][pv["runs"][0]][f"{key}_interval"]
        out.update({key: _number(s[key]["mean"], d), f"{key}_lo": _number(lo, d), f"{key}_hi": _number(hi, d),
                    f"{key}_std": _number(s[key]["std"], d)})
    for key in ("precision", "recall", "density", "coverage"):
        out[key] = _number(s[key]["mean"], DIGITS[key])
    for key in ("w1_grey", "w1_hue", "w1_saturation", "spectral_distance", "train_seconds", "images_per_s"):
        out[key] = _number(pv["means"][key], DIGITS[key])
    for key in ATTRIBUTE_KEYS:
        if key in s:
            out[key] = _number(s[key]["mean"], 4)
    out.update({"params_g": pv["params_g"], "params_d": pv["params_d"], "seeds": len(pv["runs"])})
    for key in ("fid", "kid"):
        out[f"{key}_tier"] = next(i for i, t in enumerate(comparison["tests"][key]["tiers"], start=1) if variant in t)
    return out


def real_values(comparison: dict) -> dict:
    """The held-out real row: its numbers and, for FID/KID, the bootstrap interval."""
    r = comparison["real"]
    out = {}
    for key in ("fid", "kid"):
        out.update({key: _number(r[key], DIGITS[key]), f"{key}_lo": _number(r[f"{key}_interval"][0], DIGITS[key]),
                    f"{key}_hi": _number(r[f"{key}_interval"][1], DIGITS[key])})
    for key in ("precision", "recall", "density", "coverage", "w1_grey", "spectral_distance"):
        out[key] = _number(r[key], DIGITS[key])
    for key in ATTRIBUTE_KEYS:
        if key in r:
            out[key] = _number(r[key], 4)
    return out


def metrics_json(params: Params, comparison: dict) -> dict:
    """reports/metrics.json: the headline variant at the top level, every variant under
    `cells.<variant>`, the held-out real row under `real`."""
    per_cell = {v: variant_values(comparison, v) for v in comparison["variants"]}
    head = params.model.cell
    return {"cell": head, "dataset": params.data.dataset, "image_size": params.data.image_size,
            "features": params.metrics.features,
            "interval": "seeds" if comparison["training_variation_measured"] else "bootstrap",
            **per_cell[head], "cells": per_cell, "real": real_values(comparison)}

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


def write_plot_data(runs: dict[str, dict], real: dict, plots: Path) -> None:
    """CSV per run under plots/losses, plots/histograms and plots/spectra (dvc.yaml's top-level
    plots); histograms and spectra also for the held-out real row (plots/*/real.csv)."""
    (plots / "losses").mkdir(parents=True)
    (plots / "histograms").mkdir()
    (plots / "spectra").mkdir()
    for name, v in runs.items():
        v["losses"][["step", "loss_d", "loss_g", "d_real", "d_fake"]].to_csv(
            plots / "losses" / f"{name}.csv", index=False, float_format="%.5f")
    for name, m in {**{n: v["metrics"] for n, v in runs.items()}, REAL: real}.items():
        h = m["histograms"]
        pd.DataFrame({"intensity": bin_centres(h["bins"]), "real": h["real"]["grey"],
                      "generated": h["generated"]["grey"]}).to_csv(
            plots / "histograms" / f"{name}.csv", index=False, float_format="%.6f")
        sp = m["spectrum"]
        pd.DataFrame({"frequency": sp["frequency"], "real": sp["real"], "generated": sp["generated"]}).to_csv(
            plots / "spectra" / f"{name}.csv", index=False, float_format="%.6g")


def _names(variants) -> str:
    return ", ".join(f"`{v}`" for v in variants)


def _cell(v: dict, key: str, digits: int, scale: float = 1.0) -> str:
    return with_interval(v[key], v.get(key + "_lo"), v.get(key + "_hi"), digits, scale)




def _tiers_text(tiers: list[list[str]]) -> str:
    return " > ".join("{" + _names(t) + "}" for t in tiers)


def _pair(test: dict, a: str, b: str) -> dict | None:
    for row in test["pairs"]:
        if {row["a"], row["b"]} == {a, b}:
            return row
    return None


def verdict(head: str, comparison: dict, key: str, label: str, digits: int, scale: float) -> str:
    """One sentence from the tiers of `key`: which variants are best, where the headline stands."""
    test = comparison["tests"][key]
    tiers = test["tiers"]
    s = {v: comparison["per_variant"][v]["summary"][key] for v in comparison["variants"]}
    basis = ("Welch tests over seeds" if test["basis"] == "seeds" else
             "the sample bootstrap of one seed: provisional, training variation not measured")
    if len(tiers) == 1:
        return (f"**{label}:** no variant is separated from another ({basis})." if len(tiers[0]) > 1
                else f"**{label}:** one variant only.")
    best = tiers[0]
    best_text = " and ".join(f"`{v}` {_spread(s[v], digits, scale)}" for v in best)
    if head in best:
        where = "the headline is among them"
    else:
        rank = next(i for i, t in enumerate(tiers, start=1) if head in t)
        where = f"`{head}` is in tier {rank} of {len(tiers)}, {_spread(s[head], digits, scale)}"
    return (f"**{label}:** best {'tier' if len(best) > 1 else 'variant'} {best_text}, separated from every "
            f"lower tier by {basis}; {where}.")


def _power_text(n) -> str:
    return "more than 1000" if n is None else str(n)


def pairs_table(comparison: dict, key: str, label: str, digits: int, scale: float) -> list[str]:
    """Every pair's seed-level Welch test (Holm over the pairs) and, where there is one, the
    sample-noise test beside it."""
    test = comparison["tests"][key]
    n_pairs = len(test["pairs"])
    if test["basis"] is None:
        return [f"{label}: not tested: one seed, and no within-run bootstrap for this metric."]
    has_samples = any(r["samples"] for r in test["pairs"])
    lines = [f"| pair ({label}) | mean a − b | Welch t (df) | p, Holm | separated | seeds for 80% power |"
             + (" sample noise: p, Holm |" if has_samples else ""),
             "| --- | ---: | ---: | ---: | --- | ---: |" + (" ---: |" if has_samples else "")]
    for r in test["pairs"]:
        w, b = r["seeds"], r["samples"]
        diff = (w or b)["difference"]
        cells = [f"`{r['a']}` − `{r['b']}`", _fmt(scale * diff, digits)]
        if w is None:
            cells += ["n/a (one seed)", "n/a", "not tested", "n/a"]
        else:
            cells += [f"{_fmt(w['t'], 2)} ({_fmt(w['df'], 1)})", f"{w['p']:.3g}, {w['p_holm']:.3g}",
                      f"yes: `{r['better']}`" if w["significant"] else "no",
                      "" if w["significant"] else _power_text(w["seeds_for_80_power"])]
        if has_samples:
            cells.append(f"{b['p']:.3g}, {b['p_holm']:.3g}" + (" (sig.)" if b["significant"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{n_pairs} pairs; *separated* where the Holm-adjusted p is below "
              f"{1 - comparison['confidence']:.2g}. Seeds for 80% power: per variant, for a Welch test at the "
              "Bonferroni level to separate the pair if the observed difference and spreads are the true ones "
              "(\"more than 1000\": no practical difference)."]
    return lines


def render_markdown(params: Params, comparison: dict, runs: dict[str, dict], real_metrics: dict, summary: dict,
                    stats: dict, ref_meta: dict, provenance: dict, env: dict, attributes: dict) -> str:
    """report.md: GitHub markdown, images as relative links under figures/, no raw HTML but
    <details> (which GitHub keeps)."""
    head = params.model.cell
    variants = comparison["variants"]
    seeds = comparison["seeds"]
    measured = comparison["training_variation_measured"]
    conf = f"{100 * params.metrics.confidence:.0f}%"
    h, real = summary, summary["real"]
    pv = comparison["per_variant"]
    real_m = comparison["real"]
    lines = [
        f"# rnngan report: `{head}` on {params.data.dataset} {params.data.image_size}×{params.data.image_size}",
        "",
        f"| | FID ↓ | KID ×10⁻³ ↓ | precision ↑ | recall ↑ | coverage ↑ | G / D parameters | training |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| headline `{head}`, mean of {len(seeds)} seed{'s' if len(seeds) > 1 else ''} [{conf} "
        f"{'interval over seeds' if measured else 'bootstrap interval'}] | {_cell(h, 'fid', 2)} | "
        f"{_cell(h, 'kid', 1, 1000)} | {_fmt(h['precision'], 3)} | {_fmt(h['recall'], 3)} | "
        f"{_fmt(h['coverage'], 3)} | {h['params_g']:,} / {h['params_d']:,} | "
        f"{pv[head]['steps']} steps, {_fmt(h['train_seconds'], 0)} s a seed |",
        f"| held-out real images (the floor / ceiling) | {_cell(real, 'fid', 2)} | {_cell(real, 'kid', 1, 1000)} | "
        f"{_fmt(real['precision'], 3)} | {_fmt(real['recall'], 3)} | {_fmt(real['coverage'], 3)} | | |",
        "",
    ]
    lines += ["- " + verdict(head, comparison, key, label, digits, scale) for key, label, digits, scale in TESTED[:2]]
    lines.append("")
    if not measured:
        lines += [f"> **Training variation was not measured** (one seed, `train.seeds: {seeds}`): every ranking "
                  "here is provisional. A new seed, or the same seed on another CPU, moves a recurrent GAN's "
                  "FID by points; run three or more seeds before reading a verdict.", ""]
    lines += [
        f"Seeds (`train.seeds`) {', '.join(map(str, seeds))}: each seed is one training run of every variant "
        "(initialisation, batch order, noise), on the same data (`seed`), reference and sample noise. Verdicts "
        "rest on the seed-to-seed spread (Welch's t-test on the per-seed values, Holm-adjusted over the pairs); "
        "the within-run bootstrap over the samples is the smaller, sample-noise part. "
        f"{summary['cells'][head]['seeds']} × {runs[pv[head]['runs'][0]]['metrics']['count']:,} generated against "
        f"{ref_meta['count']:,} real training images, `{params.metrics.features}` features ({ref_meta['feature_dim']}-d)."
        + (" `randinit` is a fixed-seed random network: these FID/KID values compare runs of this project, not "
           "published Inception FIDs." if params.metrics.features == "randinit" else ""),
        "", REPRODUCIBLE, "",
        "## All variants", "",
        ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
         if params.model.match_params else
         "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the comparison "
         "by the counts."),
        "",
        f"Means over seeds [{conf} interval of the mean, Student's t over seeds; with one seed, the bootstrap "
        "interval]; ± is the seed standard deviation. *FID seed sd* against *bootstrap width* (the mean width of "
        "each run's interval when its samples are redrawn): how much more a new seed moves FID than new samples do.",
        "",
        "| variant | seeds | G / D params | train s | FID | FID seed sd | FID bootstrap width | KID ×10⁻³ | "
        "precision | recall | coverage | W1 grey | spectral |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in variants:
        c, s = summary["cells"][v], pv[v]["summary"]
        name = f"**{v}**" if v == head else v
        lines.append(
            f"| {name} | {c['seeds']} | {c['params_g'] / 1e3:,.0f}k / {c['params_d'] / 1e3:,.0f}k | "
            f"{_fmt(c['train_seconds'], 0)} | {_cell(c, 'fid', 2)} | {_fmt(c['fid_std'], 2)} | "
            f"{_fmt(s['fid']['bootstrap_width'], 2)} | {_cell(c, 'kid', 1, 1000)} | {_spread(s['precision'], 3)} | "
            f"{_spread(s['recall'], 3)} | {_spread(s['coverage'], 3)} | {_fmt(c['w1_grey'], 2)} | "
            f"{_fmt(c['spectral_distance'], 3)} |")
    real_width = real_m["fid_interval"][1] - real_m["fid_interval"][0]
    lines.append(
        f"| *held-out real* | | | | {_cell(real, 'fid', 2)} | | {_fmt(real_width, 2)} | {_cell(real, 'kid', 1, 1000)} | "
        f"{_fmt(real['precision'], 3)} | {_fmt(real['recall'], 3)} | {_fmt(real['coverage'], 3)} | "
        f"{_fmt(real['w1_grey'], 2)} | {_fmt(real['spectral_distance'], 3)} |")
    lines += ["", "FID and KID: lower is better; precision (fidelity), recall (diversity), density and coverage on "
              f"k-NN manifolds with k = {params.metrics.nearest_k}: higher is better. The held-out real row is "
              f"{real_m['count']:,} real images the reference never saw, scored exactly like a run's samples: what a "
              "perfect generator would get at this sample size. W1 grey: Wasserstein distance between grey-level "
              "histograms, in grey levels. Spectral: mean |log10 ratio| of the radially averaged power spectra, "
              "in decades.", "",
              "Per-seed values (points; the black bar is the mean, the dashed line the held-out real row):", "",
              "![per-seed FID, KID, recall and coverage](figures/seeds.png)", "",
              "<details><summary>Every run</summary>", "",
              f"| run | FID [{conf} bootstrap] | KID ×10⁻³ [{conf} bootstrap] | precision | recall | density | "
              "coverage | train s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in comparison["runs"].items():
        lines.append(
            f"| `{name}` | {with_interval(r['fid'], *r['fid_interval'], 2)} | "
            f"{with_interval(r['kid'], *r['kid_interval'], 1, 1000)} | {_fmt(r['precision'], 3)} | "
            f"{_fmt(r['recall'], 3)} | {_fmt(r['density'], 3)} | {_fmt(r['coverage'], 3)} | "
            f"{_fmt(r['train_seconds'], 0)} |")
    lines += ["", "</details>", ""]

    lines += ["## Samples", "",
              "The same noise (`sample.seed`) for every run, from its EMA generator, at one scale: held-out real "
              "images first, then each variant's median-FID seed.", "",
              "![samples: held-out real and every variant's median seed](figures/samples.png)", "",
              "<details><summary>Every seed's samples</summary>", "",
              "**held-out real**", "", "![held-out real](figures/samples_real.png)", ""]
    for v in variants:
        lines += [f"**{v}**: " + " · ".join(f"seed {runs[n]['seed']}" + (" (median)" if n == pv[v]["median_run"] else "")
                                           for n in pv[v]["runs"]), ""]
        lines += [" ".join(f"![{n}](figures/samples_{n}.png)" for n in pv[v]["runs"]), ""]
    lines += ["</details>", ""]

    lines += ["## Which variant is better", ""]
    for key, label, digits, scale in TESTED:
        test = comparison["tests"][key]
        lines.append(f"- **{label}**, best first: {_tiers_text(test['tiers'])}")
    lines += ["", "A new tier starts only where a pair's test is significant"
              + (" at the seed level; the sample-noise test is shown beside it, and does not rank." if measured else
                 ": with one seed only the sample-noise test exists, so these tiers are provisional."), ""]
    for key, label, digits, scale in TESTED[:2]:
        lines += pairs_table(comparison, key, label, digits, scale) + [""]
    lines += ["<details><summary>Pairs on precision, recall, density and coverage</summary>", ""]
    for key, label, digits, scale in TESTED[2:]:
        lines += pairs_table(comparison, key, label, digits, scale) + [""]
    lines += ["</details>", ""]

    lines += attribute_lines(comparison, attributes, _tiers_text)

    medians = {v: runs[pv[v]["median_run"]]["metrics"] for v in variants}
    lines += ["## Image statistics", "",
              "Each variant's median-FID seed against the real images: grey-level histogram (JS in bits, KS), hue "
              "(chroma-weighted; circular W1 in degrees), saturation (W1 in levels).", "",
              "| run | JS grey | KS grey | W1 hue (°) | W1 saturation |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, d in {**{pv[v]["median_run"]: medians[v] for v in variants}, "held-out real": real_metrics}.items():
        lines.append(f"| {name} | {_fmt(d['histogram_distances']['grey']['js'], 4)} | "
                     f"{_fmt(d['histogram_distances']['grey']['ks'], 3)} | {_fmt(_number(d['hsv_distances']['hue']['w1'], 6), 1)} | "
                     f"{_fmt(_number(d['hsv_distances']['saturation']['w1'], 6), 2)} |")
    lines += ["", "Histograms of generated images (lines) over the reference images' (grey fill), the held-out real "
              "images dotted:", "",
              "![grey and RGB histograms](figures/histograms.png)", "",
              "![hue and saturation histograms](figures/hsv.png)", "",
              "Radially averaged power spectra (upsampling artefacts show as high-frequency bumps):", "",
              "![power spectra](figures/spectra.png)", ""]

    lines += ["## Training", "",
              "Losses and D's mean outputs per logged step (`train.log_every`): per variant the mean over its seeds, "
              "the band their 95% interval; `dvc plots diff main` overlays every run across revisions.", "",
              "![losses](figures/losses.png)", ""]
    lines += render_provenance(params, stats, ref_meta, provenance, real_metrics)
    lines += render_environment(comparison, env)
    return "\n".join(lines)



def render_provenance(params: Params, stats: dict, ref_meta: dict, provenance: dict, real_metrics: dict) -> list[str]:
    counts = ", ".join(f"{k} {v:,}" for k, v in stats.get("counts", {}).items())
    skipped = stats.get("skipped", [])
    lines = ["## Data provenance", "",
             f"- **dataset** `{params.data.dataset}`: {provenance['origin']}",
             f"- **prepared** {stats.get('total', 0):,} images at {params.data.image_size} px, crop "
             f"`{stats.get('crop', '?')}` ({counts}); **{len(skipped)} skipped**"
             + (f", {stats['left_out_by_limit']:,} left out by `data.limit`" if stats.get("left_out_by_limit") else ""),
             f"- **reference statistics**: {ref_meta['count']:,} real images of `{ref_meta['source']}`",
             f"- **held-out real row**: {real_metrics['count']:,} real images outside the reference ("
             + ", ".join(f"{k} {v:,}" for k, v in real_metrics.get("sources", {}).items()) + ")",
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


def _environment_key(r: dict) -> tuple:
    e = r.get("environment") or {}
    torch_build = e.get("torch", "not recorded")
    if e.get("cuda") and str(r.get("device", "")).startswith("cuda"):
        torch_build += f" (CUDA {e['cuda']}, driver {e.get('gpu_driver') or '?'})"
    isa = e.get("cpu_capability") or "not recorded"
    if e.get("cpu_flags"):
        isa += f" ({', '.join(e['cpu_flags'])})"
    blas = " ".join(x for x in (e.get("blas"), e.get("mkl")) if x) or "not recorded"
    if e.get("onednn"):
        blas += f", oneDNN {e['onednn']}"
    kernel_env = " ".join(f"{k}={v}" for k, v in sorted((e.get("kernel_env") or {}).items())) or "none"
    machine = e.get("device_name", "not recorded")
    if e.get("cpu_id") and not str(r.get("device", "")).startswith("cuda"):
        machine += f" ({e['cpu_id']})"
    return (machine, isa, blas, f"{r.get('processes', 1)} × {r.get('threads', '?')}",
            f"`{r.get('device', '?')}` {r.get('arithmetic', 'fp32')}", torch_build, kernel_env)


def render_environment(comparison: dict, env: dict) -> list[str]:
    """What trained each run, runs with the same machine and software on one row."""
    groups: dict[tuple, list[str]] = {}
    for name, r in comparison["runs"].items():
        groups.setdefault(_environment_key(r), []).append(name)
    lines = ["## Environment", "", REPRODUCIBLE, "",
             "| runs | trained on | kernels (ATen capability, CPU flags) | BLAS | processes × threads | device | torch "
             "| kernel env |", "| --- | --- | --- | --- | ---: | --- | --- | --- |"]
    for key, names in groups.items():
        shown = ", ".join(f"`{n}`" for n in names) if len(groups) > 1 else f"all {len(names)}"
        lines.append(f"| {shown} | " + " | ".join(key) + " |")
    lines += ["", "Report built with " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
              + f" on {env['platform']}.", ""]
    return lines


def write_report(params: Params, inputs: Inputs, out_dir: Path) -> dict:
    from rnngan.evaluation import load_reference
    from rnngan.report_html import markdown_to_html

    comparison = read_json(inputs.comparison)
    if comparison.get("variants") != list(params.model.variants) or comparison.get("seeds") != list(params.train.seeds):
        raise ComparisonError(f"{inputs.comparison} compares {comparison.get('variants')} × seeds {comparison.get('seeds')}, "
                         f"params.yaml asks for {list(params.model.variants)} × {list(params.train.seeds)}: "
                         "rerun the compare stage (dvc repro)")
    runs = collect(params, inputs, comparison)
    real_metrics = read_json(inputs.metrics / f"{REAL}.json")
    stats = read_json(inputs.prepared / "stats.json")
    ref_meta = load_reference(inputs.reference)["meta"]
    summary = metrics_json(params, comparison)
    pv = comparison["per_variant"]
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build everything in a temporary folder, then move each output into place: an interrupted
    # report leaves the old outputs, not half-written ones.
    with tempfile.TemporaryDirectory(prefix=".report.", dir=out_dir) as tmp:
        stage = Path(tmp)
        figures = stage / "figures"
        figures.mkdir()
        for name in [*runs, REAL]:
            shutil.copyfile(inputs.samples / f"{name}.png", figures / f"samples_{name}.png")
        grid = int(np.sqrt(params.sample.grid)) ** 2

        def first(name: str) -> np.ndarray:
            return make_grid(np.asarray(np.load(inputs.samples / f"{name}.npy", mmap_mode="r")[:grid]))

        grids = {REAL: first(REAL), **{pv[v]["median_run"]: first(pv[v]["median_run"]) for v in comparison["variants"]}}
        labels = {REAL: "held-out real", **{pv[v]["median_run"]: f"{v}, seed {pv[v]['median_seed']}"
                                            + (" (headline)" if v == params.model.cell else "")
                                            for v in comparison["variants"]}}
        samples_figure(grids, labels, figures / "samples.png")
        seeds_figure(comparison, figures / "seeds.png")
        losses_figure({n: r["losses"] for n, r in runs.items()}, {n: r["variant"] for n, r in runs.items()},
                      figures / "losses.png")
        distribution_figures({v: runs[pv[v]["median_run"]]["metrics"] for v in comparison["variants"]},
                             real_metrics, figures)
        attributes = read_json(inputs.attributes / "attributes.json")
        if comparison["attributes"]["measured"]:
            attributes_figure(comparison, attributes, figures / "attributes.png")
        write_plot_data(runs, real_metrics, stage / "plots")
        (stage / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        markdown = render_markdown(params, comparison, runs, real_metrics, summary, stats, ref_meta,
                                   provenance(params, inputs.raw), packages(), attributes)
        (stage / "report.md").write_text(markdown)
        (stage / "report.html").write_text(markdown_to_html(markdown, stage))
        for name in OUTPUTS:
            replace_path(stage / name, out_dir / name, aside=stage / f".previous-{name}")
    log.info("report for %d variants × %d seeds (headline %s) -> %s", len(comparison["variants"]),
             len(comparison["seeds"]), params.model.cell, out_dir)
    return summary

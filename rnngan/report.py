"""The report stage: what a reviewer reads in a pull request. It renders the compare stage's
numbers (comparison/comparison.json) and the runs' own files; it tests nothing itself.

Writes, under reports/: report.md (GitHub markdown, relative image links), report.html,
figures/ (plots as palette PNG, sample grids as JPEG: rnngan.report_figures says why), plots/
(CSV per run for `dvc plots`), and metrics.json (the headline variant's means over seeds at the
top level, every variant under `cells.<variant>`, the held-out real row under `real`, for
`dvc metrics diff` and `dvc exp show`).

The first screen answers what a reviewer asks first: which code (the git commit at report time,
rnngan.environment.code_version) and which recipe (every train/model/augment param off the
code's defaults) made it; the headline against the held-out real row; the verdict over every
tested metric in sentences; every variant's numbers beside its parameter counts.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rnngan.comparison import REAL, ComparisonError
from rnngan.config import Params, split_variant
from rnngan.environment import packages
from rnngan.errors import MissingInputError
from rnngan.formatting import count, variant_name, with_interval
from rnngan.formatting import fmt as _fmt
from rnngan.formatting import spread as _spread
from rnngan.grids import make_grid
from rnngan.io import log, read_json, replace_path
from rnngan.metrics.histograms import bin_centres
from rnngan.report_attributes import ATTRIBUTE_TESTED, attribute_lines, attributes_figure
from rnngan.report_figures import (SAMPLES_FIGURE, distribution_figures, losses_figure, samples_figure,
                                   samples_file, seeds_figure, write_jpeg)

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



# Which code built an output: the git commit, and what differs from it.

# What "the code" is: the files whose change changes a result (params.yaml is the recipe, shown apart).
CODE_PATHS = ("rnngan", "stages", "dvc.yaml", "pyproject.toml")


def code_version(root: str | Path | None = None) -> dict:
    """The git commit checked out in `root` (the working directory: where DVC runs a stage) and
    the code files that differ from it, as {"commit", "changed", "reason"}; never raises.

    Read when the output is built (`git rev-parse HEAD`): a report committed together with the
    code that made it names that commit's parent plus the changed files, which is the truth of
    what ran. Without git, outside a repository or in one without commits, `commit` is None and
    `reason` says why."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            why = (head.stderr.strip().splitlines() or ["no commit"])[0].removeprefix("fatal: ")
            return {"commit": None, "changed": [], "reason": f"git: {why}"}
        status = git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "changed": [], "reason": f"git could not run ({type(exc).__name__})"}
    # porcelain lines are "XY path" or "XY old -> new"
    changed = sorted({line[3:].split(" -> ")[-1].strip('"') for line in status.stdout.splitlines() if line.strip()})
    return {"commit": head.stdout.strip(), "changed": changed, "reason": None}


def read_losses(live_dir: Path) -> pd.DataFrame:
    """dvclive's TSVs (timestamp, step, value) -> one frame indexed by step."""
    frames = []
    for name in ("loss_d", "loss_g", "d_real", "d_fake", "images_per_s"):
        path = live_dir / "plots" / "metrics" / "train" / f"{name}.tsv"
        if not path.is_file():
            raise MissingInputError(f"{path}: training log missing; rerun the train stage")
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


def shown(value: float | None) -> float | None:
    """FID or KID as the report shows it: never below zero. KID is an unbiased estimate of MMD²,
    which is >= 0; where generated (or held-out real) and reference images are indistinguishable
    at the sample size, the estimate and its bootstrap percentiles dip below zero, and 0 is the
    closer value. (The compare stage tests the raw estimates.)"""
    return None if value is None else max(0.0, value)


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
        out.update({key: _number(shown(s[key]["mean"]), d), f"{key}_lo": _number(shown(lo), d),
                    f"{key}_hi": _number(shown(hi), d), f"{key}_std": _number(s[key]["std"], d)})
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
        lo, hi = r[f"{key}_interval"]
        out.update({key: _number(shown(r[key]), DIGITS[key]), f"{key}_lo": _number(shown(lo), DIGITS[key]),
                    f"{key}_hi": _number(shown(hi), DIGITS[key])})
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


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def tested_metrics(comparison: dict) -> list[tuple[str, str, int, float]]:
    """Every metric the compare stage tested, as (key, label, digits, scale), attributes included."""
    return [*TESTED, *((k, label, d, 1.0) for k, label, d in ATTRIBUTE_TESTED if k in comparison["tests"])]


def _basis(comparison: dict, test: dict) -> str:
    if test["basis"] == "seeds":
        return f"Welch tests over {len(comparison['seeds'])} seeds, Holm-adjusted"
    return "the sample bootstrap of one seed: provisional, training variation not measured"


def _decider(row: dict) -> dict | None:
    """The test a pair's verdict rests on: over seeds where measured, else the sample bootstrap."""
    return row["seeds"] or row["samples"]


def closest_pair(test: dict) -> tuple[dict, int] | None:
    """The unseparated pair that the fewest seeds would separate (80% power), with that count;
    None where no pair would with up to MAX_SEEDS (or with one seed, where power is not computed)."""
    options = [(r, r["seeds"]["seeds_for_80_power"]) for r in test["pairs"]
               if r["seeds"] and not r["seeds"]["significant"] and r["seeds"]["seeds_for_80_power"] is not None]
    return min(options, key=lambda o: o[1]) if options else None


def verdict(head: str, comparison: dict, key: str, label: str, digits: int, scale: float) -> str:
    """One metric's verdict in a sentence: which variant is better than which (every significant
    pair, by winner, each variant's mean ± seed sd where first named), or that none is and how
    many seeds would separate the closest pair; where the headline stands."""
    test = comparison["tests"][key]
    variants = comparison["variants"]
    s = {v: comparison["per_variant"][v]["summary"][key] for v in variants}
    if len(variants) == 1:
        return f"**{label}:** one variant only."
    if test["basis"] is None:
        return f"**{label}:** not tested: one seed, and no within-run bootstrap for this metric."
    won = [r for r in test["pairs"] if r["better"]]
    if not won:
        text = f"**{label}:** no variant is separated from another ({_basis(comparison, test)})"
        if test["basis"] == "seeds":
            closest = closest_pair(test)
            text += (f"; the closest pair, `{closest[0]['a']}` and `{closest[0]['b']}`, would need {closest[1]} seeds "
                     "per variant for 80% power" if closest else
                     "; no pair would separate with fewer than 1000 seeds per variant: no practical difference")
        return text + "."
    lower = test["lower_is_better"]
    rank = {v: i for i, tier in enumerate(test["tiers"]) for v in tier}
    order = sorted(variants, key=lambda v: (rank[v], s[v]["mean"] if lower else -s[v]["mean"]))
    named: set[str] = set()

    def name(v: str) -> str:
        first = v not in named
        named.add(v)
        return f"`{v}` {_spread(s[v], digits, scale)}" if first else f"`{v}`"

    parts = []
    for winner in [v for v in order if any(r["better"] == v for r in won)]:
        losers = [v for v in order if any(r["better"] == winner and v in (r["a"], r["b"]) and v != winner for r in won)]
        parts.append(f"{name(winner)} is better than {_and([name(v) for v in losers])}")
    worst = max(_decider(r)["p_holm"] for r in won)     # every separation named holds at this p
    p_text = "p < 0.001" if worst < 0.001 else f"p ≤ {worst:.2g}"
    others = len(test["pairs"]) - len(won)
    rest = ("" if not others else "; the other pair is not separated" if others == 1 else
            f"; the other {others} pairs are not separated")
    tier = rank[head] + 1
    where = ("the headline is in the best tier" if tier == 1 else
             f"the headline `{head}` is in tier {tier} of {len(test['tiers'])}")
    return (f"**{label}** ({'lower' if lower else 'higher'} is better): {'; '.join(parts)} "
            f"({_basis(comparison, test)}, {p_text}){rest}; {where}.")


def verdict_lines(head: str, comparison: dict) -> list[str]:
    """The first screen's verdict over every tested metric: a bullet per metric that separates
    some variants, then one for all those that separate none, with the seeds each would need."""
    separated, unseparated = [], []
    for key, label, digits, scale in tested_metrics(comparison):
        test = comparison["tests"][key]
        if any(r["better"] for r in test["pairs"]):
            separated.append("- " + verdict(head, comparison, key, label, digits, scale))
        else:
            unseparated.append((key, label, test))
    lines = separated
    if len(comparison["variants"]) == 1:
        return lines + ["- One variant only: nothing to compare."]
    tested = [(k, label, t) for k, label, t in unseparated if t["basis"] is not None]
    untested = [label for _, label, t in unseparated if t["basis"] is None]
    if tested:
        basis = _basis(comparison, tested[0][2])
        line = (f"- **No variant is separated** ({basis}) on {_and([label for _, label, _ in tested])}"
                if separated else f"- **No variant is separated from another** on any tested metric ({basis}): "
                                  f"{_and([label for _, label, _ in tested])}")
        if tested[0][2]["basis"] == "seeds":
            need = []
            for _, label, t in tested:
                closest = closest_pair(t)
                need.append(f"{label} {closest[1]} (`{closest[0]['a']}`, `{closest[0]['b']}`)" if closest else
                            f"{label} more than 1000")
            line += (". Seeds per variant that would separate the closest pair with 80% power, if the observed "
                     f"differences and spreads are the true ones: {'; '.join(need)}")
        lines.append(line + ".")
    if untested:
        lines.append(f"- Not tested with one seed (no within-run bootstrap): {_and(untested)}.")
    return lines


# Recall below this (Kynkäänniemi et al. 2019: the share of real images inside the k-NN manifold
# of the generated ones) means the samples miss nearly all of the data's variety.
NEAR_ZERO_RECALL = 0.05


def recall_reading(comparison: dict) -> str | None:
    """A line for the variants whose recall is near zero: what it means, since it reads as a bug."""
    low = [v for v in comparison["variants"] if comparison["per_variant"][v]["summary"]["recall"]["mean"] < NEAR_ZERO_RECALL]
    if not low:
        return None
    means = _and([f"`{v}` {_fmt(comparison['per_variant'][v]['summary']['recall']['mean'], 3)}" for v in low])
    return (f"- **Recall near zero** ({means}; held-out real images {_fmt(comparison['real']['recall'], 3)}): almost "
            "no real image lies inside the k-NN manifold of these samples, so they cover a small part of the data's "
            "variety (a few repeated prototypes, or collapse), whatever their precision; coverage"
            + (" and joint modes say" if "attr_modes" in comparison["tests"] else " says") + " how much is left.")


def _power_text(n) -> str:
    return "more than 1000" if n is None else str(n)


def pairs_table(comparison: dict, key: str, label: str, digits: int, scale: float) -> list[str]:
    """Every pair's seed-level Welch test (Holm over the pairs) and, where there is one, the
    sample-noise test beside it."""
    test = comparison["tests"][key]
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
    return lines


def pairs_note(comparison: dict) -> str:
    """What the pairs tables' columns mean: said once, under the first of them."""
    n_pairs = len(comparison["tests"]["fid"]["pairs"])
    return (f"{n_pairs} pair{'s' if n_pairs != 1 else ''} per metric; *separated* where the Holm-adjusted p (over "
            f"the pairs of that metric) is below {1 - comparison['confidence']:.2g}. Seeds for 80% power: per "
            "variant, for a Welch test at the Bonferroni level to separate the pair if the observed difference and "
            "spreads are the true ones (\"more than 1000\": no practical difference).")


def _value(v) -> str:
    """A param value as params.yaml spells it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


RECIPE_SECTIONS = ("train", "model", "augment")


def recipe(params: Params) -> list[tuple[str, object, object]]:
    """Every `train`/`model`/`augment` param that differs from the code's default (rnngan/config.py),
    as (dotted key, value, default): what a reader needs to tell one recipe's report from another's."""
    defaults = Params()
    out = []
    for section in RECIPE_SECTIONS:
        ours, theirs = getattr(params, section), getattr(defaults, section)
        for f in dataclasses.fields(ours):
            if getattr(ours, f.name) != getattr(theirs, f.name):
                out.append((f"{section}.{f.name}", getattr(ours, f.name), getattr(theirs, f.name)))
    return out


class _FlowLists(yaml.SafeDumper):
    """YAML with lists on one line (`seeds: [0, 1, 2]`), as params.yaml writes short ones."""


_FlowLists.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def render_origin(params: Params, code: dict) -> list[str]:
    """Which code and which recipe made this report: the commit (rnngan.environment.code_version),
    the params that differ from the code's defaults, the three sections in full folded below."""
    if code["commit"] is None:
        built = f"Built from code whose commit was not recorded ({code['reason']})"
    else:
        built = f"Built from commit `{code['commit'][:12]}`"
        changed = code["changed"]
        if changed:
            shown = _and([f"`{c}`" for c in changed[:5]] + ([f"{len(changed) - 5} more"] if len(changed) > 5 else []))
            built += f" with uncommitted changes to {len(changed)} code file{'s' if len(changed) > 1 else ''} ({shown})"
    diff = recipe(params)
    if diff:
        how = (f"the code's defaults except {len(diff)} param{'s' if len(diff) > 1 else ''}: "
               + "; ".join(f"`{k}` {_value(v)} (default {_value(d)})" for k, v, d in diff))
    else:
        how = "the code's defaults (rnngan/config.py) for every `train`, `model` and `augment` param"
    sections = {name: dataclasses.asdict(getattr(params, name)) for name in RECIPE_SECTIONS}
    return [f"{built}. Recipe: {how}.", "",
            "<details><summary>The recipe in full: every train, model and augment param as the stages read "
            "it</summary>", "", "```yaml", yaml.dump(sections, Dumper=_FlowLists, sort_keys=False).rstrip(), "```", "",
            "</details>", ""]



def render_markdown(params: Params, comparison: dict, runs: dict[str, dict], real_metrics: dict, summary: dict,
                    stats: dict, ref_meta: dict, provenance: dict, env: dict, attributes: dict, code: dict) -> str:
    """report.md: GitHub markdown, images as relative links under figures/, no raw HTML but
    <details> (which GitHub keeps). The first screen: which commit and recipe, the headline
    against the held-out real row, the verdict over every tested metric, every variant's numbers
    beside its parameter counts."""
    head = params.model.cell
    variants = comparison["variants"]
    seeds = comparison["seeds"]
    measured = comparison["training_variation_measured"]
    with_attributes = comparison["attributes"]["measured"]
    conf = f"{100 * params.metrics.confidence:.0f}%"
    h, real = summary, summary["real"]
    pv = comparison["per_variant"]
    real_m = comparison["real"]
    lines = [
        f"# rnngan report: `{head}` on {params.data.dataset} {params.data.image_size}×{params.data.image_size}",
        "",
        *render_origin(params, code),
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
        *verdict_lines(head, comparison),
    ]
    reading = recall_reading(comparison)
    if reading:
        lines.append(reading)
    lines.append("")
    if not measured:
        lines += [f"> **Training variation was not measured** (one seed, `train.seeds: {seeds}`): every ranking "
                  "here is provisional. A new seed, or the same seed on another CPU, moves a recurrent GAN's "
                  "FID by points; run three or more seeds before reading a verdict.", ""]
    pairs = [v for v in variants if split_variant(v)[0] != split_variant(v)[1]]
    lines += [
        "## All variants", "",
        "Means over seeds "
        + (f"[{conf} interval: Student's t on the logarithms of the per-seed values, back-transformed, so it stays "
           "above zero and follows the skew of a collapsed seed; with one seed, that run's bootstrap interval]"
           if measured else f"[{conf} bootstrap interval of the one run]")
        + "; ± is the seed standard deviation; G / D params: the generator's and the discriminator's. "
        + ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
           if params.model.match_params else
           "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the comparison "
           "by them.")
        + (f" A pair `<G>+<D>` ({_names(pairs)}) is the first kind's generator trained against the second's "
           "discriminator." if pairs else ""),
        "",
        "| variant | G / D params | seeds | FID | KID ×10⁻³ | precision | recall | coverage |"
        + (" joint modes |" if with_attributes else "") + " train s | FID seed sd | FID bootstrap width | W1 grey | "
        "spectral |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if with_attributes else "")
        + " ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in variants:
        c, s = summary["cells"][v], pv[v]["summary"]
        name = f"**{variant_name(v)}**" if v == head else variant_name(v)
        lines.append(
            f"| {name} | {count(c['params_g'])} / {count(c['params_d'])} | {c['seeds']} | {_cell(c, 'fid', 2)} | "
            f"{_cell(c, 'kid', 1, 1000)} | {_spread(s['precision'], 3)} | {_spread(s['recall'], 3)} | "
            f"{_spread(s['coverage'], 3)} |" + (f" {_spread(s['attr_modes'], 3)} |" if with_attributes else "")
            + f" {_fmt(c['train_seconds'], 0)} | {_fmt(c['fid_std'], 2)} | {_fmt(s['fid']['bootstrap_width'], 2)} | "
            f"{_fmt(c['w1_grey'], 2)} | {_fmt(c['spectral_distance'], 3)} |")
    real_width = real_m["fid_interval"][1] - real_m["fid_interval"][0]
    below_zero = any(min(r["kid"], *r["kid_interval"]) < 0 for r in [*comparison["runs"].values(), real_m])
    lines.append(
        f"| *held-out real* | | | {_cell(real, 'fid', 2)} | {_cell(real, 'kid', 1, 1000)} | "
        f"{_fmt(real['precision'], 3)} | {_fmt(real['recall'], 3)} | {_fmt(real['coverage'], 3)} |"
        + (f" {_fmt(real['attr_modes'], 3)} |" if with_attributes else "")
        + f" | | {_fmt(real_width, 2)} | {_fmt(real['w1_grey'], 2)} | {_fmt(real['spectral_distance'], 3)} |")
    lines += ["", "FID and KID: lower is better; precision (fidelity), recall (diversity), density and coverage on "
              f"k-NN manifolds with k = {params.metrics.nearest_k}: higher is better"
              + ("; joint modes: the share of the real attribute combinations produced (see Attributes)"
                 if with_attributes else "")
              + f". The held-out real row is {real_m['count']:,} real images the reference never saw, scored exactly "
              "like a run's samples: what a perfect generator would get at this sample size. "
              + ("KID estimates MMD², which is never negative: an estimate below zero (images the features cannot "
                 "tell from the reference at this sample size) is shown as 0. " if below_zero else "")
              + "*FID seed sd* against "
              "*bootstrap width* (the mean width of each run's interval when its samples are redrawn): how much more "
              "a new seed moves FID than new samples do. W1 grey: Wasserstein distance between grey-level "
              "histograms, in grey levels. Spectral: mean |log10 ratio| of the radially averaged power spectra, "
              "in decades.", "",
              f"Seeds (`train.seeds`) {', '.join(map(str, seeds))}: each seed is one training run of every variant "
              "(initialisation, batch order, noise), on the same data (`seed`), reference and sample noise. Verdicts "
              "rest on the seed-to-seed spread (Welch's t-test on the per-seed values, Holm-adjusted over the pairs); "
              "the within-run bootstrap over the samples is the smaller, sample-noise part. "
              f"{summary['cells'][head]['seeds']} × {runs[pv[head]['runs'][0]]['metrics']['count']:,} generated "
              f"against {ref_meta['count']:,} real training images, `{params.metrics.features}` features "
              f"({ref_meta['feature_dim']}-d)."
              + (" `randinit` is a fixed-seed random network: these FID/KID values compare runs of this project, not "
                 "published Inception FIDs." if params.metrics.features == "randinit" else ""), "",
              "Per-seed values (points; the black bar is the mean, the dashed line the held-out real row):", "",
              "![per-seed FID, KID, recall and coverage](figures/seeds.png)", "",
              "<details><summary>Every run</summary>", "",
              f"| run | FID [{conf} bootstrap] | KID ×10⁻³ [{conf} bootstrap] | precision | recall | density | "
              "coverage | train s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in comparison["runs"].items():
        lines.append(
            f"| `{name}` | {with_interval(*map(shown, (r['fid'], *r['fid_interval'])), 2)} | "
            f"{with_interval(*map(shown, (r['kid'], *r['kid_interval'])), 1, 1000)} | {_fmt(r['precision'], 3)} | "
            f"{_fmt(r['recall'], 3)} | {_fmt(r['density'], 3)} | {_fmt(r['coverage'], 3)} | "
            f"{_fmt(r['train_seconds'], 0)} |")
    lines += ["", "</details>", ""]

    lines += ["## Samples", "",
              "The same noise (`sample.seed`) for every run, from its EMA generator, at one pixel per generated pixel "
              "(JPEG at quality 85, no chroma subsampling, to keep the report small): held-out real images first, "
              "then each variant's median-FID seed.", "",
              f"![samples: held-out real and every variant's median seed](figures/{SAMPLES_FIGURE})", "",
              "<details><summary>Every seed's samples</summary>", "",
              "**held-out real**", "", f"![held-out real](figures/{samples_file(REAL)})", ""]
    for v in variants:
        lines += [f"**{variant_name(v)}**: " + " · ".join(f"seed {runs[n]['seed']}" + (" (median)" if n == pv[v]["median_run"] else "")
                                                          for n in pv[v]["runs"]), ""]
        lines += [" ".join(f"![{n}](figures/{samples_file(n)})" for n in pv[v]["runs"]), ""]
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
    lines += [pairs_note(comparison), ""]
    others = tested_metrics(comparison)[2:]
    lines += [f"<details><summary>Pairs on {_and([label for _, label, _, _ in others])}</summary>", ""]
    for key, label, digits, scale in others:
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


# What a report may weigh, each of report.html and figures/: both are committed with every run,
# and a PR review loads them.
SIZE_BUDGET = 2 * 2 ** 20


def _check_sizes(stage: Path) -> None:
    figures = sum(f.stat().st_size for f in (stage / "figures").iterdir())
    page = (stage / "report.html").stat().st_size
    log.info("report.html %.2f MB, figures/ %.2f MB", page / 2 ** 20, figures / 2 ** 20)
    for what, size in (("report.html", page), ("figures/", figures)):
        if size > SIZE_BUDGET:
            log.warning("%s is %.1f MB, over the %.0f MB a committed report should weigh: fewer variants or seeds "
                        "in one report, or a smaller sample.grid", what, size / 2 ** 20, SIZE_BUDGET / 2 ** 20)


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
        grid = int(np.sqrt(params.sample.grid)) ** 2

        def first(name: str) -> np.ndarray:
            return make_grid(np.asarray(np.load(inputs.samples / f"{name}.npy", mmap_mode="r")[:grid]))

        # note: every run's grid again from its samples, at one pixel per pixel and as JPEG: the
        # sample stage's PNGs are doubled, and 15 of them made figures/ 8 MB (report.html 11 MB)
        grids = {name: first(name) for name in [REAL, *runs]}
        for name, g in grids.items():
            write_jpeg(g, figures / samples_file(name))
        medians = [pv[v]["median_run"] for v in comparison["variants"]]
        labels = {REAL: "held-out real", **{pv[v]["median_run"]: f"{v}, seed {pv[v]['median_seed']}"
                                            + (" (headline)" if v == params.model.cell else "")
                                            for v in comparison["variants"]}}
        samples_figure({n: grids[n] for n in [REAL, *medians]}, labels, figures / SAMPLES_FIGURE)
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
                                   provenance(params, inputs.raw), packages(), attributes, code_version())
        (stage / "report.md").write_text(markdown)
        (stage / "report.html").write_text(markdown_to_html(markdown, stage))
        _check_sizes(stage)
        for name in OUTPUTS:
            replace_path(stage / name, out_dir / name, aside=stage / f".previous-{name}")
    log.info("report for %d variants × %d seeds (headline %s) -> %s", len(comparison["variants"]),
             len(comparison["seeds"]), params.model.cell, out_dir)
    return summary

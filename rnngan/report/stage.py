"""The report stage: what a reviewer reads in a pull request. It renders the compare stage's
numbers (comparison/comparison.json) and the runs' own files; it tests nothing itself.

Writes, under reports/: report.md (GitHub markdown, relative image links), report.html,
figures/ (plots as palette PNG, sample grids as JPEG: rnngan.report.figures says why), plots/
(CSV per run for `dvc plots`), and metrics.json (the headline variant's means over seeds at the
top level, every variant under `cells.<variant>`, the held-out real row under `real`, for
`dvc metrics diff` and `dvc exp show`).

The first screen answers what a reviewer asks first: which code (the git commit at report time,
rnngan.environment.code_version) and which recipe (every train/model/augment param off the
code's defaults) made it; the headline against the held-out real row; the verdict over every
tested metric in sentences; every variant's numbers beside its parameter counts.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnngan.comparison import REAL, ComparisonError
from rnngan.config import Params
from rnngan.environment import packages
from rnngan.errors import MissingInputError
from rnngan.grids import make_grid
from rnngan.io import log, read_json, replace_path
from rnngan.metrics.histograms import bin_centres
from rnngan.report.attributes import attributes_figure
from rnngan.report.figures import (SAMPLES_FIGURE, distribution_figures, losses_figure, samples_figure, samples_file,
                                   seeds_figure, write_jpeg)
from rnngan.report.markdown import render_markdown
from rnngan.report.values import metrics_json


OUTPUTS = ("report.md", "report.html", "figures", "plots", "metrics.json")


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
    from rnngan.report.html import markdown_to_html

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

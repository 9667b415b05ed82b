"""End to end: the real `dvc repro` on a temporary copy of the project with shrunken params."""
import json
import re

import numpy as np
import pytest

from project import CELLS, Repo, clone_repo, stages_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(finished_project, tmp_path_factory) -> Repo:
    """A clone of the session's finished tiny run: these tests run experiments in it."""
    r = clone_repo(finished_project, tmp_path_factory.mktemp("pipeline") / "project")
    r.first_repro = finished_project.first_repro
    return r


def test_repro_runs_every_stage(repo):
    expected = {"download", "preprocess", "augment", "reference", "report", "export"}
    expected |= {f"{s}@{c}" for s in ("train", "sample", "analyze") for c in CELLS}
    assert stages_run(repo.first_repro) == expected


def test_every_output_exists_with_the_published_formats(repo):
    root = repo.root
    raw = root / "data/raw/synthfaces"
    assert sorted(p.name for p in raw.iterdir()) == sorted([
        "img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt",
        "list_landmarks_align_celeba.txt"])
    prepared = root / "data/prepared/synthfaces"
    total = 0
    for split in ("train", "val", "test"):
        a = np.load(prepared / f"{split}.npy", mmap_mode="r")
        assert a.dtype == np.uint8 and a.shape[1:] == (16, 16, 3)
        total += len(a)
    assert total == 240
    assert (prepared / "index.csv").read_text().count("\n") == total + 1
    stats = json.loads((prepared / "stats.json").read_text())
    assert stats["skipped"] == []
    train = np.load(prepared / "train.npy", mmap_mode="r")
    augmented = np.load(root / "data/augmented/synthfaces/train.npy", mmap_mode="r")
    assert augmented.shape == train.shape and not np.array_equal(augmented, train)
    assert (root / "data/reference/synthfaces-16px-train-randinit-64.npz").is_file()
    for c in CELLS:
        for name in ("generator.pt", "checkpoint.pt", "train.json", "grids/step_000006.png",
                     "live/plots/metrics/train/loss_d.tsv", "live/plots/metrics/train/loss_g.tsv",
                     "live/plots/metrics/train/d_real.tsv", "live/plots/metrics/train/d_fake.tsv",
                     "live/plots/metrics/train/images_per_s.tsv"):
            assert (root / "models" / c / name).is_file(), f"models/{c}/{name}"
        samples = np.load(root / "samples" / f"{c}.npy")
        assert samples.shape == (64, 16, 16, 3) and samples.dtype == np.uint8
        assert (root / "samples" / f"{c}.png").is_file()
        m = json.loads((root / "metrics" / f"{c}.json").read_text())
        assert np.isfinite(m["fid"]) and m["fid"] > 0 and np.isfinite(m["kid"])
        assert set(m["histogram_distances"]) == {"grey", "red", "green", "blue"}
    export = json.loads((root / "exports/generator.json").read_text())
    assert export["cell"] == "lstm" and export["max_abs_diff"] <= export["tolerance"]
    assert (root / "exports/generator.onnx").stat().st_size == export["bytes"]


def test_report_and_metrics_json_have_every_key(repo):
    reports = repo.root / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    keys = {"fid", "fid_lo", "fid_hi", "kid", "kid_lo", "kid_hi", "precision", "recall", "density", "coverage",
            "spectral_distance", "w1_hue", "w1_saturation", "fid_tier", "kid_tier", "params_g", "params_d",
            "train_seconds", "images_per_s", "w1_grey"}
    assert metrics["cell"] == "lstm" and keys <= set(metrics)
    assert set(metrics["cells"]) == set(CELLS)
    for c in CELLS:   # a short list per variant, so `dvc metrics diff` stays readable
        assert set(metrics["cells"][c]) == keys
    assert metrics["fid"] == metrics["cells"]["lstm"]["fid"]
    md = (reports / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (reports / link).is_file(), link
    assert "figures/samples_gru.png" in md and "figures/losses.png" in md and "figures/spectra.png" in md
    assert "## Which variant is better" in md and "Bonferroni-adjusted over 10 pairs" in md
    assert md.startswith("# rnngan report: `lstm` on synthfaces 16×16\n")
    assert "| headline `lstm` | FID ↓ |" in md
    assert "| `img_align_celeba.zip` |" in md and "hashed by the report" in md   # provenance
    assert "Report built with python" in md and "not recorded" not in md   # train.json's environment
    for c in CELLS:
        assert (reports / "plots/losses" / f"{c}.csv").is_file()
    shown = repo.dvc("metrics", "show", "--json")
    assert "reports/metrics.json" in shown.stdout
    plots = repo.dvc("plots", "show", "--json")
    assert "reports/plots/losses" in plots.stdout


def test_plots_diff_overlays_losses_histograms_and_spectra_of_every_variant(repo):
    out = json.loads(repo.dvc("plots", "diff", "HEAD", "--json").stdout)
    for family in ("losses", "histograms", "spectra"):
        for c in CELLS:
            entry = out["data"][f"reports/plots/{family}/{c}.csv"][0]
            assert set(entry["revisions"]) == {"workspace", "HEAD"}
            assert entry["content"]["data"]["values"], (family, c)


def test_metrics_diff_is_one_markdown_row_per_headline_and_variant_number(repo):
    md = repo.dvc("metrics", "diff", "HEAD~1", "--md").stdout.strip().splitlines()
    assert md[0].replace(" ", "") == "|Path|Metric|HEAD~1|workspace|Change|"
    metrics = {row.split("|")[2].strip() for row in md[2:]}
    summary = json.loads((repo.root / "reports/metrics.json").read_text())
    flat = {k for k in summary if k != "cells"} | {f"cells.{c}.{k}" for c, v in summary["cells"].items() for k in v}
    assert len(md) - 2 == len(metrics) and metrics == flat
    # the headline's 4 labels and 20 numbers, and each variant's 20: short enough to read in a PR
    assert len(summary["cells"]["gru"]) == 20 and len(flat) == 24 + 5 * 20


def test_second_repro_is_a_noop(repo):
    result = repo.dvc("repro")
    assert stages_run(result) == set()
    assert repo.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")


def test_changing_the_headline_cell_reruns_only_the_report(repo):
    result = repo.dvc("exp", "run", "-S", "model.cell=gru")
    assert stages_run(result) == {"report", "export"}   # and the export of the new headline generator
    assert json.loads((repo.root / "reports/metrics.json").read_text())["cell"] == "gru"
    assert json.loads((repo.root / "exports/generator.json").read_text())["cell"] == "gru"


def test_changing_a_metrics_param_reruns_only_evaluation(repo):
    result = repo.dvc("exp", "run", "-S", "metrics.bins=8")
    assert stages_run(result) == {"reference", "report"} | {f"analyze@{c}" for c in CELLS}
    result = repo.dvc("exp", "run", "-S", "metrics.bootstrap=12")   # analysis only: no new reference
    assert stages_run(result) == {"report"} | {f"analyze@{c}" for c in CELLS}


def test_a_bad_cell_stops_with_a_clear_error(repo):
    result = repo.dvc("exp", "run", "-S", "model.cell=transformer", check=False)
    assert result.returncode != 0
    assert "model.cell='transformer' must be one of: rnn, lstm, gru, sru, dcgan" in result.stdout + result.stderr
    repo.run("git", "checkout", "params.yaml")
    repo.dvc("checkout", "-f")


def test_editing_model_code_makes_training_stale(repo):
    cells = repo.root / "rnngan/models/cells.py"
    original = cells.read_text()
    try:
        cells.write_text(original + "\n# an edit\n")
        status = json.loads(repo.dvc("status", "--json").stdout)
        assert {f"train@{c}" for c in CELLS} <= set(status)
        assert "report" not in status or "rnngan/models" not in json.dumps(status["report"])
    finally:
        cells.write_text(original)

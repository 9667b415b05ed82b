"""End to end: the real `dvc repro` on a temporary copy of the project with shrunken params."""
import json
import re

import numpy as np
import pytest
import yaml

from project import CELLS, RUNS, SEEDS, Repo, clone_repo, stages_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(finished_project, tmp_path_factory) -> Repo:
    """A clone of the session's finished tiny run: these tests run experiments in it."""
    r = clone_repo(finished_project, tmp_path_factory.mktemp("pipeline") / "project")
    r.first_repro = finished_project.first_repro
    return r


def test_repro_runs_every_stage(repo):
    expected = {"download", "preprocess", "augment", "reference", "attributes", "heldout", "compare", "report",
                "export"}
    expected |= {f"{s}@{r}" for s in ("train", "sample", "analyze") for r in RUNS}
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
    # augment.real=step (the default): the stage passes the images through, training redraws them
    assert augmented.shape == train.shape and np.array_equal(augmented, train)
    assert (root / "data/reference/synthfaces-16px-train-randinit-64.npz").is_file()
    for c in RUNS:
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
        train = json.loads((root / "models" / c / "train.json").read_text())
        env = train["environment"]
        assert train["seed"] == int(c.split("-")[1]) and train["threads"] == env["threads"] >= 1
        assert env["cpu_model"] and env["cpu_capability"] and env["blas"]   # what decides the rounding
    # every seed trains its own network from the same data
    a, b = (np.load(root / "samples" / f"gru-{s}.npy") for s in SEEDS)
    assert not np.array_equal(a, b)
    real = np.load(root / "samples/real.npy")
    assert real.shape == (64, 16, 16, 3)
    m = json.loads((root / "metrics/real.json").read_text())
    assert m["cell"] == "real" and sum(m["sources"].values()) == 64 and "test" in m["sources"] and "val" not in m["sources"]
    comparison = json.loads((root / "comparison/comparison.json").read_text())
    assert comparison["seeds"] == SEEDS and set(comparison["runs"]) == set(RUNS)
    assert comparison["training_variation_measured"] and comparison["tests"]["fid"]["basis"] == "seeds"
    export = json.loads((root / "exports/generator.json").read_text())
    assert export["cell"] == "lstm" and export["max_abs_diff"] <= export["tolerance"]
    assert export["run"] == comparison["per_variant"]["lstm"]["median_run"]
    assert (root / "exports/generator.onnx").stat().st_size == export["bytes"]


VARIANT_KEYS = {"fid", "fid_lo", "fid_hi", "fid_std", "kid", "kid_lo", "kid_hi", "kid_std", "precision", "recall",
                "density", "coverage", "spectral_distance", "w1_hue", "w1_saturation", "w1_grey", "fid_tier",
                "kid_tier", "params_g", "params_d", "train_seconds", "images_per_s", "seeds",
                "attr_tv", "attr_modes", "attr_kl"}
REAL_KEYS = {"fid", "fid_lo", "fid_hi", "kid", "kid_lo", "kid_hi", "precision", "recall", "density", "coverage",
             "w1_grey", "spectral_distance", "attr_tv", "attr_modes", "attr_kl"}


def test_report_and_metrics_json_have_every_key(repo):
    reports = repo.root / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["cell"] == "lstm" and metrics["interval"] == "seeds" and VARIANT_KEYS <= set(metrics)
    assert set(metrics["cells"]) == set(CELLS)
    for c in CELLS:   # a short list per variant, so `dvc metrics diff` stays readable
        assert set(metrics["cells"][c]) == VARIANT_KEYS and metrics["cells"][c]["seeds"] == len(SEEDS)
        v = metrics["cells"][c]
        assert v["fid_lo"] <= v["fid"] <= v["fid_hi"] and v["fid_std"] >= 0
    assert set(metrics["real"]) == REAL_KEYS
    assert metrics["fid"] == metrics["cells"]["lstm"]["fid"]
    per_seed = [json.loads((repo.root / "metrics" / f"lstm-{s}.json").read_text())["fid"] for s in SEEDS]
    assert abs(metrics["fid"] - np.mean(per_seed)) < 1e-3   # the headline is the mean over seeds
    md = (reports / "report.md").read_text()
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (reports / link).is_file(), link
    for figure in ("samples_gru-0.jpg", "samples_gru-1.jpg", "samples_real.jpg", "seeds.png", "losses.png",
                   "spectra.png", "attributes.png"):
        assert f"figures/{figure}" in md, figure
    assert "## Which variant is better" in md and "| pair (FID) | mean a − b | Welch t (df) | p, Holm |" in md
    assert md.startswith("# rnngan report: `lstm` on synthfaces 16×16\n")
    assert "| headline `lstm`, mean of 2 seeds [95% interval over seeds] |" in md
    assert "| held-out real images (the floor / ceiling) |" in md and "| *held-out real* |" in md
    assert "Bit-identical numbers need the same hardware and software" in md
    assert "## Attributes: which modes the generators miss" in md and "| *held-out real* | 0." in md
    assert "The classifier's held-out accuracy per attribute" in md
    assert "| `img_align_celeba.zip` |" in md and "hashed by the report" in md   # provenance
    assert "Report built with python" in md and "not recorded" not in md   # train.json's environment
    for r in RUNS:
        assert (reports / "plots/losses" / f"{r}.csv").is_file()
    assert (reports / "plots/histograms/real.csv").is_file()
    shown = repo.dvc("metrics", "show", "--json")
    assert "reports/metrics.json" in shown.stdout
    plots = repo.dvc("plots", "show", "--json")
    assert "reports/plots/losses" in plots.stdout


def test_plots_diff_overlays_losses_histograms_and_spectra_of_every_run(repo):
    out = json.loads(repo.dvc("plots", "diff", "HEAD", "--json").stdout)
    for family in ("losses", "histograms", "spectra"):
        for r in RUNS + ([] if family == "losses" else ["real"]):
            entry = out["data"][f"reports/plots/{family}/{r}.csv"][0]
            assert set(entry["revisions"]) == {"workspace", "HEAD"}
            assert entry["content"]["data"]["values"], (family, r)


def test_metrics_diff_is_one_markdown_row_per_headline_and_variant_number(repo):
    md = repo.dvc("metrics", "diff", "HEAD~1", "--md").stdout.strip().splitlines()
    assert md[0].replace(" ", "") == "|Path|Metric|HEAD~1|workspace|Change|"
    metrics = {row.split("|")[2].strip() for row in md[2:]}
    summary = json.loads((repo.root / "reports/metrics.json").read_text())
    flat = ({k for k in summary if k not in ("cells", "real")}
            | {f"{group}.{c}.{k}" for group in ("cells",) for c, v in summary[group].items() for k in v}
            | {f"real.{k}" for k in summary["real"]})
    assert len(md) - 2 == len(metrics) and metrics == flat
    # the headline's 5 labels and 26 numbers, each variant's 26 and the real row's 15: per-seed
    # numbers stay in metrics/<variant>-<seed>.json
    assert len(flat) == 31 + 5 * 26 + 15


def test_second_repro_is_a_noop(repo):
    result = repo.dvc("repro")
    assert stages_run(result) == set()
    assert repo.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")


def test_changing_the_headline_cell_reruns_only_the_report_and_export(repo):
    result = repo.dvc("exp", "run", "-S", "model.cell=gru")
    assert stages_run(result) == {"report", "export"}   # and the export of the new headline generator
    assert json.loads((repo.root / "reports/metrics.json").read_text())["cell"] == "gru"
    assert json.loads((repo.root / "exports/generator.json").read_text())["cell"] == "gru"


def test_changing_a_metrics_param_reruns_only_evaluation(repo):
    evaluation = {"heldout", "compare", "report"} | {f"analyze@{r}" for r in RUNS}
    result = repo.dvc("exp", "run", "-S", "metrics.bins=8")
    assert stages_run(result) == {"reference"} | evaluation
    # analysis only, no new reference: what `dvc repro --dry` plans (it cannot foresee `compare`,
    # whose inputs change only once the analyses have rerun, as the run above showed)
    params = repo.root / "params.yaml"
    values = yaml.safe_load(params.read_text())
    values["metrics"]["bootstrap"] = 12
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    result = repo.dvc("repro", "--dry")
    assert stages_run(result) == evaluation - {"compare"}
    # the attribute classifier's params retrain it and rescore every run, and train nothing
    values["attributes"]["min_accuracy"] = 0.7
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    result = repo.dvc("repro", "--dry")
    assert stages_run(result) == {"attributes"} | evaluation - {"compare"}


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
        assert {f"train@{r}" for r in RUNS} <= set(status)
        assert "report" not in status or "rnngan/models" not in json.dumps(status["report"])
    finally:
        cells.write_text(original)

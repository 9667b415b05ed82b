"""End to end: replicates under the real `dvc repro`. Adding a seed trains, samples and analyzes
only the new runs; removing one retrains nothing; a run keeps its numbers whatever the list."""
import json

import pytest
import yaml

from project import make_repo, stages_run

pytestmark = pytest.mark.e2e

TINY = {
    "data": {"count": 200, "image_size": 16, "workers": 1},
    "model": {"cell": "gru", "variants": ["gru", "dcgan"], "hidden": 16, "nf": 8, "z_dim": 8, "timesteps": 2},
    "train": {"steps": 4, "batch_size": 16, "log_every": 2, "grid_every": 2, "seeds": [0]},
    "sample": {"count": 48, "grid": 16},
    "metrics": {"real_count": 48, "batch_size": 48, "bins": 16, "kid_subsets": 3, "kid_subset_size": 24,
                "bootstrap": 10},
}
PER_RUN = ("train", "sample", "analyze")


def set_seeds(repo, seeds: list[int]) -> None:
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    params["train"]["seeds"] = seeds
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_adding_a_seed_runs_only_its_stages_and_removing_one_retrains_nothing(tmp_path):
    repo = make_repo(tmp_path / "project", TINY)
    first = stages_run(repo.dvc("repro"))
    assert {s for s in first if "@" in s} == {f"{s}@{v}-0" for s in PER_RUN for v in ("gru", "dcgan")}
    metrics_0 = (repo.root / "metrics/gru-0.json").read_bytes()
    report = json.loads((repo.root / "reports/metrics.json").read_text())
    assert report["interval"] == "bootstrap" and report["fid_std"] is None
    assert "Training variation was not measured" in (repo.root / "reports/report.md").read_text()
    repo.commit("one seed")

    set_seeds(repo, [0, 1])
    added = stages_run(repo.dvc("repro"))
    assert {s for s in added if "@" in s} == {f"{s}@{v}-1" for s in PER_RUN for v in ("gru", "dcgan")}
    assert added - {s for s in added if "@" in s} <= {"compare", "report", "export"} and "report" in added
    assert (repo.root / "metrics/gru-0.json").read_bytes() == metrics_0     # seed 0 is the same run
    report = json.loads((repo.root / "reports/metrics.json").read_text())
    assert report["interval"] == "seeds" and report["seeds"] == 2 and report["fid_std"] is not None
    repo.commit("two seeds")

    set_seeds(repo, [1])
    removed = stages_run(repo.dvc("repro"))
    assert not any("@" in s for s in removed) and "report" in removed
    comparison = json.loads((repo.root / "comparison/comparison.json").read_text())
    assert comparison["seeds"] == [1] and set(comparison["runs"]) == {"gru-1", "dcgan-1"}

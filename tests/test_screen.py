"""The recipe screen (`rnngan screen`): plans checked before any run, one row written the moment
its run finishes, rows already there skipped, a failed run not stopping the others, the recipe
page re-rendered around hand-written text; and one real run through dvc in a worktree."""
import csv
import json
import shutil
import subprocess
import sys

import pytest
import yaml

import rnngan.screen as screen
from conftest import PROJECT
from rnngan.screen import COLUMNS, BEGIN, END, Config, ScreenError, load_plan, render_recipe, run_params

ISSUE_COLUMNS = ["config", "g", "d", "seed", "steps", "commit", "cpu", "train_s", "fid", "kid", "precision",
                 "recall", "density", "coverage", "attr_tv", "attr_modes", "real_modes", "attr_kl", "overrides"]


def plan_file(tmp_path, text: str):
    """A plan inside a copy of the project's params.yaml and dvc.yaml (what overrides apply to)."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(PROJECT / name, tmp_path / name)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


GOOD = """
name: two
profile: long
steps: 50
seeds: [0, 1]
overrides:
  train.lr: 0.0001
configs:
  - name: pure
    g: lstm
    d: lstm
  - name: pair
    g: lstm
    d: dcgan
    seeds: [0]
    overrides:
      model.modulation: true
"""


def test_the_columns_start_with_the_issues_contract():
    assert list(COLUMNS[:len(ISSUE_COLUMNS)]) == ISSUE_COLUMNS


def test_a_plan_reads_into_configurations_with_their_variant_seeds_and_overrides(tmp_path):
    plan = load_plan(plan_file(tmp_path, GOOD))
    pure, pair = plan.configs
    assert (pure.variant, pure.seeds, pure.steps, pure.overrides) == ("lstm", (0, 1), 50, {"train.lr": 0.0001})
    assert pair.variant == "lstm+dcgan" and pair.seeds == (0,)
    assert pair.overrides == {"train.lr": 0.0001, "model.modulation": True}
    params = run_params(yaml.safe_load((tmp_path / "params.yaml").read_text()), pair, 0)
    assert params["model"]["variants"] == ["lstm+dcgan"] and params["model"]["cell"] == "lstm+dcgan"
    assert params["train"]["seeds"] == [0] and params["train"]["steps"] == 50 and params["model"]["modulation"]


@pytest.mark.parametrize("change, message", [
    ("  - name: pure\n    g: lstm\n    d: lsmt\n", "g='lstm', d='lsmt'.*unknown model variant"),
    ("  - name: pure\n    g: lstm\n    overrides:\n      train.lrr: 1\n", "unknown key 'train.lrr'"),
    ("  - name: pure\n    g: lstm\n    overrides:\n      train.lr: -1\n", "train.lr=-1 must be > 0"),
    ("  - name: pure\n    g: lstm\n    colour: red\n", "unknown key 'colour'"),
    ("  - name: pure\n    g: lstm\n  - name: pure\n    g: gru\n", "unique name"),
])
def test_a_bad_plan_is_refused_before_any_run_naming_what(tmp_path, change, message):
    text = "name: bad\nsteps: 10\nconfigs:\n" + change
    with pytest.raises(ScreenError, match=message):
        load_plan(plan_file(tmp_path, text))


def test_a_plan_pins_its_baseline_commit_and_commit_overrides_it(tmp_path):
    """A plan written against one params.yaml keeps running at that commit after the defaults move."""
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=PROJECT, capture_output=True,
                           text=True, check=True).stdout.split()[0]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True,
                          check=True).stdout.strip()
    path = plan_file(tmp_path, GOOD.replace("name: two\n", f"name: two\ncommit: {first[:12]}\n"))
    assert load_plan(path).commit == first[:12]
    assert screen.pending(path, PROJECT, tmp_path / "runs.csv")[1] == first
    assert screen.pending(path, PROJECT, tmp_path / "runs.csv", "HEAD")[1] == head
    assert screen.pending(plan_file(tmp_path, GOOD), PROJECT, tmp_path / "runs.csv")[1] == head
    with pytest.raises(ScreenError, match="commit must be a commit id"):
        load_plan(plan_file(tmp_path, GOOD.replace("name: two\n", "name: two\ncommit: [1]\n")))


def fake_metrics(fid: float) -> dict:
    return {"fid": fid, "kid": 0.01, "precision": 0.5, "recall": 0.4, "density": 0.6, "coverage": 0.3,
            "attributes": {"available": True, "tv_mean": 0.05,
                           "modes": {"produced": 80, "real_modes": 96, "kl": 0.2}}}


def test_each_row_lands_when_its_run_ends_and_a_rerun_skips_it(tmp_path, monkeypatch):
    path = plan_file(tmp_path, GOOD)
    runs, recipe = tmp_path / "runs.csv", tmp_path / "recipe.md"
    recipe.write_text(f"# Recipe\n\nWhose fault: hand-written.\n\n{BEGIN}\nold\n{END}\n\nMore prose.\n")
    monkeypatch.setattr(screen, "worktree", lambda repo, sha: tmp_path)
    calls = []

    def run_one(wt, cfg, seed, log_path):
        # the rows of every earlier run are already on disk when the next one starts
        assert len(screen.read_rows(runs)) == len(calls)
        calls.append((cfg.name, seed))
        if cfg.name == "pair":
            raise ScreenError("pair seed 0: dvc repro exited 1; see the log")
        return fake_metrics(10.0 + len(calls)), {"seconds": 12.5}
    monkeypatch.setattr(screen, "run_one", run_one)
    with pytest.raises(ScreenError, match="1 of 3 runs failed: pair seed 0"):
        screen.run_plan(path, PROJECT, runs, recipe)
    assert calls == [("pure", 0), ("pure", 1), ("pair", 0)]
    rows = screen.read_rows(runs)
    assert [(r["config"], r["seed"]) for r in rows] == [("pure", "0"), ("pure", "1")]
    assert rows[0]["attr_modes"] == "80" and rows[0]["real_modes"] == "96" and rows[0]["train_s"] == "12.5"
    assert json.loads(rows[0]["overrides"]) == {"train.lr": 0.0001}
    text = recipe.read_text()
    assert text.startswith("# Recipe\n\nWhose fault: hand-written.") and text.endswith("More prose.\n")
    assert "old" not in text and "| pure | lstm | lstm | 0 | 50 |" in text and "dvc exp run" in text
    # the failed run is the only one left to do
    calls.clear()
    monkeypatch.setattr(screen, "run_one", lambda wt, cfg, seed, log_path: (calls.append(cfg.name),
                                                                            (fake_metrics(5.0), {"seconds": 1}))[1])
    screen.run_plan(path, PROJECT, runs, recipe)
    assert calls == ["pair"] and len(screen.read_rows(runs)) == 3


def test_the_page_ranks_by_coverage_within_a_profile(tmp_path):
    rows = [dict.fromkeys(COLUMNS, "") | {"config": c, "g": "lstm", "d": "lstm", "seed": "0", "steps": "10",
                                          "commit": "a" * 40, "coverage": cov, "profile": "long", "overrides": "{}",
                                          "variant": "lstm"}
            for c, cov in (("low", "0.1"), ("high", "0.5"), ("mid", "0.3"))]
    render_recipe(tmp_path / "r.md", rows)
    text = (tmp_path / "r.md").read_text()
    assert text.index("| high |") < text.index("| mid |") < text.index("| low |")


@pytest.mark.e2e
def test_a_real_run_goes_through_dvc_in_a_worktree_at_the_commit(tmp_path):
    """A tiny configuration end to end: the worktree's own code at the commit, trained, sampled and
    scored by the pipeline's stages; the main tree untouched; a second call finds nothing to do."""
    from project import TINY, make_repo

    repo = make_repo(tmp_path / "repo", TINY)
    (repo.root / "tiny-plan.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "profile": "tiny", "steps": 2, "seeds": [0],
        "configs": [{"name": "pair", "g": "lstm", "d": "dcgan"}]}))
    repo.commit("plan")
    cmd = (sys.executable, "-m", "rnngan.cli", "screen", "tiny-plan.yaml", "--runs", "runs.csv", "--recipe",
           "recipe.md")
    out = repo.run(*cmd)
    with open(repo.root / "runs.csv") as f:
        (row,) = list(csv.DictReader(f))
    sha = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert row["commit"] == sha and (row["g"], row["d"], row["steps"]) == ("lstm", "dcgan", "2")
    assert float(row["fid"]) > 0 and 0 <= float(row["coverage"]) <= 1
    worktree = repo.root / ".screen" / sha[:12]
    metrics = json.loads((worktree / "metrics" / "lstm+dcgan-0.json").read_text())
    assert metrics["fid"] == pytest.approx(float(row["fid"]))
    assert not (repo.root / "metrics").exists() and not (repo.root / "models").exists()
    assert repo.run("git", "status", "--porcelain", "params.yaml").stdout == ""
    assert "| pair | lstm | dcgan | 0 | 2 |" in (repo.root / "recipe.md").read_text()
    again = repo.run(*cmd)
    assert "0 new rows" in again.stdout, out.stdout


@pytest.mark.parametrize("plan", sorted((PROJECT / "docs" / "recipe" / "plans").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_committed_plan_reads_and_its_params_validate(plan):
    """A plan the docs tell users to run must load (its YAML, its keys, every configuration's params)."""
    loaded = load_plan(plan)
    assert loaded.configs and loaded.name == plan.stem

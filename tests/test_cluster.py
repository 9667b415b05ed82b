"""`rnngan cluster`: the runs as submitit or Ray tasks, each in its own clone, their results brought
home through a DVC remote's run-cache, so that `dvc repro` afterwards trains nothing."""
import json
import subprocess
import sys

import pytest

from project import TINY, make_repo
from rnngan.cluster import ClusterError, cluster

SMALL = {**TINY, "model": {**TINY["model"], "variants": ["lstm", "dcgan"]},
         "train": {**TINY["train"], "seeds": [0], "threads": 1}}
RUNS = ["dcgan-0", "lstm-0"]


def cli(repo, *args):
    return repo.run(sys.executable, "-m", "rnngan.cli", "cluster", *args, check=False)


@pytest.fixture
def repo(tmp_path):
    r = make_repo(tmp_path / "project", SMALL)
    r.dvc("remote", "add", "-d", "store", str(tmp_path / "remote"))
    r.commit("a local DVC remote")
    return r


def test_refused_without_a_remote_or_with_uncommitted_changes_or_a_bad_engine(tmp_path):
    r = make_repo(tmp_path / "project", SMALL)
    out = cli(r, "--engine", "submitit", "--local")
    assert out.returncode == 2 and "no default DVC remote" in out.stderr and "dvc remote add -d" in out.stderr
    r.dvc("remote", "add", "-d", "store", str(tmp_path / "remote"))   # .dvc/config changed, not committed
    out = cli(r, "--engine", "submitit", "--local")
    assert out.returncode == 2 and "uncommitted changes to .dvc/config" in out.stderr
    out = cli(r, "--engine", "slurm")
    assert out.returncode == 2 and "one of submitit, ray" in out.stderr
    out = cli(r, "--engine", "submitit", "--slurm", "partition")
    assert out.returncode == 2 and "expected KEY=VALUE" in out.stderr
    for result in (out,):
        assert "Traceback" not in result.stderr


def _assert_restored_without_training(repo, runs):
    for run in runs:
        assert (repo.root / "models" / run / "generator.pt").is_file()
        assert json.loads((repo.root / "metrics" / f"{run}.json").read_text())["fid"] > 0
    assert (repo.root / "reports" / "report.md").is_file()
    status = repo.dvc("status").stdout
    assert "Data and pipelines are up to date." in status, status


@pytest.mark.e2e
def test_submitit_then_ray_tasks_and_pull_run_cache_train_nothing_here(repo, monkeypatch, tmp_path):
    """submitit's local executor computes both runs; a second seed, committed, makes two more
    runs stale, which Ray (a local Ray) computes; after each, `dvc repro` here trains nothing."""
    import yaml

    monkeypatch.chdir(repo.root)
    for key in ("PATH", "PYTHONPATH", "RNNGAN_NO_PROGRESS"):   # the stages' `python` is the venv's
        monkeypatch.setenv(key, repo.env[key])
    done = cluster(repo.root, "submitit", local=True, workdir=str(tmp_path / "clones"))
    assert sorted(done["runs"]) == RUNS
    assert sorted(done["restored"]) == sorted(f"{s}@{r}" for s in ("train", "sample", "analyze") for r in RUNS)
    _assert_restored_without_training(repo, RUNS)
    assert not list((tmp_path / "clones").iterdir()), "each task removes its clone"
    trained_here = repo.dvc("repro")
    assert "Running stage" not in trained_here.stdout + trained_here.stderr

    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    params["train"]["seeds"] = [0, 1]
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo.commit("a second seed")
    done = cluster(repo.root, "ray", workdir=str(tmp_path / "clones"), cpus=1)
    assert sorted(done["runs"]) == ["dcgan-1", "lstm-1"], "only the stale runs are tasks"
    assert sorted(done["restored"]) == sorted(f"{s}@{r}" for s in ("train", "sample", "analyze")
                                              for r in ("dcgan-1", "lstm-1"))
    _assert_restored_without_training(repo, RUNS + ["dcgan-1", "lstm-1"])


def test_a_failed_task_is_named_and_nothing_is_collected(tmp_path, monkeypatch):
    """A task that cannot clone its repository fails in submitit's local executor: the error names
    the run and the log folder, and the collect step never runs."""
    import rnngan.cluster as cl

    tasks = [cl.Task(run, str(tmp_path / "no-such-repo"), "0" * 40, "", (), (f"train@{run}",), str(tmp_path / "w"))
             for run in ("lstm-0", "dcgan-0")]
    collected = []
    monkeypatch.setattr(cl, "prepare", lambda root, repo, workdir: (tasks, {}))
    monkeypatch.setattr(cl, "collect", lambda root, env: collected.append(root))
    with pytest.raises(ClusterError, match=r"lstm-0: the task failed \(submitit job .*git clone.*Fix it and rerun"):
        cl.cluster(tmp_path, "submitit", local=True)
    assert not collected

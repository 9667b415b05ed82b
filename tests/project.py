"""A temporary copy of the project to run the real `dvc repro` in (end-to-end tests)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import PROJECT


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=PROJECT, capture_output=True, text=True, check=True).stdout
    skip = ("dvc.lock", "reports/", "tests/", "benchmarks/", ".ci/")
    return [f for f in out.splitlines() if not f.startswith(skip) and (PROJECT / f).is_file()]


class Repo:
    def __init__(self, root: Path):
        self.root = root
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ["PATH"],
                    # the copy's own rnngan, not the installed checkout's
                    "PYTHONPATH": str(root), "DVC_NO_ANALYTICS": "1", "RNNGAN_NO_PROGRESS": "1",
                    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", result.stdout + result.stderr))


# The default params shrunk so that the whole default pipeline (5 variants x 2 seeds) runs in
# about two minutes.
TINY = {
    "data": {"count": 240, "image_size": 16, "workers": 2},
    "model": {"hidden": 16, "nf": 8, "z_dim": 8, "timesteps": 2},
    "train": {"steps": 6, "batch_size": 16, "log_every": 2, "grid_every": 3, "seeds": [0, 1]},
    "sample": {"count": 64, "grid": 16},
    "metrics": {"real_count": 64, "batch_size": 32, "bins": 16, "kid_subsets": 5,
                "kid_subset_size": 32, "bootstrap": 10},   # 100 rounds take 13 s per variant here
    "attributes": {"epochs": 40, "batch_size": 32, "min_accuracy": 0.6, "modes": 3},
}
CELLS = ["rnn", "lstm", "gru", "sru", "dcgan"]   # the default model.variants
SEEDS = [0, 1]                                   # TINY's train.seeds
RUNS = [f"{c}-{s}" for c in CELLS for s in SEEDS]   # one per (variant, seed): train@<run>, models/<run>


def make_repo(root: Path, overrides: dict[str, dict]) -> Repo:
    """A git repository at root holding the project's tracked files, params updated by section."""
    for f in project_files():
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / f, root / f)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = Repo(root)
    r.run("git", "init", "-q")
    r.commit("project")
    return r


def clone_repo(source: Repo, dest: Path) -> Repo:
    """A git clone of a finished project with a copy of its DVC cache, outputs checked out: a
    test can change it (experiments, remotes) without touching the session's finished run."""
    source.run("git", "clone", "-q", str(source.root), str(dest))
    shutil.copytree(source.root / ".dvc" / "cache", dest / ".dvc" / "cache")
    r = Repo(dest)
    r.dvc("checkout", "--quiet")
    return r

"""Sharing a finished run through a DVC remote: the author pushes, a reviewer clones afresh and
`dvc pull`s, and finds every output byte for byte, `dvc status` clean and nothing for `dvc repro`
to run (never retraining to look). A remote that lost objects makes `dvc pull` fail loudly, and
`dvc status` / `dvc repro` then point at exactly the stages whose outputs are missing."""
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from project import Repo, clone_repo, stages_run

pytestmark = pytest.mark.e2e

UP_TO_DATE = "Data and pipelines are up to date."


class Shared:
    """The author's clone of the finished run, pushed to a local-folder remote named `store`."""

    def __init__(self, author: Repo, store: Path, pushed: int, base: Path):
        self.author, self.store, self.pushed, self.base = author, store, pushed, base

    def fresh_clone(self, dest: Path, store: Path | None = None) -> Repo:
        """What a reviewer gets from `git clone`: code, dvc.lock, reports/; no cache, no data."""
        self.author.run("git", "clone", "-q", str(self.author.root), str(dest))
        r = Repo(dest)
        if store is not None:   # the committed remote's URL, overridden in .dvc/config.local
            r.dvc("remote", "modify", "--local", "store", "url", str(store))
        return r

    def store_without(self, path: str, dest: Path) -> tuple[Path, str]:
        """A copy of the remote with the object holding the author's `path` deleted."""
        shutil.copytree(self.store, dest)
        md5 = hashlib.md5((self.author.root / path).read_bytes()).hexdigest()
        obj = dest / "files" / "md5" / md5[:2] / md5[2:]
        assert obj.is_file(), f"{path} ({md5}) is not in the remote"
        obj.unlink()
        return dest, md5


@pytest.fixture(scope="module")
def shared(finished_project, tmp_path_factory) -> Shared:
    base = tmp_path_factory.mktemp("remote")
    author = clone_repo(finished_project, base / "author")
    store = base / "store"
    author.dvc("remote", "add", "-d", "store", str(store))
    author.run("git", "add", ".dvc/config")
    author.run("git", "commit", "-q", "-m", "a DVC remote to share results")
    push = author.dvc("push")
    m = re.search(r"(\d+) files? pushed", push.stdout + push.stderr)
    assert m, f"dvc push said nothing of files pushed:\n{push.stdout}\n{push.stderr}"
    return Shared(author, store, int(m.group(1)), base)


def lock_outs(repo: Repo) -> list[str]:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return sorted({o["path"] for s in lock["stages"].values() for o in s.get("outs", [])})


def lock_deps(repo: Repo) -> list[str]:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return sorted({d["path"] for s in lock["stages"].values() for d in s.get("deps", [])})


def git_files(repo: Repo) -> set[str]:
    return set(repo.run("git", "ls-files").stdout.splitlines())


def under(path: str, files: set[str]) -> bool:
    return path in files or any(f.startswith(path.rstrip("/") + "/") for f in files)


def split_outs(repo: Repo) -> tuple[list[str], list[str]]:
    """(outputs in the DVC cache, outputs committed to git: `cache: false`)."""
    tracked = git_files(repo)
    outs = lock_outs(repo)
    return [o for o in outs if not under(o, tracked)], [o for o in outs if under(o, tracked)]


def digests(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under each path (file or folder), keyed by path relative to root."""
    out = {}
    for path in paths:
        p = root / path
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        assert files, f"{path} is missing or empty under {root}"
        for f in files:
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def status_json(repo: Repo) -> dict:
    return json.loads(repo.dvc("status", "--json").stdout or "{}")


def test_every_dependency_is_in_git_or_a_pushed_output(finished_project):
    """A dep that is neither committed nor some stage's output (a download cache, checkpoints/)
    would be absent from a reviewer's clone and make `dvc repro` rerun its stage after a pull."""
    tracked, outs = git_files(finished_project), set(lock_outs(finished_project))
    orphans = [d for d in lock_deps(finished_project)
               if not under(d, tracked)
               and not any(d == o or d.startswith(o + "/") or o.startswith(d + "/") for o in outs)]
    assert orphans == []


def test_reviewer_pulls_a_pushed_run_and_nothing_reruns(shared, finished_project, tmp_path):
    author = shared.author
    cached, committed = split_outs(author)
    assert "models/lstm-0" in cached and "samples/lstm-0.npy" in cached
    assert "reports/report.md" in committed and "reports/metrics.json" in committed
    objects = [p for p in (shared.store / "files").rglob("*") if p.is_file()]
    assert shared.pushed > 0 and shared.pushed == len(objects)
    cloud = author.dvc("status", "--cloud")
    assert "Cache and remote 'store' are in sync." in cloud.stdout
    assert json.loads(author.dvc("status", "--cloud", "--json").stdout) == {}

    reviewer = shared.fresh_clone(tmp_path / "reviewer")
    root = reviewer.root
    assert not any((root / o).exists() for o in cached), "a fresh clone holds no pipeline data"
    for top in ("data", "models", "samples", "metrics", "checkpoints"):
        assert not (root / top).exists()

    pull = reviewer.dvc("pull")
    assert re.search(rf"\b{shared.pushed} files fetched\b", pull.stdout), pull.stdout
    status = reviewer.dvc("status")
    assert UP_TO_DATE in status.stdout, status.stdout
    assert status_json(reviewer) == {}
    repro = reviewer.dvc("repro")
    assert stages_run(repro) == set(), repro.stdout
    assert UP_TO_DATE in repro.stdout
    assert reviewer.run("git", "status", "--porcelain").stdout == "", "repro rewrote something"

    # what was pulled is what the author produced, byte for byte; the committed reports too
    assert digests(root, cached) == digests(author.root, cached)
    assert digests(root, committed) == digests(finished_project.root, committed)
    assert (root / "models" / "lstm-0" / "generator.pt").is_file()
    assert not (root / "checkpoints").exists(), "train resume state is not a DVC output"

    # the pulled generator works: same seed, count and device as the sample stage, same images
    params = yaml.safe_load((root / "params.yaml").read_text())
    s, device = params["sample"], params["train"]["device"]
    gen = [sys.executable, "-m", "rnngan.cli", "generate", "models/lstm-0/generator.pt",
           "--device", device]
    reviewer.run(*gen, "--out", str(tmp_path / "x.png"), "--count", "16")
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reviewer.run(*gen, "--out", str(tmp_path / "x.npy"), "--count", str(s["count"]),
                 "--seed", str(s["seed"]))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.load(root / "samples/lstm-0.npy"))


def test_remote_missing_a_file_output(shared, tmp_path):
    """The object of samples/lstm-0.npy is gone from the remote: `dvc pull` fetches and checks out
    everything else, fails naming the missing output and its hash, `dvc status` shows the
    stages it touches, and `dvc repro` rebuilds it alone, bit for bit."""
    store, md5 = shared.store_without("samples/lstm-0.npy", tmp_path / "store")
    reviewer = shared.fresh_clone(tmp_path / "reviewer", store)
    root = reviewer.root

    pull = reviewer.dvc("pull", check=False)
    said = pull.stdout + pull.stderr
    assert pull.returncode != 0
    assert md5 in said and "samples/lstm-0.npy" in said, said
    assert not (root / "samples" / "lstm-0.npy").exists()
    cached, _ = split_outs(shared.author)
    rest = [o for o in cached if o != "samples/lstm-0.npy"]
    assert digests(root, rest) == digests(shared.author.root, rest)

    assert UP_TO_DATE not in reviewer.dvc("status").stdout
    status = status_json(reviewer)
    assert set(status) == {"sample@lstm-0", "analyze@lstm-0", "report"}, status
    assert {"changed outs": {"samples/lstm-0.npy": "not in cache"}} in status["sample@lstm-0"]

    # the author can see it (`dvc status --cloud`) and mend it with `dvc push`
    author = shared.author
    author.dvc("remote", "add", "--local", "-f", "lossy", str(store))
    cloud = author.dvc("status", "--cloud", "-r", "lossy", "--json")
    assert "samples/lstm-0.npy" in json.loads(cloud.stdout), cloud.stdout
    assert re.search(r"\b1 file pushed\b", author.dvc("push", "-r", "lossy").stdout)
    assert json.loads(author.dvc("status", "--cloud", "-r", "lossy", "--json").stdout) == {}

    # or the reviewer rebuilds just that output: nothing downstream changes
    repro = reviewer.dvc("repro")
    assert stages_run(repro) == {"sample@lstm-0"}, repro.stdout
    assert status_json(reviewer) == {}
    assert digests(root, ["samples/lstm-0.npy"]) == digests(author.root, ["samples/lstm-0.npy"])


def test_remote_missing_a_file_inside_a_directory_output(shared, tmp_path):
    """The object of models/lstm-0/generator.pt (one file of the models/lstm-0 folder output) is gone.
    DVC 3.67 then fails the whole `dvc pull` naming only the hash and checks out nothing;
    `dvc checkout` gets the rest and names models/lstm-0, and `dvc status` shows what reruns."""
    store, md5 = shared.store_without("models/lstm-0/generator.pt", tmp_path / "store")
    reviewer = shared.fresh_clone(tmp_path / "reviewer", store)
    root = reviewer.root

    pull = reviewer.dvc("pull", check=False)
    assert pull.returncode != 0
    assert md5 in pull.stdout + pull.stderr, pull.stdout + pull.stderr
    assert not (root / "models" / "lstm-0" / "generator.pt").exists()
    status = status_json(reviewer)
    assert {"changed outs": {"models/lstm-0": "not in cache"}} in status["train@lstm-0"], status

    checkout = reviewer.dvc("checkout", check=False)
    assert checkout.returncode != 0
    assert "models/lstm-0" in checkout.stdout + checkout.stderr
    cached, _ = split_outs(shared.author)
    rest = [o for o in cached if o != "models/lstm-0"]
    assert digests(root, rest) == digests(shared.author.root, rest)
    assert not (root / "models" / "lstm-0").exists()
    status = status_json(reviewer)
    # train@lstm-0 has lost its output; compare, export and report read the models folder,
    # sample@lstm-0 the generator; analyze@lstm-0 only reads samples/lstm-0.npy, which is unchanged
    assert set(status) == {"train@lstm-0", "sample@lstm-0", "compare", "export", "report"}, status

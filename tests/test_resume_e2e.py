"""SIGKILL in the middle of `dvc repro`'s training stage; the next `dvc repro` resumes from the
last checkpoint and ends with the weights of an uninterrupted run, bit for bit (CPU)."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from project import make_repo, stages_run
from rnngan.training import load_checkpoint

pytestmark = pytest.mark.e2e

TINY = {
    "data": {"count": 300, "image_size": 16},
    "model": {"cell": "gru", "variants": ["gru"], "hidden": 16, "timesteps": 2, "z_dim": 8, "nf": 8},
    "train": {"seeds": [0],
              "steps": 300, "batch_size": 16, "log_every": 20, "grid_every": 100, "checkpoint_every": 20,
              "device": "cpu", "threads": 1},
    "sample": {"count": 200, "grid": 16},
    "metrics": {"real_count": 200, "kid_subsets": 5, "kid_subset_size": 100, "bootstrap": 10},
}


def wait_for_checkpoint(path, proc, deadline_s=120):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"dvc repro ended ({proc.returncode}) before the first checkpoint:\n"
                                 + proc.stdout.read() + proc.stderr.read())
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def test_sigkilled_training_resumes_on_next_repro_bit_identical(tmp_path):
    repo = make_repo(tmp_path / "repo", TINY)
    repo.dvc("repro", "augment")

    ckpt = repo.root / "checkpoints" / "gru-0" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train@gru-0"], cwd=repo.root, env=repo.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_checkpoint(ckpt, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # dvc and the stage under it, no chance to clean up
        proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 20 <= killed_at < 300
    assert not (repo.root / "models" / "gru-0" / "generator.pt").exists(), "no half-written output"

    result = repo.dvc("repro", "train@gru-0")
    assert "train@gru-0" in stages_run(result)
    summary = json.loads((repo.root / "models" / "gru-0" / "train.json").read_text())
    # the kill may land while a later checkpoint is being written: resumed from that one or ours
    assert killed_at <= summary["resumed_from_step"] < 300
    assert summary["resumed_from_step"] % 20 == 0
    assert not ckpt.parent.exists(), "the work folder goes once the model is published"
    assert repo.dvc("status", "train@gru-0").stdout.strip().endswith("up to date.")

    # the same stage, never interrupted
    repo.run(sys.executable, "-m", "stages.train", "--cell", "gru", "--seed", "0",
             "--data", "data/augmented/synthfaces/train.npy",
             "--out", str(tmp_path / "ref"), "--checkpoints", str(tmp_path / "ref.work"))
    a = load_checkpoint(tmp_path / "ref" / "checkpoint.pt")
    b = load_checkpoint(repo.root / "models" / "gru-0" / "checkpoint.pt")
    assert a["step"] == b["step"] == 300
    for part in ("G", "D", "G_ema"):
        differ = [k for k in a[part] if not torch.equal(a[part][k], b[part][k])]
        assert not differ, f"{part} differs from the uninterrupted run: {differ[:5]}"
    for opt in ("opt_g", "opt_d"):
        for i, state in a[opt]["state"].items():
            assert all(torch.equal(state[k], b[opt]["state"][i][k]) for k in state)

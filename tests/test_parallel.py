"""`rnngan repro --jobs N`: the shared stages once, each run's chain N at a time, then the rest;
the same results as a serial `dvc repro`; a failed chain stops the others and names itself."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

import rnngan.parallel as parallel
from project import TINY, make_repo
from rnngan.parallel import Layout, ReproError, core_shares


@pytest.mark.parametrize("cores, jobs, shares", [
    ([0, 1], 2, [[0], [1]]),
    ([0, 1, 2, 3, 4], 2, [[0, 1, 2], [3, 4]]),
    ([0, 1], 4, [[0], [1]]),          # never more shares than cores
    ([0, 1, 2, 3], 1, [[0, 1, 2, 3]]),
])
def test_cores_are_split_into_contiguous_shares(cores, jobs, shares):
    assert core_shares(cores, jobs) == shares


def fake_dvc(tmp_path, behaviour: dict[str, str]):
    """A stand-in for `python -m dvc ...`: a stage named in `behaviour` sleeps or fails; the
    others succeed at once. Every call is appended to calls.txt with the process's cores."""
    script = tmp_path / "fake_dvc.py"
    script.write_text(f"""
import os, sys, time
behaviour = {behaviour!r}
stage = sys.argv[-1]
with open({str(tmp_path / "calls.txt")!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + " cores=" + ",".join(map(str, sorted(os.sched_getaffinity(0))))
            + " cuda=" + os.environ.get("CUDA_VISIBLE_DEVICES", "-") + "\\n")
what = behaviour.get(stage, "")
if what == "sleep":
    with open({str(tmp_path / "sleeping.pid")!r}, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
if what == "fail":
    print("stage failed on purpose")
    sys.exit(3)
""")
    return lambda *args: [sys.executable, str(script), *args]


def fake_layout(monkeypatch, tmp_path, behaviour):
    chains = {run: (f"train@{run}", f"sample@{run}", f"analyze@{run}") for run in ("a-0", "b-0", "c-0")}
    monkeypatch.setattr(parallel, "layout", lambda root: Layout(("data",), chains, ("report",)))
    monkeypatch.setattr(parallel, "stale", lambda root, env: {"train@a-0", "analyze@b-0", "train@c-0"})
    monkeypatch.setattr(parallel, "dvc_command", fake_dvc(tmp_path, behaviour))


def test_chains_run_in_order_on_their_own_cores_then_the_rest(tmp_path, monkeypatch):
    fake_layout(monkeypatch, tmp_path, {})
    done = parallel.repro(tmp_path, jobs=2, poll=0.05)
    assert done["runs"] == ["a-0", "b-0", "c-0"]
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("repro data ") and calls[-1].startswith("repro cores=")   # shared first, plain last
    chain_calls = [c for c in calls if "--single-item" in c]
    assert len(chain_calls) == 9 and all(c.startswith("--wait-for-lock repro --single-item") for c in chain_calls)
    for run in ("a-0", "b-0", "c-0"):
        stages = [c.split()[3] for c in chain_calls if c.split()[3].endswith("@" + run)]
        assert stages == [f"train@{run}", f"sample@{run}", f"analyze@{run}"]
    cores = sorted(parallel.os.sched_getaffinity(0))
    if len(cores) >= 2:
        # each chain on its own share: at most half the cores, never all of them
        assert all(len(c.split("cores=")[1].split()[0].split(",")) <= (len(cores) + 1) // 2 for c in chain_calls)
    assert (tmp_path / parallel.LOGS / "b-0.log").read_text().count("=== dvc --wait-for-lock repro") == 3


def test_gpus_give_each_chain_its_own_device(tmp_path, monkeypatch):
    fake_layout(monkeypatch, tmp_path, {})
    parallel.repro(tmp_path, jobs=2, gpus=["4", "7"], poll=0.05)
    chain_calls = [c for c in (tmp_path / "calls.txt").read_text().splitlines() if "--single-item" in c]
    devices = {c.split()[3].split("@")[1]: c.split("cuda=")[1] for c in chain_calls}
    assert set(devices.values()) <= {"4", "7"} and devices["a-0"] != devices["b-0"]


def test_a_failed_stage_stops_the_others_and_names_itself(tmp_path, monkeypatch):
    fake_layout(monkeypatch, tmp_path, {"train@a-0": "sleep", "sample@b-0": "fail"})
    started = time.monotonic()
    with pytest.raises(ReproError, match=r"sample@b-0 failed \(exit 3\); its log: .*b-0.log.*rerun"):
        parallel.repro(tmp_path, jobs=2, poll=0.05)
    assert time.monotonic() - started < 30, "the sleeping chain was stopped, not waited for"
    pid = int((tmp_path / "sleeping.pid").read_text())
    with pytest.raises(ProcessLookupError):
        parallel.os.kill(pid, 0)
    assert "stage failed on purpose" in (tmp_path / parallel.LOGS / "b-0.log").read_text()
    calls = (tmp_path / "calls.txt").read_text()
    assert "c-0" not in calls and "repro cores=" not in calls, "nothing starts after a failure"


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args, message in ((["--jobs", "0"], "--jobs 0: must be at least 1"), (["--gpus", ","], "--gpus: give")):
        r = subprocess.run([sys.executable, "-m", "rnngan.cli", "repro", *args], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_two_jobs_give_what_a_serial_repro_gives(tmp_path):
    """Two variants, one seed, one thread per run: `rnngan repro --jobs 2` against `dvc repro`."""
    small = {**TINY, "model": {**TINY["model"], "variants": ["lstm", "dcgan"]},
             "train": {**TINY["train"], "seeds": [0], "threads": 1}}
    serial = make_repo(tmp_path / "serial", small)
    serial.dvc("repro")
    jobs = make_repo(tmp_path / "jobs", small)
    jobs.run(sys.executable, "-m", "rnngan.cli", "repro", "--jobs", "2")
    assert jobs.dvc("status").stdout.strip().endswith("Data and pipelines are up to date.")

    a = yaml.safe_load((serial.root / "dvc.lock").read_text())["stages"]
    b = yaml.safe_load((jobs.root / "dvc.lock").read_text())["stages"]
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].get("params") == b[name].get("params"), name
        assert [d["path"] for d in a[name]["deps"]] == [d["path"] for d in b[name]["deps"]], name
    for run in ("lstm-0", "dcgan-0"):
        ga = torch.load(serial.root / "models" / run / "generator.pt", weights_only=True)["state_dict"]
        gb = torch.load(jobs.root / "models" / run / "generator.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(ga[k], gb[k]) for k in ga), run
        assert np.array_equal(np.load(serial.root / "samples" / f"{run}.npy"),
                              np.load(jobs.root / "samples" / f"{run}.npy")), run
        ma = json.loads((serial.root / "metrics" / f"{run}.json").read_text())
        mb = json.loads((jobs.root / "metrics" / f"{run}.json").read_text())
        assert all(ma[k] == mb[k] for k in ("fid", "kid", "precision", "recall", "coverage")), run
    assert (jobs.root / "reports" / "report.md").is_file()

"""train.portable: the train stage starts itself again with the kernel switches set, records it,
and trains the same bits when MKL is capped at another instruction set (an emulated other CPU);
a portable run without a fixed thread count is refused before any work."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import PROJECT
from rnngan.config import ParamsError, load_params
from rnngan.environment import KERNEL_ENV, PORTABLE_ENV
from rnngan.portable import check_portable, portable_env


def write_params(path, **train):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"]["image_size"] = 16
    params["model"].update({"hidden": 16, "timesteps": 2, "z_dim": 8, "nf": 8, "variants": ["gru"], "cell": "gru"})
    params["train"].update({"steps": 6, "batch_size": 8, "log_every": 3, "grid_every": 6, "checkpoint_every": 6,
                            "device": "cpu", "threads": 1, "seeds": [0], **train})
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def train_stage(tmp_path, params, name, **env):
    images = tmp_path / "train.npy"
    if not images.exists():
        np.save(images, np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV and k != "MKL_ENABLE_INSTRUCTIONS"}
    r = subprocess.run([sys.executable, "-m", "stages.train", "--params", str(params), "--cell", "gru", "--seed", "0",
                        "--data", str(images), "--out", str(tmp_path / name), "--checkpoints", str(tmp_path / f"ck-{name}")],
                       cwd=PROJECT, env={**clean, "RNNGAN_NO_PROGRESS": "1", **env},
                       capture_output=True, text=True, timeout=300)
    return r


def test_portable_env_pins_every_library_and_the_threads():
    env = portable_env(3)
    assert env == {**PORTABLE_ENV, "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert set(PORTABLE_ENV) == {"MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"}


@pytest.mark.parametrize("train, key", [({"threads": 0}, "train.threads"), ({"device": "cuda"}, "train.device")])
def test_portable_refuses_what_it_cannot_pin(tmp_path, train, key):
    params = load_params(write_params(tmp_path / "params.yaml", portable=True, **train))
    with pytest.raises(ParamsError, match=key):
        check_portable(params)


def test_portable_without_threads_stops_the_stage_before_any_work(tmp_path):
    r = train_stage(tmp_path, write_params(tmp_path / "params.yaml", portable=True, threads=0), "run")
    assert r.returncode == 2
    assert "train.portable" in r.stderr and "train.threads" in r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "ck-run").exists()


def test_portable_run_restarts_records_and_matches_an_emulated_avx2_cpu(tmp_path):
    params = write_params(tmp_path / "params.yaml", portable=True)
    native = train_stage(tmp_path, params, "native")
    assert native.returncode == 0, native.stderr[-3000:]
    assert "train.portable: starting again with" in native.stderr
    summary = yaml.safe_load((tmp_path / "native" / "train.json").read_text())
    env = summary["environment"]
    assert env["portable"] is True and env["cpu_capability"] == "DEFAULT"
    assert env["kernel_env"] == portable_env(1)
    # MKL capped at AVX2 (what an AMD EPYC without AVX-512 gets): the same bits in this mode
    avx2 = train_stage(tmp_path, params, "avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    assert avx2.returncode == 0, avx2.stderr[-3000:]
    a, b = generator_state(tmp_path / "native" / "generator.pt"), generator_state(tmp_path / "avx2" / "generator.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def generator_state(path):
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["state_dict"]


def test_normal_run_records_that_it_is_not_portable(tmp_path):
    params = write_params(tmp_path / "params.yaml")
    r = train_stage(tmp_path, params, "run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "starting again" not in r.stderr
    env = yaml.safe_load((tmp_path / "run" / "train.json").read_text())["environment"]
    assert env["portable"] is False and env["kernel_env"] == {}
    if "avx512f" in env["cpu_flags"] and "Intel" in env["cpu_model"]:
        # what the mode is for: on an Intel AVX-512 CPU, MKL capped at AVX2 rounds differently
        # (on AMD, MKL takes the same code path either way: measured on an AMD EPYC with AVX-512)
        avx2 = train_stage(tmp_path, params, "avx2", MKL_ENABLE_INSTRUCTIONS="AVX2")
        assert avx2.returncode == 0, avx2.stderr[-3000:]
        a, b = generator_state(tmp_path / "run" / "generator.pt"), generator_state(tmp_path / "avx2" / "generator.pt")
        assert not all(torch.equal(a[k], b[k]) for k in a)

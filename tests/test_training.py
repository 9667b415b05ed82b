"""The training engine: exact resume, refused checkpoints, non-finite values, the data order,
the dvclive log across a resume, and DDP under torchrun (2 CPU processes on gloo)."""
import csv
import json
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from rnngan.training import losses, updates
from conftest import PROJECT
from rnngan.data.augment import Policy
from rnngan.models.networks import NetConfig
from rnngan.training import TrainConfig, TrainingError, load_checkpoint, train
from rnngan.training.data import BatchSampler

NET = NetConfig(cell="gru", image_size=16, hidden=16, timesteps=2, z_dim=8, nf=8)
CFG = TrainConfig(net=NET, seed=3, steps=24, batch_size=8, lr=2e-4, beta1=0.5, beta2=0.999, ema_images=40, ema_rampup=0.05,
                  real_label=0.9, log_every=4, grid_every=12, checkpoint_every=6, device="cpu", threads=1,
                  augment=Policy(flip=0.5, brightness=0.2, scale=0.1, p=0.5))   # generated batches augmented before D


class Interrupt(Exception):
    pass


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train.npy"
    np.save(path, rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    return path


def interrupt_at(monkeypatch, step: int):
    """Raise out of training in the middle of `step` (after the updates, before any save)."""
    real = updates.update_ema
    calls = {"n": 0}

    def update(ema, model, decay):
        real(ema, model, decay)
        calls["n"] += 1
        if calls["n"] == step:
            raise Interrupt(f"killed at step {step}")
    monkeypatch.setattr(updates, "update_ema", update)


def tensors(blob, prefix=""):
    """Every tensor in a nested checkpoint, by path."""
    out = {}
    if isinstance(blob, torch.Tensor):
        out[prefix] = blob
    elif isinstance(blob, dict):
        for k, v in blob.items():
            out.update(tensors(v, f"{prefix}/{k}"))
    elif isinstance(blob, (list, tuple)):
        for i, v in enumerate(blob):
            out.update(tensors(v, f"{prefix}/{i}"))
    return out


def assert_same_state(a_path, b_path):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a["step"] == b["step"]
    ta = {k: v for k, v in tensors(a).items() if not k.startswith("/rng")}
    tb = {k: v for k, v in tensors(b).items() if not k.startswith("/rng")}
    assert ta.keys() == tb.keys()
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"tensors differ after resume: {differ[:5]}"


def test_interrupted_run_resumes_to_bit_identical_weights(tmp_path, images, monkeypatch):
    train(CFG, images, tmp_path / "a", tmp_path / "a.work")
    assert not (tmp_path / "a.work").exists(), "the work folder is removed once the output is published"

    with monkeypatch.context() as m:
        interrupt_at(m, 15)
        with pytest.raises(Interrupt):
            train(CFG, images, tmp_path / "b", tmp_path / "b.work")
    assert not (tmp_path / "b").exists(), "no half-written output"
    assert load_checkpoint(tmp_path / "b.work" / "last.pt")["step"] == 12

    summary = train(CFG, images, tmp_path / "b", tmp_path / "b.work")
    assert summary["resumed_from_step"] == 12
    assert_same_state(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    ga = torch.load(tmp_path / "a" / "generator.pt", weights_only=True)["state_dict"]
    gb = torch.load(tmp_path / "b" / "generator.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    # the published EMA generator carries BatchNorm statistics of its own weights, not the raw G's
    from rnngan.sampling import load_generator
    from rnngan.training.ema import recompute_batchnorm

    G = load_generator(tmp_path / "a" / "generator.pt", torch.device("cpu"))
    raw = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["G"]
    published = {k: v.clone() for k, v in G.state_dict().items() if "running" in k}
    assert published and any(not torch.equal(v, raw[k]) for k, v in published.items())
    recompute_batchnorm(G, CFG.batch_size, torch.device("cpu"))
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in published.items())
    assert json.loads((tmp_path / "a" / "train.json").read_text())["ema_half_life_images"] == pytest.approx(24 * 8 * 0.05)
    # the same fixed-noise grids, and a dvclive log with each step once, as uninterrupted
    grids = sorted(p.name for p in (tmp_path / "a" / "grids").iterdir())
    assert grids == sorted(p.name for p in (tmp_path / "b" / "grids").iterdir()) == \
        ["step_000012.png", "step_000024.png"]
    assert (tmp_path / "a/grids/step_000024.png").read_bytes() == (tmp_path / "b/grids/step_000024.png").read_bytes()
    for name in ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "d_real", "d_fake", "images_per_s"):
        rows_a = read_metric(tmp_path / "a", name)
        rows_b = read_metric(tmp_path / "b", name)
        assert [r[0] for r in rows_a] == [r[0] for r in rows_b] == [4, 8, 12, 16, 20, 24]
        if name != "images_per_s":
            assert [r[1] for r in rows_a] == [r[1] for r in rows_b]


def read_metric(out, name):
    with open(out / "live" / "plots" / "metrics" / "train" / f"{name}.tsv") as f:
        return [(int(r["step"]), float(r[name])) for r in csv.DictReader(f, delimiter="\t")]


def test_checkpoint_is_plain_data_with_rng_state_and_data_position(tmp_path, images):
    train(CFG, images, tmp_path / "a", tmp_path / "a.work")
    blob = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert {"G", "D", "G_ema", "opt_g", "opt_d", "rng", "step", "config", "data", "data_position"} <= set(blob)
    assert blob["step"] == CFG.steps
    assert blob["rng"]["torch"].dtype == torch.uint8
    assert blob["data_position"] == {"epoch": 4, "batch_in_epoch": 4, "batches_per_epoch": 5}
    # the EMA generator is not the raw one
    assert any(not torch.equal(blob["G"][k], blob["G_ema"][k]) for k in blob["G"] if blob["G"][k].is_floating_point())


def test_checkpoint_from_another_config_is_refused_naming_the_keys(tmp_path, images, monkeypatch):
    with monkeypatch.context() as m:
        interrupt_at(m, 8)
        with pytest.raises(Interrupt):
            train(CFG, images, tmp_path / "b", tmp_path / "b.work")
    before = (tmp_path / "b.work" / "last.pt").read_bytes()
    other = dataclasses.replace(CFG, lr=1e-3, net=dataclasses.replace(NET, hidden=32))
    with pytest.raises(TrainingError, match=r"different config") as err:
        train(other, images, tmp_path / "b", tmp_path / "b.work")
    assert "train.lr: 0.0002 -> 0.001" in str(err.value)
    assert "model.hidden: 16 -> 32" in str(err.value)
    assert "seed" not in str(err.value).split("config:")[1]
    assert (tmp_path / "b.work" / "last.pt").read_bytes() == before, "the refused checkpoint is kept"
    assert not (tmp_path / "b").exists()

    # how often to log or checkpoint, and how long to train, may change on resume
    longer = dataclasses.replace(CFG, steps=30, log_every=5, checkpoint_every=10)
    assert train(longer, images, tmp_path / "b", tmp_path / "b.work")["resumed_from_step"] == 6


def test_checkpoint_for_other_images_is_refused(tmp_path, images, monkeypatch):
    with monkeypatch.context() as m:
        interrupt_at(m, 8)
        with pytest.raises(Interrupt):
            train(CFG, images, tmp_path / "b", tmp_path / "b.work")
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((40, 16, 16, 3), np.uint8))
    with pytest.raises(TrainingError, match="other training images"):
        train(CFG, other, tmp_path / "b", tmp_path / "b.work")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, images):
    (tmp_path / "b.work").mkdir()
    (tmp_path / "b.work" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TrainingError, match=r"last.pt: not a readable checkpoint.*delete it"):
        train(CFG, images, tmp_path / "b", tmp_path / "b.work")


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, images, monkeypatch):
    ns, calls = losses.LOSSES["ns"], {"n": 0}

    def poisoned(fake_logits, real_logits=None):
        calls["n"] += 1
        loss = ns.g(fake_logits, real_logits)
        return loss * float("nan") if calls["n"] == 9 else loss
    monkeypatch.setitem(losses.LOSSES, "ns", dataclasses.replace(ns, g=poisoned))
    with pytest.raises(TrainingError, match=r"non-finite value at step 9 \(loss_g=nan.*step 6\) is kept"):
        train(CFG, images, tmp_path / "b", tmp_path / "b.work")
    blob = load_checkpoint(tmp_path / "b.work" / "last.pt")
    assert blob["step"] == 6
    assert all(torch.isfinite(t).all() for t in tensors(blob["G"]).values())
    assert not (tmp_path / "b").exists()


def test_batch_order_is_a_function_of_the_step_alone():
    s = BatchSampler(23, 5, seed=7)
    forward = [s.batch(i) for i in range(1, 15)]
    # epoch by epoch without replacement: each epoch's 4 batches are distinct images
    for e in range(3):
        seen = np.concatenate(forward[e * 4:e * 4 + 4])
        assert len(set(seen.tolist())) == 20
    # a fresh sampler jumping straight to a late step (a resume) gives the same batches
    fresh = BatchSampler(23, 5, seed=7)
    assert np.array_equal(fresh.batch(14), forward[13])
    assert np.array_equal(fresh.batch(2), forward[1])   # and going back replays
    # the order is the sequence of permutations of default_rng(seed), tail dropped
    rng = np.random.default_rng(7)
    first, second = rng.permutation(23), rng.permutation(23)
    assert np.array_equal(forward[0], np.sort(first[:5]))
    assert np.array_equal(forward[4], np.sort(second[:5]))


def test_too_few_images_for_a_batch_is_an_error():
    with pytest.raises(TrainingError, match="fewer than one batch"):
        BatchSampler(3, 8, seed=0)


def test_stage_refuses_batch_not_divisible_among_processes():
    from rnngan.config import ParamsError, parse_params

    with pytest.raises(ParamsError, match="train.batch_size=30 must be a multiple of train.gpus=4"):
        parse_params({"train": {"batch_size": 30, "gpus": 4}})


def write_params(path, **train_overrides):
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"]["image_size"] = 16
    params["model"].update({"hidden": 16, "timesteps": 2, "z_dim": 8, "nf": 8, "variants": ["gru", "lstm"],
                            "cell": "gru"})
    params["train"].update({"steps": 12, "batch_size": 8, "log_every": 4, "grid_every": 6,
                            "checkpoint_every": 6, "device": "cpu", "threads": 1, **train_overrides})
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_two_processes_under_torchrun_on_gloo_resume_a_checkpoint(tmp_path, images, monkeypatch):
    from rnngan.config import load_params

    params = write_params(tmp_path / "params.yaml", gpus=2)
    # a single-process run of the same config, killed at step 8 (checkpoint at 6)
    cfg = TrainConfig.from_params(load_params(params), "gru", 0)
    with monkeypatch.context() as m:
        interrupt_at(m, 8)
        with pytest.raises(Interrupt):
            train(cfg, images, tmp_path / "gru", tmp_path / "ck")
    env = {**os.environ, "RNNGAN_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "stages.train", "--params", str(params), "--cell", "gru",
                        "--seed", "0", "--data", str(images), "--out", str(tmp_path / "gru"),
                        "--checkpoints", str(tmp_path / "ck")],
                       cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "running under torchrun" in r.stderr
    summary = yaml.safe_load((tmp_path / "gru" / "train.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 12
    assert summary["resumed_from_step"] == 6, "rank 0 read the checkpoint and handed it to rank 1"
    blob = load_checkpoint(tmp_path / "gru" / "checkpoint.pt")
    assert blob["step"] == 12
    assert not (tmp_path / "ck").exists()
    # the published EMA generator samples
    from rnngan.sampling import load_generator, sample_images
    G = load_generator(tmp_path / "gru" / "generator.pt", torch.device("cpu"))
    out = sample_images(G, 4, seed=0)
    assert out.shape == (4, 16, 16, 3) and out.std() > 0


def test_a_seed_is_the_same_run_in_any_seeds_list_and_only_the_seed_reaches_training(tmp_path, images):
    from rnngan.config import load_params

    one = load_params(write_params(tmp_path / "one.yaml", seeds=[0]))
    three = load_params(write_params(tmp_path / "three.yaml", seeds=[2, 0, 1]))
    cfg = TrainConfig.from_params(one, "gru", 0)
    assert cfg == TrainConfig.from_params(three, "gru", 0)
    # the data seed does not reach the training config: it reaches training through the data only
    other_data_seed = three.model_copy(update={"seed": 7})
    assert TrainConfig.from_params(other_data_seed, "gru", 0) == cfg
    runs = {}
    for name, c in (("a", cfg), ("b", TrainConfig.from_params(three, "gru", 0)),
                    ("seed1", TrainConfig.from_params(three, "gru", 1))):
        train(c, images, tmp_path / name, tmp_path / f"{name}.work")
        runs[name] = load_checkpoint(tmp_path / name / "checkpoint.pt")["G_ema"]
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["seed1"][k]) for k in runs["a"])


def test_the_train_stage_lists_every_train_param_but_the_seeds(tmp_path):
    """Adding a seed must not rerun the other runs, and every other knob must rerun all of them."""
    from rnngan.config import TrainParams

    stage = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]["train"]
    listed = {p for p in stage["params"] if p.startswith("train.")}
    assert listed == {f"train.{name}" for name in TrainParams.model_fields if name != "seeds"}
    assert "seed" not in stage["params"] and stage["matrix"] == {"cell": "${model.variants}",
                                                                  "seed": "${train.seeds}"}


# -- every collective on the process group's device --------------------------------------------

TENSOR_COLLECTIVES = {"all_reduce", "reduce", "all_gather", "all_gather_into_tensor", "broadcast",
                      "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "all_to_all_single"}


def test_every_tensor_collective_of_the_package_goes_through_all_reduce_():
    """NCCL takes CUDA tensors only: a collective called on its own (the log flush reduced
    statistics it had moved to the CPU) kills multi-GPU training, and gloo, all CI can run,
    takes either. So every tensor collective goes through training.distributed.all_reduce_, which moves the
    tensor to the process group's device."""
    import ast

    calls = []
    for path in sorted((PROJECT / "rnngan").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in TENSOR_COLLECTIVES and fn.name != "all_reduce_"):
                    calls.append(f"{path.relative_to(PROJECT)}:{node.lineno} {fn.name}: .{node.func.attr}(...)")
    assert not calls, "tensor collectives outside training.distributed.all_reduce_:\n" + "\n".join(calls)


def test_all_reduce_runs_on_the_group_device_in_place(monkeypatch):
    import torch.distributed as dist

    from rnngan.training.distributed import Dist, all_reduce_

    seen = []

    def fake_all_reduce(tensor, op=dist.ReduceOp.SUM):      # a group of 2 equal ranks on its device only
        if tensor.device != torch.device("cpu"):
            raise RuntimeError(f"this group takes tensors on cpu, got {tensor.device}")
        seen.append(op)
        tensor.mul_(2) if op == dist.ReduceOp.SUM else None

    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    d = Dist(rank=0, world=2, device=torch.device("cpu"))
    t = torch.tensor([1.0, 3.0])
    assert all_reduce_(t, d) is t and t.tolist() == [2.0, 6.0]
    assert all_reduce_(torch.ones(1), d, "max").tolist() == [1.0]
    assert seen == [dist.ReduceOp.SUM, dist.ReduceOp.MAX]
    single = torch.ones(2)
    assert all_reduce_(single, Dist()) is single and seen == [dist.ReduceOp.SUM, dist.ReduceOp.MAX]   # one process
    with pytest.raises(ValueError, match="op 'mean'"):
        all_reduce_(t, d, "mean")

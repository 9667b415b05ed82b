"""What only a GPU can check: cuDNN's sequence kernels and the compiled SRU recurrence against
the step loop on CUDA, a short bf16 / channels_last training run, and the R1/R2 penalty's
double backward (which cuDNN's fused RNN lacks). Skipped without CUDA
(CI has none); run on a GPU machine with `pytest -q tests/test_cuda.py`."""
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from rnngan.models.networks import Discriminator, Generator, NetConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CELLS = ["rnn", "lstm", "gru", "sru"]


@pytest.fixture(autouse=True)
def true_fp32():
    """Compare in float32, not TF32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("cell", CELLS)
def test_fused_kernels_on_cuda_match_the_step_loop(cell):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    cfg = NetConfig(cell, feedback=False)   # without feedback the generator's sequence is known too
    G, D = Generator(cfg).to(dev), Discriminator(cfg).to(dev)
    z = torch.randn(16, cfg.z_dim, device=dev)
    results = {}
    for fused in (False, True):
        G.zero_grad()
        D.zero_grad()
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # e.g. cuDNN re-packing non-contiguous weights
            images = G(z, fused=fused)
            logits = D(images, fused=fused)
        logits.square().sum().backward()
        results[fused] = (images.detach(), logits.detach(),
                          [p.grad.clone() for p in (*G.parameters(), *D.parameters())])
    (im0, lo0, gr0), (im1, lo1, gr1) = results[False], results[True]
    torch.testing.assert_close(im1, im0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(lo1, lo0, atol=1e-5, rtol=1e-4)
    for a, b in zip(gr1, gr0):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("cell", ["lstm", "sru", "dcgan"])
def test_short_bf16_channels_last_run_on_cuda_trains_and_resumes(cell, tmp_path):
    from rnngan.training import TrainConfig, load_checkpoint, train

    path = tmp_path / "train.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8))
    cfg = TrainConfig(net=NetConfig(cell), seed=0, steps=20, batch_size=32, lr=2e-4, beta1=0.5, beta2=0.999,
                      ema_images=40, ema_rampup=0.05, real_label=0.9, log_every=5, grid_every=10, checkpoint_every=10,
                      device="cuda", precision="auto")
    summary = train(cfg, path, tmp_path / "out", tmp_path / "work")
    assert summary["precision"] == "bf16" and summary["device"].startswith("cuda")
    blob = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    assert "cuda" in blob["rng"]
    assert all(torch.isfinite(t).all() for t in blob["G_ema"].values() if t.is_floating_point())
    longer = dataclasses.replace(cfg, steps=25)
    # a finished run leaves no checkpoint to resume: a longer run starts afresh, and works
    assert train(longer, path, tmp_path / "out2", tmp_path / "work")["resumed_from_step"] == 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cudnn_fused_rnn_has_no_double_backward_so_the_penalty_takes_the_step_loop(cell):
    """Why training's R1/R2 forward passes fused=False: cuDNN's RNN kernels have no double
    backward. The fused path fails on the penalty; the step loop gives it, through every cell."""
    from rnngan.training.losses import gradient_penalty

    dev = torch.device("cuda")
    torch.manual_seed(0)
    D = Discriminator(NetConfig(cell, image_size=32, hidden=32, nf=16, d_norm="none")).to(dev)
    x = torch.randn(16, 3, 32, 32, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError):
        gradient_penalty(D(x, fused=True), x).backward()
    D.zero_grad()
    penalty = gradient_penalty(D(x, fused=False), x)
    penalty.backward()
    assert torch.isfinite(penalty) and all(p.grad is not None and torch.isfinite(p.grad).all()
                                           for p in D.cell.parameters())


@pytest.mark.parametrize("cell", ["lstm", "sru", "dcgan"])
def test_the_r3gan_recipe_trains_on_cuda_in_bf16(cell, tmp_path):
    from rnngan.training import TrainConfig, load_checkpoint, train

    path = tmp_path / "train.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8))
    cfg = TrainConfig(net=NetConfig(cell, d_norm="none"), seed=0, steps=12, batch_size=32, lr=2e-4, beta1=0.0,
                      beta2=0.99, ema_images=400, ema_rampup=0.05, real_label=1.0, log_every=4, grid_every=12,
                      checkpoint_every=12, device="cuda", precision="auto", loss="rpgan", r1=0.5, r2=0.5, reg_every=2)
    train(cfg, path, tmp_path / "out", tmp_path / "work")
    blob = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    assert all(torch.isfinite(t).all() for part in ("G", "D") for t in blob[part].values() if t.is_floating_point())

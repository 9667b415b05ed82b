"""Losses, gradient penalties and D's normalisation: the formulas, the double backward through
every cell, the unfused path the penalty takes (what CUDA needs), and the params that pick them."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnngan import config
from rnngan.config import ParamsError, parse_params
from rnngan.training.losses import LOSSES, gradient_penalty
from rnngan.models.networks import NetConfig, build_discriminator, build_generator

VARIANTS = ["rnn", "lstm", "gru", "sru", "dcgan"]


def test_the_params_offer_exactly_the_registered_losses():
    assert config.LOSSES == tuple(LOSSES)


def test_hinge_and_relativistic_pairing_are_the_published_formulas():
    real, fake = torch.randn(32), torch.randn(32)
    torch.testing.assert_close(LOSSES["hinge"].d(real, fake, 1.0), F.relu(1 - real).mean() + F.relu(1 + fake).mean())
    torch.testing.assert_close(LOSSES["hinge"].g(fake, None), -fake.mean())
    # RpGAN: D and G see the difference of paired logits, -log sigmoid(D(x) - D(G(z))) and its mirror
    torch.testing.assert_close(LOSSES["rpgan"].d(real, fake, 1.0), -F.logsigmoid(real - fake).mean())
    torch.testing.assert_close(LOSSES["rpgan"].g(fake, real), -F.logsigmoid(fake - real).mean())
    assert LOSSES["rpgan"].needs_real_for_g and not LOSSES["ns"].needs_real_for_g
    # shifting every logit by a constant changes nothing for the relativistic loss, everything for ns
    torch.testing.assert_close(LOSSES["rpgan"].d(real + 3, fake + 3, 1.0), LOSSES["rpgan"].d(real, fake, 1.0))
    assert not torch.allclose(LOSSES["ns"].d(real + 3, fake + 3, 1.0), LOSSES["ns"].d(real, fake, 1.0))


def test_the_gradient_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.randn(3 * 4 * 4, requires_grad=True)
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    logits = x.flatten(1) @ w
    penalty = gradient_penalty(logits, x)
    torch.testing.assert_close(penalty, w.detach().square().sum())
    assert penalty.requires_grad              # kept in the graph: D's weights get its gradient


def tiny(cell: str, size: int = 16, **kw) -> NetConfig:
    return NetConfig(cell=cell, image_size=size, hidden=16, timesteps=2, z_dim=8, nf=8, **kw)


@pytest.mark.parametrize("cell", VARIANTS)
@pytest.mark.parametrize("d_norm", ["batch", "none"])
def test_r1_double_backward_reaches_every_discriminator_weight_through_every_cell(cell, d_norm):
    torch.manual_seed(0)
    D = build_discriminator(tiny(cell, d_norm=d_norm))
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    penalty = gradient_penalty(D(x, fused=False), x)
    grads = torch.autograd.grad(penalty, [p for p in D.parameters()], allow_unused=True)
    named = dict(zip([n for n, _ in D.named_parameters()], grads))
    assert torch.isfinite(penalty) and penalty > 0
    # the penalty moves the trunk and the recurrent cell (a second-order path through both)
    moved = {n for n, g in named.items() if g is not None and g.abs().sum() > 0}
    assert any(n.startswith(("trunk", "main")) for n in moved), moved
    if cell != "dcgan":
        assert any(n.startswith("cell") for n in moved), moved


def test_d_norm_none_has_no_normalisation_layers_and_spectral_bounds_every_layer():
    for cell in ("lstm", "dcgan"):
        plain = build_discriminator(tiny(cell, 32, d_norm="none"))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_discriminator(tiny(cell, 32)).modules())
        sn = build_discriminator(tiny(cell, 32, d_norm="spectral"))
        layers = [m for m in sn.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
        sn.train()
        with torch.no_grad():
            for _ in range(30):                     # power iterations converge in training forwards
                sn(torch.randn(4, 3, 32, 32))
            for m in layers:
                top = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
                assert top == pytest.approx(1.0, abs=0.05), (cell, m)


def test_params_pick_the_loss_the_penalties_and_the_norm_and_refuse_what_does_not_fit():
    p = parse_params({"train": {"loss": "rpgan", "real_label": 1, "r1": 0.5, "r2": 0.5, "d_norm": "none",
                                "beta1": 0.0, "beta2": 0.99, "lr_d": 1e-4}})
    from rnngan.training import TrainConfig

    cfg = TrainConfig.from_params(p, "gru", 0)
    assert (cfg.loss, cfg.r1, cfg.r2, cfg.lr_d, cfg.net.d_norm, cfg.beta1) == ("rpgan", 0.5, 0.5, 1e-4, "none", 0.0)
    with pytest.raises(ParamsError, match="train.loss='wgan' must be one of: ns, hinge, rpgan"):
        parse_params({"train": {"loss": "wgan"}})
    with pytest.raises(ParamsError, match="train.real_label=0.9 .*belongs to the ns loss; set train.real_label=1"):
        parse_params({"train": {"loss": "hinge", "real_label": 0.9}})
    with pytest.raises(ParamsError, match="train.d_norm='layer' must be one of: batch, spectral, none"):
        parse_params({"train": {"d_norm": "layer"}})
    with pytest.raises(ParamsError, match=r"train.r1=-1.0 must be >= 0"):
        parse_params({"train": {"r1": -1.0}})


@pytest.fixture
def images(tmp_path):
    path = tmp_path / "train.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (48, 16, 16, 3), dtype=np.uint8))
    return path


def r3gan(cell: str, **kw):
    from rnngan.training import TrainConfig

    return TrainConfig(net=tiny(cell, d_norm="none"), seed=0, steps=8, batch_size=8, lr=2e-4, beta1=0.0, beta2=0.99,
                       ema_images=40, ema_rampup=0.05, real_label=1.0, log_every=4, grid_every=8, checkpoint_every=8,
                       device="cpu", threads=1, loss="rpgan", r1=0.5, r2=0.5, **kw)


def test_the_penalty_step_runs_every_cell_step_by_step_and_lazily_every_reg_every_steps(images, tmp_path, monkeypatch):
    """The one place the CUDA-only constraint meets the CPU: a regularised D forward asks for
    fused=False (cuDNN's RNN has no double backward), the others leave the choice to the device."""
    from rnngan.training import losses, train, updates
    from rnngan.models.networks import Discriminator

    seen, penalties = [], []
    forward = Discriminator.forward

    def spy(self, images, fused=None):
        if images.requires_grad and images.is_leaf:      # the inputs a penalty differentiates by
            seen.append(fused)
        return forward(self, images, fused)

    real_penalty = losses.gradient_penalty

    def counted(logits, inputs):
        penalties.append(1)
        return real_penalty(logits, inputs)
    monkeypatch.setattr(Discriminator, "forward", spy)
    monkeypatch.setattr(updates, "gradient_penalty", counted)
    train(r3gan("lstm", reg_every=4), images, tmp_path / "out", tmp_path / "work")
    # steps 4 and 8 of 8 regularise, R1 and R2 each: 4 penalties, every one through the step loop
    assert len(penalties) == 4 and seen and set(seen) == {False}


@pytest.mark.parametrize("cell", VARIANTS)
def test_the_r3gan_recipe_trains_every_variant_with_finite_weights(cell, images, tmp_path):
    from rnngan.training import load_checkpoint, train

    summary = train(r3gan(cell), images, tmp_path / "out", tmp_path / "work")
    blob = load_checkpoint(tmp_path / "out" / "checkpoint.pt")
    assert blob["config"]["loss"] == "rpgan" and blob["config"]["net"]["d_norm"] == "none"
    assert all(torch.isfinite(t).all() for part in ("G", "D", "G_ema") for t in blob[part].values()
               if t.is_floating_point())
    assert summary["steps"] == 8


def test_lazy_regularisation_scales_the_penalty_by_its_interval():
    """StyleGAN2's gain: with reg_every k the penalty is applied every k-th step at k times gamma,
    so its average pull on D is the same as gamma every step."""
    from rnngan.training.distributed import Dist
    from rnngan.training.updates import Run

    torch.manual_seed(0)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    z = torch.randn(8, 8)
    totals = {}
    for k in (1, 4):
        run = Run(dataclasses.replace(r3gan("dcgan", reg_every=k), r2=0.0), torch.device("cpu"), Dist())
        run.wrap(Dist())
        run.step = k - 1                                  # the next step regularises
        captured = {}
        orig = run.opt_d.step

        def step(*a, _c=captured, _r=run, **kw):
            _c["grad"] = torch.cat([p.grad.flatten() for p in _r.D.parameters()]).clone()
            return orig(*a, **kw)
        run.opt_d.step = step
        run.train_step(real, z)
        totals[k] = captured["grad"]
    plain = Run(dataclasses.replace(r3gan("dcgan"), r1=0.0, r2=0.0), torch.device("cpu"), Dist())
    plain.wrap(Dist())
    grads = {}
    orig = plain.opt_d.step

    def step0(*a, **kw):
        grads["g"] = torch.cat([p.grad.flatten() for p in plain.D.parameters()]).clone()
        return orig(*a, **kw)
    plain.opt_d.step = step0
    plain.train_step(real, z)
    # gradient = loss gradient + k * penalty gradient: the penalty parts scale by k exactly
    torch.testing.assert_close(totals[4] - grads["g"], 4 * (totals[1] - grads["g"]), rtol=1e-4, atol=1e-6)

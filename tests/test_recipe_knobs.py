"""The recipe's knobs and the review's findings (issue 27): G and D chosen apart, minibatch stddev
in both discriminators, the recurrent D's readout, z to the decoder, self-modulated BatchNorm, G's
learning rate and updates, what D receives from the augmentation in training, spectral norm on
the cells, refusals of leaking policies and of compiled penalties."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
import yaml

from conftest import PROJECT
from rnngan.config import ParamsError, parse_params, split_variant
from rnngan.data.augment import Policy, augment_batch, step_draws
from rnngan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from rnngan.models.networks import (Discriminator, Generator, ModulatedBatchNorm, NetConfig, build_discriminator,
                                    build_generator, count_parameters)
from rnngan.models.sizing import parameter_counts
from rnngan.training import TrainConfig
from rnngan.training.distributed import Dist
from rnngan.training.updates import Run

SMALL = dict(image_size=16, hidden=16, timesteps=2, z_dim=8, nf=8)


def raw_params():
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


# -- G and D chosen apart ----------------------------------------------------------------------

@pytest.mark.parametrize("variant, g, d", [("lstm", Generator, Discriminator), ("dcgan", DCGANGenerator, DCGANDiscriminator),
                                           ("lstm+dcgan", Generator, DCGANDiscriminator),
                                           ("dcgan+gru", DCGANGenerator, Discriminator)])
def test_a_variant_names_its_generator_and_discriminator(variant, g, d):
    cfg = NetConfig(cell=variant, **SMALL)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert type(G) is g and type(D) is d
    if isinstance(G, Generator):
        assert type(G.cell).__name__.lower().startswith(split_variant(variant)[0])
    if isinstance(D, Discriminator):
        assert type(D.cell).__name__.lower().startswith(split_variant(variant)[1])
    assert D(G(torch.randn(4, 8))).shape == (4,)


@pytest.mark.parametrize("bad", ["lstm+lstm", "lstm+", "lstm+tpu", "lstm+dcgan+gru", "LSTM", "lstm-dcgan"])
def test_a_bad_pair_is_refused_naming_the_spelling(bad):
    raw = raw_params()
    raw["model"]["variants"] = ["lstm", bad]
    with pytest.raises(ParamsError, match=r"model.variants.*<G>\+<D>"):
        parse_params(raw)


def test_pairs_are_valid_variants_and_headline_cells():
    raw = raw_params()
    raw["model"]["variants"] = ["lstm", "lstm+dcgan", "dcgan+lstm", "dcgan"]
    raw["model"]["cell"] = "lstm+dcgan"
    p = parse_params(raw)
    assert p.model.cell == "lstm+dcgan" and split_variant("dcgan+lstm") == ("dcgan", "lstm")


def test_a_pair_is_a_dvc_matrix_key(tmp_path):
    """`dvc stage list` names the pair's runs as the report and rnngan compare spell them."""
    import shutil
    import subprocess
    import sys

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(PROJECT / name, tmp_path / name)
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["model"]["variants"] = ["lstm+dcgan"]
    raw["model"]["cell"] = "lstm+dcgan"
    raw["train"]["seeds"] = [0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    out = subprocess.run([sys.executable, "-m", "dvc", "stage", "list"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    assert "train@lstm+dcgan-0" in out and "models/lstm+dcgan-0" in out


def test_parameter_counts_follow_each_network_kind_and_every_knob():
    for variant in ("lstm", "sru", "dcgan", "lstm+dcgan", "dcgan+sru", "gru+rnn"):
        for knobs in ({}, dict(z_decoder=True), dict(modulation=True), dict(mbstd_group=0),
                      dict(d_readout="mean", d_norm="spectral"), dict(feedback=False, modulation=True, z_decoder=True)):
            cfg = NetConfig(cell=variant, **SMALL, **knobs)
            built = (count_parameters(build_generator(cfg)), count_parameters(build_discriminator(cfg)))
            assert parameter_counts(cfg) == built, (variant, knobs)


# -- minibatch standard deviation and the readout ---------------------------------------------

@pytest.mark.parametrize("cell", ["dcgan", "lstm"])
def test_minibatch_stddev_is_in_both_discriminators_and_off_at_group_zero(cell):
    """With the channel, an image's logit depends on the rest of its group; without, it does not."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    other = x.clone()
    other[1:4] = torch.randn(3, 3, 16, 16)     # the rest of image 0's group of 4, changed
    for group, depends in ((4, True), (0, False)):
        D = build_discriminator(NetConfig(cell=cell, mbstd_group=group, **SMALL)).eval()
        with torch.no_grad():
            a, b = D(x)[0], D(other)[0]
        assert (not torch.equal(a, b)) is depends, (cell, group)


def test_the_recurrent_readout_is_the_last_state_or_the_mean_over_rows():
    torch.manual_seed(0)
    last = Discriminator(NetConfig(cell="gru", **SMALL)).eval()
    mean = Discriminator(NetConfig(cell="gru", d_readout="mean", **SMALL)).eval()
    mean.load_state_dict(last.state_dict())
    x = torch.randn(4, 3, 16, 16)
    captured = {}
    original = mean.cell.forward_sequence

    def spy(xs, state, fused=None):
        hs, s = original(xs, state, fused)
        captured["hs"] = hs
        return hs, s
    mean.cell.forward_sequence = spy
    with torch.no_grad():
        m, l = mean(x), last(x)
        assert torch.allclose(m, mean.head(captured["hs"].mean(0)).squeeze(1))
        assert torch.allclose(l, last.head(captured["hs"][-1]).squeeze(1))
    assert not torch.allclose(m, l)


# -- the generator's knobs ---------------------------------------------------------------------

def test_the_decoder_reads_z_beside_the_state_with_z_decoder():
    cfg = NetConfig(cell="lstm", z_decoder=True, **SMALL)
    G = Generator(cfg)
    assert G.decoder.fc.in_features == cfg.hidden + cfg.z_dim
    seen = []
    G.decoder.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    z = torch.randn(4, 8)
    G(z)
    assert len(seen) == cfg.timesteps and all(torch.equal(s[:, cfg.hidden:], z) for s in seen)


def test_self_modulation_starts_as_plain_batchnorm_and_then_depends_on_z():
    torch.manual_seed(0)
    norm = ModulatedBatchNorm(6, 8)
    x, z = torch.randn(5, 6, 4, 4), torch.randn(5, 8)
    plain = torch.nn.functional.batch_norm(x, None, None, training=True)
    assert torch.allclose(norm(x, z), plain, atol=1e-6)
    torch.nn.init.normal_(norm.mlp[2].weight)
    y = norm(x, z)
    assert not torch.allclose(y, plain, atol=1e-3)
    y.square().sum().backward()
    assert norm.mlp[0].weight.grad.abs().sum() > 0
    for cell in ("lstm", "dcgan"):
        G = build_generator(NetConfig(cell=cell, modulation=True, **SMALL))
        assert any(isinstance(m, ModulatedBatchNorm) for m in G.modules())
        assert not any(type(m) is torch.nn.BatchNorm2d and m.affine for m in G.modules())
        assert G(torch.randn(4, 8)).shape == (4, 3, 16, 16)


def _run(**kw) -> Run:
    fields = dict(net=NetConfig(cell="dcgan", **SMALL), seed=0, steps=4, batch_size=8, lr=2e-4, beta1=0.5,
                  beta2=0.999, ema_images=10, ema_rampup=None, real_label=0.9, log_every=1, grid_every=1)
    fields.update(kw)
    return Run(TrainConfig(**fields), torch.device("cpu"), Dist())


def test_g_has_its_own_learning_rate_and_updates_per_d_update():
    run = _run(lr_g=1e-3, lr_d=5e-5, g_steps=3)
    assert run.opt_g.param_groups[0]["lr"] == 1e-3 and run.opt_d.param_groups[0]["lr"] == 5e-5
    run.wrap(Dist())
    run.train_step(torch.rand(8, 3, 16, 16) * 2 - 1, torch.randn(8, 8))
    g_steps = {int(s["step"]) for s in run.opt_g.state.values()}
    d_steps = {int(s["step"]) for s in run.opt_d.state.values()}
    assert g_steps == {3} and d_steps == {1}


# -- what D receives: the augmentation in training --------------------------------------------

POLICY = Policy(flip=0.5, brightness=0.3, contrast=0.3, saturation=0.3, scale=0.1, blur=0.5, p=0.8)


def _record_d_inputs(run: Run) -> list[torch.Tensor]:
    seen = []
    forward = run.D.forward

    def spy(images, fused=None):
        seen.append(images.detach().clone())
        return forward(images, fused)
    run.D.forward = spy
    return seen


def test_d_sees_real_images_redrawn_every_step_through_the_fakes_function():
    """The same 8 images at steps 1 and 2 (one batch an epoch): D gets fresh augmentations of them,
    exactly augment_batch with the step's draws, never one fixed copy."""
    run = _run(augment=POLICY)
    run.wrap(Dist())
    seen = _record_d_inputs(run)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    torch.manual_seed(1)
    run.train_step(real, torch.randn(8, 8))
    first = seen[0]                                   # D's update: real first, then fake
    run.train_step(real, torch.randn(8, 8))
    second = seen[len(seen) // 2]
    assert torch.equal(first, augment_batch(real, POLICY, step_draws(0, 1, 2, 8)))
    assert torch.equal(second, augment_batch(real, POLICY, step_draws(0, 2, 2, 8)))
    assert not torch.equal(first, second) and not torch.equal(first, real)


def test_d_sees_generated_images_through_the_same_function_in_its_update_and_gs():
    run = _run(augment=POLICY)
    run.wrap(Dist())
    seen = _record_d_inputs(run)
    torch.manual_seed(3)
    z = torch.randn(8, 8)
    run.train_step(torch.rand(8, 3, 16, 16) * 2 - 1, z)
    # D's update sees [real, fake]; G's update then sees the fake again, with G's own draws
    fake_d, fake_g = seen[1], seen[2]
    G0 = _run(augment=POLICY).G                       # the same initial generator (seeded)
    with torch.no_grad():
        fake = G0(z)
    assert torch.allclose(fake_d, augment_batch(fake, POLICY, step_draws(0, 1, 0, 8)), atol=1e-6)
    assert torch.allclose(fake_g, augment_batch(fake, POLICY, step_draws(0, 1, 1, 8)), atol=1e-6)


def test_cached_real_side_is_passed_to_d_as_read():
    run = _run(augment=POLICY, real_augment="cached")
    run.wrap(Dist())
    seen = _record_d_inputs(run)
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    run.train_step(real, torch.randn(8, 8))
    assert torch.equal(seen[0], real)


def test_augmentation_runs_in_float32_with_autocast_off():
    run = _run(augment=Policy(flip=0.5, brightness=0.3, scale=0.2, blur=1.0, p=0.8))
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    plain = run.augment(x, 5, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = run.augment(x, 5, 1)
    assert under.dtype == torch.float32 and torch.equal(under, plain)


def test_colour_ops_pass_gradient_at_the_ends_of_the_range():
    """No clamp inside the differentiable path: a saturated generator still learns through D."""
    x = torch.ones(4, 3, 8, 8, requires_grad=True)          # white: any brightening would clip
    u = torch.zeros(4, 13)
    u[:, 1] = 0.99                                          # brightness factor near 1 + b
    u[:, 12] = 0.0                                          # apply
    y = augment_batch(x, Policy(brightness=0.5, contrast=0.3, saturation=0.3, hue=0.1, p=0.5), u)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert (grad.abs() > 0).all()


# -- spectral normalisation and refusals -------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "sru"])
def test_spectral_norm_constrains_the_recurrent_cell_too(cell):
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    D = Discriminator(NetConfig(cell=cell, d_norm="spectral", **SMALL))
    inner = D.cell if cell == "sru" else D.cell.cell
    names = ["weight"] if cell == "sru" else ["weight_ih", "weight_hh"]
    for name in names:
        assert parametrize.is_parametrized(inner, name), name
        with torch.no_grad():
            inner.parametrizations[name].original.mul_(50)       # far above 1 before normalising
    D.train()
    for _ in range(30):                                          # power iterations, one per forward
        D(torch.randn(4, 3, 16, 16))
    for name in names:
        sigma = torch.linalg.matrix_norm(getattr(inner, name).detach(), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05), name


def test_a_policy_that_always_applies_is_refused_as_leaking():
    raw = raw_params()
    raw["augment"]["p"] = 1.0
    with pytest.raises(ParamsError, match="augment.p=1.*leak"):
        parse_params(raw)
    for op in ("flip", "brightness", "contrast", "saturation"):
        raw["augment"][op] = 0
    assert parse_params(raw).augment.p == 1.0            # nothing to leak


def test_compile_with_a_gradient_penalty_runs_the_penalty_steps_uncompiled(monkeypatch):
    """torch.compile has no double backward: with train.compile the R1/R2 steps call D bare, the
    other steps the compiled D (a stand-in for torch.compile records which steps used it)."""
    raw = raw_params()
    raw["train"].update(compile=True, r1=1.0, r2=1.0)
    assert parse_params(raw).train.compile
    compiled_calls = []

    class Compiled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kw):
            compiled_calls.append(run.step + 1)
            return self.inner(*args, **kw)
    monkeypatch.setattr(torch, "compile", Compiled)
    run = _run(loss="rpgan", real_label=1.0, r1=1.0, r2=1.0, reg_every=2, compile=True)
    run.wrap(Dist())
    for _ in range(4):
        run.train_step(torch.rand(8, 3, 16, 16) * 2 - 1, torch.randn(8, 8))
    # G's compiled forward every step; D's compiled pair only on steps 1 and 3 (2 and 4 regularise)
    assert compiled_calls == [1, 1, 2, 3, 3, 4]


def test_copies_belong_to_the_cached_real_side():
    raw = raw_params()
    raw["augment"]["copies"] = 3
    with pytest.raises(ParamsError, match="augment.copies=3.*augment.real"):
        parse_params(raw)
    raw["augment"]["real"] = "cached"
    assert parse_params(copy.deepcopy(raw)).augment.copies == 3


def test_the_augment_stage_passes_images_through_when_the_real_side_is_redrawn(tmp_path):
    """augment.real=step: the stage writes the prepared images unchanged (training augments them)."""
    import subprocess
    import sys

    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "in.npy", images)
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    subprocess.run([sys.executable, "-m", "stages.augment", "--images", str(tmp_path / "in.npy"), "--out",
                    str(tmp_path / "out.npy"), "--params", str(tmp_path / "params.yaml")], check=True,
                   cwd=PROJECT, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "out.npy"), images)


# -- the mode-seeking term (train.mode_seeking) -----------------------------------------------

def test_mode_seeking_term_is_large_for_a_collapsed_generator_and_small_for_a_diverse_one():
    from rnngan.training.losses import mode_seeking

    z = torch.randn(16, 8)
    collapsed = torch.zeros(16, 3, 4, 4) + torch.randn(1, 3, 4, 4)     # one image for every z
    diverse = torch.randn(16, 3, 4, 4)
    assert mode_seeking(collapsed, z) == pytest.approx(1e5)            # 1 / eps
    assert mode_seeking(diverse, z) < 2.0
    # the pairs are the halves: the ratio of mean |images| differences to mean |z| differences
    ratio = (diverse[:8] - diverse[8:]).abs().mean() / (z[:8] - z[8:]).abs().mean()
    assert mode_seeking(diverse, z).item() == pytest.approx(1 / (ratio.item() + 1e-5), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking(diverse[:1], z[:1])


def test_mode_seeking_changes_only_g_update_and_zero_is_the_plain_step():
    real, z = torch.rand(8, 3, 16, 16) * 2 - 1, torch.randn(8, 8)
    runs = {}
    for weight in (0.0, 1.0):
        run = _run(mode_seeking=weight)
        run.wrap(Dist())
        run.train_step(real, z)
        runs[weight] = run
    base = _run()
    base.wrap(Dist())
    base.train_step(real, z)
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert same(runs[0.0].G, base.G) and same(runs[0.0].D, base.D)      # 0 is today's step, bit for bit
    assert same(runs[1.0].D, base.D)                                    # D's update never sees the term
    assert not same(runs[1.0].G, base.G)                                # G's does


def test_mode_seeking_needs_two_images_per_process():
    raw = raw_params()
    raw["train"].update(mode_seeking=1.0, batch_size=2, gpus=2)
    with pytest.raises(ParamsError, match="train.mode_seeking=1.0 pairs images.*at least 2"):
        parse_params(raw)
    raw["train"]["gpus"] = 1
    assert parse_params(raw).train.mode_seeking == 1.0


# -- spectral normalisation in every generator (model.g_spectral) ------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "sru", "dcgan"])
def test_g_spectral_normalises_every_weight_of_every_generator_the_cell_included(cell):
    from torch.nn.utils import parametrize

    from rnngan.models.cells import SRUCell

    torch.manual_seed(0)
    G = build_generator(NetConfig(cell=cell, g_spectral=True, modulation=True, **SMALL))
    plain = build_generator(NetConfig(cell=cell, modulation=True, **SMALL))
    normalised = 0
    for m in G.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            inside_modulation = any(m is x for mod in G.modules() if isinstance(mod, ModulatedBatchNorm)
                                    for x in mod.modules())
            assert parametrize.is_parametrized(m, "weight") != inside_modulation, m
            normalised += not inside_modulation
        elif isinstance(m, torch.nn.RNNCellBase):
            assert parametrize.is_parametrized(m, "weight_ih") and parametrize.is_parametrized(m, "weight_hh")
        elif isinstance(m, SRUCell):
            assert parametrize.is_parametrized(m, "weight")
    assert normalised >= 3
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())      # off by default
    G.train()
    for _ in range(30):                                          # power iterations, one per training forward
        G(torch.randn(4, 8))
    for m in G.modules():
        if parametrize.is_parametrized(m, "weight") and m.weight.dim() == 2:
            assert torch.linalg.matrix_norm(m.weight.detach(), ord=2) == pytest.approx(1.0, abs=0.05)
    assert G.eval()(torch.randn(3, 8)).shape == (3, 3, 16, 16)


def test_g_spectral_trains_and_the_ema_takes_the_power_iteration_vectors_from_g(tmp_path):
    from rnngan.sampling import load_generator
    from rnngan.training import save_generator

    run = _run(net=NetConfig(cell="lstm", g_spectral=True, **SMALL))
    run.wrap(Dist())
    for _ in range(3):
        run.train_step(torch.rand(8, 3, 16, 16) * 2 - 1, torch.randn(8, 8))
    vectors = {n: b for n, b in run.G.named_buffers() if ".parametrizations." in f".{n}"}
    assert vectors
    ema = dict(run.G_ema.named_buffers())
    assert all(torch.equal(ema[n], b) for n, b in vectors.items())
    assert not all(torch.equal(ema[n], b) for n, b in run.G.named_buffers() if "running_mean" in n)  # BN: its own
    save_generator(tmp_path / "g.pt", run.G.cfg, run.G_ema)
    G = load_generator(tmp_path / "g.pt", torch.device("cpu"))
    z = torch.randn(5, 8)
    assert torch.equal(G(z), run.G_ema.eval()(z))

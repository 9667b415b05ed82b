"""Generator and discriminator: shapes for every cell and size, recurrence that matters, EMA,
fused sequence kernels that agree with the step loop, and the variant registry."""
import copy
import dataclasses

import pytest
import torch

from rnngan.models.cells import CELLS
from rnngan.models.networks import (Discriminator, Generator, NetConfig, build_discriminator,
                                    build_generator, count_parameters)
from rnngan.training.data import BatchSampler
from rnngan.training.ema import ema_decay, ema_half_life, recompute_batchnorm, update_ema


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("size", [16, 32])
def test_generator_and_discriminator_shapes(cell, size):
    cfg = NetConfig(cell=cell, image_size=size, hidden=16, z_dim=8, nf=8, timesteps=3)
    G, D = Generator(cfg), Discriminator(cfg)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, 3, size, size)
    assert x.abs().max() <= 1
    assert D(x).shape == (4,)


@pytest.mark.parametrize("feedback", [True, False])
def test_every_canvas_step_shapes_the_image(feedback):
    """The image is the sum of T decoder updates: gradients reach the cell through every step."""
    torch.manual_seed(0)
    cfg = NetConfig(cell="gru", image_size=16, hidden=16, z_dim=8, nf=8, timesteps=3, feedback=feedback)
    G = Generator(cfg)
    G(torch.randn(4, 8)).sum().backward()
    for name, p in G.named_parameters():
        if ".norms." in name:
            continue  # per-step BatchNorm affine params: checked below
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for t in range(cfg.timesteps):
        assert G.decoder.norms[t][0].weight.grad.abs().sum() > 0, f"step {t} unused"


def test_discriminator_reads_rows_with_its_cell():
    torch.manual_seed(0)
    cfg = NetConfig(cell="lstm", image_size=32, hidden=16, z_dim=8, nf=8)
    D = Discriminator(cfg)
    D(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in D.cell.parameters())


def test_parameter_counts_differ_by_cell_as_expected():
    counts = {c: count_parameters(Generator(NetConfig(cell=c))) for c in CELLS}
    # LSTM has 4 gate blocks, GRU 3, RNN 1: the report shows these counts
    assert counts["lstm"] > counts["gru"] > counts["rnn"]


def test_image_size_must_be_a_power_of_two_multiple():
    with pytest.raises(ValueError, match="power of two"):
        Generator(NetConfig(cell="rnn", image_size=48))


def test_ema_moves_the_weights_towards_the_model_and_leaves_its_own_batchnorm_statistics():
    G = Generator(NetConfig(cell="rnn", image_size=16, hidden=8, z_dim=4, nf=8, timesteps=2))
    ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
        G.decoder.norms[0][0].running_mean.fill_(3.0)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, G, 0.9)
    for b, pe, p in zip(before, ema.parameters(), G.parameters()):
        torch.testing.assert_close(pe, 0.9 * b + 0.1 * p)
    assert torch.equal(ema.decoder.norms[0][0].running_mean, torch.zeros_like(G.decoder.norms[0][0].running_mean))


def test_ema_half_life_is_in_images_and_ramps_up_as_stylegan_does():
    # StyleGAN2-ADA: ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup); beta = 0.5 ** (batch / ema_nimg)
    assert ema_half_life(650, 64, 10000, 0.05) == pytest.approx(650 * 64 * 0.05)     # capped by the ramp
    assert ema_half_life(10**5, 64, 10000, 0.05) == 10000                             # then the half-life
    assert ema_half_life(1, 64, 10000, None) == 10000
    assert ema_decay(10**5, 64, 10000, 0.05) == pytest.approx(0.5 ** (64 / 10000))
    # the weight of the average halves every half-life: (decay ** (h / B)) == 1/2
    assert ema_decay(10**5, 64, 6400, None) ** 100 == pytest.approx(0.5)
    assert ema_decay(5, 64, 0, 0.05) == 0.0                                           # no averaging
    # every half-life changes the run (the old decay capped at 0.986 by step 650: 0.999 and 0.99 trained alike)
    assert ema_decay(650, 64, 1000, 0.05) != ema_decay(650, 64, 2000, 0.05)


@pytest.mark.parametrize("cell", ["lstm", "dcgan"])
def test_recomputed_batchnorm_statistics_make_eval_mode_match_the_generators_own_batch_statistics(cell):
    from rnngan.models.networks import build_generator

    torch.manual_seed(0)
    G = build_generator(NetConfig(cell=cell, image_size=16, hidden=16, z_dim=8, nf=8, timesteps=2))
    with torch.no_grad():                    # weights whose statistics differ from the initial ones
        for p in G.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z = torch.randn(1024, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        G.train()
        batch_stats = G(z)                   # normalised by this batch's own statistics
        G.eval()
        stale = G(z)                         # the initial running statistics (mean 0, var 1)
    recompute_batchnorm(G, 64, torch.device("cpu"), batches=16)
    assert not G.training
    with torch.no_grad():
        own = G(z)
    err_own, err_stale = (float((x - batch_stats).abs().mean()) for x in (own, stale))
    assert err_own < 0.02 and err_own < 0.2 * err_stale, (err_own, err_stale)
    # a function of the weights alone: the same statistics again, and the global RNG untouched
    state = torch.get_rng_state()
    first = [b.clone() for b in G.buffers()]
    recompute_batchnorm(G, 64, torch.device("cpu"), batches=16)
    assert all(torch.equal(a, b) for a, b in zip(first, G.buffers()))
    assert torch.equal(state, torch.get_rng_state())


def test_batch_sampler_covers_each_epoch_without_repeats():
    s = BatchSampler(10, 5, seed=0)
    seen = [i for step in (1, 2) for i in s.batch(step)]
    assert sorted(seen) == list(range(10))


def test_minibatch_stddev_channel_sees_a_batch_without_variety():
    from rnngan.models.networks import minibatch_stddev

    same = torch.ones(8, 4, 8, 8)
    varied = torch.randn(8, 4, 8, 8)
    assert minibatch_stddev(same).shape == (8, 5, 8, 8)
    assert minibatch_stddev(same)[:, 4].max() < 1e-3
    assert minibatch_stddev(varied)[:, 4].min() > 0.5
    assert minibatch_stddev(torch.randn(3, 4, 8, 8)).shape == (3, 5, 8, 8)  # odd batch sizes work


def test_d_loss_is_cross_entropy_and_smoothing_moves_the_real_optimum():
    import math

    import torch.nn.functional as F

    from rnngan.training.losses import LOSSES

    d_loss, g_loss = LOSSES["ns"].d, LOSSES["ns"].g

    real, fake = torch.randn(16), torch.randn(16)
    plain = F.softplus(-real).mean() + F.softplus(fake).mean()
    torch.testing.assert_close(d_loss(real, fake, 1.0), plain)
    torch.testing.assert_close(g_loss(fake), F.softplus(-fake).mean())
    # with target 0.9 the loss on a real image is smallest at sigmoid(logit) = 0.9, not at +inf
    logits = torch.linspace(0, 6, 601)
    losses = torch.stack([d_loss(l.view(1), torch.full((1,), -50.0), 0.9) for l in logits])
    assert abs(logits[losses.argmin()].item() - math.log(9)) < 0.02


# -- discriminator sizes, the variant registry, fused kernels --------------------------------

def test_net_config_round_trips_and_old_configs_load():
    cfg = NetConfig(cell="gru", image_size=64, hidden=96, d_hidden=80, d_nf=24, feedback=False)
    assert NetConfig(**dataclasses.asdict(cfg)) == cfg
    old = {k: v for k, v in dataclasses.asdict(NetConfig(cell="lstm")).items() if not k.startswith("d_")}
    assert NetConfig(**old).d_hidden is None and NetConfig(**old).d_nf is None  # generator.pt files before d_*

    from rnngan.config import ModelParams

    model = ModelParams(hidden=64, timesteps=3, z_dim=16, nf=8, feedback=False)  # the model section of params.yaml
    cfg = NetConfig.from_params(model, 16, "sru")
    assert (cfg.d_hidden, cfg.d_nf, cfg.disc_hidden, cfg.disc_nf) == (None, None, 64, 8)


def test_discriminator_takes_its_own_sizes_and_the_generator_ignores_them():
    cfg = NetConfig(cell="lstm", image_size=32, hidden=16, z_dim=8, nf=8, d_hidden=12, d_nf=6)
    D = Discriminator(cfg)
    assert D.cell.hidden_size == 12 and D.head.in_features == 12
    assert D.trunk[0].out_channels == 6
    assert D(torch.randn(4, 3, 32, 32)).shape == (4,)
    G, G_plain = Generator(cfg), Generator(dataclasses.replace(cfg, d_hidden=None, d_nf=None))
    assert [p.shape for p in G.parameters()] == [p.shape for p in G_plain.parameters()]


@pytest.mark.parametrize("cell", list(CELLS))
def test_unset_discriminator_sizes_build_exactly_the_shared_sizes(cell):
    """d_hidden/d_nf None must build (and initialise, draw for draw) what hidden/nf build."""
    cfg = NetConfig(cell=cell, image_size=16, hidden=16, z_dim=8, nf=8)
    torch.manual_seed(0)
    unset = Discriminator(cfg).state_dict()
    torch.manual_seed(0)
    explicit = Discriminator(dataclasses.replace(cfg, d_hidden=16, d_nf=8)).state_dict()
    assert list(unset) == list(explicit)
    assert all(torch.equal(unset[k], explicit[k]) for k in unset)


def test_build_picks_the_networks_by_variant_name():
    from rnngan.models.dcgan import DCGANDiscriminator, DCGANGenerator

    cfg = NetConfig(cell="gru", image_size=16, hidden=16, z_dim=8, nf=8)
    assert type(build_generator(cfg)) is Generator and type(build_discriminator(cfg)) is Discriminator
    dc = dataclasses.replace(cfg, cell="dcgan")
    G, D = build_generator(dc), build_discriminator(dc)
    assert type(G) is DCGANGenerator and type(D) is DCGANDiscriminator
    assert G.cfg == dc  # sampling reads image_size and z_dim from G.cfg
    with pytest.raises(ValueError, match="allowed: rnn, lstm, gru, sru, dcgan"):
        build_generator(dataclasses.replace(cfg, cell="transformer"))


def step_loop_images(G, z):
    """The generator without feedback, written out as the step-by-step loop it was."""
    state = G.cell.initial_state(torch.tanh(G.init_state(z)))
    canvas = z.new_zeros(z.shape[0], 3, G.cfg.image_size, G.cfg.image_size)
    for t in range(G.cfg.timesteps):
        state = G.cell(z, state)
        canvas = canvas + G.decoder(state[0], t)
    return torch.tanh(canvas)


@pytest.mark.parametrize("cell", list(CELLS))
def test_generator_without_feedback_unfused_is_the_step_loop_exactly(cell):
    torch.manual_seed(0)
    G = Generator(NetConfig(cell=cell, image_size=16, hidden=16, z_dim=8, nf=8, timesteps=3, feedback=False))
    z = torch.randn(4, 8)
    expected = step_loop_images(G, z)
    assert torch.equal(G(z, fused=False), expected)
    assert torch.equal(G(z), expected), "on CPU the default is the loop"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_generator_and_discriminator_match_the_loop(cell):
    torch.manual_seed(0)
    cfg = NetConfig(cell=cell, image_size=16, hidden=16, z_dim=8, nf=8, timesteps=3, feedback=False)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(4, 8)
    for fused in (False, True):
        G.zero_grad(), D.zero_grad()
        images = G(z, fused=fused)
        logits = D(images, fused=fused)
        logits.sum().backward()
        if not fused:
            loop_images, loop_logits = images.detach(), logits.detach()
            loop_grads = [p.grad.clone() for p in [*G.parameters(), *D.parameters()]]
    torch.testing.assert_close(images, loop_images, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, loop_logits, atol=1e-5, rtol=1e-5)
    for g, loop_g in zip([p.grad for p in [*G.parameters(), *D.parameters()]], loop_grads):
        torch.testing.assert_close(g, loop_g, atol=1e-5, rtol=1e-4)

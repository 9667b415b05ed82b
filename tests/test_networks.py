"""Generator and discriminator: shapes for every cell and size, recurrence that matters, EMA."""
import copy

import pytest
import torch

from rnngan.models.cells import CELLS
from rnngan.models.networks import Discriminator, Generator, NetConfig, count_parameters
from rnngan.training import BatchSampler, ema_decay, update_ema


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


def test_ema_moves_towards_the_model_and_copies_buffers():
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
    assert torch.equal(ema.decoder.norms[0][0].running_mean, G.decoder.norms[0][0].running_mean)


def test_ema_decay_ramps_up_then_caps():
    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(100, 0.999) < 0.93
    assert ema_decay(10**6, 0.999) == 0.999


def test_batch_sampler_covers_each_epoch_without_repeats():
    s = BatchSampler(10, 5, seed=0)
    seen = [i for _ in range(2) for i in s.next()]
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

    from rnngan.training import d_loss, g_loss

    real, fake = torch.randn(16), torch.randn(16)
    plain = F.softplus(-real).mean() + F.softplus(fake).mean()
    torch.testing.assert_close(d_loss(real, fake, 1.0), plain)
    torch.testing.assert_close(g_loss(fake), F.softplus(-fake).mean())
    # with target 0.9 the loss on a real image is smallest at sigmoid(logit) = 0.9, not at +inf
    logits = torch.linspace(0, 6, 601)
    losses = torch.stack([d_loss(l.view(1), torch.full((1,), -50.0), 0.9) for l in logits])
    assert abs(logits[losses.argmin()].item() - math.log(9)) < 0.02

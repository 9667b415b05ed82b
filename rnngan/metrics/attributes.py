"""Mode coverage on ground-truth attributes: what a generator's samples show, and what they miss.

As Stacked-MNIST counts which of its 1,000 digit triples a generator produces (Metz et al. 2017;
Srivastava et al. 2017; Lin et al. 2018), a classifier trained on real labelled faces (the
`attributes` stage, rnngan/attributes.py) names the attributes of each sample, and two numbers
say what the generator drops:

- marginals: per attribute, the fraction of samples that show it against the fraction of real
  training images that do; the total variation of one Bernoulli pair is |p_gen - p_real|, and we
  report its mean and its maximum over the attributes the classifier recognises;
- joint modes: over the K most balanced recognised attributes each image is one of 2^K
  combinations; how many of the combinations the real training split contains the samples
  produce, and KL(generated || real) between the two joint distributions.

The classifier errs too, so these numbers are read against the held-out real row scored the
same way (its floor). Pure steps: images -> predictions -> numbers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnngan.metrics.threads import PARALLEL_BATCHES, parallel_map

# Pseudo-count added to every real combination before the KL: a sample in a combination the
# training split lacks (a classifier error, or a genuinely new face) costs a finite amount.
KL_PSEUDO_COUNT = 0.5


class AttributeNet(nn.Module):
    """A small multi-label CNN: 3x3 convolutions halving the side down to 4x4, global average
    pooling, one logit per attribute."""

    def __init__(self, outputs: int, image_size: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        # state size. width x S x S
        channels, side = width, image_size
        while side > 4:
            out = min(channels * 2, 4 * width)
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            channels, side = out, side // 2
            # state size. out x side x side
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def to_input(images: np.ndarray, device) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1], as the generators produce."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)   # a copy: memory maps are read-only
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def predict(net: AttributeNet, images: np.ndarray, batch_size: int, device) -> np.ndarray:
    """Boolean N x A: the attribute is present where its logit is positive.

    On CPU, batches run side by side with torch's threads shared among them (as
    `features.extract_features` does, and for the same reason: a batch on one thread each is
    faster on a few cores than one batch on all of them).
    """
    net.eval()

    def one_batch(start: int) -> np.ndarray:
        with torch.no_grad():            # per thread: entered in whichever thread runs the batch
            return net(to_input(images[start:start + batch_size], device)).gt(0).cpu().numpy()

    starts = range(0, len(images), batch_size)
    if torch.device(device).type == "cpu":
        threads = torch.get_num_threads()
        workers = min(threads, PARALLEL_BATCHES)
        out = list(parallel_map(one_batch, starts, workers, threads_each=max(1, threads // workers)))
    else:
        out = [one_batch(start) for start in starts]
    return np.concatenate(out) if out else np.zeros((0, net.head.out_features), bool)


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per column, the mean of the true-positive and true-negative rates (0.5 = chance whatever
    the base rate; plain accuracy would call 'never present' 98% right on a 2% attribute).
    A column with one class only gets the rate of that class."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    pos, neg = truth.sum(0), (~truth).sum(0)
    tpr = np.where(pos > 0, (predicted & truth).sum(0) / np.maximum(pos, 1), np.nan)
    tnr = np.where(neg > 0, (~predicted & ~truth).sum(0) / np.maximum(neg, 1), np.nan)
    return np.nanmean(np.stack([tpr, tnr]), axis=0)


def mode_codes(labels: np.ndarray) -> np.ndarray:
    """Each row of a boolean N x K array as one integer in [0, 2^K): bit k is column k."""
    labels = np.asarray(labels, bool)
    return (labels.astype(np.int64) << np.arange(labels.shape[1], dtype=np.int64)).sum(axis=1)


def mode_counts(labels: np.ndarray) -> np.ndarray:
    """How many rows fall in each of the 2^K combinations."""
    return np.bincount(mode_codes(labels), minlength=1 << labels.shape[1])


def kl_to_real(generated_counts: np.ndarray, real_counts: np.ndarray,
               pseudo_count: float = KL_PSEUDO_COUNT) -> float:
    """KL(generated || real) in nats, the real joint smoothed with `pseudo_count` per combination."""
    g = np.asarray(generated_counts, np.float64)
    r = np.asarray(real_counts, np.float64) + pseudo_count
    p, q = g / g.sum(), r / r.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def attribute_scores(predicted: np.ndarray, spec: dict) -> dict:
    """Every attribute number of one set of images, from the classifier's predictions (columns
    in `spec["kept"]` order) and the `attributes` stage's summary of the real training split."""
    kept = spec["kept"]
    predicted = np.asarray(predicted, bool)
    if predicted.ndim != 2 or predicted.shape[1] != len(kept):
        raise ValueError(f"predictions must be N x {len(kept)}, got {predicted.shape}")
    frequency = predicted.mean(axis=0)
    real = np.array([spec["real_frequency"][a] for a in kept])
    tv = np.abs(frequency - real)
    modes = spec["modes"]
    columns = [kept.index(a) for a in modes["attributes"]]
    real_counts = np.asarray(modes["real_counts"])
    counts = mode_counts(predicted[:, columns])
    real_support = real_counts > 0
    produced = int(np.sum((counts > 0) & real_support))
    return {
        "count": int(len(predicted)),
        "frequency": {a: float(f) for a, f in zip(kept, frequency)},
        "tv": {a: float(t) for a, t in zip(kept, tv)},
        "tv_mean": float(tv.mean()),
        "tv_max": float(tv.max()),
        "tv_worst": kept[int(np.argmax(tv))],
        "modes": {
            "attributes": modes["attributes"],
            "real_modes": int(real_support.sum()),
            "produced": produced,
            "fraction": produced / max(int(real_support.sum()), 1),
            "outside_real": float(counts[~real_support].sum() / max(len(predicted), 1)),
            "kl": kl_to_real(counts, real_counts),
            "kl_pseudo_count": KL_PSEUDO_COUNT,
        },
    }

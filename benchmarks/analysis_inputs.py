"""Inputs of one analyze run, built in code: the benchmarks of the analyze stage share them.

    from analysis_inputs import build_inputs
    inputs = build_inputs(Path(tmp), count=5000, real_count=5000, size=32)

What it makes, in a folder:
- `train.npy`: `real_count` real images, cheap procedural faces (a background gradient, hair, a
  skin-coloured face with eyes, brows and a mouth; glasses and beards on some), drawn at twice
  the size and area-downsampled, so they have edges, colour and a spectrum like synthfaces;
- `reference.npz`: made from them by rnngan's own reference code (`compute_reference`);
- `samples.npy`: `count` "generated" images from the same drawing with a generator's faults:
  no glasses (a dropped mode), narrower pose and colour ranges, a little blur and noise;
- `attributes/`: a classifier folder in the attributes stage's format: an untrained
  `AttributeNet` (scoring costs the same whatever the weights), all 40 outputs kept, and the
  joint modes of its predictions on the reference images (what the stage records).

Drawing 10,000 faces takes a second or two; synthfaces' own faces would take about 90 ms each.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from rnngan.config import MetricsParams


@dataclass(frozen=True)
class AnalysisInputs:
    samples: Path
    reference: Path
    attributes: Path | None
    mp: MetricsParams


def _draw_face(img: np.ndarray, rng: np.random.Generator, generated: bool) -> None:
    """Draw one face onto `img` (big x big RGB uint8, its background already there)."""
    big = img.shape[0]
    s = big / 64.0
    spread = 0.6 if generated else 1.0
    cx = big / 2 + rng.normal(0, 3 * s * spread)
    cy = big / 2 + 2 * s + rng.normal(0, 2 * s * spread)
    w, h = rng.uniform(13, 18) * s, rng.uniform(17, 23) * s
    angle = rng.normal(0, 8 * spread)
    hair = tuple(int(v) for v in rng.integers(0, 256, 3) * rng.uniform(0.2, 1.0))
    skin = tuple(int(v) for v in np.array([224, 172, 140]) * rng.uniform(0.45, 1.1))

    def ellipse(x, y, a, b, colour, thickness=-1, start=0, end=360):
        # 4 fractional bits: sub-pixel positions, antialiased edges
        cv2.ellipse(img, (int(x * 16), int(y * 16)), (int(a * 16), int(b * 16)), angle, start, end,
                    colour, thickness, cv2.LINE_AA, 4)

    ellipse(cx, cy - h * 0.25, w * 1.15, h * 0.95, hair)                      # hair behind
    ellipse(cx, cy, w, h, skin)                                             # face
    eye_y, eye_dx = cy - h * 0.2, w * rng.uniform(0.35, 0.5)
    eye = rng.uniform(1.2, 2.4) * s
    for side in (-1, 1):
        ellipse(cx + side * eye_dx, eye_y, eye * 1.4, eye, (250, 250, 250))
        ellipse(cx + side * eye_dx, eye_y, eye * 0.7, eye * 0.7, (30, 20, 10))
        ellipse(cx + side * eye_dx, eye_y - eye * 2.2, eye * 1.8, eye * 0.5, hair)   # brow
    smile = rng.random() < 0.5
    ellipse(cx, cy + h * 0.45, w * rng.uniform(0.3, 0.5), h * (0.12 if smile else 0.03), (150, 40, 50),
            max(1, int(s)), 0, 180 if smile else 360)
    if rng.random() < 0.25:                                                 # beard
        ellipse(cx, cy + h * 0.55, w * 0.8, h * 0.45, hair, -1, 0, 180)
    if not generated and rng.random() < 0.2:                                # glasses: a dropped mode
        for side in (-1, 1):
            ellipse(cx + side * eye_dx, eye_y, eye * 2.4, eye * 2.0, (20, 20, 20), max(1, int(s)))


def structured_images(count: int, size: int, seed: int, generated: bool = False) -> np.ndarray:
    """`count` faces, N x size x size x 3 uint8; `generated` gives them a generator's faults."""
    rng = np.random.default_rng([seed, int(generated)])
    big = 2 * size
    # backgrounds: a vertical gradient between two random colours, all images at once
    low, high = (40, 200) if generated else (0, 256)
    c0, c1 = (rng.integers(low, high, (count, 1, 1, 3)).astype(np.float32) for _ in range(2))
    t = np.linspace(0.0, 1.0, big, dtype=np.float32)[None, :, None, None]
    canvas = np.empty((count, big, big, 3), np.uint8)
    canvas[:] = (c0 * (1 - t) + c1 * t).astype(np.uint8)
    for i in range(count):
        _draw_face(canvas[i], rng, generated)
    x = canvas.astype(np.float32)
    if generated:
        x += rng.normal(0, 6, x.shape).astype(np.float32)
    # 2 x 2 area average: the antialiasing of a downsampling by two
    x = x.reshape(count, size, 2, size, 2, 3).mean(axis=(2, 4))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def write_attributes_folder(folder: Path, reference_images: np.ndarray, modes: int = 8) -> Path:
    """An attributes-stage folder whose classifier is an untrained AttributeNet (seeded)."""
    from rnngan.attributes import CLASSIFIER, SUMMARY
    from rnngan.data import celeba_format as cf
    from rnngan.metrics.attributes import AttributeNet, mode_counts, predict

    torch.manual_seed(0)
    size = int(reference_images.shape[1])
    net = AttributeNet(len(cf.ATTRIBUTES), size, 32).eval()
    pred = predict(net, reference_images, 128, torch.device("cpu"))
    kept = list(cf.ATTRIBUTES)
    frequency = {a: float(pred[:, j].mean()) for j, a in enumerate(kept)}
    chosen = sorted(kept, key=lambda a: (abs(frequency[a] - 0.5), kept.index(a)))[:modes]
    real_counts = mode_counts(pred[:, [kept.index(a) for a in chosen]])
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "outputs": kept, "kept_outputs": list(range(len(kept))),
                "image_size": size, "width": 32}, folder / CLASSIFIER)
    summary = {"available": True, "dataset": "benchmark", "image_size": size, "kept": kept, "dropped": {},
               "real_frequency": frequency,
               "modes": {"attributes": chosen, "k": len(chosen), "real_images": int(len(pred)),
                         "real_modes": int((real_counts > 0).sum()), "real_counts": real_counts.tolist()}}
    (folder / SUMMARY).write_text(json.dumps(summary))
    return folder


def build_inputs(folder: Path, count: int = 5000, real_count: int = 5000, size: int = 32, seed: int = 0,
                 attributes: bool = True, mp: MetricsParams | None = None) -> AnalysisInputs:
    """Write train.npy, reference.npz, samples.npy (and attributes/) into `folder`."""
    from rnngan.evaluation import compute_reference

    mp = mp or MetricsParams(real_count=real_count)
    folder.mkdir(parents=True, exist_ok=True)
    real = structured_images(real_count, size, seed)
    np.save(folder / "train.npy", real)
    np.save(folder / "samples.npy", structured_images(count, size, seed + 1, generated=True))
    compute_reference(folder / "train.npy", mp, seed, "cpu", folder / "reference.npz")
    attr = write_attributes_folder(folder / "attributes", real) if attributes else None
    return AnalysisInputs(folder / "samples.npy", folder / "reference.npz", attr, mp)

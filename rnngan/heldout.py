"""The held-out real row: real images the reference never saw, scored like a generator's samples.

Real images outside the reference subset (the test split first, then the rows of train the
reference did not draw), `sample.count` of them, through exactly the analysis a run's
samples get. A perfect generator would score what they score: it is the floor of FID and KID
and the ceiling of precision, recall, density and coverage at this sample size, the line every
variant is read against.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnngan.config import MetricsParams, ParamsError, SampleParams
from rnngan.evaluation import analyze, load_reference
from rnngan.grids import save_grid
from rnngan.io import load_images, log, save_npy, write_json

# Taken whole, in this order, before the rest of train. note: not val: the attribute classifier
# (trained on the reference subset) was selected on val, so val images are not unseen by the
# attribute metrics this row is scored with
SPLIT_ORDER = ("test",)


def heldout_images(prepared: Path, reference_path: Path, count: int) -> tuple[np.ndarray, dict]:
    """Up to `count` real images outside the reference subset, and where each part came from."""
    ref = load_reference(reference_path)
    if "indices" not in ref:
        raise ParamsError(f"{reference_path} does not record which train images it used (made by an "
                          "older rnngan); rerun the reference stage (dvc repro)")
    train_path = Path(prepared) / "train.npy"
    if Path(ref["meta"]["source"]).resolve() != train_path.resolve():
        raise ParamsError(f"{reference_path} was drawn from {ref['meta']['source']}, not {train_path}")
    parts, taken = [], {}
    for split in SPLIT_ORDER:
        path = Path(prepared) / f"{split}.npy"
        if path.is_file() and sum(len(p) for p in parts) < count:
            images = load_images(path)
            part = np.asarray(images[:count - sum(len(p) for p in parts)])
            parts.append(part)
            taken[split] = len(part)
    need = count - sum(len(p) for p in parts)
    if need > 0:
        train = load_images(train_path)
        unused = np.setdiff1d(np.arange(len(train)), ref["indices"], assume_unique=True)[:need]
        if len(unused):
            parts.append(np.asarray(train[unused]))
            taken["train (not in the reference)"] = len(unused)
    images = np.concatenate(parts) if parts else np.empty((0, 0, 0, 3), np.uint8)
    return images, taken


def score_heldout(prepared: Path, reference_path: Path, sp: SampleParams, mp: MetricsParams, device: str,
                  out_npy: Path, out_png: Path, out: Path, attributes: Path | None = None) -> dict:
    images, taken = heldout_images(prepared, reference_path, sp.count)
    if len(images) < sp.count:
        log.warning("only %d held-out real images (sample.count=%d): the real row is measured on fewer "
                    "images than each run, which biases its FID and KID upward", len(images), sp.count)
    if len(images) < mp.kid_subset_size:
        raise ParamsError(f"only {len(images)} real images lie outside the reference subset "
                          f"({', '.join(f'{k} {v}' for k, v in taken.items()) or 'none'}); "
                          f"metrics.kid_subset_size={mp.kid_subset_size} needs at least that many: "
                          "lower metrics.real_count or metrics.kid_subset_size")
    save_npy(out_npy, images)
    save_grid(images[:sp.grid], out_png, scale=2)
    log.info("held-out real row: %d images (%s)", len(images), ", ".join(f"{k} {v}" for k, v in taken.items()))
    # note: the row is named as its file is (metrics/real.json: "real"), like a run's
    result = {**analyze(Path(out).stem, out_npy, reference_path, mp, device, out, attributes), "sources": taken}
    write_json(out, result)
    return result

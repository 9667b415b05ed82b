"""The attributes stage: a small classifier of CelebA's 40 attributes, kept only where it is right.

CelebA publishes 40 binary attributes per face (`list_attr_celeba.txt`) and synthfaces writes
them true to what it drew. The classifier (rnngan.metrics.attributes.AttributeNet) trains on the
real training images of the reference subset: the held-out real row (rnngan.heldout) is drawn
from everything else, so the floor it gives is measured on faces the classifier never saw, as a
generator's samples are. Its balanced accuracy per attribute on the validation split decides
which attributes the metrics use (`attributes.min_accuracy`); the rest are named with the reason.
The K most balanced kept attributes (`attributes.modes`) define the joint modes, counted over the
whole training split, the data every generator learns from.

Datasets without attribute labels (LSUN, Cityscapes) get a summary that says so and no
classifier; analyze then skips the attribute metrics and the report says why.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnngan.config import AttributesParams, ParamsError
from rnngan.data import celeba_format as cf
from rnngan.errors import MissingInputError, UserError
from rnngan.io import atomic_path, load_images, log, pick_device, progress, read_json, write_json
from rnngan.subsets import reference_indices
from rnngan.metrics.attributes import AttributeNet, balanced_accuracy, mode_counts, predict, to_input

# The datasets that publish CelebA's attribute file (synthfaces writes CelebA's layout).
LABELLED = ("synthfaces", "celeba")
SUMMARY = "attributes.json"
MIN_VAL_CLASS = 5        # validation images with and without an attribute needed to measure it
CLASSIFIER = "classifier.pt"


class AttributesError(UserError, ValueError):
    """Attribute labels that do not match the prepared images, or a classifier file that does not fit."""


def split_labels(raw_dir: Path, prepared_dir: Path) -> dict[str, np.ndarray]:
    """Boolean N x 40 labels per split, row for row as preprocess wrote the images (index.csv)."""
    names, values = cf.read_attributes(Path(raw_dir) / cf.ATTR_FILE)
    by_name = dict(zip(names, values > 0))
    rows: dict[str, list[tuple[int, str]]] = {}
    index = Path(prepared_dir) / "index.csv"
    if not index.is_file():
        raise MissingInputError(f"{index}: no such file; the preprocess stage writes it (dvc repro)")
    with open(index, newline="") as f:
        for record in csv.DictReader(f):
            rows.setdefault(record["split"], []).append((int(record["row"]), record["image"]))
    labels = {}
    for split, entries in rows.items():
        entries.sort()
        missing = [name for _, name in entries if name not in by_name]
        if missing:
            raise AttributesError(f"{cf.ATTR_FILE} has no attributes for {len(missing)} image(s) of the "
                                  f"{split} split (first: {missing[0]}); it does not belong to these images")
        labels[split] = np.stack([by_name[name] for _, name in entries]) if entries else np.zeros((0, 40), bool)
        n_images = len(load_images(Path(prepared_dir) / f"{split}.npy"))
        if n_images != len(entries):
            raise AttributesError(f"{prepared_dir}/index.csv lists {len(entries)} {split} images but "
                                  f"{split}.npy holds {n_images}; rerun preprocess (dvc repro)")
    return labels


def train_classifier(images: np.ndarray, labels: np.ndarray, ap: AttributesParams, seed: int, device) -> AttributeNet:
    """BCE on every label column, Adam, random horizontal flips (no CelebA attribute is sided)."""
    torch.manual_seed(seed)
    net = AttributeNet(labels.shape[1], images.shape[1], ap.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=ap.lr)
    rng = np.random.default_rng([seed, 40])
    target = torch.from_numpy(labels.astype(np.float32))
    steps = ap.epochs * -(-len(images) // ap.batch_size)
    bar = progress(total=steps, unit="step", desc="attribute classifier")
    net.train()
    for epoch in range(ap.epochs):
        order = rng.permutation(len(images))
        total = 0.0
        for i in range(0, len(order), ap.batch_size):
            idx = np.sort(order[i:i + ap.batch_size])
            x = to_input(images[idx], device)
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(net(x), target[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update()
        log.info("attribute classifier: epoch %d/%d, loss %.4f", epoch + 1, ap.epochs, total / len(order))
    bar.close()
    return net.eval()


def most_balanced(frequency: dict[str, float], kept: list[str], k: int) -> list[str]:
    """The k kept attributes whose real frequency is closest to 1/2 (ties: CelebA's order)."""
    return sorted(kept, key=lambda a: (abs(frequency[a] - 0.5), kept.index(a)))[:k]


def _unavailable(out_dir: Path, facts: dict, reason: str) -> dict:
    """A summary without a classifier: analyze skips the attribute metrics, the report says why."""
    summary = {"available": False, **facts, "reason": reason}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / SUMMARY, summary)
    log.warning("attributes: %s", reason)
    return summary


def build_attributes(dataset: str, raw_dir: Path, prepared_dir: Path, real_count: int, ap: AttributesParams,
                     seed: int, device: str, out_dir: Path) -> dict:
    """Write out_dir/attributes.json (and classifier.pt where the dataset has labels). The
    classifier trains on the reference subset (`metrics.real_count` rows drawn with the data `seed`)."""
    if dataset not in LABELLED:
        return _unavailable(out_dir, {"dataset": dataset},
                            f"{dataset} publishes no attribute labels, so mode coverage on attributes is not "
                            "measured for it")
    start = time.perf_counter()
    labels = split_labels(raw_dir, prepared_dir)
    if "val" not in labels or not len(labels["val"]):
        raise AttributesError(f"{prepared_dir} has no validation images to measure the classifier on")
    train_images = load_images(Path(prepared_dir) / "train.npy")
    subset = reference_indices(len(train_images), real_count, seed)
    train_labels = labels["train"]
    real_frequency = train_labels.mean(axis=0)
    varying = [j for j in range(len(cf.ATTRIBUTES)) if 0 < real_frequency[j] < 1]
    if not varying:
        raise AttributesError(f"every attribute is constant over the {len(train_labels)} training images")
    dev = pick_device(device)
    log.info("attributes: training on %d reference images (%d attributes vary), measuring on %d validation images",
             len(subset), len(varying), len(labels["val"]))
    net = train_classifier(np.asarray(train_images[subset]), train_labels[subset][:, varying], ap, seed, dev)
    val_images = load_images(Path(prepared_dir) / "val.npy")
    val_pred = predict(net, val_images, ap.batch_size, dev)
    val_truth = labels["val"][:, varying]
    accuracy = balanced_accuracy(val_pred, val_truth)
    per_attribute, kept, dropped = {}, [], {}
    for j, name in enumerate(cf.ATTRIBUTES):
        entry = {"real_frequency": float(real_frequency[j])}
        if j in varying:
            col = varying.index(j)
            entry.update({"balanced_accuracy": float(accuracy[col]),
                          "accuracy": float(np.mean(val_pred[:, col] == val_truth[:, col])),
                          "val_positives": int(val_truth[:, col].sum()),
                          "val_predicted_frequency": float(val_pred[:, col].mean())})
            positives = int(val_truth[:, col].sum())
            if min(positives, len(val_truth) - positives) < MIN_VAL_CLASS:
                dropped[name] = (f"too few validation images to measure it ({positives} with, "
                                 f"{len(val_truth) - positives} without; needs {MIN_VAL_CLASS} of each)")
            elif accuracy[col] >= ap.min_accuracy:
                kept.append(name)
            else:
                dropped[name] = f"balanced accuracy {accuracy[col]:.3f} < attributes.min_accuracy={ap.min_accuracy}"
        else:
            dropped[name] = f"constant in the training split (frequency {real_frequency[j]:.0f})"
        per_attribute[name] = entry
    if not kept:
        return _unavailable(out_dir, {"dataset": dataset, "per_attribute": per_attribute, "dropped": dropped},
                            f"the attribute classifier recognises none of the 40 attributes at balanced accuracy "
                            f">= attributes.min_accuracy={ap.min_accuracy} on the {len(val_images)} validation "
                            "images (too few images, or too few attributes.epochs)")
    # note: the real side is the classifier's predictions on the reference images, never their
    # labels: generated images are scored by predictions, so comparing them with labels would put
    # the classifier's own errors into every variant's TV, modes and KL
    reference_pred = predict(net, np.asarray(train_images[subset]), ap.batch_size, dev)
    for name in kept:
        per_attribute[name]["reference_predicted_frequency"] = float(
            reference_pred[:, varying.index(cf.ATTRIBUTES.index(name))].mean())
    frequency = {a: per_attribute[a]["reference_predicted_frequency"] for a in kept}
    modes = most_balanced(frequency, kept, ap.modes)
    if len(modes) < ap.modes:
        log.warning("attributes: only %d attributes recognised; joint modes over %d, not attributes.modes=%d",
                    len(modes), len(modes), ap.modes)
    real_counts = mode_counts(reference_pred[:, [varying.index(cf.ATTRIBUTES.index(a)) for a in modes]])
    # Only the kept outputs are scored; their positions in the network's outputs go with them.
    output_of = {cf.ATTRIBUTES[j]: i for i, j in enumerate(varying)}
    summary = {
        "available": True, "dataset": dataset, "image_size": int(train_images.shape[1]),
        "trained_on": {"split": "train", "images": int(len(subset)), "subset": "the reference subset",
                       "epochs": ap.epochs}, "measured_on": {"split": "val", "images": int(len(val_images))},
        "min_accuracy": ap.min_accuracy, "kept": kept, "dropped": dropped,
        "real_frequency": frequency, "per_attribute": per_attribute,
        "real_side": "the classifier's predictions on the reference images (not their labels)",
        "modes": {"attributes": modes, "k": len(modes), "real_images": int(len(subset)),
                  "real_modes": int((real_counts > 0).sum()), "real_counts": real_counts.tolist()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        torch.save({"state_dict": net.state_dict(), "outputs": [cf.ATTRIBUTES[j] for j in varying],
                    "kept_outputs": [output_of[a] for a in kept], "image_size": summary["image_size"],
                    "width": ap.width}, tmp / CLASSIFIER)
        write_json(tmp / SUMMARY, summary)
    log.info("attributes: kept %d of 40 at balanced accuracy >= %.2f (%s); dropped %s; joint modes over %s: "
             "the reference images have %d of %d; %.1f s", len(kept), ap.min_accuracy, ", ".join(kept),
             ", ".join(dropped) or "none", ", ".join(modes), summary["modes"]["real_modes"], 1 << len(modes),
             summary["seconds"])
    return summary


def load_attributes(folder: Path) -> tuple[dict, AttributeNet | None]:
    """The stage's summary and, where the dataset has labels, its classifier (CPU, eval mode)."""
    path = Path(folder) / SUMMARY
    if not path.is_file():
        raise MissingInputError(f"{path}: no attribute classifier; run the attributes stage first (dvc repro)")
    summary = read_json(path)
    if not summary["available"]:
        return summary, None
    state = torch.load(Path(folder) / CLASSIFIER, map_location="cpu", weights_only=True)
    net = AttributeNet(len(state["outputs"]), state["image_size"], state["width"])
    net.load_state_dict(state["state_dict"])
    summary["kept_outputs"] = state["kept_outputs"]
    return summary, net.eval()


def score_attributes(folder: Path, images: np.ndarray, batch_size: int, device: str) -> dict:
    """The attribute metrics of a set of images, or why there are none."""
    from rnngan.metrics.attributes import attribute_scores

    summary, net = load_attributes(folder)
    if net is None:
        return {"available": False, "reason": summary["reason"]}
    if images.shape[1] != summary["image_size"]:
        raise ParamsError(f"{folder}: the attribute classifier was trained at {summary['image_size']} px, the "
                          f"images are {images.shape[1]} px; rerun the attributes stage (dvc repro)")
    dev = pick_device(device)
    predicted = predict(net.to(dev), images, batch_size, dev)[:, summary["kept_outputs"]]
    return {"available": True, **attribute_scores(predicted, summary)}

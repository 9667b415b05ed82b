"""The reference and analyze stages: real-image statistics once, then each variant against them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnngan.config import MetricsParams, ParamsError
from rnngan.errors import MissingInputError
from rnngan.io import atomic_path, load_images, log, pick_device, write_json
from rnngan.metrics.analysis import feature_analysis
from rnngan.metrics.features import extract_features
from rnngan.metrics.fid import feature_statistics
from rnngan.metrics.histograms import (CHANNELS, HSV_CHANNELS, colour_moments_from_counts, histogram_distances,
                                       histograms_from_counts, hsv_distances, hsv_histograms, value_counts)
from rnngan.subsets import reference_indices
from rnngan.metrics.spectra import power_spectrum, spectral_distance, spectrum_frequencies


def extractor_options(mp: MetricsParams) -> dict:
    return {"weights": mp.inception_weights} if mp.features == "inception" else {}


def compute_reference(images_path: Path, mp: MetricsParams, seed: int, device: str, out: Path) -> dict:
    """Features, their statistics, histograms and colour moments of `metrics.real_count` real
    images drawn at random (seeded) from `images_path`; one .npz keyed by what produced it."""
    images = load_images(images_path)
    count = min(mp.real_count, len(images))
    if count < mp.real_count:
        log.warning("only %d real images available; metrics.real_count=%d", count, mp.real_count)
    if count < mp.kid_subset_size:
        raise ParamsError(f"metrics.kid_subset_size={mp.kid_subset_size} exceeds the {count} real "
                          f"images in {images_path}")
    idx = reference_indices(len(images), mp.real_count, seed)
    subset = images[idx]
    features = extract_features(mp.features, subset, mp.batch_size, pick_device(device),
                                progress_desc="reference features", **extractor_options(mp))
    mu, sigma = feature_statistics(features)
    counts = value_counts(subset)
    hists = histograms_from_counts(counts, mp.bins)
    hsv = hsv_histograms(subset, mp.bins)
    spectrum = power_spectrum(subset)
    meta = {"source": str(images_path), "count": int(count), "image_size": int(images.shape[1]),
            "features": mp.features, "feature_dim": int(features.shape[1]), "bins": mp.bins,
            "seed": seed, "colour_moments": colour_moments_from_counts(counts)}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=features, mu=mu, sigma=sigma, meta=json.dumps(meta), spectrum=spectrum,
                     indices=idx,
                     **{f"hist_{c}": hists[c] for c in CHANNELS},
                     **{f"hist_{c}": hsv[c] for c in HSV_CHANNELS})
    log.info("reference: %d real images, %s features (%d-d) -> %s", count, mp.features,
             features.shape[1], out)
    return meta


def load_reference(path: Path) -> dict:
    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no reference statistics; run the reference stage first")
    with np.load(path) as z:
        ref = {k: z[k] for k in z.files}
    ref["meta"] = json.loads(str(ref["meta"]))
    return ref


def analyze(cell: str, samples_path: Path, reference_path: Path, mp: MetricsParams, device: str,
            out: Path, attributes: Path | None = None) -> dict:
    """Every metric of one variant's samples against the reference; written to metrics/<cell>.json.
    With `attributes` (the attributes stage's folder), also mode coverage on the dataset's attributes."""
    ref = load_reference(reference_path)
    meta = ref["meta"]
    samples = load_images(samples_path)
    if samples.shape[1] != meta["image_size"]:
        raise ParamsError(f"{samples_path}: samples are {samples.shape[1]} px, the reference "
                          f"{reference_path} is {meta['image_size']} px")
    if meta["features"] != mp.features or meta["bins"] != mp.bins:
        raise ParamsError(f"{reference_path} was computed with features={meta['features']}, "
                          f"bins={meta['bins']}; rerun the reference stage (dvc repro)")
    if len(samples) < mp.kid_subset_size:
        raise ParamsError(f"metrics.kid_subset_size={mp.kid_subset_size} exceeds the "
                          f"{len(samples)} samples in {samples_path} (sample.count)")
    features = extract_features(mp.features, samples, mp.batch_size, pick_device(device),
                                progress_desc=f"{cell} features", **extractor_options(mp))
    # FID, KID, PRDC and both bootstraps from shared work (rnngan.metrics.analysis). note: seed 0
    # for every variant, so round r resamples the same real rows for all of them and the report
    # can compare variants with paired differences (rnngan.metrics.bootstrap)
    fm = feature_analysis(ref["features"], features, mp, ref["mu"], ref["sigma"], seed=0,
                          progress_desc=f"{cell} FID bootstrap")
    fid, boot_fid, boot_kid, manifold = fm.fid, fm.fid_bootstrap, fm.kid_bootstrap, fm.manifold
    # the pixel counts once, for the histograms and the colour moments
    counts = value_counts(samples)
    gen_hists = histograms_from_counts(counts, mp.bins)
    distances = {c: histogram_distances(ref[f"hist_{c}"], gen_hists[c]) for c in CHANNELS}
    gen_hsv = hsv_histograms(samples, mp.bins)
    hsv_dist = hsv_distances({c: ref[f"hist_{c}"] for c in HSV_CHANNELS}, gen_hsv)
    spectrum = power_spectrum(samples)
    attribute_metrics = None
    if attributes is not None:
        from rnngan.attributes import score_attributes

        attribute_metrics = score_attributes(attributes, samples, mp.batch_size, device)
    result = {
        "cell": cell, "count": int(len(samples)), "real_count": meta["count"],
        "features": mp.features, "fid": fid, "fid_interval": [boot_fid.lo, boot_fid.hi],
        "kid": boot_kid.point, "kid_interval": [boot_kid.lo, boot_kid.hi],
        "kid_subsets": {"mean": fm.kid_mean, "std": fm.kid_std, "subsets": mp.kid_subsets,
                        "subset_size": mp.kid_subset_size},
        "confidence": mp.confidence, "nearest_k": mp.nearest_k, **manifold,
        "bootstrap": {"fid": boot_fid.to_dict(), "kid": boot_kid.to_dict()},
        "histogram_distances": distances,
        "colour_moments": {"generated": colour_moments_from_counts(counts), "real": meta["colour_moments"]},
        "histograms": {"bins": mp.bins,
                       "real": {c: ref[f"hist_{c}"].tolist() for c in CHANNELS},
                       "generated": {c: gen_hists[c].tolist() for c in CHANNELS}},
        "hsv_distances": hsv_dist,
        "hsv_histograms": {"bins": mp.bins,
                           "real": {c: ref[f"hist_{c}"].tolist() for c in HSV_CHANNELS},
                           "generated": {c: gen_hsv[c].tolist() for c in HSV_CHANNELS}},
        "spectral_distance": spectral_distance(ref["spectrum"], spectrum),
        "spectrum": {"frequency": spectrum_frequencies(samples.shape[1], samples.shape[2]).tolist(),
                     "real": ref["spectrum"].tolist(), "generated": spectrum.tolist()},
    }
    if attribute_metrics is not None:
        result["attributes"] = attribute_metrics
    write_json(out, result)
    log.info("%s: FID %.3f [%.3f, %.3f], KID %.5f [%.5f, %.5f], precision %.3f, recall %.3f, density %.3f, "
             "coverage %.3f (%s features, %d vs %d images)", cell, fid, boot_fid.lo, boot_fid.hi, boot_kid.point,
             boot_kid.lo, boot_kid.hi, manifold["precision"], manifold["recall"], manifold["density"],
             manifold["coverage"], mp.features, len(samples), meta["count"])
    if attribute_metrics and attribute_metrics["available"]:
        m = attribute_metrics["modes"]
        log.info("%s: attribute TV mean %.3f, max %.3f (%s); joint modes %d of %d, KL %.3f", cell,
                 attribute_metrics["tv_mean"], attribute_metrics["tv_max"], attribute_metrics["tv_worst"],
                 m["produced"], m["real_modes"], m["kl"])
    return result

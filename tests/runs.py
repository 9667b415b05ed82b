"""Synthetic per-run files (metrics/<run>.json, models/<run>/train.json) in the shapes analyze and
train write, for the compare stage and the report: numbers chosen by the test."""
import json
import zlib
from pathlib import Path

import numpy as np

ROUNDS = 50
CHANNELS = ("grey", "red", "green", "blue")


def bootstrap(metric: str, point: float, replicates) -> dict:
    reps = [float(x) for x in replicates]
    return {"metric": metric, "point": point, "lo": float(np.percentile(reps, 2.5)),
            "hi": float(np.percentile(reps, 97.5)), "confidence": 0.95, "bias": float(np.mean(reps) - point),
            "rounds": len(reps), "seed": 0, "n_real": 100, "n_fake": 100, "real_digest": "abc", "replicates": reps}


def attributes_of(tv: float, produced: int, real_modes: int = 8, kl: float = 0.5) -> dict:
    """A run's attribute block as analyze writes it (rnngan.metrics.attributes.attribute_scores)."""
    frequency = {"Male": 0.5 + tv, "Smiling": 0.5 - tv}
    return {"available": True, "count": 100, "frequency": frequency, "tv": {"Male": tv, "Smiling": tv},
            "tv_mean": tv, "tv_max": tv, "tv_worst": "Male",
            "modes": {"attributes": ["Male", "Smiling"], "real_modes": real_modes, "produced": produced,
                      "fraction": produced / real_modes, "outside_real": 0.0, "kl": kl, "kl_pseudo_count": 0.5}}


def metrics_of(name: str, fid: float, kid: float = 0.01, *, precision=0.5, recall=0.2, density=0.4, coverage=0.3,
               noise: float = 0.3, shared=None, attributes: dict | None = None) -> dict:
    """A run's metrics file. The bootstrap replicates are `shared` (the same real resamples for
    every run: a round-by-round component common to all) plus the run's own noise."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    common = np.zeros(ROUNDS) if shared is None else np.asarray(shared)
    fid_reps = fid + common + noise * rng.standard_normal(ROUNDS)
    kid_reps = kid + common / 1000 + noise / 1000 * rng.standard_normal(ROUNDS)
    fb, kb = bootstrap("fid", fid, fid_reps), bootstrap("kid", kid, kid_reps)
    hist = {c: {"w1": 1.0, "js": 0.1, "ks": 0.2} for c in CHANNELS}
    hsv = {"hue": {"w1": float("nan"), "js": 0.1, "ks": 0.1}, "saturation": {"w1": 2.0, "js": 0.1, "ks": 0.1}}
    return {"cell": name, "count": 100, "fid": fid, "fid_interval": [fb["lo"], fb["hi"]], "kid": kid,
            "kid_interval": [kb["lo"], kb["hi"]], "precision": precision, "recall": recall, "density": density,
            "coverage": coverage, "bootstrap": {"fid": fb, "kid": kb}, "histogram_distances": hist,
            "hsv_distances": hsv, "spectral_distance": 0.05,
            **({"attributes": attributes} if attributes is not None else {})}


def train_of(variant: str, seed: int) -> dict:
    return {"cell": variant, "seed": seed, "params_g": 1000, "params_d": 500, "steps": 10, "seconds": 2.0,
            "images_per_s": 100.0, "device": "cpu", "processes": 1, "threads": 2, "precision": "fp32",
            "environment": {"device_name": "Test CPU", "cpu_model": "Test CPU", "cpu_capability": "AVX2",
                            "cpu_flags": ["avx2"], "blas": "mkl", "mkl": "2024.2", "onednn": "v3.1",
                            "threads": 2, "torch": "2.0"}}


def write_runs(root: Path, fids: dict[str, list[float]], *, real_fid: float = 0.1, **kw) -> tuple[Path, Path]:
    """models/ and metrics/ under root for {variant: [FID of seed 0, seed 1, ...]}, and the real row."""
    models, metrics = root / "models", root / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    for variant, values in fids.items():
        for seed, fid in enumerate(values):
            name = f"{variant}-{seed}"
            (models / name).mkdir(parents=True, exist_ok=True)
            (models / name / "train.json").write_text(json.dumps(train_of(variant, seed)))
            (metrics / f"{name}.json").write_text(json.dumps(metrics_of(name, fid, fid / 1000, **kw)))
    (metrics / "real.json").write_text(json.dumps(metrics_of("real", real_fid, 0.0, precision=0.95, recall=0.95,
                                                             density=1.0, coverage=0.97, **kw)))
    return models, metrics


def params_for(variants: list[str], seeds: list[int], cell: str | None = None):
    from rnngan.config import parse_params

    return parse_params({"model": {"variants": variants, "cell": cell or variants[0]}, "train": {"seeds": seeds}})

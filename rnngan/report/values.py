"""The numbers the report publishes (reports/metrics.json): every variant's means over seeds
and the held-out real row, rounded, FID and KID never shown below zero."""
from __future__ import annotations

import numpy as np

from rnngan.config import Params


def rounded(value: float | None, digits: int):
    """Rounded, or None for NaN or missing (e.g. hue distances of colourless images): JSON has no NaN."""
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def shown(value: float | None) -> float | None:
    """FID or KID as the report shows it: never below zero. KID is an unbiased estimate of MMD²,
    which is >= 0; where generated (or held-out real) and reference images are indistinguishable
    at the sample size, the estimate and its bootstrap percentiles dip below zero, and 0 is the
    closer value. (The compare stage tests the raw estimates.)"""
    return None if value is None else max(0.0, value)


# Mode coverage on attributes (where the dataset has them): mean marginal TV, share of the real
# joint modes produced, joint KL.
ATTRIBUTE_KEYS = ("attr_tv", "attr_modes", "attr_kl")
# Rounding of the metrics file's numbers (digits).
DIGITS = {"fid": 4, "kid": 6, "precision": 4, "recall": 4, "density": 4, "coverage": 4, "w1_grey": 4,
          "w1_hue": 4, "w1_saturation": 4, "spectral_distance": 5, "train_seconds": 1, "images_per_s": 1}


def variant_values(comparison: dict, variant: str) -> dict:
    """One variant's flat numbers for `dvc metrics diff` and `dvc exp show`: means over seeds,
    the FID/KID interval of the mean over seeds (with one seed: that run's bootstrap interval)
    and their seed standard deviation; a short list, so the diff stays readable. Per-seed
    numbers are in metrics/<variant>-<seed>.json."""
    pv = comparison["per_variant"][variant]
    s = pv["summary"]
    measured = comparison["training_variation_measured"]
    out = {}
    for key in ("fid", "kid"):
        d = DIGITS[key]
        if measured:
            lo, hi = s[key]["lo"], s[key]["hi"]
        else:
            lo, hi = comparison["runs"][pv["runs"][0]][f"{key}_interval"]
        out.update({key: rounded(shown(s[key]["mean"]), d), f"{key}_lo": rounded(shown(lo), d),
                    f"{key}_hi": rounded(shown(hi), d), f"{key}_std": rounded(s[key]["std"], d)})
    for key in ("precision", "recall", "density", "coverage"):
        out[key] = rounded(s[key]["mean"], DIGITS[key])
    for key in ("w1_grey", "w1_hue", "w1_saturation", "spectral_distance", "train_seconds", "images_per_s"):
        out[key] = rounded(pv["means"][key], DIGITS[key])
    for key in ATTRIBUTE_KEYS:
        if key in s:
            out[key] = rounded(s[key]["mean"], 4)
    out.update({"params_g": pv["params_g"], "params_d": pv["params_d"], "seeds": len(pv["runs"])})
    for key in ("fid", "kid"):
        out[f"{key}_tier"] = next(i for i, t in enumerate(comparison["tests"][key]["tiers"], start=1) if variant in t)
    return out


def real_values(comparison: dict) -> dict:
    """The held-out real row: its numbers and, for FID/KID, the bootstrap interval."""
    r = comparison["real"]
    out = {}
    for key in ("fid", "kid"):
        lo, hi = r[f"{key}_interval"]
        out.update({key: rounded(shown(r[key]), DIGITS[key]), f"{key}_lo": rounded(shown(lo), DIGITS[key]),
                    f"{key}_hi": rounded(shown(hi), DIGITS[key])})
    for key in ("precision", "recall", "density", "coverage", "w1_grey", "spectral_distance"):
        out[key] = rounded(r[key], DIGITS[key])
    for key in ATTRIBUTE_KEYS:
        if key in r:
            out[key] = rounded(r[key], 4)
    return out


def metrics_json(params: Params, comparison: dict) -> dict:
    """reports/metrics.json: the headline variant at the top level, every variant under
    `cells.<variant>`, the held-out real row under `real`."""
    per_cell = {v: variant_values(comparison, v) for v in comparison["variants"]}
    head = params.model.cell
    return {"cell": head, "dataset": params.data.dataset, "image_size": params.data.image_size,
            "features": params.metrics.features,
            "interval": "seeds" if comparison["training_variation_measured"] else "bootstrap",
            **per_cell[head], "cells": per_cell, "real": real_values(comparison)}

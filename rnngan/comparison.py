"""The compare stage: every run's metrics gathered per variant, statistics across seeds, the tests
behind every verdict, and the held-out real row. JSON out; the report renders it, computing
nothing.

Two sources of noise, measured separately:
- sample noise (within a run): the bootstrap over the generated and real images that analyze
  did; its interval width says how much a number moves when the samples are redrawn;
- training noise (across runs): the spread of one variant's numbers over `train.seeds`, usually
  far larger. Verdicts rest on it: Welch's t-test on the per-seed values, Holm-adjusted over the
  pairs, and tiers that split only where such a test is significant.

The sample-noise test of a pair is kept beside it (a normal test of the difference of seed means
with the standard error of the paired bootstrap; it does not live in the bootstrap's tails, so 100
rounds estimate it well). With a single seed it is all there is: the ranking is then marked
provisional, since training variation was not measured.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnngan.config import Params
from rnngan.errors import UserError
from rnngan.io import read_json
from rnngan.metrics.bootstrap import BootstrapResult
from rnngan.statistics import holm, normal_test, seeds_for_power, summarize, tiers, welch

# The metrics compared across seeds, and whether lower is better.
TESTED = {"fid": True, "kid": True, "precision": False, "recall": False, "density": False, "coverage": False}
# Mode coverage on the dataset's attributes (rnngan.metrics.attributes), where it has them:
# mean total variation of the marginals, fraction of the real joint modes produced, joint KL.
ATTRIBUTE_TESTED = {"attr_tv": True, "attr_modes": False, "attr_kl": True}
BOOTSTRAPPED = ("fid", "kid")             # those with a within-run bootstrap (sample noise)
# Per-run numbers averaged over seeds for the tables, beside the tested ones.
AVERAGED = ("w1_grey", "w1_hue", "w1_saturation", "spectral_distance", "train_seconds", "images_per_s")
REAL = "real"                             # the held-out real row's run name (metrics/real.json)
# Each tested metric's range (low, high) and whether its seeds spread multiplicatively: the
# intervals stay inside it (rnngan.statistics.summarize says how). FID and KID are >= 0 (KID
# estimates MMD^2, which is; its unbiased estimate may dip below); density may exceed 1.
RANGES = {"fid": (0.0, math.inf, True), "kid": (0.0, math.inf, True), "precision": (0.0, 1.0, False),
          "recall": (0.0, 1.0, False), "density": (0.0, math.inf, False), "coverage": (0.0, 1.0, False),
          "attr_tv": (0.0, 1.0, False), "attr_modes": (0.0, 1.0, False), "attr_kl": (0.0, math.inf, False)}


class ComparisonError(UserError, ValueError):
    """Runs that cannot be compared (missing, or evaluated against different references)."""


def run_name(variant: str, seed: int) -> str:
    """`<variant>-<seed>`: the suffix of the run's DVC stages and the name of its outputs."""
    return f"{variant}-{seed}"


def run_numbers(metrics: dict, train: dict | None) -> dict:
    """The flat numbers of one run (or of the real row, which has no train.json)."""
    hist, hsv = metrics["histogram_distances"], metrics["hsv_distances"]
    out = {"fid": metrics["fid"], "fid_interval": metrics["fid_interval"], "kid": metrics["kid"],
           "kid_interval": metrics["kid_interval"], "precision": metrics["precision"],
           "recall": metrics["recall"], "density": metrics["density"], "coverage": metrics["coverage"],
           "w1_grey": hist["grey"]["w1"], "w1_hue": _finite(hsv["hue"]["w1"]),
           "w1_saturation": _finite(hsv["saturation"]["w1"]),
           "spectral_distance": _finite(metrics["spectral_distance"]), "count": metrics["count"]}
    attributes = metrics.get("attributes") or {}
    if attributes.get("available"):
        out.update({"attr_tv": attributes["tv_mean"], "attr_tv_max": attributes["tv_max"],
                    "attr_tv_worst": attributes["tv_worst"], "attr_modes": attributes["modes"]["fraction"],
                    "attr_modes_produced": attributes["modes"]["produced"],
                    "attr_real_modes": attributes["modes"]["real_modes"], "attr_kl": attributes["modes"]["kl"],
                    "attr_frequency": attributes["frequency"]})
    if train is not None:
        out.update({k: train[k] for k in ("seed", "params_g", "params_d", "steps", "images_per_s",
                                           "device", "processes", "threads")})
        out.update({"train_seconds": train["seconds"], "arithmetic": train.get("precision", "fp32"),
                    "environment": train.get("environment", {})})
    return out


def _finite(v):
    return None if v is None or not np.isfinite(v) else float(v)


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ComparisonError(f"{path}: {what} missing; run `dvc repro` (it reruns the stage that writes it)")
    return read_json(path)


def _paired(results: dict[str, BootstrapResult]) -> None:
    first_name, first = next(iter(results.items()))
    for name, r in results.items():
        if not r.plan.pairs_with(first.plan) or r.real_digest != first.real_digest:
            raise ComparisonError(
                f"{name} and {first_name} were not evaluated against the same reference resamples "
                f"(real features {r.real_digest} vs {first.real_digest}, rounds {r.plan.rounds} vs "
                f"{first.plan.rounds}): rerun their analyze stages (dvc repro)")


def _sample_noise_tests(pairs, boot: dict[str, list[BootstrapResult]], alpha: float) -> list[dict]:
    """Per pair: the difference of seed means, its paired-bootstrap standard error, z, p, Holm."""
    seed_mean = {v: np.mean([r.replicates for r in rs], axis=0) for v, rs in boot.items()}
    point = {v: float(np.mean([r.point for r in rs])) for v, rs in boot.items()}
    out = []
    for a, b in pairs:
        diff = point[a] - point[b]
        se = float(np.std(seed_mean[a] - seed_mean[b], ddof=1))
        z, p = normal_test(diff, se)
        out.append({"difference": diff, "se": se, "z": z, "p": p})
    for t, p_adj in zip(out, holm([t["p"] for t in out])):
        t["p_holm"] = p_adj
        t["significant"] = p_adj < alpha
    return out


def _seed_tests(pairs, values: dict[str, list[float]], alpha: float) -> list[dict]:
    """Per pair: Welch's t-test on the per-seed values, Holm-adjusted; for unresolved pairs, the
    seeds per variant a Welch test would need for 80% power at the observed difference and spread."""
    out = []
    for a, b in pairs:
        w = welch(values[a], values[b])
        out.append({"difference": w.difference, "t": w.t, "df": w.df, "p": w.p})
    for (a, b), t, p_adj in zip(pairs, out, holm([t["p"] for t in out])):
        t["p_holm"] = p_adj
        t["significant"] = p_adj < alpha
        sd_a, sd_b = float(np.std(values[a], ddof=1)), float(np.std(values[b], ddof=1))
        # note: at the Bonferroni level (Holm's first step), so the count holds whatever the others do
        t["seeds_for_80_power"] = (None if t["significant"]
                                   else seeds_for_power(t["difference"], sd_a, sd_b, alpha / len(pairs)))
    return out


def compare_runs(params: Params, models: Path, metrics: Path) -> dict:
    variants, seeds = list(params.model.variants), list(params.train.seeds)
    confidence = params.metrics.confidence
    alpha = 1 - confidence
    runs = {}
    boot: dict[str, dict[str, list[BootstrapResult]]] = {m: {v: [] for v in variants} for m in BOOTSTRAPPED}
    for v in variants:
        for s in seeds:
            name = run_name(v, s)
            m = _read(metrics / f"{name}.json", f"metrics of run {name}")
            runs[name] = {"variant": v, **run_numbers(m, _read(models / name / "train.json", f"train.json of run {name}"))}
            for key in BOOTSTRAPPED:
                boot[key][v].append(BootstrapResult.from_dict(m["bootstrap"][key]))
    real_metrics = _read(metrics / f"{REAL}.json", "the held-out real row")
    real = run_numbers(real_metrics, None)
    for key in BOOTSTRAPPED:
        _paired({**{f"{r}": b for v in variants for r, b in zip([run_name(v, s) for s in seeds], boot[key][v])},
                 REAL: BootstrapResult.from_dict(real_metrics["bootstrap"][key])})

    # Attribute metrics join the tested ones only where every run and the real row have them.
    with_attributes = all("attr_tv" in r for r in [*runs.values(), real])
    tested = {**TESTED, **(ATTRIBUTE_TESTED if with_attributes else {})}
    per_variant = {}
    for v in variants:
        names = [run_name(v, s) for s in seeds]
        rs = [runs[n] for n in names]
        by_fid = sorted(names, key=lambda n: runs[n]["fid"])
        median = by_fid[(len(by_fid) - 1) // 2]
        summary = {key: {**summarize([r[key] for r in rs], confidence, *RANGES[key]).to_dict(),
                         "values": [r[key] for r in rs]} for key in tested}
        for key in BOOTSTRAPPED:
            widths = [r[f"{key}_interval"][1] - r[f"{key}_interval"][0] for r in rs]
            summary[key]["bootstrap_width"] = float(np.mean(widths))
        means = {key: _mean([r[key] for r in rs]) for key in AVERAGED}
        per_variant[v] = {"runs": names, "median_run": median, "median_seed": runs[median]["seed"],
                          "params_g": rs[0]["params_g"], "params_d": rs[0]["params_d"],
                          "steps": rs[0]["steps"], "summary": summary, "means": means}
        if with_attributes:
            per_variant[v]["attribute_frequency"] = {a: float(np.mean([r["attr_frequency"][a] for r in rs]))
                                                     for a in rs[0]["attr_frequency"]}

    measured = len(seeds) >= 2
    pairs = [(a, b) for i, a in enumerate(variants) for b in variants[i + 1:]]
    tests = {}
    for key, lower in tested.items():
        values = {v: per_variant[v]["summary"][key]["values"] for v in variants}
        seed_level = _seed_tests(pairs, values, alpha) if measured and pairs else None
        sample_level = _sample_noise_tests(pairs, boot[key], alpha) if key in BOOTSTRAPPED and pairs else None
        basis = seed_level if measured else sample_level
        table = []
        for i, (a, b) in enumerate(pairs):
            row = {"a": a, "b": b, "seeds": seed_level[i] if seed_level else None,
                   "samples": sample_level[i] if sample_level else None}
            decided = basis[i] if basis else None
            row["better"] = (None if not decided or not decided["significant"] else
                             (a if (decided["difference"] < 0) == lower else b))
            table.append(row)
        by_pair = {(r["a"], r["b"]): r["better"] for r in table} | {(r["b"], r["a"]): r["better"] for r in table}
        ranked = (tiers({v: per_variant[v]["summary"][key]["mean"] for v in variants},
                        lambda x, y: by_pair.get((x, y)), lower) if basis is not None else [variants])
        tests[key] = {"lower_is_better": lower, "basis": "seeds" if measured else ("samples" if basis else None),
                      "pairs": table, "tiers": ranked}
    return {"variants": variants, "seeds": seeds, "confidence": confidence,
            "training_variation_measured": measured, "provisional": not measured,
            "attributes": {"measured": with_attributes,
                           "reason": None if with_attributes else (real_metrics.get("attributes") or {}).get(
                               "reason", "the runs were analyzed without the attributes stage")},
            "runs": runs, "per_variant": per_variant, "real": real, "tests": tests}


def _mean(values):
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def medians(comparison: dict) -> dict[str, str]:
    """Each variant's median-FID run: the one the report's samples figure shows and export ships."""
    return {v: d["median_run"] for v, d in comparison["per_variant"].items()}


def median_run(medians: dict[str, str], variant: str) -> str:
    """The run whose FID is the median of `variant`'s seeds (the lower middle for an even count)."""
    try:
        return medians[variant]
    except KeyError:
        raise ComparisonError(f"no run of variant {variant!r} was compared; the comparison has "
                              f"{', '.join(medians) or 'none'}") from None

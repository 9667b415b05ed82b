"""Speed of the feature-level metrics: ours beside torch-fidelity's, on the same features, one run.

    python benchmarks/metrics.py                             # 10k x 10k x 2048-d, then 5k x 5k x 512-d
    python benchmarks/metrics.py --sizes 10000x2048 --fid-bootstrap-rounds 100

For each size it makes seeded features with structure (a 64-d latent through a fixed random
2048-d projection, ReLU, plus noise: non-negative and strongly correlated like Inception pool3;
the generated set has its latent shifted and rescaled), then times:

FID and KID run `--repeats` times per side, alternating, and show each side's fastest run;
the rest run once. The header prints the load average: on a shared machine it moves timings.

- FID: ours (`rnngan.metrics.fid.fid`: torch-fidelity's statistics, our symmetric trace-sqrt)
  beside torch-fidelity's `fid_features_to_statistics` + `fid_statistics_to_metric`;
- KID: ours (`fid.kid`, a wrapper) beside torch-fidelity's `kid_features_to_metric`, the same
  subsets, subset size, seed and cubic kernel on both sides;
- precision/recall/density/coverage (`rnngan.metrics.prdc`) beside torch-fidelity's
  precision/recall (`prc_features_to_metric`, which has no density/coverage);
- FID and KID bootstraps. On CPU the FID bootstrap at 2048-d costs seconds a round, so by
  default it times `--fid-bootstrap-rounds` (5) rounds and also prints 100 rounds extrapolated
  linearly; the KID bootstrap's cost is mostly the kernel matrices, whatever the rounds, and is
  timed at `--rounds` (100).

With CUDA, it also times the Inception extractor (images/s) where its weights are present.
Prints markdown tables; goal (issue): ours no slower than torch-fidelity for FID + KID.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnngan.metrics import bootstrap  # noqa: E402
from rnngan.metrics.fid import fid, kid  # noqa: E402
from rnngan.metrics.prdc import prdc  # noqa: E402


def structured_features(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Non-negative, correlated features: ReLU(latent @ projection) + noise, float64 N x dim.

    The projection depends only on `dim`, so real and generated sets live in one feature space.
    """
    proj = np.random.default_rng([dim, 12345]).normal(0, 1 / 8, (64, dim))
    rng = np.random.default_rng(seed)
    latent = rng.normal(shift, scale, (n, 64))
    return np.maximum(latent @ proj, 0) + rng.normal(0, 0.05, (n, dim))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def timed_pair(ours, theirs, repeats: int):
    """Both sides in ABBA order, `repeats` times each; the fastest run of each (noise only adds)."""
    t_ours, t_theirs = [], []
    for i in range(repeats):
        order = ((ours, t_ours), (theirs, t_theirs)) if i % 2 == 0 else ((theirs, t_theirs), (ours, t_ours))
        for fn, times in order:
            out, t = timed(fn)
            times.append(t)
            if fn is ours:
                ours_out = out
            else:
                theirs_out = out
    return ours_out, min(t_ours), theirs_out, min(t_theirs)


def torch_fidelity_fid(real: np.ndarray, fake: np.ndarray) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    s1 = fid_features_to_statistics(torch.from_numpy(real))
    s2 = fid_features_to_statistics(torch.from_numpy(fake))
    return fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]


def torch_fidelity_kid(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int) -> float:
    from torch_fidelity.metric_kid import kid_features_to_metric

    out = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=subsets,
                                 kid_subset_size=subset_size, rng_seed=0, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                 kid_kernel_poly_coef0=1, verbose=False)
    return out["kernel_inception_distance_mean"]


def torch_fidelity_prc(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    from torch_fidelity.metric_prc import prc_features_to_metric

    # its convention: features_1 generated, features_2 real; float32 as its extractors give
    return prc_features_to_metric(torch.from_numpy(fake).float(), torch.from_numpy(real).float(),
                                  prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=True,
                                  verbose=False)


def bench_size(n: int, dim: int, args) -> list[tuple[str, str, str, str, str]]:
    real = structured_features(n, dim, seed=args.seed)
    fake = structured_features(n, dim, seed=args.seed + 1, shift=0.05, scale=1.05)
    subset = min(args.kid_subset_size, n)
    rows = []

    ours_fid, t_ours_fid, tf_fid, t_tf_fid = timed_pair(
        lambda: fid(real, fake), lambda: torch_fidelity_fid(real, fake), args.repeats)
    rows.append(("FID", f"{t_ours_fid:.2f}", f"{t_tf_fid:.2f}", f"{t_ours_fid / t_tf_fid:.2f}",
                 f"{ours_fid:.6f} vs {tf_fid:.6f}"))

    (ours_kid, _), t_ours_kid, tf_kid, t_tf_kid = timed_pair(
        lambda: kid(real, fake, args.kid_subsets, subset, seed=0),
        lambda: torch_fidelity_kid(real, fake, args.kid_subsets, subset), args.repeats)
    rows.append((f"KID ({args.kid_subsets} x {subset})", f"{t_ours_kid:.2f}", f"{t_tf_kid:.2f}",
                 f"{t_ours_kid / t_tf_kid:.2f}", f"{ours_kid:.3e} vs {tf_kid:.3e}"))
    t_ours, t_tf = t_ours_fid + t_ours_kid, t_tf_fid + t_tf_kid
    rows.append(("**FID + KID**", f"**{t_ours:.2f}**", f"**{t_tf:.2f}**", f"**{t_ours / t_tf:.2f}**", ""))

    ours_prdc, t_prdc = timed(prdc, real, fake, args.k)
    tf_prc, t_tf_prc = timed(torch_fidelity_prc, real, fake, args.k)
    rows.append((f"precision/recall/density/coverage (k={args.k}) vs their P/R", f"{t_prdc:.2f}",
                 f"{t_tf_prc:.2f}", f"{t_prdc / t_tf_prc:.2f}",
                 "P {precision:.4f} R {recall:.4f} D {density:.4f} C {coverage:.4f}".format(**ours_prdc)
                 + f"; theirs P {tf_prc['precision']:.4f} R {tf_prc['recall']:.4f}"))

    fid_rounds = args.fid_bootstrap_rounds
    fb, t_fb = timed(bootstrap.fid_bootstrap, real, fake, rounds=fid_rounds, seed=0)
    note = f"{fid_rounds} rounds: {t_fb:.1f} s" + ("" if fid_rounds == args.rounds else
                                                   f"; {args.rounds} extrapolated")
    rows.append((f"FID bootstrap, {args.rounds} rounds", f"{t_fb * args.rounds / fid_rounds:.1f}", "-", "-",
                 f"{note}; [{fb.lo:.4f}, {fb.hi:.4f}], bias {fb.bias:+.4f}"))
    kb, t_kb = timed(bootstrap.kid_bootstrap, real, fake, rounds=args.rounds, seed=0)
    rows.append((f"KID bootstrap, {args.rounds} rounds (all pairs)", f"{t_kb:.1f}", "-", "-",
                 f"{kb.point:.3e} [{kb.lo:.3e}, {kb.hi:.3e}]"))
    return rows


def bench_inception(args) -> str:
    from rnngan.metrics.features import EXTRACTORS, extract_features, get_extractor

    if not torch.cuda.is_available():
        return "Inception extractor: skipped (no CUDA device; on CPU it runs a few images/s)."
    if "inception" not in EXTRACTORS:
        return "Inception extractor: skipped (not registered in rnngan.metrics.features.EXTRACTORS)."
    try:
        get_extractor("inception")
    except Exception as e:  # noqa: BLE001 - weights absent is the expected case: report and go on
        return f"Inception extractor: skipped ({type(e).__name__}: {e})."
    images = np.random.default_rng(0).integers(0, 256, (args.inception_images, 64, 64, 3), dtype=np.uint8)
    extract_features("inception", images[:256], batch_size=256, device="cuda")     # warm-up
    torch.cuda.synchronize()
    _, t = timed(extract_features, "inception", images, batch_size=250, device="cuda")
    return (f"Inception extractor on {torch.cuda.get_device_name()}: {len(images) / t:.0f} images/s "
            f"(64 px upsampled to 299, batch 250, {len(images)} images)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000x2048,5000x512", help="comma-separated NxDIM")
    p.add_argument("--kid-subsets", type=int, default=100, help="torch-fidelity's default")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="torch-fidelity's default")
    p.add_argument("--k", type=int, default=5, help="k-NN for precision/recall/density/coverage")
    p.add_argument("--rounds", type=int, default=100, help="bootstrap rounds")
    p.add_argument("--fid-bootstrap-rounds", type=int, default=5,
                   help="FID bootstrap rounds actually timed (extrapolated to --rounds); "
                        "at most --rounds")
    p.add_argument("--repeats", type=int, default=2,
                   help="FID and KID: runs per side, alternating (ABBA); the fastest is shown")
    p.add_argument("--inception-images", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.fid_bootstrap_rounds = min(args.fid_bootstrap_rounds, args.rounds)

    # timings on a shared machine move with its load: say what it was
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    for size in args.sizes.split(","):
        n, dim = (int(v) for v in size.lower().split("x"))
        start = time.perf_counter()
        rows = bench_size(n, dim, args)
        print(f"### {n:,} real x {n:,} generated, {dim}-d (float64, CPU), "
              f"{time.perf_counter() - start:.0f} s for this table\n")
        print("| metric | ours (s) | torch-fidelity (s) | ours / theirs | values |")
        print("|---|---:|---:|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
    print(bench_inception(args))


if __name__ == "__main__":
    main()

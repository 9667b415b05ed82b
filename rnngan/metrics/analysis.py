"""Every feature-level number of one analyze run, each piece of work done once (issue 30).

One run needs, from the same two feature sets (the reference's real features and the samples'):
FID and its bootstrap, KID over subsets and its bootstrap, and precision/recall/density/coverage.
Taken one metric at a time (`fid.fid`, `fid.kid`, `bootstrap.fid_bootstrap`,
`bootstrap.kid_bootstrap`, `prdc.prdc`), the same work is done several times: both covariances
twice, the three N x N x dim pairwise products real x real, fake x fake and real x fake twice
(KID's bootstrap, then PRDC), and each KID subset's three kernel matrices once more, 50 times
over (150 products of 1000 x 1000 x dim: twice the work of the three N x N x dim at N = 5,000).

Here, `feature_analysis`:
- FID (`fid_part`): the generated statistics once; the real ones are the reference's. The FID
  bootstrap's point estimate is this FID, not a second computation of it.
- FID bootstrap (`fid_bootstrap_part`): `bootstrap.fid_replicates`, the rounds of
  `fid_bootstrap`, several at once on a pool of threads, one torch thread each (the same numbers).
  It is the largest part left: each round's two weighted covariances cost 2 x 0.63 N dim^2
  multiply-adds, which no rearrangement avoids without changing the numbers.
- One pass over the pairwise products (`prdc.manifold_pass`), a block of rows at a time: each
  block's products a.b give PRDC its squared distances |a|^2 + |b|^2 - 2 a.b, then, in place,
  the cubic kernel (a.b / dim + 1)^3 that KID sums (`kid_part`): the bootstrap's weighted sums,
  op for op those of `bootstrap.kid_bootstrap` (the same numbers), and the KID subsets'.

KID subsets as weights: a subset is a 0/1 weight vector over the rows, so its three kernel sums
are weighted sums of the same kernel matrices as the bootstrap's (whose weights are draw counts),
and its MMD^2 is torch-fidelity's unbiased estimator over those sums (the diagonal left out of
the within-set sums). The subsets are torch-fidelity's own draws (`kid_subset_rows`: its seeded
`RandomState`, in its order), so the numbers are `fid.kid`'s up to round-off: each kernel value
is computed once by torch instead of once per subset containing it by numpy, and the sums run in
another order. tests/test_analysis_shared.py bounds the difference at 1e-12 of the kernel's scale
(its mean value), and docs/benchmarks.md gives what benchmarks/analyze_speed.py measured.

PRDC: the products are those of uncentred features (the kernel needs them), where `prdc.prdc`
centres the features first; its four numbers are counts of distances below radii, which agree
unless a distance lies within round-off (~1e-15 relative) of a radius (a test compares them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnngan.config import MetricsParams
from rnngan.metrics.bootstrap import (KID_BLOCK, BootstrapPlan, BootstrapResult, bootstrap_result, cubic_kernel_,
                                      features_digest, fid_replicates, within_set_from_sums)
from rnngan.metrics.fid import as_features, same_dim, feature_statistics, fid_from_statistics
from rnngan.metrics.prdc import check_k, manifold_pass


@dataclass(frozen=True)
class FeatureMetrics:
    """The feature-level numbers of one generated set against the real one."""

    fid: float
    fid_bootstrap: BootstrapResult
    kid_mean: float                 # over `metrics.kid_subsets` subsets, as `fid.kid`
    kid_std: float
    kid_bootstrap: BootstrapResult
    manifold: dict[str, float]      # precision, recall, density, coverage


def kid_subset_rows(n_real: int, n_fake: int, subsets: int, subset_size: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each KID subset, exactly as torch-fidelity's `kid_features_to_metric` draws
    them: one `RandomState(seed)`, per subset real rows then generated rows, without replacement."""
    rng = np.random.RandomState(seed)
    real, fake = np.empty((subsets, subset_size), np.int64), np.empty((subsets, subset_size), np.int64)
    for i in range(subsets):
        real[i] = rng.choice(n_real, subset_size, replace=False)
        fake[i] = rng.choice(n_fake, subset_size, replace=False)
    return real, fake


def _indicator(rows: np.ndarray, n: int) -> torch.Tensor:
    """subsets x n float64 weights: 1 on each subset's rows, 0 elsewhere."""
    w = np.zeros((len(rows), n))
    np.put_along_axis(w, rows, 1.0, axis=1)
    return torch.from_numpy(w)


def fid_part(real_mu: np.ndarray, real_sigma: np.ndarray, fake: np.ndarray) -> float:
    """FID of the generated features against the real statistics (the reference's)."""
    return fid_from_statistics(real_mu, real_sigma, *feature_statistics(fake))


def fid_bootstrap_part(r: np.ndarray, f: np.ndarray, plan: BootstrapPlan, point: float, confidence: float,
                       digest: str, progress_desc: str | None = None) -> BootstrapResult:
    """`bootstrap.fid_bootstrap` with its point estimate given (it is `fid_part`'s number)."""
    reps = fid_replicates(r, {"fake": f}, {"fake": plan}, progress_desc)["fake"]
    return bootstrap_result("fid", point, reps, confidence, plan, digest)


class _KidSums:
    """Kernel sums accumulated from the blocks of `manifold_pass`, for two sets of weight rows:
    the bootstrap's draw counts (row 0: every row once, the point estimate) and the KID subsets'
    0/1 indicators. Blocks arrive in row order, each pair's sums accumulate in that order: the
    bootstrap's are then `bootstrap._kernel_sums` op for op."""

    def __init__(self, dim: int, boot: dict[str, torch.Tensor], subsets: dict[str, torch.Tensor]):
        self.dim, self.boot, self.subsets = dim, boot, subsets
        self.boot_sums = {p: torch.zeros(len(boot["real"]), dtype=torch.float64)
                          for p in ("real-real", "fake-fake", "real-fake")}
        self.subset_sums = {p: torch.zeros(len(subsets["real"]), dtype=torch.float64) for p in self.boot_sums}

    def __call__(self, pair: str, start: int, stop: int, products: torch.Tensor) -> None:
        kid_part(self, pair, start, stop, products)


def kid_part(sums: _KidSums, pair: str, start: int, stop: int, products: torch.Tensor) -> None:
    """Add one block's kernel sums: sum_ij w[r, i] k(x_i, y_j) w'[r, j] over the block's rows i."""
    left, right = pair.split("-")
    k = cubic_kernel_(products, sums.dim)
    for weights, total in ((sums.boot, sums.boot_sums), (sums.subsets, sums.subset_sums)):
        total[pair] += ((weights[left][:, start:stop] @ k) * weights[right]).sum(dim=1)


def feature_analysis(real: np.ndarray, fake: np.ndarray, mp: MetricsParams, real_mu: np.ndarray | None = None,
                     real_sigma: np.ndarray | None = None, seed: int = 0,
                     progress_desc: str | None = None) -> FeatureMetrics:
    """FID, KID and PRDC of `fake` against `real` (`N x dim` features), with their bootstraps.

    `mp` gives kid_subsets, kid_subset_size, nearest_k, bootstrap (rounds) and confidence;
    `real_mu`, `real_sigma`: the real statistics where they are at hand (the reference's),
    else computed. `seed` seeds the bootstrap plan and the KID subsets alike, as analyze always
    did (seed 0: every variant resamples the same real rows in round r, which pairs them).
    """
    r = as_features(real, "real features", min_count=2)
    f = as_features(fake, "fake features", min_count=2)
    same_dim(r, f)
    if mp.kid_subset_size > min(len(r), len(f)):
        raise ValueError(f"kid: subset_size {mp.kid_subset_size} is larger than a feature set "
                         f"(real {len(r)}, fake {len(f)}); lower it or use more samples")
    check_k(mp.nearest_k, len(r), len(f))
    if real_mu is None or real_sigma is None:
        real_mu, real_sigma = feature_statistics(r)
    plan = BootstrapPlan(len(r), len(f), mp.bootstrap, seed)
    digest = features_digest(r)

    point = fid_part(real_mu, real_sigma, f)
    boot_fid = fid_bootstrap_part(r, f, plan, point, mp.confidence, digest, progress_desc)

    ones = np.ones((1,), dtype=np.int64)
    boot = {side: torch.from_numpy(np.concatenate([np.broadcast_to(ones, (1, n)), counts]).astype(np.float64))
            for side, n, counts in (("real", len(r), plan.real_counts()), ("fake", len(f), plan.fake_counts()))}
    real_rows, fake_rows = kid_subset_rows(len(r), len(f), mp.kid_subsets, mp.kid_subset_size, seed)
    subsets = {"real": _indicator(real_rows, len(r)), "fake": _indicator(fake_rows, len(f))}
    rt, ft = torch.from_numpy(r), torch.from_numpy(f)
    sums = _KidSums(r.shape[1], boot, subsets)
    manifold = manifold_pass(rt, ft, int(mp.nearest_k), KID_BLOCK, on_block=sums)

    # the bootstrap: as bootstrap.kid_bootstrap_many
    xx = within_set_from_sums(sums.boot_sums["real-real"], rt, boot["real"])
    yy = within_set_from_sums(sums.boot_sums["fake-fake"], ft, boot["fake"])
    xy = sums.boot_sums["real-fake"] / (len(r) * len(f))
    values = (xx + yy - 2 * xy).numpy()
    boot_kid = bootstrap_result("kid", values[0], values[1:], mp.confidence, plan, digest)
    # the subsets: torch-fidelity's unbiased MMD^2 of each, then its mean and (ddof 0) std
    m = mp.kid_subset_size
    mmd = (within_set_from_sums(sums.subset_sums["real-real"], rt, subsets["real"])
           + within_set_from_sums(sums.subset_sums["fake-fake"], ft, subsets["fake"])
           - 2 * sums.subset_sums["real-fake"] / (m * m)).numpy()
    return FeatureMetrics(point, boot_fid, float(np.mean(mmd)), float(np.std(mmd)), boot_kid, manifold)

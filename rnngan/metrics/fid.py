"""Fréchet distance and KID on features, as pure steps: features -> statistics -> number.

The maths is torch-fidelity's (`metric_fid`, `metric_kid`); these wrappers take and return numpy
and floats, run everything in float64, and turn torch-fidelity's bare asserts into ValueErrors a
user can act on. Which network made the features is the caller's business (see `features.py`):
a "FID" here is "Fréchet distance on features of extractor X".
"""
from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric


def _as_features(features: np.ndarray, what: str, min_count: int) -> np.ndarray:
    """float64 `N x dim`, finite, with at least `min_count` rows."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] < 1:
        raise ValueError(f"{what}: expected features N x dim, got shape {f.shape}")
    if len(f) < min_count:
        raise ValueError(f"{what}: need at least {min_count} samples, got {len(f)}")
    if not np.isfinite(f).all():
        raise ValueError(f"{what}: features contain NaN or inf")
    return f


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} (real) vs {b.shape[1]} (fake); "
                         "were they made by the same extractor?")


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (dim) and covariance (dim x dim, ddof=1) of `N x dim` features, in float64.

    With N <= dim the covariance is singular; the Fréchet distance is still defined but biased
    upward, so use many more samples than dims for numbers worth reporting.
    """
    f = _as_features(features, "feature_statistics", min_count=2)   # a covariance needs 2 rows
    stats = fid_features_to_statistics(torch.from_numpy(f))
    # np.cov returns a 0-d array for a single feature; torch-fidelity then asserts on ndim
    return stats["mu"].astype(np.float64), np.atleast_2d(stats["sigma"]).astype(np.float64)


def fid_from_statistics(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Not clamped: round-off can make it a hair below 0 for (near-)identical statistics.
    """
    mu1, mu2 = (np.asarray(m, dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(s, dtype=np.float64) for s in (sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError("statistics do not match: mu1 "
                         f"{mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}; "
                         "expected mu (dim,) and sigma (dim, dim), the same dim for both")
    # torch-fidelity takes the trace of sqrt(sigma1 sigma2) from the eigenvalues of the product
    # (no sqrtm): as accurate as scipy's sqrtm on well-conditioned inputs and far faster
    out = fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False)
    return float(out[KEY_METRIC_FID])


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two `N x dim` feature sets."""
    real = _as_features(real_features, "real features", min_count=2)
    fake = _as_features(fake_features, "fake features", min_count=2)
    _same_dim(real, fake)
    return fid_from_statistics(*feature_statistics(real), *feature_statistics(fake))


def kid(real_features: np.ndarray, fake_features: np.ndarray, subsets: int, subset_size: int,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std over `subsets` seeded random subsets.

    Each subset draws `subset_size` rows of each set without replacement and takes the unbiased
    MMD^2 under the cubic polynomial kernel k(x, y) = (x.y / dim + 1)^3. The std is the spread of
    the subset estimates (numpy's std, ddof=0), not a standard error of the mean.
    """
    if subsets < 1:
        raise ValueError(f"kid: subsets must be >= 1, got {subsets}")
    if subset_size < 2:   # the unbiased estimator divides by m (m - 1)
        raise ValueError(f"kid: subset_size must be >= 2, got {subset_size}")
    real = _as_features(real_features, "real features", min_count=1)
    fake = _as_features(fake_features, "fake features", min_count=1)
    _same_dim(real, fake)
    if subset_size > min(len(real), len(fake)):
        raise ValueError(f"kid: subset_size {subset_size} is larger than a feature set "
                         f"(real {len(real)}, fake {len(fake)}); lower it or use more samples")
    # the kernel is pinned here, not left to torch-fidelity's defaults, so an upgrade cannot move it
    out = kid_features_to_metric(
        torch.from_numpy(real), torch.from_numpy(fake),
        kid_subsets=subsets, kid_subset_size=subset_size, rng_seed=seed,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])

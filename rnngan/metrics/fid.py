"""Fréchet distance and KID on features, as pure steps: features -> statistics -> number.

The statistics and KID are torch-fidelity's (`metric_fid`, `metric_kid`); these wrappers take and
return numpy and floats, run everything in float64, and turn torch-fidelity's bare asserts into
ValueErrors a user can act on. Which network made the features is the caller's business (see
`features.py`): a "FID" here is "Fréchet distance on features of extractor X".

The statistics are torch-fidelity's two numpy lines written out here (`np.mean`, `np.cov`: the
same bits, a test checks), and torch-fidelity is imported only inside `kid`: importing it imports
torchvision and, through it, torch._dynamo, which cost every analyze run seconds of start-up
(issue 30). The analyze stage's KID comes from `rnngan.metrics.analysis`, which shares its kernel
matrices with the KID bootstrap and PRDC.

The one piece not delegated is the trace term tr sqrt(sigma1 sigma2). torch-fidelity takes it from
the eigenvalues of the non-symmetric product (`np.linalg.eigvals`); here it comes from the
eigenvalues of a symmetric matrix with the same spectrum (`trace_sqrt_product`): the same number
on well-conditioned inputs (tests: 1e-9 relative to torch-fidelity, 1e-6 to `scipy.linalg.sqrtm`),
closer to the truth where covariances are singular (64 samples of 512-d features: 2e-7 against
torch-fidelity's 5e-6 absolute error, checked against an exact nuclear-norm formula), and 1.5-5x
faster at 2048-d on CPU (benchmarks/metrics.py). The bootstrap (`bootstrap.py`) calls it once per
round and variant.
"""
from __future__ import annotations


import numpy as np
import torch

from rnngan.metrics.threads import one_thread



def as_features(features: np.ndarray, what: str, min_count: int) -> np.ndarray:
    """float64 `N x dim`, finite, with at least `min_count` rows."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] < 1:
        raise ValueError(f"{what}: expected features N x dim, got shape {f.shape}")
    if len(f) < min_count:
        raise ValueError(f"{what}: need at least {min_count} samples, got {len(f)}")
    if not np.isfinite(f).all():
        raise ValueError(f"{what}: features contain NaN or inf")
    return f


def same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} (real) vs {b.shape[1]} (fake); "
                         "were they made by the same extractor?")


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (dim) and covariance (dim x dim, ddof=1) of `N x dim` features, in float64.

    With N <= dim the covariance is singular; the Fréchet distance is still defined but biased
    upward, so use many more samples than dims for numbers worth reporting.
    """
    f = as_features(features, "feature_statistics", min_count=2)   # a covariance needs 2 rows
    # torch-fidelity's fid_features_to_statistics, line for line (without importing it)
    mu = np.mean(f, axis=0)
    sigma = np.cov(f, rowvar=False)
    # np.cov returns a 0-d array for a single feature
    return mu.astype(np.float64), np.atleast_2d(sigma).astype(np.float64)


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
    m1, m2, s1, s2 = (torch.from_numpy(np.ascontiguousarray(a)) for a in (mu1, mu2, sigma1, sigma2))
    return fid_from_torch_statistics(m1, s1, sqrt_factor(s1), m2, s2)


def sqrt_factor(sigma: torch.Tensor) -> torch.Tensor:
    """A factor F with F F^T = sigma, for a symmetric positive semi-definite float64 `sigma`.

    The Cholesky factor where sigma is positive definite (cheap); where it is singular (fewer
    samples than dims, a feature that never varies) V sqrt(w) from its eigendecomposition, with
    round-off negatives in w clamped to 0.
    """
    with one_thread():
        chol, info = torch.linalg.cholesky_ex(sigma)
        if int(info) == 0:
            return chol
        w, v = torch.linalg.eigh(sigma)
    return v * w.clamp(min=0).sqrt()


def trace_sqrt_product(factor1: torch.Tensor, sigma2: torch.Tensor) -> float:
    """tr sqrt(sigma1 sigma2) for PSD sigmas, given `factor1` F with F F^T = sigma1 (`sqrt_factor`).

    sigma1 sigma2 = F (F^T sigma2 F) F^-1 where F is invertible (and shares its non-zero eigenvalues
    with the symmetric PSD F^T sigma2 F in any case), so the trace of the square root is the sum of
    the square roots of that symmetric matrix's eigenvalues, which `eigvalsh` gets accurately and
    fast. Negative eigenvalues are round-off around 0 and count as 0, as in torch-fidelity.
    """
    m = factor1.T @ sigma2 @ factor1
    with one_thread():
        eigenvalues = torch.linalg.eigvalsh(m)
    return float(eigenvalues.clamp(min=0).sqrt().sum())


def fid_from_torch_statistics(mu1: torch.Tensor, sigma1: torch.Tensor, factor1: torch.Tensor,
                              mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """FID from float64 tensors, `factor1` = `sqrt_factor(sigma1)` (reused when sigma1 is fixed)."""
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace()) - 2 * trace_sqrt_product(factor1, sigma2)


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two `N x dim` feature sets."""
    real = as_features(real_features, "real features", min_count=2)
    fake = as_features(fake_features, "fake features", min_count=2)
    same_dim(real, fake)
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
    real = as_features(real_features, "real features", min_count=1)
    fake = as_features(fake_features, "fake features", min_count=1)
    same_dim(real, fake)
    if subset_size > min(len(real), len(fake)):
        raise ValueError(f"kid: subset_size {subset_size} is larger than a feature set "
                         f"(real {len(real)}, fake {len(fake)}); lower it or use more samples")
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    # the kernel is pinned here, not left to torch-fidelity's defaults, so an upgrade cannot move it
    out = kid_features_to_metric(
        torch.from_numpy(real), torch.from_numpy(fake),
        kid_subsets=subsets, kid_subset_size=subset_size, rng_seed=seed,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])

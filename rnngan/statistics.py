"""Statistics across training seeds: summaries, Welch's t-test, Holm's adjustment, power, tiers.

A run is one (variant, seed); a verdict between variants is a statement across runs. GAN
training is chaotic (a new seed, or another CPU's rounding, moves a recurrent run's FID by
points), so the unit of replication is the seed: each seed's value is one observation, and
tests compare variants on those observations, never on the samples of one run.

Pure functions on plain floats; scipy only for the t and noncentral-t distributions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

POWER = 0.8                # the power `seeds_for_power` asks for
MAX_SEEDS = 1000           # beyond this `seeds_for_power` says "more than" instead of searching


@dataclass(frozen=True)
class Summary:
    """One metric of one variant over its seeds, with an interval of its central value at
    `confidence` (None with a single seed: the spread is then not measured). `method` says which
    interval (see `summarize`)."""

    n: int
    mean: float
    std: float | None          # sample standard deviation (ddof 1)
    min: float
    max: float
    lo: float | None
    hi: float | None
    confidence: float
    method: str | None = None  # LOG_T | T | T_CLIPPED; None with one seed

    def to_dict(self) -> dict:
        return asdict(self)


# The interval methods `summarize` chooses between.
LOG_T = "log t"            # Student's t on the logarithms, back-transformed (positive metrics)
T = "t"                    # Student's t on the values
T_CLIPPED = "t, clipped"   # Student's t on the values, cut to the metric's range


def summarize(values: Sequence[float], confidence: float, low: float = -math.inf, high: float = math.inf,
              log: bool = False) -> Summary:
    """Mean, spread and an interval of the central value over seeds, inside [low, high].

    Student's t interval of the mean (`T`) is exact for normal values, but with three seeds
    (t = 4.30) of a skewed, positive quantity it reaches below zero: one collapsed seed triples a
    variant's FID (6.6, 10.7 and 20.9 gave [-5.5, 30.9]). So:
    - `log=True` (a positive metric whose seeds spread multiplicatively: FID, KID): the t interval
      of the mean of log(values), back-transformed (`LOG_T`). It is an interval of the geometric
      mean (the median, for a log-normal spread), always above zero, shrinks with more seeds like
      the t interval, and is asymmetric as the values are. It holds the arithmetic mean (which is
      what `mean` reports) unless the seeds spread over orders of magnitude. A value <= 0 has no
      logarithm (KID is an unbiased estimate and dips below zero where generated and real images
      are indistinguishable): then the next rule applies.
    - otherwise the t interval of the mean, cut to [low, high] where it leaves them (`T_CLIPPED`,
      e.g. recall in [0, 1]); the cut keeps the interval's coverage, as the true value lies inside.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"summarize: need a non-empty list of values, got {values!r}")
    mean = float(x.mean())
    if len(x) < 2:
        return Summary(1, mean, None, mean, mean, None, None, confidence)
    std = float(x.std(ddof=1))
    t = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1))
    if log and x.min() > 0:
        logs = np.log(x)
        half = t * float(logs.std(ddof=1)) / math.sqrt(len(x))
        centre = float(logs.mean())
        lo, hi, method = math.exp(centre - half), math.exp(centre + half), LOG_T
    else:
        half = t * std / math.sqrt(len(x))
        lo, hi, method = mean - half, mean + half, T
        if lo < low or hi > high:
            lo, hi, method = max(lo, low), min(hi, high), T_CLIPPED
    return Summary(len(x), mean, std, float(x.min()), float(x.max()), lo, hi, confidence, method)
@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of mean(a) - mean(b), two-sided."""

    difference: float
    t: float
    df: float
    p: float


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
    """Equal to scipy.stats.ttest_ind(a, b, equal_var=False) where that is defined. With no
    spread in either group (every seed gave the same number) the difference is either exactly 0
    (p = 1) or not explained by any spread (p = 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch: need at least 2 values per group, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Welch(diff, 0.0 if diff == 0 else math.copysign(math.inf, diff),
                     float(len(a) + len(b) - 2), 1.0 if diff == 0 else 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    return Welch(diff, float(t), float(df), float(2 * stats.t.sf(abs(t), df)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (1979), in the input's order: the i-th smallest p is
    multiplied by (m - i + 1), then made monotone. Reject where adjusted p < alpha: the family-wise
    error stays at alpha, with more power than Bonferroni."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def welch_power(n: int, difference: float, std_a: float, std_b: float, alpha: float) -> float:
    """Power of a two-sided Welch test with n seeds per group, for a true difference and spreads
    equal to the ones given (noncentral t, Welch-Satterthwaite degrees of freedom of the true
    spreads: the usual approximation, about 0.02 optimistic at 5 seeds against a simulation)."""
    va, vb = std_a ** 2 / n, std_b ** 2 / n
    se = math.sqrt(va + vb)
    if se == 0:
        return 1.0 if difference != 0 else alpha
    df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(difference) / se
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    # note: scipy's noncentral t returns NaN far out in a tail (seen for the lower tail at df ~
    # 1000): there the normal approximation is exact to many digits, and the lower tail is ~0
    if not math.isfinite(upper):
        upper = stats.norm.sf(crit - nc)
    return float(upper + (lower if math.isfinite(lower) else 0.0))


def seeds_for_power(difference: float, std_a: float, std_b: float, alpha: float,
                    power: float = POWER) -> int | None:
    """The fewest seeds per variant for which a Welch test at `alpha` reaches `power`, if the
    true difference and spreads are the observed ones; None when even MAX_SEEDS would not (a
    difference that small against that spread is, for practical purposes, no difference)."""
    if difference == 0:
        return None
    if welch_power(MAX_SEEDS, difference, std_a, std_b, alpha) < power:
        return None
    lo, hi = 2, MAX_SEEDS          # power grows with n: bisect for the first n that reaches it
    while lo < hi:
        mid = (lo + hi) // 2
        if welch_power(mid, difference, std_a, std_b, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def normal_test(difference: float, se: float) -> tuple[float, float]:
    """z and the two-sided normal p of a difference with standard error `se`."""
    if se == 0:
        return (0.0, 1.0) if difference == 0 else (math.copysign(math.inf, difference), 0.0)
    z = difference / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def tiers(means: Mapping[str, float], better: Callable[[str, str], str | None],
          lower_is_better: bool = True) -> list[list[str]]:
    """Variants in tiers, best first, a new tier only where a test says so.

    Sort by mean; the first variant leads the first tier; each next one joins the current tier
    unless `better(leader, it)` names the tier's leader (significantly better), in which case it
    leads a new tier. Inside a tier the order is by mean and means nothing.
    """
    order = sorted(means, key=lambda v: means[v], reverse=not lower_is_better)
    out: list[list[str]] = []
    for v in order:
        if out and better(out[-1][0], v) != out[-1][0]:
            out[-1].append(v)
        else:
            out.append([v])
    return out

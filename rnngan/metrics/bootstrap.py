"""Bootstrap intervals for FID and KID, and paired comparisons between variants.

What is resampled, and why both sets: the real reference is itself a finite sample (5,000 images
by default), so a FID moves when it is redrawn just as when the generated set is; resampling only
the generated rows would call every FID more certain than it is. Every round draws, with
replacement, `n_real` rows of the real features and `n_fake` rows of the generated ones.

Pairing: the real draws depend only on (`seed`, `n_real`, `rounds`) (`BootstrapPlan`), so every
variant evaluated against the same reference with the same seed sees, in round r, the same
resample of the real set, even when each variant runs in its own process (one DVC stage each).
The difference A_r - B_r then carries the noise of the two generated sets, while the common
reference's largely cancels: the paired interval of a difference is narrower than one made from
two unpaired intervals, and honest. `compare` refuses results that were not paired (another
reference set, seed, or round count).

Intervals: a percentile interval of the replicates *re-centred on the point estimate*, i.e. of
`replicates - bias` where `bias = mean(replicates) - point`. Why not the raw percentile interval:

Caveat, FID: bootstrap FID sits well *above* the point estimate. A resample repeats rows (about
37% of the originals are missing, replaced by copies), which adds noise to the resampled mean and
covariance, and FID's small-sample bias grows with that noise (roughly like dim / N). It is not a
detail: on randinit features of two samples of 5,000 synthfaces images the point FID was
0.24 and the raw 95% percentile interval [0.46, 0.52]; on 512-d Gaussians (5,000 each) the point
was 47.5 and the replicates 88 +- 0.7. The spread of the replicates is usable and errs on the safe
side (in that Gaussian case it was 3x the spread of FID over fresh samples: intervals too wide,
not too narrow); their location is not. So read a FID interval as "how much this number moves
when the samples are redrawn", at this N, not as a confidence interval for the population FID.
`point - bias` is the bootstrap's bias-corrected FID, an estimate of FID at N -> infinity
(about 0 for the two samples of one distribution above); the report may show it, labelled.
Differences (`compare`) are re-centred the same way: variants' biases differ (they grow with the
generated covariance), and the raw replicate differences would carry that difference of biases.

KID: the point estimate is the unbiased MMD^2 (cubic kernel k(x, y) = (x.y / dim + 1)^3, as
`fid.kid`) over *all* pairs, i.e. `fid.kid` with one subset holding every sample: the same
expectation as its subset average and a smaller variance. In a replicate, pairs made of two copies
of one original row are left out, as the U-statistic leaves out i == j; so KID replicates centre
on the point estimate rather than above it. Kernel sums of all rounds come from one pass over the
kernel matrices, computed a block of rows at a time and never stored whole.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rnngan.io import progress
from rnngan.metrics.fid import as_features, same_dim, fid, fid_from_torch_statistics, sqrt_factor
from rnngan.metrics.threads import one_thread, parallel_map

KID_BLOCK = 1024          # rows of a kernel matrix held at once: 1024 x N float64
# FID bootstrap rounds up to this dim run on one thread (`threads.one_thread`): their products are
# small, and on a loaded machine threads cost more in synchronisation than they gain (a round at
# 5,000 x 512 took 0.11 s on 1 thread against 0.27 s on 2 with the other core busy).
FID_ONE_THREAD_MAX_DIM = 1024


@dataclass(frozen=True)
class BootstrapPlan:
    """Which rows each bootstrap round draws, from a seed: the same numbers on every machine.

    Real draws come from stream (seed, 0) and depend only on `n_real`, `rounds` and `seed`; fake
    draws come from stream (seed, 1). Rows are drawn with replacement; a round's `counts` say how
    often each original row was drawn (they sum to n).
    """

    n_real: int
    n_fake: int
    rounds: int
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("n_real", "n_fake"):
            if getattr(self, key) < 2:
                raise ValueError(f"bootstrap: {key} must be >= 2, got {getattr(self, key)}")
        if self.rounds < 1:
            raise ValueError(f"bootstrap: rounds must be >= 1, got {self.rounds}")

    def _indices(self, stream: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream])
        return rng.integers(0, n, size=(self.rounds, n))

    def real_indices(self) -> np.ndarray:
        """`rounds x n_real` row indices into the real features (for metrics without weights)."""
        return self._indices(0, self.n_real)

    def fake_indices(self) -> np.ndarray:
        """`rounds x n_fake` row indices into the generated features."""
        return self._indices(1, self.n_fake)

    @staticmethod
    def _counts(indices: np.ndarray, n: int) -> np.ndarray:
        rounds = len(indices)
        offsets = np.arange(rounds)[:, None] * n
        return np.bincount((indices + offsets).ravel(), minlength=rounds * n).reshape(rounds, n)

    def real_counts(self) -> np.ndarray:
        """`rounds x n_real` int: how often round r drew real row i."""
        return self._counts(self.real_indices(), self.n_real)

    def fake_counts(self) -> np.ndarray:
        return self._counts(self.fake_indices(), self.n_fake)

    def pairs_with(self, other: BootstrapPlan) -> bool:
        """Whether both plans draw the same real rows in every round."""
        return (self.n_real, self.rounds, self.seed) == (other.n_real, other.rounds, other.seed)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of the replicates (numpy's linear quantiles)."""
    _check_confidence(confidence)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), tails)
    return float(lo), float(hi)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"bootstrap: confidence must be in (0, 1), got {confidence}")


def features_digest(features: np.ndarray) -> str:
    """A short hash of float64 features: results are paired only against the same real set."""
    f = np.ascontiguousarray(features, dtype=np.float64)
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(f.shape).encode())
    h.update(f.tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """A metric on the full sets (`point`), its bootstrap interval (`lo`, `hi`) at `confidence`
    (percentile, re-centred on `point`: see the module's caveat), and the `replicates`, one per
    round of `plan`, kept for paired comparisons. The raw percentile interval is
    `percentile_interval(result.replicates, confidence)`."""

    metric: str
    point: float
    lo: float
    hi: float
    confidence: float
    replicates: np.ndarray = field(repr=False)
    plan: BootstrapPlan
    real_digest: str

    @property
    def bias(self) -> float:
        """Mean replicate minus point estimate (> 0 for FID: see the module's caveat)."""
        return float(np.mean(self.replicates) - self.point)

    def to_dict(self) -> dict:
        """Plain JSON-able data, replicates included (the report stage compares variants)."""
        return {"metric": self.metric, "point": self.point, "lo": self.lo, "hi": self.hi,
                "confidence": self.confidence, "bias": self.bias,
                "rounds": self.plan.rounds, "seed": self.plan.seed,
                "n_real": self.plan.n_real, "n_fake": self.plan.n_fake,
                "real_digest": self.real_digest, "replicates": [float(v) for v in self.replicates]}

    @classmethod
    def from_dict(cls, d: Mapping) -> BootstrapResult:
        reps = np.asarray(d["replicates"], dtype=np.float64)
        plan = BootstrapPlan(int(d["n_real"]), int(d["n_fake"]), int(d["rounds"]), int(d["seed"]))
        if len(reps) != plan.rounds:
            raise ValueError(f"bootstrap result: {len(reps)} replicates but rounds={plan.rounds}")
        return cls(str(d["metric"]), float(d["point"]), float(d["lo"]), float(d["hi"]),
                   float(d["confidence"]), reps, plan, str(d["real_digest"]))


def centred_interval(replicates: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    """The percentile interval of the replicates shifted so that their mean sits on `point`."""
    replicates = np.asarray(replicates, dtype=np.float64)
    return percentile_interval(replicates - (replicates.mean() - point), confidence)


def bootstrap_result(metric: str, point: float, replicates: np.ndarray, confidence: float, plan: BootstrapPlan,
            digest: str) -> BootstrapResult:
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates.flags.writeable = False
    lo, hi = centred_interval(replicates, point, confidence)
    return BootstrapResult(metric, float(point), lo, hi, confidence, replicates, plan, digest)


def _validated(real: np.ndarray, fakes: Mapping[str, np.ndarray], rounds: int, seed: int,
               confidence: float) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, BootstrapPlan]]:
    _check_confidence(confidence)
    if not fakes:
        raise ValueError("bootstrap: no generated feature sets given")
    r = as_features(real, "real features", min_count=2)
    fs = {}
    for name, fake in fakes.items():
        fs[name] = as_features(fake, f"fake features {name!r}", min_count=2)
        same_dim(r, fs[name])
    plans = {name: BootstrapPlan(len(r), len(f), rounds, seed) for name, f in fs.items()}
    return r, fs, plans


# ---- FID -----------------------------------------------------------------------------------------

def _resampled_moments(centred: torch.Tensor, counts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean offset and covariance (ddof=1) of the resample with these counts, without building it.

    `centred` holds the rows minus their full-sample mean, so the returned mean is relative to it
    and the one subtraction below cancels little. Rows drawn 0 times (about 37%) are skipped.
    """
    idx = np.flatnonzero(counts)
    c = torch.from_numpy(counts[idx].astype(np.float64))
    rows = centred[torch.from_numpy(idx)]
    n = float(counts.sum())
    mean = (c @ rows) / n
    weighted = rows.mul_(c.sqrt()[:, None])          # in place: `rows` is this call's own copy
    sigma = (weighted.T @ weighted - n * torch.outer(mean, mean)) / (n - 1)
    return mean, sigma


def fid_replicates(r: np.ndarray, fs: Mapping[str, np.ndarray], plans: Mapping[str, BootstrapPlan],
                   progress_desc: str | None = None) -> dict[str, np.ndarray]:
    """FID of every round's resample of `r` against each generated set's: `rounds` replicates each.

    At dims up to FID_ONE_THREAD_MAX_DIM each round runs on one thread, and up to
    `torch.get_num_threads()` rounds run at once on a pool of threads: the rounds are independent,
    each writes its own slot, and each round's products are the one-thread products they always
    were, so the numbers do not depend on the pool (a test checks). Independent threads never wait
    for each other, as one product's threads do at every synchronisation (see `threads.one_thread`).
    Above that dim the rounds run one after another on torch's threads, as before.
    """
    plan0 = next(iter(plans.values()))
    rounds = plan0.rounds
    real_counts = plan0.real_counts()
    fake_counts = {name: plan.fake_counts() for name, plan in plans.items()}
    r_mean = torch.from_numpy(r.mean(axis=0))
    r_centred = torch.from_numpy(r) - r_mean
    f_means = {name: torch.from_numpy(f.mean(axis=0)) for name, f in fs.items()}
    f_centred = {name: torch.from_numpy(f) - f_means[name] for name, f in fs.items()}
    reps = {name: np.empty(rounds) for name in fs}

    def one_round(i: int) -> None:
        r_off, r_sigma = _resampled_moments(r_centred, real_counts[i])
        r_factor = sqrt_factor(r_sigma)
        for name in fs:
            f_off, f_sigma = _resampled_moments(f_centred[name], fake_counts[name][i])
            reps[name][i] = fid_from_torch_statistics(r_mean + r_off, r_sigma, r_factor,
                                                      f_means[name] + f_off, f_sigma)

    quiet = {"disable": True} if progress_desc is None else {}
    bar = progress(total=rounds, desc=progress_desc, unit="round", **quiet)
    with bar:
        if r.shape[1] > FID_ONE_THREAD_MAX_DIM:
            for i in range(rounds):
                one_round(i)
                bar.update()
            return reps
        workers = torch.get_num_threads()
        with one_thread():
            for _ in parallel_map(one_round, range(rounds), workers):
                bar.update()
    return reps


def fid_bootstrap_many(real: np.ndarray, fakes: Mapping[str, np.ndarray], rounds: int = 100,
                       seed: int = 0, confidence: float = 0.95,
                       progress_desc: str | None = None) -> dict[str, BootstrapResult]:
    """`fid_bootstrap` for several generated sets against one real set, each round's real
    resample (its covariance and factor) computed once for all of them. Same numbers as separate
    `fid_bootstrap` calls."""
    r, fs, plans = _validated(real, fakes, rounds, seed, confidence)
    digest = features_digest(r)
    reps = fid_replicates(r, fs, plans, progress_desc)
    return {name: bootstrap_result("fid", fid(r, f), reps[name], confidence, plans[name], digest)
            for name, f in fs.items()}


def fid_bootstrap(real: np.ndarray, fake: np.ndarray, rounds: int = 100, seed: int = 0,
                  confidence: float = 0.95, progress_desc: str | None = None) -> BootstrapResult:
    """FID of `fake` against `real` (`N x dim` features), with a percentile bootstrap interval.

    Each round resamples both sets with replacement (`BootstrapPlan(len(real), len(fake), rounds,
    seed)`) and recomputes mean and covariance from the draw counts in float64. The point
    estimate is `fid.fid(real, fake)`. Replicates are biased upward (`bias`), so the interval is
    re-centred on the point: see the module's caveat.
    """
    return fid_bootstrap_many(real, {"fake": fake}, rounds, seed, confidence, progress_desc)["fake"]


# ---- KID -----------------------------------------------------------------------------------------

def _kernel_sums(x: torch.Tensor, cx: torch.Tensor, y: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """sum_ij cx[r, i] k(x_i, y_j) cy[r, j] for every row r, k the cubic polynomial kernel.

    The kernel matrix is made `KID_BLOCK` rows at a time: memory KID_BLOCK x len(y) float64.
    """
    dim = x.shape[1]
    total = torch.zeros(len(cx), dtype=torch.float64)
    for start in range(0, len(x), KID_BLOCK):
        stop = min(start + KID_BLOCK, len(x))
        k = cubic_kernel_(x[start:stop] @ y.T, dim)
        total += ((cx[:, start:stop] @ k) * cy).sum(dim=1)
    return total


def cubic_kernel_(products: torch.Tensor, dim: int) -> torch.Tensor:
    """(x.y / dim + 1)^3 from a block of products x.y, in place (no second block-sized temporary)."""
    return products.mul_(1.0 / dim).add_(1.0).pow_(3)


def _within_set_term(x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean kernel value over pairs of draws that are not copies of one original row.

    sum_{a != b} c_a c_b k(x_a, x_b) / (n^2 - sum_a c_a^2); with all counts 1 this is the
    U-statistic's (sum_{i != j} k(x_i, x_j)) / (n (n - 1)).
    """
    return within_set_from_sums(_kernel_sums(x, counts, x, counts), x, counts)


def within_set_from_sums(sums: torch.Tensor, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """`_within_set_term` given its kernel sums (`_kernel_sums(x, counts, x, counts)`); every row
    of `counts` sums to the same n."""
    dim = x.shape[1]
    diag = ((x * x).sum(dim=1) / dim + 1) ** 3
    sq = counts * counts
    n = counts[0].sum()
    return (sums - sq @ diag) / (n * n - sq.sum(dim=1))


def kid_bootstrap_many(real: np.ndarray, fakes: Mapping[str, np.ndarray], rounds: int = 100,
                       seed: int = 0, confidence: float = 0.95) -> dict[str, BootstrapResult]:
    """`kid_bootstrap` for several generated sets; the real-real kernel sums are made once."""
    r, fs, plans = _validated(real, fakes, rounds, seed, confidence)
    digest = features_digest(r)
    ones = np.ones((1, len(r)), dtype=np.int64)
    # row 0: every row once, the point estimate, by the same code as the replicates
    real_counts = next(iter(plans.values())).real_counts()
    real_counts = torch.from_numpy(np.concatenate([ones, real_counts]).astype(np.float64))
    rt = torch.from_numpy(r)
    xx = _within_set_term(rt, real_counts)
    out = {}
    for name, f in fs.items():
        ft = torch.from_numpy(f)
        fake_counts = torch.from_numpy(np.concatenate([np.ones((1, len(f)), dtype=np.int64),
                                                       plans[name].fake_counts()]).astype(np.float64))
        yy = _within_set_term(ft, fake_counts)
        xy = _kernel_sums(rt, real_counts, ft, fake_counts) / (len(r) * len(f))
        values = (xx + yy - 2 * xy).numpy()
        out[name] = bootstrap_result("kid", values[0], values[1:], confidence, plans[name], digest)
    return out


def kid_bootstrap(real: np.ndarray, fake: np.ndarray, rounds: int = 100, seed: int = 0,
                  confidence: float = 0.95) -> BootstrapResult:
    """KID (unbiased MMD^2 over all pairs, cubic kernel) with a percentile bootstrap interval.

    Resampling as `fid_bootstrap`; cost: the three kernel matrices once (N^2 dim) plus
    rounds x N^2 for the weighted sums, whatever `rounds`.
    """
    return kid_bootstrap_many(real, {"fake": fake}, rounds, seed, confidence)["fake"]


# ---- comparisons and rankings --------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """`a` minus `b`: the difference of point estimates and its paired percentile interval."""

    a: str
    b: str
    difference: float
    lo: float
    hi: float
    confidence: float
    better: str | None             # the significantly better one, None when the interval holds 0

    @property
    def significant(self) -> bool:
        return self.better is not None

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "difference": self.difference, "lo": self.lo, "hi": self.hi,
                "confidence": self.confidence, "significant": self.significant, "better": self.better}


def compare(a: BootstrapResult, b: BootstrapResult, confidence: float = 0.95,
            names: tuple[str, str] = ("a", "b"), lower_is_better: bool = True) -> Comparison:
    """Paired bootstrap of `a - b`: the percentile interval of the replicate-wise differences,
    re-centred on the observed difference (as `BootstrapResult.lo/hi`).

    Significant when the interval excludes 0. Both results must come from the same real features,
    seed and rounds (then round r used one real resample for both), else a ValueError.
    """
    _check_confidence(confidence)
    if a.metric != b.metric:
        raise ValueError(f"compare: different metrics ({a.metric} vs {b.metric})")
    if not a.plan.pairs_with(b.plan) or a.real_digest != b.real_digest:
        raise ValueError(
            f"compare: {names[0]} and {names[1]} are not paired bootstraps: they need the same real "
            f"features (digest {a.real_digest} vs {b.real_digest}), seed ({a.plan.seed} vs "
            f"{b.plan.seed}) and rounds ({a.plan.rounds} vs {b.plan.rounds})")
    lo, hi = centred_interval(a.replicates - b.replicates, a.point - b.point, confidence)
    better = None
    if lo > 0 or hi < 0:                   # a is larger (lo > 0) or smaller (hi < 0) for sure
        a_smaller = hi < 0
        better = names[0] if a_smaller == lower_is_better else names[1]
    return Comparison(names[0], names[1], a.point - b.point, lo, hi, confidence, better)


def pairwise_significance(results: Mapping[str, BootstrapResult], confidence: float = 0.95,
                          lower_is_better: bool = True,
                          adjust: str | None = "bonferroni") -> list[Comparison]:
    """`compare` every pair of variants (in the mapping's order: (v0, v1), (v0, v2), ...).

    With `adjust="bonferroni"` (the default) each of the m pairs is tested at level
    1 - (1 - confidence) / m, so that all claims together hold at `confidence`: with 5 variants and
    0.95, each pair at 0.995. Those tails need replicates: below 2 m / (1 - confidence) rounds
    (400 for 5 variants at 0.95) the adjusted quantiles fall between the most extreme replicates,
    which makes the test stricter, never looser. `adjust=None` tests each pair at `confidence`.
    """
    if adjust not in ("bonferroni", None):
        raise ValueError(f"pairwise_significance: adjust must be 'bonferroni' or None, got {adjust!r}")
    _check_confidence(confidence)
    names = list(results)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    level = 1 - (1 - confidence) / len(pairs) if adjust == "bonferroni" and pairs else confidence
    return [compare(results[a], results[b], level, (a, b), lower_is_better) for a, b in pairs]


def rank_ranges(names: Sequence[str], comparisons: Sequence[Comparison]) -> dict[str, tuple[int, int]]:
    """Each variant's possible ranks (1 = best) given only the significant differences.

    best = 1 + (variants significantly better than it); worst = n - (variants significantly worse).
    A variant that beats all others significantly gets (1, 1); one that differs from none, (1, n).
    """
    names = list(names)
    better_than = {v: 0 for v in names}      # how many are significantly better than v
    worse_than = {v: 0 for v in names}       # how many are significantly worse than v
    for c in comparisons:
        if c.better is not None:
            loser = c.b if c.better == c.a else c.a
            better_than[loser] += 1
            worse_than[c.better] += 1
    n = len(names)
    return {v: (1 + better_than[v], n - worse_than[v]) for v in names}


def rank_tiers(results: Mapping[str, BootstrapResult], comparisons: Sequence[Comparison],
               lower_is_better: bool = True) -> list[list[str]]:
    """Variants in tiers, best first, a new tier only where the difference is significant.

    Rule: sort by point estimate; the first variant leads the first tier; each next variant joins
    the current tier unless it is significantly worse than that tier's leader, in which case it
    leads a new one. Inside a tier the order is by point estimate and means nothing. Where
    significance is not transitive (A ~ B, B ~ C, A > C) a tier boundary can fall between two
    variants that do not differ significantly themselves: `rank_ranges` states that case exactly.
    """
    by_pair = {}
    for c in comparisons:
        by_pair[(c.a, c.b)] = by_pair[(c.b, c.a)] = c
    order = sorted(results, key=lambda v: results[v].point, reverse=not lower_is_better)
    tiers: list[list[str]] = []
    for v in order:
        if tiers:
            c = by_pair.get((tiers[-1][0], v))
            if c is None:
                raise ValueError(f"rank_tiers: no comparison of {tiers[-1][0]} with {v}")
            if c.better != tiers[-1][0]:
                tiers[-1].append(v)
                continue
        tiers.append([v])
    return tiers

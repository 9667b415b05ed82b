"""Statistics across seeds against scipy and against their definitions."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from rnngan.statistics import LOG_T, T, T_CLIPPED, holm, seeds_for_power, summarize, tiers, welch, welch_power


@pytest.mark.parametrize("na, nb, seed", [(3, 3, 0), (2, 5, 1), (5, 3, 2), (10, 10, 3)])
def test_welch_equals_scipy(na, nb, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, 2, na), rng.normal(12, 0.5, nb)
    w = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(ref.statistic, rel=1e-12) and w.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert w.df == pytest.approx(ref.df, rel=1e-12) and w.difference == pytest.approx(a.mean() - b.mean())


def test_welch_without_spread_is_decided_by_the_difference_alone():
    assert welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
    assert welch([1.0, 1.0], [2.0, 2.0]).p == 0.0
    with pytest.raises(ValueError, match="at least 2 values per group"):
        welch([1.0], [2.0, 3.0])


def brute_holm(p):
    """Holm (1979) by its definition: the i-th smallest p times (m - i + 1), running maximum, capped at 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - r) * p[order[r]] for r in range(rank + 1)))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_its_definition_and_scipy(seed):
    p = list(np.random.default_rng(seed).uniform(0, 0.2, 10))
    assert holm(p) == pytest.approx(brute_holm(p), abs=1e-15)
    # scipy has no Holm, but its Bonferroni bounds it: Holm's adjusted p never exceeds m * p
    assert all(h <= min(1.0, 10 * x) + 1e-15 for h, x in zip(holm(p), p))


def test_holm_of_ties_and_of_one_p():
    assert holm([0.01, 0.01, 0.04]) == pytest.approx([0.03, 0.03, 0.04])
    assert holm([0.3]) == [0.3]


def test_summary_interval_is_scipys_t_interval():
    x = [7.75, 10.04, 12.59]
    s = summarize(x, 0.95)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(x), scale=stats.sem(x))
    assert (s.lo, s.hi) == pytest.approx((lo, hi), rel=1e-12)
    assert s.std == pytest.approx(np.std(x, ddof=1)) and (s.min, s.max, s.n) == (7.75, 12.59, 3)
    assert s.method == T
    one = summarize([5.0], 0.95)
    assert one.std is None and one.lo is None and one.mean == 5.0 and one.method is None


def test_a_positive_metrics_interval_is_the_t_interval_of_its_logarithms_and_stays_above_zero():
    fids = [6.61, 20.85, 10.65]      # rnn's three seeds in a default run: one collapsed
    plain = summarize(fids, 0.95)
    assert plain.lo < 0              # what Student's t on the values said: FID in [-5.5, 30.9]
    s = summarize(fids, 0.95, 0.0, math.inf, log=True)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(np.log(fids)), scale=stats.sem(np.log(fids)))
    assert (s.lo, s.hi) == pytest.approx((math.exp(lo), math.exp(hi)), rel=1e-12) and s.method == LOG_T
    assert 0 < s.lo < min(fids) and s.lo < s.mean < s.hi
    assert s.mean == pytest.approx(np.mean(fids)) and s.std == pytest.approx(np.std(fids, ddof=1))


def test_without_a_logarithm_the_t_interval_is_cut_to_the_metrics_range():
    kids = [-0.0002, 0.0001, 0.004]      # KID's unbiased estimate dips below zero
    s = summarize(kids, 0.95, 0.0, math.inf, log=True)
    assert s.method == T_CLIPPED and s.lo == 0.0 and s.hi == pytest.approx(summarize(kids, 0.95).hi)
    recall = summarize([0.0, 0.0, 0.009], 0.95, 0.0, 1.0)
    assert recall.method == T_CLIPPED and recall.lo == 0.0 and 0 < recall.hi < 1
    inside = summarize([0.4, 0.5, 0.45], 0.95, 0.0, 1.0)
    assert inside.method == T and (inside.lo, inside.hi) == (summarize([0.4, 0.5, 0.45], 0.95).lo,
                                                              summarize([0.4, 0.5, 0.45], 0.95).hi)


def test_welch_power_matches_a_simulation():
    rng = np.random.default_rng(0)
    n, diff, sa, sb, alpha = 5, 2.0, 1.5, 1.0, 0.05
    a = rng.normal(diff, sa, (20000, n))
    b = rng.normal(0.0, sb, (20000, n))
    simulated = np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < alpha)
    # the noncentral-t formula takes the df of the true spreads: an approximation, a little optimistic
    assert welch_power(n, diff, sa, sb, alpha) == pytest.approx(simulated, abs=0.03)


def test_seeds_for_power_is_the_first_count_that_reaches_it():
    n = seeds_for_power(1.0, 2.0, 2.0, 0.005)
    assert welch_power(n, 1.0, 2.0, 2.0, 0.005) >= 0.8 > welch_power(n - 1, 1.0, 2.0, 2.0, 0.005)
    assert seeds_for_power(0.0, 1.0, 1.0, 0.05) is None
    assert seeds_for_power(1e-4, 3.0, 3.0, 0.05) is None      # no practical difference


def test_tiers_split_only_where_the_leader_is_significantly_better():
    means = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    significant = {("a", "c"), ("a", "d"), ("c", "d")}

    def better(x, y):
        return x if (x, y) in significant else None
    assert tiers(means, better) == [["a", "b"], ["c"], ["d"]]
    assert tiers(means, lambda x, y: None) == [["a", "b", "c", "d"]]
    # higher is better: the order flips
    assert tiers(means, lambda x, y: x, lower_is_better=False) == [["d"], ["c"], ["b"], ["a"]]
    assert all(len(t) == 1 for t in tiers(means, lambda x, y: x))
    assert list(itertools.chain(*tiers(means, better))) == ["a", "b", "c", "d"]

"""Tests of bootstrap intervals and paired comparisons (rnngan.metrics.bootstrap)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnngan.metrics.bootstrap import (BootstrapPlan, BootstrapResult, Comparison, compare,
                                      fid_bootstrap, fid_bootstrap_many, kid_bootstrap,
                                      kid_bootstrap_many, pairwise_significance,
                                      percentile_interval, rank_ranges, rank_tiers)
from rnngan.metrics.fid import fid, kid


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, (n, dim))


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _resampled_kid(real, fake, ri, fi) -> float:
    """Unbiased MMD^2 on explicitly resampled rows, leaving out pairs of copies of one row."""
    def within(x, idx):
        k = _kernel(x[idx], x[idx])
        keep = idx[:, None] != idx[None, :]
        return k[keep].mean()
    return float(within(real, ri) + within(fake, fi) - 2 * _kernel(real[ri], fake[fi]).mean())


# ---- the plan ------------------------------------------------------------------------------------

def test_plan_is_deterministic_by_seed_and_counts_match_indices():
    a, b = BootstrapPlan(50, 40, 6, seed=1), BootstrapPlan(50, 40, 6, seed=1)
    c = BootstrapPlan(50, 40, 6, seed=2)
    np.testing.assert_array_equal(a.real_indices(), b.real_indices())
    np.testing.assert_array_equal(a.fake_indices(), b.fake_indices())
    assert not np.array_equal(a.real_indices(), c.real_indices())
    counts, idx = a.real_counts(), a.real_indices()
    assert counts.shape == (6, 50) and (counts.sum(axis=1) == 50).all()
    for r in range(6):
        np.testing.assert_array_equal(counts[r], np.bincount(idx[r], minlength=50))


def test_real_draws_do_not_depend_on_the_number_of_generated_samples():
    # variants with different sample counts still pair on the real set
    a, b = BootstrapPlan(80, 30, 5, seed=3), BootstrapPlan(80, 70, 5, seed=3)
    np.testing.assert_array_equal(a.real_indices(), b.real_indices())
    assert a.pairs_with(b) and not a.pairs_with(BootstrapPlan(80, 30, 5, seed=4))


# ---- FID -----------------------------------------------------------------------------------------

def test_fid_replicates_equal_fid_of_the_explicitly_resampled_rows():
    real, fake = _gaussian(120, 6, seed=0), _gaussian(100, 6, seed=1, shift=0.4)
    result = fid_bootstrap(real, fake, rounds=4, seed=7)
    plan = BootstrapPlan(120, 100, 4, seed=7)
    ri, fi = plan.real_indices(), plan.fake_indices()
    expected = [fid(real[ri[r]], fake[fi[r]]) for r in range(4)]
    np.testing.assert_allclose(result.replicates, expected, rtol=1e-9)
    assert result.point == fid(real, fake) and result.plan == plan


def test_fid_bootstrap_interval_contains_the_point_estimate_and_is_deterministic_by_seed():
    real, fake = _gaussian(800, 8, seed=2), _gaussian(800, 8, seed=3, shift=0.3)
    a, b = fid_bootstrap(real, fake, rounds=100, seed=5), fid_bootstrap(real, fake, rounds=100, seed=5)
    assert a.lo < a.point < a.hi
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert (a.lo, a.hi) == (b.lo, b.hi)
    c = fid_bootstrap(real, fake, rounds=100, seed=6)
    assert not np.array_equal(a.replicates, c.replicates)


def test_fid_replicates_are_biased_upward_and_the_interval_is_recentred():
    # the documented caveat: two samples of one distribution, FID is all bias, and the resamples'
    # duplicated rows add more; the raw percentile interval then misses the point estimate
    real, fake = _gaussian(500, 16, seed=4), _gaussian(500, 16, seed=5)
    result = fid_bootstrap(real, fake, rounds=100, seed=0)
    raw_lo, raw_hi = percentile_interval(result.replicates, 0.95)
    assert result.bias > 0 and raw_lo > result.point
    assert result.lo < result.point < result.hi
    assert result.hi - result.lo == pytest.approx(raw_hi - raw_lo, rel=1e-9)


def test_fid_interval_narrows_with_more_samples():
    widths = []
    for n in (400, 1600):
        r = fid_bootstrap(_gaussian(n, 8, seed=6), _gaussian(n, 8, seed=7, shift=0.3), rounds=100, seed=0)
        widths.append(r.hi - r.lo)
    assert widths[1] < 0.7 * widths[0]            # about 1/2 expected: width ~ 1 / sqrt(n)


def test_fid_bootstrap_many_equals_separate_calls():
    real = _gaussian(150, 5, seed=8)
    fakes = {"x": _gaussian(150, 5, seed=9, shift=0.2), "y": _gaussian(90, 5, seed=10, scale=1.3)}
    many = fid_bootstrap_many(real, fakes, rounds=5, seed=2)
    for name, fake in fakes.items():
        one = fid_bootstrap(real, fake, rounds=5, seed=2)
        np.testing.assert_array_equal(many[name].replicates, one.replicates)
        assert many[name].point == one.point


# ---- KID -----------------------------------------------------------------------------------------

def test_kid_point_estimate_is_kid_with_one_subset_of_everything():
    real, fake = _gaussian(200, 8, seed=11), _gaussian(200, 8, seed=12, shift=0.3)
    result = kid_bootstrap(real, fake, rounds=3, seed=0)
    assert result.point == pytest.approx(kid(real, fake, subsets=1, subset_size=200)[0], rel=1e-9)


def test_kid_replicates_equal_mmd2_of_the_resampled_rows_without_copy_pairs():
    real, fake = _gaussian(70, 5, seed=13), _gaussian(60, 5, seed=14, shift=0.5)
    result = kid_bootstrap(real, fake, rounds=3, seed=4)
    plan = BootstrapPlan(70, 60, 3, seed=4)
    ri, fi = plan.real_indices(), plan.fake_indices()
    expected = [_resampled_kid(real, fake, ri[r], fi[r]) for r in range(3)]
    np.testing.assert_allclose(result.replicates, expected, rtol=1e-9)


def test_kid_replicates_centre_on_the_point_estimate():
    # leaving out pairs of copies keeps the replicates unbiased: the raw interval holds the point
    real, fake = _gaussian(600, 16, seed=15), _gaussian(600, 16, seed=16, shift=0.2)
    result = kid_bootstrap(real, fake, rounds=200, seed=0)
    raw_lo, raw_hi = percentile_interval(result.replicates, 0.95)
    assert raw_lo < result.point < raw_hi and result.lo < result.point < result.hi
    assert abs(result.bias) < 0.1 * (raw_hi - raw_lo)


def test_kid_bootstrap_is_deterministic_and_the_many_form_matches():
    real = _gaussian(100, 4, seed=17)
    fakes = {"x": _gaussian(100, 4, seed=18), "y": _gaussian(80, 4, seed=19, shift=1.0)}
    many = kid_bootstrap_many(real, fakes, rounds=20, seed=3)
    for name, fake in fakes.items():
        one = kid_bootstrap(real, fake, rounds=20, seed=3)
        np.testing.assert_allclose(many[name].replicates, one.replicates, rtol=1e-12)
        np.testing.assert_array_equal(one.replicates, kid_bootstrap(real, fake, rounds=20, seed=3).replicates)


# ---- comparisons ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_variants():
    real = _gaussian(1000, 8, seed=20)
    fakes = {"same1": _gaussian(1000, 8, seed=21), "same2": _gaussian(1000, 8, seed=22),
             "shifted": _gaussian(1000, 8, seed=23, shift=0.25)}
    return real, fakes


@pytest.mark.parametrize("metric", ["fid", "kid"])
def test_pairwise_significance_separates_a_shift_but_not_two_samples_of_one_distribution(
        metric, three_variants):
    real, fakes = three_variants
    many = fid_bootstrap_many if metric == "fid" else kid_bootstrap_many
    results = many(real, fakes, rounds=200, seed=0)
    comparisons = {(c.a, c.b): c for c in pairwise_significance(results, confidence=0.95)}
    assert not comparisons[("same1", "same2")].significant
    assert comparisons[("same1", "shifted")].better == "same1"
    assert comparisons[("same2", "shifted")].better == "same2"
    assert comparisons[("same1", "shifted")].hi < 0         # same1 - shifted: lower FID/KID
    assert comparisons[("same1", "same2")].confidence == pytest.approx(1 - 0.05 / 3)   # Bonferroni
    assert sorted(map(sorted, rank_tiers(results, comparisons.values()))) == [["same1", "same2"], ["shifted"]]
    ranges = rank_ranges(list(results), comparisons.values())
    assert ranges == {"same1": (1, 2), "same2": (1, 2), "shifted": (3, 3)}


def test_paired_difference_interval_is_narrower_than_unpaired(three_variants):
    # the shared real resample cancels in the difference
    real, fakes = three_variants
    a = fid_bootstrap(real, fakes["same1"], rounds=200, seed=0)
    b = fid_bootstrap(real, fakes["shifted"], rounds=200, seed=0)
    paired = compare(a, b)
    unpaired = np.quantile(a.replicates - np.random.default_rng(0).permutation(b.replicates), [0.025, 0.975])
    assert paired.hi - paired.lo < unpaired[1] - unpaired[0]


def test_compare_refuses_unpaired_results():
    real, fake = _gaussian(100, 4, seed=24), _gaussian(100, 4, seed=25)
    base = fid_bootstrap(real, fake, rounds=10, seed=0)
    with pytest.raises(ValueError, match="not paired"):
        compare(base, fid_bootstrap(real, fake, rounds=10, seed=1))
    with pytest.raises(ValueError, match="not paired"):
        compare(base, fid_bootstrap(real + 1e-3, fake, rounds=10, seed=0))
    with pytest.raises(ValueError, match="not paired"):
        compare(base, fid_bootstrap(real, fake, rounds=11, seed=0))
    with pytest.raises(ValueError, match="different metrics"):
        compare(base, kid_bootstrap(real, fake, rounds=10, seed=0))


def test_results_round_trip_through_json_and_still_compare():
    real = _gaussian(200, 4, seed=26)
    a = fid_bootstrap(real, _gaussian(200, 4, seed=27), rounds=30, seed=0)
    b = fid_bootstrap(real, _gaussian(200, 4, seed=28, shift=1.0), rounds=30, seed=0)
    a2, b2 = (BootstrapResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in (a, b))
    np.testing.assert_array_equal(a2.replicates, a.replicates)
    assert (a2.point, a2.lo, a2.hi, a2.plan, a2.real_digest) == (a.point, a.lo, a.hi, a.plan, a.real_digest)
    assert compare(a2, b2, names=("a", "b")) == compare(a, b, names=("a", "b"))
    assert compare(a, b, names=("a", "b")).better == "a"


def test_rank_ranges_and_tiers_state_non_transitive_results_honestly():
    # A beats C; B differs from neither
    cs = [Comparison("A", "B", -1.0, -2.0, 0.5, 0.95, None),
          Comparison("A", "C", -3.0, -4.0, -1.0, 0.95, "A"),
          Comparison("B", "C", -2.0, -3.0, 0.5, 0.95, None)]
    points = {"A": 1.0, "B": 2.0, "C": 4.0}
    results = {k: BootstrapResult("fid", v, v, v, 0.95, np.zeros(1), BootstrapPlan(2, 2, 1), "x")
               for k, v in points.items()}
    assert rank_ranges(["A", "B", "C"], cs) == {"A": (1, 2), "B": (1, 3), "C": (2, 3)}
    assert rank_tiers(results, cs) == [["A", "B"], ["C"]]


def test_higher_is_better_flips_the_winner():
    real = _gaussian(300, 4, seed=29)
    a = kid_bootstrap(real, _gaussian(300, 4, seed=30), rounds=50, seed=0)
    b = kid_bootstrap(real, _gaussian(300, 4, seed=31, shift=1.0), rounds=50, seed=0)
    assert compare(a, b, names=("a", "b")).better == "a"
    assert compare(a, b, names=("a", "b"), lower_is_better=False).better == "b"


def test_bootstrap_rejects_bad_arguments():
    real = _gaussian(20, 4, seed=32)
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        fid_bootstrap(real, real, rounds=0)
    with pytest.raises(ValueError, match="confidence must be in"):
        kid_bootstrap(real, real, rounds=5, confidence=1.0)
    with pytest.raises(ValueError, match="dims differ"):
        fid_bootstrap(real, _gaussian(20, 5, seed=33), rounds=5)
    with pytest.raises(ValueError, match="n_real must be >= 2"):
        BootstrapPlan(1, 5, 3)
    with pytest.raises(ValueError, match="adjust must be"):
        pairwise_significance({}, adjust="holm")

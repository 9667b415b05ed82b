"""Tests of precision/recall and density/coverage (rnngan.metrics.prdc)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnngan.metrics.prdc import prdc

KEYS = ("precision", "recall", "density", "coverage")


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, (n, dim))


def test_identical_sets_give_precision_recall_coverage_and_density_one():
    f = _gaussian(300, 16, seed=0)
    out = prdc(f, f.copy(), k=5)
    assert out == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


@pytest.mark.parametrize("n_real, n_fake, dim, k, shift", [
    (300, 250, 16, 5, 0.3), (400, 400, 64, 3, 0.0), (200, 300, 8, 1, 0.5), (150, 120, 4, 10, 1.0)])
def test_matches_the_prdc_reference_package(n_real, n_fake, dim, k, shift):
    reference = pytest.importorskip("prdc")       # Naeem et al.'s package, in the test extra
    real = _gaussian(n_real, dim, seed=1)
    fake = _gaussian(n_fake, dim, seed=2, shift=shift, scale=1.2)
    expected = reference.compute_prdc(real, fake, nearest_k=k)
    out = prdc(real, fake, k=k, batch_size=37)     # blocks that do not divide either set
    assert 0 < out["precision"] < 1 or shift == 0.0
    for key in KEYS:
        assert out[key] == pytest.approx(float(expected[key]), rel=1e-12, abs=1e-12), key


def test_precision_and_recall_match_torch_fidelity():
    from torch_fidelity.metric_prc import prc_features_to_metric

    real, fake = _gaussian(300, 12, seed=3), _gaussian(280, 12, seed=4, shift=0.4, scale=0.8)
    # torch-fidelity's convention: features_1 generated, features_2 real
    theirs = prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), prc_neighborhood=4,
                                    prc_batch_size=100, save_cpu_ram=True, verbose=False)
    out = prdc(real, fake, k=4)
    assert out["precision"] == pytest.approx(theirs["precision"], abs=1e-6)
    assert out["recall"] == pytest.approx(theirs["recall"], abs=1e-6)
    assert 0.05 < out["precision"] < 0.95 and 0.05 < out["recall"] < 0.95


def test_result_does_not_depend_on_batch_size():
    real, fake = _gaussian(120, 8, seed=5), _gaussian(90, 8, seed=6, shift=0.3)
    results = [prdc(real, fake, k=3, batch_size=b) for b in (1, 7, 1000)]
    assert results[0] == results[1] == results[2]


def test_distant_sets_score_zero_everywhere():
    real, fake = _gaussian(100, 8, seed=7), _gaussian(100, 8, seed=8, shift=50.0)
    assert prdc(real, fake, k=3) == {key: 0.0 for key in KEYS}


def test_a_collapsed_generator_has_high_precision_and_low_recall_and_coverage():
    real = _gaussian(400, 8, seed=9)
    # every generated sample a near-copy of one real sample: realistic but not diverse
    fake = real[0] + _gaussian(400, 8, seed=10, scale=1e-3)
    out = prdc(real, fake, k=5)
    assert out["precision"] == 1.0
    assert out["recall"] < 0.05 and out["coverage"] < 0.05
    assert out["density"] > 1.0        # the samples pile up in the few balls around real[0]


def test_two_samples_of_one_distribution_have_density_and_coverage_near_one():
    real, fake = _gaussian(1500, 6, seed=11), _gaussian(1500, 6, seed=12)
    out = prdc(real, fake, k=5)
    assert 0.9 < out["density"] < 1.1 and out["coverage"] > 0.9
    assert out["precision"] > 0.6 and out["recall"] > 0.6


def test_rejects_mismatched_dims_k_too_large_and_nan():
    real = _gaussian(10, 4, seed=13)
    with pytest.raises(ValueError, match="dims differ"):
        prdc(real, _gaussian(10, 5, seed=14))
    with pytest.raises(ValueError, match="k=10 needs more than k samples.*real has 10"):
        prdc(real, _gaussian(20, 4, seed=14), k=10)
    with pytest.raises(ValueError, match="k=5 needs more than k samples.*fake has 5"):
        prdc(real, _gaussian(5, 4, seed=14), k=5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        prdc(real, real, k=0)
    bad = real.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prdc(real, bad, k=3)

"""The analyze stage's shared computation (rnngan.metrics.analysis, issue 30) gives the numbers of
the metric-at-a-time functions it replaces: bit for bit where the algorithm is unchanged (FID, its
bootstrap, the KID bootstrap, PRDC's counts), within a stated bound where it is not (KID subsets)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnngan.config import MetricsParams
from rnngan.metrics import analysis
from rnngan.metrics.analysis import feature_analysis, kid_subset_rows
from rnngan.metrics.bootstrap import fid_bootstrap, kid_bootstrap
from rnngan.metrics.fid import fid, kid
from rnngan.metrics.prdc import manifold_pass, prdc

MP = MetricsParams(real_count=700, kid_subsets=8, kid_subset_size=300, nearest_k=5, bootstrap=12)
# KID subsets: each kernel value is computed once by torch instead of once per subset by numpy,
# and summed in another order. Bound on the difference, relative to the kernel's scale (the mean
# kernel value; KID is a difference of such means): measured ~1e-16, bounded at 1e-12.
KID_SUBSET_RTOL = 1e-12


def _features(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated features like a CNN's (ReLU of a low-rank map, plus noise)."""
    proj = np.random.default_rng([dim, 7]).normal(0, 1 / 4, (16, dim))
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(shift, 1, (n, 16)) @ proj, 0) + rng.normal(0, 0.05, (n, dim))


@pytest.fixture(scope="module")
def sets():
    real, fake = _features(700, 48, 0), _features(650, 48, 1, shift=0.3)
    return real, fake, feature_analysis(real, fake, MP)


def test_fid_and_both_bootstraps_are_bit_identical_to_the_separate_functions(sets):
    real, fake, fm = sets
    assert fm.fid == fid(real, fake)
    old_fid = fid_bootstrap(real, fake, MP.bootstrap, seed=0, confidence=MP.confidence)
    old_kid = kid_bootstrap(real, fake, MP.bootstrap, seed=0, confidence=MP.confidence)
    for new, old in ((fm.fid_bootstrap, old_fid), (fm.kid_bootstrap, old_kid)):
        assert new.to_dict() == old.to_dict()


def test_prdc_counts_equal_the_separate_function(sets):
    real, fake, fm = sets
    assert fm.manifold == prdc(real, fake, k=MP.nearest_k)


def test_kid_subsets_are_torch_fidelitys_draws_and_values_within_the_stated_bound(sets):
    real, fake, fm = sets
    from torch_fidelity.metric_kid import kernel_mmd

    rows_r, rows_f = kid_subset_rows(len(real), len(fake), MP.kid_subsets, MP.kid_subset_size, seed=0)
    per_subset = np.array([kernel_mmd(real[a], fake[b], kid_kernel="poly", kid_kernel_poly_degree=3,
                                      kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
                           for a, b in zip(rows_r, rows_f)])
    mean, std = kid(real, fake, MP.kid_subsets, MP.kid_subset_size, seed=0)
    assert (np.mean(per_subset), np.std(per_subset)) == (mean, std)     # the draws are torch-fidelity's
    scale = float(((real @ real.T / real.shape[1] + 1) ** 3).mean())
    assert abs(fm.kid_mean - mean) <= KID_SUBSET_RTOL * scale
    assert abs(fm.kid_std - std) <= KID_SUBSET_RTOL * scale
    assert fm.kid_mean != 0 and fm.kid_std > 0


def test_fid_bootstrap_replicates_do_not_depend_on_the_thread_pool():
    """Rounds run several at once on a pool of threads; each round's products are one-thread
    products either way, so one thread and several give the same bits."""
    real, fake = _features(400, 32, 2), _features(380, 32, 3, shift=0.2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fid_bootstrap(real, fake, rounds=9, seed=4)
        torch.set_num_threads(3)
        pool = fid_bootstrap(real, fake, rounds=9, seed=4)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one.replicates, pool.replicates)


def test_shared_pass_on_identical_sets_scores_one_everywhere_without_centring():
    """The tie margin holds for uncentred features too: each ball's k-th neighbour stays outside."""
    x = torch.from_numpy(_features(300, 24, 5) + 50.0)      # far from the origin: more cancellation
    assert manifold_pass(x, x.clone(), 5, batch_size=64) == {"precision": 1.0, "recall": 1.0,
                                                              "density": 1.0, "coverage": 1.0}


def test_shared_pass_does_not_depend_on_the_block_size(sets):
    real, fake, _ = sets
    rt, ft = torch.from_numpy(real), torch.from_numpy(fake)
    assert manifold_pass(rt, ft, 5, batch_size=97) == manifold_pass(rt, ft, 5, batch_size=1024)


def test_real_statistics_given_or_computed_give_the_same_numbers(sets):
    from rnngan.metrics.fid import feature_statistics

    real, fake, fm = sets
    given = feature_analysis(real, fake, MP, *feature_statistics(real))
    assert given.fid == fm.fid and given.fid_bootstrap.to_dict() == fm.fid_bootstrap.to_dict()


def test_feature_analysis_refuses_what_the_separate_functions_refuse():
    real, fake = _features(50, 8, 0), _features(40, 8, 1)
    with pytest.raises(ValueError, match="subset_size"):
        feature_analysis(real, fake, MP.model_copy(update=dict(kid_subset_size=45)))
    with pytest.raises(ValueError, match="k=40"):
        feature_analysis(real, fake, MP.model_copy(update=dict(kid_subset_size=10, nearest_k=40)))
    with pytest.raises(ValueError, match="feature dims differ"):
        feature_analysis(real, _features(40, 9, 1), MP.model_copy(update=dict(kid_subset_size=10)))


def test_analyze_writes_the_numbers_of_the_metric_at_a_time_functions(tmp_path):
    """The stage's JSON against the functions the stage called before issue 30, on its own inputs."""
    import cv2

    from rnngan.evaluation import analyze, compute_reference, load_reference
    from rnngan.metrics.features import extract_features
    from rnngan.metrics.histograms import colour_moments, histograms

    mp = MetricsParams(real_count=80, batch_size=40, bins=16, kid_subsets=4, kid_subset_size=30, bootstrap=10)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (150, 4, 4, 3), dtype=np.uint8)
    images = np.stack([cv2.resize(x, (16, 16), interpolation=cv2.INTER_LINEAR) for x in small])
    np.save(tmp_path / "train.npy", images[:80])
    np.save(tmp_path / "samples.npy", images[80:])
    compute_reference(tmp_path / "train.npy", mp, seed=0, device="cpu", out=tmp_path / "ref.npz")
    result = analyze("x", tmp_path / "samples.npy", tmp_path / "ref.npz", mp, "cpu", tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())["fid"] == result["fid"]

    ref = load_reference(tmp_path / "ref.npz")
    feats = extract_features("randinit", images[80:], 40)
    assert result["fid"] == fid(ref["features"], feats)
    assert result["bootstrap"]["fid"] == fid_bootstrap(ref["features"], feats, 10, seed=0).to_dict()
    assert result["bootstrap"]["kid"] == kid_bootstrap(ref["features"], feats, 10, seed=0).to_dict()
    assert {k: result[k] for k in ("precision", "recall", "density", "coverage")} == prdc(ref["features"], feats)
    mean, std = kid(ref["features"], feats, 4, 30, seed=0)
    assert result["kid_subsets"]["mean"] == pytest.approx(mean, rel=0, abs=1e-12)
    assert result["kid_subsets"]["std"] == pytest.approx(std, rel=0, abs=1e-12)
    assert result["colour_moments"]["generated"] == colour_moments(images[80:])
    hists = histograms(images[80:], 16)
    assert all(result["histograms"]["generated"][c] == hists[c].tolist() for c in hists)


def test_the_analyze_modules_do_not_import_torch_fidelity_or_torchvision():
    """Importing torch-fidelity imports torchvision and torch._dynamo: seconds of start-up that
    every analyze run paid before issue 30 for two lines of numpy."""
    code = ("import sys, rnngan.evaluation, rnngan.metrics.bootstrap, rnngan.metrics.analysis; "
            "print(sorted(m for m in ('torch_fidelity', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_analysis_names_the_parts_the_profile_times():
    """benchmarks/analyze_profile.py times these by name; renaming one would silently drop a part."""
    from rnngan.metrics import prdc as prdc_module

    for name in ("fid_part", "fid_bootstrap_part", "kid_part", "manifold_pass", "feature_analysis"):
        assert callable(getattr(analysis, name))
    assert callable(prdc_module.block_product)


@pytest.mark.parametrize("name", ["randinit", "pixels"])
def test_features_and_attribute_predictions_do_not_depend_on_batches_running_side_by_side(name):
    """On CPU, batches run on a pool of threads, one torch thread each: the numbers of one batch
    after another on one thread, bit for bit."""
    from rnngan.metrics.attributes import AttributeNet, predict
    from rnngan.metrics.features import extract_features

    images = np.random.default_rng(3).integers(0, 256, (70, 16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)
    net = AttributeNet(6, 16, 8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = extract_features(name, images, batch_size=16), predict(net, images, 16, "cpu")
        torch.set_num_threads(2)
        pool = extract_features(name, images, batch_size=16), predict(net, images, 16, "cpu")
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one[0], pool[0]) and np.array_equal(one[1], pool[1])

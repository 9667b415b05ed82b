"""The compare stage: statistics over seeds, seed-level tests and tiers, and what the report
and export read from it; on synthetic runs whose numbers the tests choose."""
import json

import numpy as np
import pytest
from scipy import stats

from rnngan.comparison import ComparisonError, compare_runs, median_run, medians
from rnngan.report import metrics_json, verdict
from rnngan.statistics import holm
from runs import ROUNDS, params_for, write_runs


def test_seed_tests_are_welch_on_the_per_seed_values_holm_adjusted(tmp_path):
    fids = {"rnn": [10.0, 11.0, 12.0], "lstm": [14.0, 15.0, 13.5], "gru": [10.5, 12.0, 11.0]}
    models, metrics = write_runs(tmp_path, fids)
    c = compare_runs(params_for(list(fids), [0, 1, 2]), models, metrics)
    assert c["training_variation_measured"] and not c["provisional"]
    pairs = c["tests"]["fid"]["pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [("rnn", "lstm"), ("rnn", "gru"), ("lstm", "gru")]
    ref = [stats.ttest_ind(fids[p["a"]], fids[p["b"]], equal_var=False) for p in pairs]
    assert [p["seeds"]["t"] for p in pairs] == pytest.approx([r.statistic for r in ref], rel=1e-12)
    assert [p["seeds"]["p"] for p in pairs] == pytest.approx([r.pvalue for r in ref], rel=1e-10)
    assert [p["seeds"]["p_holm"] for p in pairs] == pytest.approx(holm([r.pvalue for r in ref]))
    s = c["per_variant"]["lstm"]["summary"]["fid"]
    assert s["mean"] == pytest.approx(np.mean(fids["lstm"])) and s["std"] == pytest.approx(np.std(fids["lstm"], ddof=1))
    assert (s["min"], s["max"], s["n"], s["values"]) == (13.5, 15.0, 3, fids["lstm"])
    # a tier splits only where the seed-level test is significant, and never otherwise
    for p in pairs:
        if not p["seeds"]["significant"]:
            n = p["seeds"]["seeds_for_80_power"]
            assert p["better"] is None and (n is None or n > 3)
    tiers = c["tests"]["fid"]["tiers"]
    better = {(p["a"], p["b"]): p["better"] for p in pairs}
    for upper, lower in zip(tiers, tiers[1:]):
        assert better.get((upper[0], lower[0]), better.get((lower[0], upper[0]))) == upper[0]


def test_a_difference_the_sample_bootstrap_calls_significant_but_the_seeds_do_not_is_not_ranked(tmp_path):
    # b is 1 point worse than a on every seed-paired draw, but the seeds spread by 2 points: the
    # paired sample bootstrap (shared real resamples, little noise of its own) sees the 1 point
    # as certain, the seeds see nothing
    shared = np.random.default_rng(1).normal(0, 0.1, ROUNDS)
    fids = {"rnn": [10.0, 14.0, 12.0], "lstm": [11.0, 15.0, 13.0]}
    models, metrics = write_runs(tmp_path, fids, noise=0.01, shared=shared)
    params = params_for(["rnn", "lstm"], [0, 1, 2])
    c = compare_runs(params, models, metrics)
    (pair,) = c["tests"]["fid"]["pairs"]
    assert pair["samples"]["significant"] and pair["samples"]["p"] < 1e-6
    assert not pair["seeds"]["significant"] and pair["seeds"]["p"] > 0.5
    assert pair["better"] is None and c["tests"]["fid"]["tiers"] == [["rnn", "lstm"]]
    assert pair["seeds"]["seeds_for_80_power"] > 3     # an open question, and how many seeds would close it
    summary = metrics_json(params, c)
    assert summary["cells"]["rnn"]["fid_tier"] == summary["cells"]["lstm"]["fid_tier"] == 1
    assert verdict("rnn", c, "fid", "FID", 2, 1.0).startswith("**FID:** no variant is separated")
    # the seed spread is far wider than the bootstrap's, and the report's numbers say so
    s = c["per_variant"]["rnn"]["summary"]["fid"]
    assert s["std"] == pytest.approx(2.0) and s["bootstrap_width"] < 1.0


def test_one_seed_is_provisional_and_ranked_by_the_sample_bootstrap_alone(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0], "lstm": [20.0]}, noise=0.3)
    params = params_for(["rnn", "lstm"], [0])
    c = compare_runs(params, models, metrics)
    assert c["provisional"] and not c["training_variation_measured"]
    test = c["tests"]["fid"]
    assert test["basis"] == "samples" and test["pairs"][0]["seeds"] is None
    assert test["tiers"] == [["rnn"], ["lstm"]]
    summary = metrics_json(params, c)
    run = json.loads((metrics / "rnn-0.json").read_text())
    assert summary["interval"] == "bootstrap" and summary["fid_std"] is None
    assert [summary["fid_lo"], summary["fid_hi"]] == pytest.approx(run["fid_interval"], abs=1e-4)
    assert "provisional, training variation not measured" in verdict("lstm", c, "fid", "FID", 2, 1.0)
    # precision etc. have no bootstrap: with one seed they are not ranked at all
    assert c["tests"]["recall"]["basis"] is None and c["tests"]["recall"]["tiers"] == [["rnn", "lstm"]]


def test_the_median_run_is_the_middle_fid_of_the_seeds(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 14.0, 12.0], "lstm": [3.0, 1.0]})
    c = compare_runs(params_for(["rnn"], [0, 1, 2]), models, metrics)
    assert medians(c) == {"rnn": "rnn-2"} and median_run(medians(c), "rnn") == "rnn-2"
    with pytest.raises(ComparisonError, match="no run of variant 'gru' was compared; the comparison has rnn"):
        median_run(medians(c), "gru")


def test_a_missing_run_or_a_run_against_another_reference_is_refused(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 11.0], "lstm": [12.0, 13.0]})
    with pytest.raises(ComparisonError, match=r"metrics/rnn-2.json: metrics of run rnn-2 missing; run `dvc repro`"):
        compare_runs(params_for(["rnn", "lstm"], [0, 1, 2]), models, metrics)
    m = json.loads((metrics / "lstm-1.json").read_text())
    m["bootstrap"]["fid"]["real_digest"] = "other"
    (metrics / "lstm-1.json").write_text(json.dumps(m))
    with pytest.raises(ComparisonError, match="lstm-1 and rnn-0 were not evaluated against the same reference"):
        compare_runs(params_for(["rnn", "lstm"], [0, 1]), models, metrics)


def test_the_real_row_is_in_the_comparison_and_the_metrics_file(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 11.0], "lstm": [12.0, 13.0]}, real_fid=0.13)
    params = params_for(["rnn", "lstm"], [0, 1])
    c = compare_runs(params, models, metrics)
    assert c["real"]["fid"] == 0.13 and c["real"]["recall"] == 0.95
    summary = metrics_json(params, c)
    assert summary["real"]["fid"] == 0.13 and summary["real"]["coverage"] == 0.97
    assert set(summary["cells"]["rnn"]) >= {"fid", "fid_lo", "fid_hi", "fid_std", "kid_std", "seeds", "fid_tier"}
    assert summary["cells"]["rnn"]["w1_hue"] is None     # NaN is not JSON

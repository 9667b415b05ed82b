"""The compare stage: statistics over seeds, seed-level tests and tiers, and what the report
and export read from it; on synthetic runs whose numbers the tests choose."""
import json

import numpy as np
import pytest
from scipy import stats

from rnngan.comparison import ComparisonError, compare_runs, median_run, medians
from rnngan.report.values import metrics_json
from rnngan.report.verdict import verdict
from rnngan.statistics import holm
from runs import ROUNDS, attributes_of, metrics_of, params_for, write_runs


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


def _with_attributes(metrics, values: dict[str, list[tuple[float, int]]], real=(0.02, 8)) -> None:
    """Add attribute blocks (TV, modes produced) to the runs write_runs wrote."""
    for variant, per_seed in {**values, "real": [real]}.items():
        for seed, (tv, produced) in enumerate(per_seed):
            path = metrics / ("real.json" if variant == "real" else f"{variant}-{seed}.json")
            m = json.loads(path.read_text())
            m["attributes"] = attributes_of(tv, produced, kl=tv * 10)
            path.write_text(json.dumps(m))


def test_attribute_coverage_is_summarised_and_tested_over_seeds_when_every_run_has_it(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 11.0, 10.5], "dcgan": [9.0, 9.5, 9.2]})
    _with_attributes(metrics, {"rnn": [(0.30, 2), (0.32, 3), (0.31, 2)], "dcgan": [(0.05, 7), (0.06, 8), (0.05, 7)]})
    c = compare_runs(params_for(["rnn", "dcgan"], [0, 1, 2]), models, metrics)
    assert c["attributes"] == {"measured": True, "reason": None}
    tv = c["per_variant"]["rnn"]["summary"]["attr_tv"]
    assert tv["values"] == [0.30, 0.32, 0.31] and tv["mean"] == pytest.approx(0.31)
    ref = stats.ttest_ind([0.30, 0.32, 0.31], [0.05, 0.06, 0.05], equal_var=False)
    assert c["tests"]["attr_tv"]["pairs"][0]["seeds"]["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert c["tests"]["attr_tv"]["tiers"] == [["dcgan"], ["rnn"]]             # lower TV is better
    assert c["tests"]["attr_modes"]["tiers"] == [["dcgan"], ["rnn"]]          # more modes is better
    assert c["per_variant"]["dcgan"]["attribute_frequency"]["Male"] == pytest.approx(0.5 + np.mean([0.05, 0.06, 0.05]))
    assert c["real"]["attr_modes"] == 1.0
    summary = metrics_json(params_for(["rnn", "dcgan"], [0, 1, 2]), c)
    assert summary["cells"]["rnn"]["attr_tv"] == 0.31 and summary["real"]["attr_tv"] == 0.02


def test_without_attributes_on_every_run_nothing_is_tested_on_them_and_the_reason_is_kept(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 11.0], "lstm": [12.0, 13.0]})
    real = json.loads((metrics / "real.json").read_text())
    real["attributes"] = {"available": False, "reason": "lsun_bedroom publishes no attribute labels"}
    (metrics / "real.json").write_text(json.dumps(real))
    c = compare_runs(params_for(["rnn", "lstm"], [0, 1]), models, metrics)
    assert c["attributes"] == {"measured": False, "reason": "lsun_bedroom publishes no attribute labels"}
    assert "attr_tv" not in c["tests"] and "attr_tv" not in c["per_variant"]["rnn"]["summary"]
    assert "attr_tv" not in metrics_json(params_for(["rnn", "lstm"], [0, 1]), c)["cells"]["rnn"]


def test_every_seed_level_interval_stays_inside_its_metrics_range(tmp_path):
    """A collapsed seed (FID 20.85 beside 6.61) and KIDs at zero once gave FID [-5.52, 30.92] and
    KID intervals below zero; the intervals are now log-t for FID and KID, cut to [0, 1] for the rest."""
    fids = {"rnn": [6.61, 20.85, 10.65], "gru": [9.47, 8.46, 11.59]}
    models, metrics = write_runs(tmp_path, fids, real_fid=0.13)
    for name in ("gru-0", "gru-1", "gru-2"):      # recall 0.000 on every seed but one
        m = json.loads((metrics / f"{name}.json").read_text())
        m["recall"] = 0.004 if name == "gru-0" else 0.0
        (metrics / f"{name}.json").write_text(json.dumps(m))
    real = json.loads((metrics / "real.json").read_text())
    real["kid"], real["kid_interval"] = -0.00002, [-0.0003, 0.0008]
    (metrics / "real.json").write_text(json.dumps(real))
    params = params_for(["rnn", "gru"], [0, 1, 2])
    c = compare_runs(params, models, metrics)
    fid = c["per_variant"]["rnn"]["summary"]["fid"]
    assert fid["method"] == "log t" and 0 < fid["lo"] < fid["mean"] < fid["hi"]
    recall = c["per_variant"]["gru"]["summary"]["recall"]
    assert recall["method"] == "t, clipped" and recall["lo"] == 0.0
    for v in c["variants"]:
        for key, s in c["per_variant"][v]["summary"].items():
            low, high = {"fid": (0, np.inf), "kid": (0, np.inf), "density": (0, np.inf)}.get(key, (0, 1))
            assert low <= s["lo"] <= s["hi"] <= high, (v, key, s)
    assert c["real"]["kid_interval"] == [-0.0003, 0.0008]   # the compare stage keeps analyze's numbers
    summary = metrics_json(params, c)
    assert (summary["real"]["kid"], summary["real"]["kid_lo"]) == (0.0, 0.0)     # the report shows MMD² >= 0
    for values in [*summary["cells"].values(), summary["real"]]:
        assert 0 <= values["fid_lo"] <= values["fid"] <= values["fid_hi"] and 0 <= values["kid_lo"] <= values["kid_hi"]

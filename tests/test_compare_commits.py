"""The comparison behind benchmarks/compare_commits.py: the JSON diff with its ignore list, the tensor
diff, the table and the params overrides. (The script itself runs the pipeline twice; not run here.)"""
import pytest
import torch

from conftest import PROJECT, benchmark_module


@pytest.fixture(scope="module")
def cc():
    yield from benchmark_module("compare_commits")


METRICS = {"fid": 8.439, "kid": 0.032191, "count": 64, "cell": "lstm", "finite": True,
           "histogram_distances": {"grey": {"w1": 8.9051}}, "fid_interval": [4.5027, 12.3754],
           "train_seconds": 110.5, "environment": {"cpu_model": "Xeon", "threads": 2}}


def test_identical_json_has_no_difference_and_counts_every_number(cc):
    t = cc.diff_tree(METRICS, {**METRICS})
    assert t.differences == [] and t.tensors == 0
    assert t.numbers == 6   # fid, kid, count, w1 and the two interval ends: not the bool, not the ignored keys


def test_a_change_in_the_last_digit_is_a_difference_named_by_its_dotted_key(cc):
    b = {**METRICS, "histogram_distances": {"grey": {"w1": 8.9052}}, "fid_interval": [4.5027, 12.3755]}
    t = cc.diff_tree(METRICS, b)
    assert t.differences == [("fid_interval[1]", 12.3754, 12.3755), ("histogram_distances.grey.w1", 8.9051, 8.9052)]


def test_ignored_keys_are_skipped_at_any_depth_and_nothing_else_is(cc):
    b = {**METRICS, "train_seconds": 99.0, "environment": {"cpu_model": "EPYC", "torch": "3.0"},
         "nested": {"seconds": 2}}
    a = {**METRICS, "nested": {"seconds": 1}}
    assert cc.diff_tree(a, b).differences == []
    assert {"seconds", "train_seconds", "images_per_s", "environment"} <= cc.IGNORED_KEYS
    # the same change under a key not on the list is a difference
    assert cc.diff_tree({"x": {"secs": 1}}, {"x": {"secs": 2}}).differences == [("x.secs", 1, 2)]


def test_missing_keys_other_types_and_lengths_are_differences(cc):
    t = cc.diff_tree({"a": 1, "b": [1, 2], "c": "lstm", "d": True},
                     {"b": [1], "c": "gru", "d": 1, "e": None})
    assert [d[0] for d in t.differences] == ["a", "b (length)", "c", "d", "e"]


def test_nan_equals_nan_but_not_a_number(cc):
    nan = float("nan")
    assert cc.diff_tree({"x": nan}, {"x": nan}).differences == []
    assert cc.diff_tree({"x": nan}, {"x": 1.0}).differences == [("x", nan, 1.0)]


def test_tensors_must_be_bit_equal_with_the_same_dtype_and_shape(cc):
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    g = {"config": {"cell": "lstm", "hidden": 16}, "state_dict": {"w": w, "n": torch.tensor(6)}}
    same = {"config": {"cell": "lstm", "hidden": 16}, "state_dict": {"w": w.clone(), "n": torch.tensor(6)}}
    t = cc.diff_tree(g, same)
    assert (t.tensors, t.tensor_differences, t.differences, t.numbers) == (2, 0, [], 1)

    nudged = w.clone()
    nudged[1, 2] = torch.nextafter(nudged[1, 2], torch.tensor(float("inf")))   # one ulp
    for other in (nudged, w.double(), w.reshape(4, 3)):
        t = cc.diff_tree(g, {**same, "state_dict": {"w": other, "n": torch.tensor(6)}})
        assert t.tensor_differences == 1 and [d[0] for d in t.differences] == ["state_dict.w"], other
    t = cc.diff_tree(g, {"config": {"cell": "lstm", "hidden": 32}, "state_dict": {"w": w}})
    assert [d[0] for d in t.differences] == ["config.hidden", "state_dict.n"]


def test_compare_trees_reports_a_file_on_one_side_only_and_the_table_shows_each_file(cc):
    a = {"metrics/lstm-0.json": METRICS, "reports/metrics.json": {"fid": 1.0}}
    b = {"metrics/lstm-0.json": {**METRICS, "fid": 8.44, "kid": 0.0322}, "models/lstm-0/generator.pt":
         {"state_dict": {"w": torch.zeros(2)}}}
    results = cc.compare_trees(a, b)
    assert list(results) == ["metrics/lstm-0.json", "models/lstm-0/generator.pt", "reports/metrics.json"]
    assert all(t.differences for t in results.values())
    table = cc.format_table(results, shown=1).splitlines()
    assert table[0].split()[:5] == ["file", "numbers", "differ", "tensors", "differ"]
    row = table[1].split()
    assert row[:5] == ["metrics/lstm-0.json", "6", "2", "0", "0"]
    assert "fid: 8.439 vs 8.44; ... 1 more" in table[1]
    assert "(file): <missing> vs present" in table[2]


def test_tiny_overrides_read_the_tests_params_and_apply_to_existing_keys_only(cc):
    source = (PROJECT / "tests" / "project.py").read_text()
    tiny = cc.tiny_overrides(source)
    assert tiny["train.steps"] == 6 and tiny["model.hidden"] == 16
    assert cc.tiny_overrides("SMALL = {}") is None
    params = {"train": {"steps": 650, "seeds": [0, 1, 2]}, "model": {"hidden": 128}}
    out = cc.apply_overrides(params, {"train.steps": 6, "train.seeds": [0]})
    assert out == {"train": {"steps": 6, "seeds": [0]}, "model": {"hidden": 128}}
    assert params["train"]["steps"] == 650   # not changed in place
    with pytest.raises(ValueError, match="train.stepz"):
        cc.apply_overrides(params, {"train.stepz": 6})

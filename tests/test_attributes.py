"""Mode coverage on attributes: the classifier stage, the numbers it gives, and what it refuses."""
import json
import subprocess
import sys

import numpy as np
import pytest

from rnngan.attributes import build_attributes, load_attributes, score_attributes, split_labels
from rnngan.config import AttributesParams, MetricsParams
from rnngan.data import celeba_format as cf
from rnngan.subsets import reference_indices
from rnngan.metrics.attributes import attribute_scores, balanced_accuracy, kl_to_real, mode_codes, mode_counts

AP = AttributesParams(epochs=15, batch_size=64, modes=4)


def test_balanced_accuracy_is_one_half_for_a_constant_guess_whatever_the_base_rate():
    truth = np.zeros((100, 2), bool)
    truth[:2, 0] = True          # a 2% attribute
    truth[:50, 1] = True         # a 50% one
    never = np.zeros_like(truth)
    assert np.allclose(balanced_accuracy(never, truth), 0.5)
    assert np.mean(never[:, 0] == truth[:, 0]) == 0.98         # what plain accuracy would call it
    assert np.allclose(balanced_accuracy(truth, truth), 1.0)


def test_modes_pack_each_column_as_one_bit():
    labels = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1]], bool)
    assert mode_codes(labels).tolist() == [0, 1, 6, 7, 7]
    assert mode_counts(labels).tolist() == [1, 1, 0, 0, 0, 0, 1, 2]


def test_kl_is_near_zero_on_the_real_joint_and_grows_as_modes_are_dropped():
    real = np.array([400, 300, 200, 100])
    assert kl_to_real(real, real) < 1e-3
    dropped = np.array([400, 300, 0, 0])
    collapsed = np.array([700, 0, 0, 0])
    assert 0 < kl_to_real(dropped, real) < kl_to_real(collapsed, real)
    # exact: KL(p || q) with q smoothed by 0.5 per combination
    p, q = dropped / 700, (real + 0.5) / 1002
    assert kl_to_real(dropped, real) == pytest.approx(sum(p[i] * np.log(p[i] / q[i]) for i in (0, 1)))


def _spec(labels: np.ndarray, names: list[str], modes: list[str]) -> dict:
    cols = [names.index(a) for a in modes]
    return {"kept": names, "real_frequency": dict(zip(names, labels.mean(0).tolist())),
            "modes": {"attributes": modes, "real_counts": mode_counts(labels[:, cols]).tolist()}}


def test_scores_of_the_real_labels_are_perfect_and_a_generator_without_one_attribute_loses_its_modes():
    rng = np.random.default_rng(0)
    names = ["A", "B", "C"]
    real = rng.random((4000, 3)) < [0.5, 0.3, 0.2]
    spec = _spec(real, names, ["A", "B", "C"])
    same = attribute_scores(real, spec)
    assert same["tv_mean"] == pytest.approx(0) and same["modes"]["produced"] == same["modes"]["real_modes"] == 8
    assert same["modes"]["fraction"] == 1 and same["modes"]["kl"] < 1e-3
    never_c = real.copy()
    never_c[:, 2] = False                     # the generator never draws attribute C
    dropped = attribute_scores(never_c, spec)
    assert dropped["tv"]["C"] == pytest.approx(real[:, 2].mean()) and dropped["tv"]["A"] == 0
    assert dropped["tv_worst"] == "C" and dropped["tv_mean"] == pytest.approx(real[:, 2].mean() / 3)
    assert dropped["modes"]["produced"] == 4 and dropped["modes"]["fraction"] == 0.5
    assert dropped["modes"]["kl"] > 0.1
    with pytest.raises(ValueError, match="N x 3"):
        attribute_scores(real[:, :2], spec)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """600 synthfaces in CelebA's layout, preprocessed at 16 px, with a reference subset."""
    from rnngan.data.preprocess import preprocess
    from rnngan.data.synthfaces import write_synthfaces
    from rnngan.evaluation import compute_reference

    root = tmp_path_factory.mktemp("attributes")
    write_synthfaces(root / "raw", 600, 0, workers=1)
    preprocess("synthfaces", root / "raw", root / "prepared", 16, workers=1)
    mp = MetricsParams(real_count=380, batch_size=100, bins=16, kid_subsets=5, kid_subset_size=20, bootstrap=10)
    compute_reference(root / "prepared" / "train.npy", mp, seed=0, device="cpu", out=root / "ref.npz")
    summary = build_attributes("synthfaces", root / "raw", root / "prepared", mp.real_count, AP, 0, "cpu",
                               root / "attributes")
    return root, summary


def test_labels_follow_the_rows_preprocess_wrote(drawn):
    root, _ = drawn
    labels = split_labels(root / "raw", root / "prepared")
    names, values = cf.read_attributes(root / "raw" / cf.ATTR_FILE)
    by_name = dict(zip(names, values > 0))
    with open(root / "prepared" / "index.csv") as f:
        rows = [line.strip().split(",") for line in f][1:]
    for split, row, image in rows[::37]:
        assert np.array_equal(labels[split][int(row)], by_name[image])
    assert sum(len(v) for v in labels.values()) == 600


def test_the_classifier_keeps_what_it_recognises_on_val_and_names_why_it_dropped_the_rest(drawn):
    root, summary = drawn
    saved = json.loads((root / "attributes" / "attributes.json").read_text())
    assert saved == summary and saved["available"]
    assert saved["trained_on"]["images"] == 380           # the reference subset, not all of train
    with np.load(root / "ref.npz") as z:                  # ... the very rows the reference drew
        assert np.array_equal(reference_indices(len(np.load(root / "prepared" / "train.npy")), 380, 0), z["indices"])
    kept, dropped = saved["kept"], saved["dropped"]
    assert kept and sorted(kept + list(dropped)) == sorted(cf.ATTRIBUTES)
    for name in kept:
        e = saved["per_attribute"][name]
        assert e["balanced_accuracy"] >= AP.min_accuracy and 5 <= e["val_positives"] <= saved["measured_on"]["images"] - 5
    for name, reason in dropped.items():
        assert ("constant" in reason or f"< attributes.min_accuracy={AP.min_accuracy}" in reason
                or "too few validation images" in reason)
    assert any("constant" in r for r in dropped.values())   # synthfaces never draws e.g. Attractive
    modes = saved["modes"]
    assert len(modes["attributes"]) == min(AP.modes, len(kept)) and set(modes["attributes"]) <= set(kept)
    assert sum(modes["real_counts"]) == modes["real_images"] and modes["real_modes"] >= 2
    # the most balanced: no kept attribute outside the modes is closer to 1/2 than one inside
    worst_inside = max(abs(saved["real_frequency"][a] - 0.5) for a in modes["attributes"])
    assert all(abs(saved["real_frequency"][a] - 0.5) >= worst_inside for a in kept if a not in modes["attributes"])


def test_held_out_real_faces_score_near_the_floor_and_constant_images_far_from_it(drawn):
    root, summary = drawn
    held = np.load(root / "prepared" / "val.npy")
    real = score_attributes(root / "attributes", held, 50, "cpu")
    assert real["available"] and real["count"] == len(held)
    flat = np.repeat(held[:1], len(held), axis=0)          # one face, repeated: a collapsed generator
    collapsed = score_attributes(root / "attributes", flat, 50, "cpu")
    assert collapsed["modes"]["produced"] == 1
    assert collapsed["tv_mean"] > 2 * real["tv_mean"] and collapsed["modes"]["kl"] > real["modes"]["kl"] + 0.5
    assert real["modes"]["produced"] > 1


def test_the_real_side_is_the_classifiers_predictions_so_the_reference_scores_itself_perfectly(drawn):
    """TV, modes and KL compare predictions with predictions: the reference images, scored as a
    generator's samples are, match the real side exactly (labels would put the classifier's own
    errors into every number)."""
    root, summary = drawn
    with np.load(root / "ref.npz") as z:
        idx = z["indices"]
    reference = np.load(root / "prepared" / "train.npy")[idx]
    scored = score_attributes(root / "attributes", reference, 50, "cpu")
    assert scored["tv_mean"] < 1e-3
    assert scored["modes"]["produced"] == scored["modes"]["real_modes"] and scored["modes"]["kl"] < 0.01
    assert summary["modes"]["real_images"] == len(idx)
    labels = [summary["per_attribute"][a]["real_frequency"] for a in summary["kept"]]
    predicted = [summary["real_frequency"][a] for a in summary["kept"]]
    assert labels != predicted, "a classifier that errs nowhere would not test this"


def test_a_dataset_without_labels_gets_a_summary_saying_why_and_analyze_skips_it(tmp_path):
    summary = build_attributes("lsun_bedroom", tmp_path / "raw", tmp_path / "prepared", 100, AP, 0, "cpu",
                               tmp_path / "attributes")
    assert not summary["available"] and "publishes no attribute labels" in summary["reason"]
    assert sorted(p.name for p in (tmp_path / "attributes").iterdir()) == ["attributes.json"]
    scored = score_attributes(tmp_path / "attributes", np.zeros((4, 16, 16, 3), np.uint8), 2, "cpu")
    assert scored == {"available": False, "reason": summary["reason"]}


def test_a_classifier_of_another_image_size_is_refused(drawn):
    from rnngan.config import ParamsError

    root, _ = drawn
    with pytest.raises(ParamsError, match="trained at 16 px, the images are 32 px"):
        score_attributes(root / "attributes", np.zeros((4, 32, 32, 3), np.uint8), 2, "cpu")
    summary, net = load_attributes(root / "attributes")
    assert net is not None and not net.training


def test_an_attribute_file_of_other_images_stops_the_stage_and_writes_nothing(drawn, tmp_path):
    import shutil

    root, _ = drawn
    raw = tmp_path / "raw"
    shutil.copytree(root / "raw", raw)
    names, values = cf.read_attributes(raw / cf.ATTR_FILE)
    cf.write_attributes(raw / cf.ATTR_FILE, [f"9{n}" for n in names], values)   # other file names
    out = tmp_path / "attributes"
    cmd = [sys.executable, "-m", "stages.attributes", "--params", str(tmp_path / "params.yaml"), "--raw", str(raw),
           "--prepared", str(root / "prepared"), "--out", str(out)]
    (tmp_path / "params.yaml").write_text("attributes:\n  epochs: 1\n")
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=__import__("pathlib").Path(__file__).parents[1])
    assert result.returncode == 2, result.stderr
    assert "list_attr_celeba.txt has no attributes for" in result.stderr and "does not belong" in result.stderr
    assert not out.exists()

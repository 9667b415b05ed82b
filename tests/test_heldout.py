"""The held-out real row: which real images it takes, and that real images score at the floor."""
import json

import numpy as np
import pytest

from rnngan.config import MetricsParams, ParamsError, SampleParams
from rnngan.evaluation import analyze, compute_reference
from rnngan.heldout import heldout_images, score_heldout

MP = MetricsParams(real_count=60, batch_size=50, bins=16, kid_subsets=5, kid_subset_size=20, bootstrap=10)


def faces(n: int, seed: int) -> np.ndarray:
    """Smooth random images (blurred noise), so that features see structure, not white noise."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return np.stack([cv2.resize(x, (16, 16), interpolation=cv2.INTER_LINEAR) for x in small])


@pytest.fixture
def prepared(tmp_path):
    folder = tmp_path / "prepared"
    folder.mkdir()
    pool = faces(200, 0)     # one distribution, split as preprocess would
    np.save(folder / "train.npy", pool[:140])
    np.save(folder / "val.npy", pool[140:170])
    np.save(folder / "test.npy", pool[170:])
    compute_reference(folder / "train.npy", MP, seed=0, device="cpu", out=tmp_path / "ref.npz")
    return folder


def test_heldout_takes_test_then_train_rows_the_reference_did_not_use_and_never_val(prepared, tmp_path):
    """val chose the attribute classifier (its balanced accuracy there), so it is not unseen."""
    images, taken = heldout_images(prepared, tmp_path / "ref.npz", 100)
    assert taken == {"test": 30, "train (not in the reference)": 70}
    with np.load(tmp_path / "ref.npz") as z:
        used = set(z["indices"].tolist())
    train = np.load(prepared / "train.npy")
    unused = [i for i in range(140) if i not in used]
    assert len(used) == 60
    assert np.array_equal(images[:30], np.load(prepared / "test.npy"))
    assert np.array_equal(images[30:], train[unused[:70]])
    assert not any(np.array_equal(images[k], train[i]) for k in range(30, 100) for i in used)
    val = np.load(prepared / "val.npy")
    assert not any(np.array_equal(image, v) for image in images for v in val)


def test_heldout_scores_like_a_run_and_real_images_land_near_the_floor(prepared, tmp_path):
    sp = SampleParams(count=80, grid=16)
    out = tmp_path / "metrics" / "real.json"
    result = score_heldout(prepared, tmp_path / "ref.npz", sp, MP, "cpu", tmp_path / "real.npy",
                           tmp_path / "real.png", out)
    saved = json.loads(out.read_text())
    assert saved["cell"] == "real" and saved["count"] == 80 and saved["sources"] == result["sources"]
    assert (tmp_path / "real.png").is_file() and np.load(tmp_path / "real.npy").shape == (80, 16, 16, 3)
    # held-out images of the same distribution: high recall and coverage; noise scores far worse
    assert saved["recall"] > 0.5 and saved["coverage"] > 0.5
    np.save(tmp_path / "noise.npy", np.random.default_rng(1).integers(0, 256, (80, 16, 16, 3), dtype=np.uint8))
    noise = analyze("noise", tmp_path / "noise.npy", tmp_path / "ref.npz", MP, "cpu", tmp_path / "noise.json")
    assert noise["fid"] > 1.5 * saved["fid"] and noise["coverage"] < 0.5 * saved["coverage"]


def test_one_real_set_against_itself_is_at_the_floor(prepared, tmp_path):
    """The reference's own images as 'samples': FID 0, precision = recall = coverage = 1, and KID
    at or just below 0 (the cross term then pairs images with themselves, which no estimate of
    two independent sets does)."""
    with np.load(tmp_path / "ref.npz") as z:
        idx = z["indices"]
    np.save(tmp_path / "same.npy", np.load(prepared / "train.npy")[idx])
    r = analyze("same", tmp_path / "same.npy", tmp_path / "ref.npz", MP, "cpu", tmp_path / "same.json")
    assert r["fid"] == pytest.approx(0.0, abs=1e-6)
    assert -0.01 < r["kid"] <= 0
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0


def test_too_few_held_out_images_is_a_clear_error_and_writes_nothing(prepared, tmp_path):
    mp = MetricsParams(real_count=140, batch_size=50, bins=16, kid_subsets=5, kid_subset_size=100, bootstrap=10)
    compute_reference(prepared / "train.npy", mp, seed=0, device="cpu", out=tmp_path / "all.npz")
    with pytest.raises(ParamsError, match=r"only 30 real images lie outside the reference subset \(test "
                                          r"30\); metrics.kid_subset_size=100 needs at least that many"):
        score_heldout(prepared, tmp_path / "all.npz", SampleParams(count=100, grid=16), mp, "cpu",
                      tmp_path / "r.npy", tmp_path / "r.png", tmp_path / "r.json")
    assert not any((tmp_path / n).exists() for n in ("r.npy", "r.png", "r.json"))


def test_a_reference_without_its_indices_asks_for_a_rerun(prepared, tmp_path):
    with np.load(tmp_path / "ref.npz") as z:
        old = {k: z[k] for k in z.files if k != "indices"}
    np.savez(tmp_path / "old.npz", **old)
    with pytest.raises(ParamsError, match="does not record which train images it used .* rerun the reference stage"):
        heldout_images(prepared, tmp_path / "old.npz", 10)

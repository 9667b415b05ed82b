"""End to end: `dvc repro` with data.source pointing at a tiny local copy of each dataset, in the
publisher's format (tests/formats.py), through every stage to the report."""
import json

import numpy as np
import pytest

import formats as F
from project import make_repo, stages_run

pytestmark = pytest.mark.e2e

TINY = {
    "augment": {"copies": 2, "real": "cached"},   # the cached real side, two draws per image
    "model": {"cell": "gru", "variants": ["gru"], "hidden": 16, "nf": 8, "z_dim": 8, "timesteps": 2},
    "train": {"seeds": [0], "steps": 4, "batch_size": 8, "log_every": 2, "grid_every": 2},
    "sample": {"count": 32, "grid": 16},
    # a small reference, so that even LSUN's 12 + 3 images leave some held out for the real row
    "metrics": {"real_count": 6, "batch_size": 16, "bins": 16, "kid_subsets": 3, "kid_subset_size": 4,
                "bootstrap": 10},
    "attributes": {"epochs": 2, "batch_size": 8},
}


def build_source(dataset: str, root):
    if dataset == "celeba":
        paths = F.write_celeba_drive_folder(root / "CelebA", count=40)
        return paths["img_align_celeba.zip"].parents[1]
    if dataset == "lsun_bedroom":
        F.write_lsun(root / "lsun", train=12, val=3)
        return root / "lsun" / "bedroom_train_lmdb.zip"     # just the train zip, as many users have
    F.write_cityscapes(root / "tree", per_city=2)
    return F.zip_cityscapes(root / "tree", root / "leftImg8bit_trainvaltest.zip")


@pytest.mark.parametrize("dataset, expected_train", [("celeba", None), ("lsun_bedroom", 12), ("cityscapes", 8)])
def test_dvc_repro_runs_every_stage_from_a_local_copy(dataset, expected_train, tmp_path):
    source = build_source(dataset, tmp_path / "published")
    # The fixture is not the published CelebA, so its MD5s differ: data.verify=false lets it through.
    data = {"dataset": dataset, "source": str(source), "image_size": 16, "workers": 2,
            "verify": dataset != "celeba"}
    repo = make_repo(tmp_path / "project", {**TINY, "data": data})
    result = repo.dvc("repro")
    assert stages_run(result) == {"download", "preprocess", "augment", "reference", "attributes", "train@gru-0",
                                  "sample@gru-0", "analyze@gru-0", "heldout", "compare", "report", "export"}

    stats = json.loads((repo.root / f"data/prepared/{dataset}/stats.json").read_text())
    if expected_train is not None:
        assert stats["counts"]["train"] == expected_train
    train = np.load(repo.root / f"data/prepared/{dataset}/train.npy", mmap_mode="r")
    assert train.shape[1:] == (16, 16, 3) and len(train) == stats["counts"]["train"] > 0
    manifest = json.loads((repo.root / f"data/raw/{dataset}/manifest.json").read_text())
    assert manifest["dataset"] == dataset
    metrics = json.loads((repo.root / "reports/metrics.json").read_text())
    assert metrics["cell"] == "gru" and np.isfinite(metrics["fid"])
    # CelebA publishes attributes (its 40-image copy is too small to recognise any); the others none
    attributes = json.loads((repo.root / f"data/attributes/{dataset}/attributes.json").read_text())
    md = (repo.root / "reports/report.md").read_text()
    assert not attributes["available"] and f"Not measured: {attributes['reason']}." in md
    assert ("recognises none of the 40 attributes" if dataset == "celeba" else
            f"{dataset} publishes no attribute labels") in attributes["reason"]
    # Nothing is stale afterwards.
    assert stages_run(repo.dvc("repro")) == set()

"""The report's parts on small inputs: the headline verdict, provenance, the samples figure."""
import hashlib
import json

import cv2
import numpy as np
import pytest

from rnngan.config import parse_params
from rnngan.grids import make_grid
from rnngan.report import environment, provenance, samples_figure, verdict


def summary_of(values: dict[str, tuple[float, float, float]]) -> dict:
    return {"cells": {c: {"fid": v, "fid_lo": lo, "fid_hi": hi} for c, (v, lo, hi) in values.items()}}


def comparison(a, b, diff, lo, hi, significant):
    return {"a": a, "b": b, "difference": diff, "lo": lo, "hi": hi, "significant": significant,
            "better": b if diff > 0 else a}


SUMMARY = summary_of({"rnn": (11.0, 10.5, 11.6), "lstm": (9.3, 8.8, 9.9), "gru": (7.2, 6.8, 7.4)})
SIG = {"fid": {"tiers": [["gru"], ["lstm"], ["rnn"]],
               "comparisons": [comparison("rnn", "lstm", 1.7, 1.0, 2.5, True),
                               comparison("rnn", "gru", 3.8, 3.0, 4.6, True),
                               comparison("lstm", "gru", 2.1, 1.5, 2.8, True)]}}


def test_verdict_names_the_best_variant_and_how_far_behind_the_headline_is():
    text = verdict("lstm", SUMMARY, SIG, "FID", "fid", 2)
    assert text.startswith("**FID:** best variant `gru` 7.20 [6.80, 7.40]")
    assert "`lstm` is tier 2 of 3, 2.10 [1.50, 2.80] behind `gru`." in text


def test_verdict_orients_a_comparison_stored_the_other_way_round():
    sig = {"fid": {**SIG["fid"], "comparisons": [comparison("gru", "lstm", -2.1, -2.8, -1.5, True)]}}
    assert "2.10 [1.50, 2.80] behind `gru`" in verdict("lstm", SUMMARY, sig, "FID", "fid", 2)


def test_verdict_says_so_when_the_headline_is_best_or_nothing_is_separable():
    assert "the headline is among them" in verdict("gru", SUMMARY, SIG, "FID", "fid", 2)
    tied = {"fid": {"tiers": [["rnn", "lstm", "gru"]], "comparisons": []}}
    assert verdict("lstm", SUMMARY, tied, "FID", "fid", 2) == "**FID:** no variant differs significantly from another."


def test_samples_figure_puts_every_grid_at_one_pixel_per_pixel_under_its_name(tmp_path):
    rng = np.random.default_rng(0)
    grids = {n: make_grid(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)) for n in ("real", "a", "b", "c")}
    samples_figure(grids, "b", tmp_path / "s.png", per_row=3)
    canvas = cv2.cvtColor(cv2.imread(str(tmp_path / "s.png")), cv2.COLOR_BGR2RGB)
    side = grids["real"].shape[0]
    assert canvas.shape == (2 * (28 + side) + 12, 3 * side + 2 * 12, 3)
    # each grid is in its tile, unscaled: real top-left, b (the third) top-right, c bottom-left
    assert np.array_equal(canvas[28:28 + side, :side], grids["real"])
    assert np.array_equal(canvas[28:28 + side, 2 * (side + 12):], grids["b"])
    assert np.array_equal(canvas[28 + side + 12 + 28:, :side], grids["c"])
    assert (canvas[:20, :side] < 128).any()   # a label above the grid


def test_provenance_uses_the_download_manifest_and_hashes_files_it_does_not_list(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.zip").write_bytes(b"published bytes")
    (raw / "b.txt").write_bytes(b"other bytes")
    (raw / "extra.txt").write_bytes(b"not in the manifest")
    (raw / "manifest.json").write_text(json.dumps({"files": {
        "a.zip": {"origin": "x", "md5": "m-a", "published_md5": "m-a", "verified": True},
        "b.txt": {"origin": "x", "md5": "m-b", "published_md5": "p-b", "verified": False}}}))
    params = parse_params({"data": {"dataset": "celeba", "source": str(tmp_path)}})
    p = provenance(params, raw)
    assert "`data.source`" in p["origin"]
    rows = {f["name"]: f for f in p["files"]}
    assert set(rows) == {"a.zip", "b.txt", "extra.txt"}
    assert rows["a.zip"] == {"name": "a.zip", "bytes": 15, "md5": "m-a", "checked": "matches the published MD5"}
    assert "differs from the published p-b" in rows["b.txt"]["checked"]
    assert rows["extra.txt"]["md5"] == hashlib.md5(b"not in the manifest").hexdigest()
    assert rows["extra.txt"]["checked"] == "hashed by the report"


def test_provenance_of_lsun_counts_the_unpacked_lmdb_and_says_how_it_was_checked(tmp_path):
    """LSUN's zips are unpacked into LMDB folders and deleted; the manifest lists the members and
    says they were CRC-checked (LSUN publishes no MD5s): no 'matches', no rehashing of data.mdb."""
    raw = tmp_path / "raw"
    (raw / "bedroom_train_lmdb").mkdir(parents=True)
    (raw / "bedroom_train_lmdb" / "data.mdb").write_bytes(b"x" * 100)
    (raw / "bedroom_train_lmdb" / "lock.mdb").write_bytes(b"y" * 8)
    (raw / "manifest.json").write_text(json.dumps({"files": {"bedroom_train_lmdb.zip": {
        "origin": "downloaded", "unpacked": ["bedroom_train_lmdb/data.mdb", "bedroom_train_lmdb/lock.mdb"],
        "verified": "CRC-32 of every member (LSUN publishes no checksums)"}}}))
    p = provenance(parse_params({"data": {"dataset": "lsun_bedroom"}}), raw)
    assert p["files"] == [{"name": "bedroom_train_lmdb.zip", "bytes": 108, "md5": "n/a",
                           "checked": "CRC-32 of every member (LSUN publishes no checksums)"}]
    assert p["origin"] == "the published files, downloaded from the publisher"


def test_provenance_of_synthfaces_says_it_is_drawn_not_published(tmp_path):
    (tmp_path / "img_align_celeba.zip").write_bytes(b"zip")
    p = provenance(parse_params({}), tmp_path)
    assert "procedural" in p["origin"] and "not a published dataset" in p["origin"]
    assert p["files"][0]["md5"] == hashlib.md5(b"zip").hexdigest()


def test_environment_lists_the_packages_that_matter_with_versions():
    env = environment()["packages"]
    for name in ("python", "torch", "numpy", "dvc"):
        assert env[name][0].isdigit(), (name, env[name])


@pytest.mark.parametrize("key", ["fid", "kid"])
def test_headline_values_keep_the_metrics_diff_short(key):
    from rnngan.report import headline_values

    metrics = {"fid": 9.1, "fid_interval": [8.5, 9.8], "kid": 0.04, "kid_interval": [0.03, 0.05],
               "precision": 0.5, "recall": 0.1, "density": 0.3, "coverage": 0.2, "spectral_distance": 0.07,
               "histogram_distances": {"grey": {"w1": 3.0, "js": 0.1, "ks": 0.2}},
               "hsv_distances": {"hue": {"w1": float("nan")}, "saturation": {"w1": 5.0}}}
    train = {"params_g": 10, "params_d": 5, "seconds": 1.5, "images_per_s": 100.0}
    v = headline_values(train, metrics)
    assert len(v) == 18 and v[f"{key}_lo"] < v[key] < v[f"{key}_hi"]
    assert v["w1_hue"] is None   # NaN (colourless images) is not valid JSON

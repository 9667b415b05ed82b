"""The report's parts on small inputs: seed-level verdicts, environment, provenance, samples figure."""
import hashlib
import json

import cv2
import numpy as np

from rnngan.comparison import compare_runs
from rnngan.config import parse_params
from rnngan.environment import packages
from rnngan.grids import make_grid
from rnngan.grids import save_grid
from rnngan.report.figures import samples_canvas, samples_figure, write_jpeg
from rnngan.report.markdown import render_environment
from rnngan.report.stage import provenance
from rnngan.report.verdict import verdict
from runs import attributes_of, params_for, train_of, write_runs


def comparison_of(tmp_path, fids, seeds):
    models, metrics = write_runs(tmp_path, fids, noise=0.2)
    return compare_runs(params_for(list(fids), seeds), models, metrics)


def test_verdict_names_every_separated_pair_by_winner_with_seed_means_and_where_the_headline_stands(tmp_path):
    c = comparison_of(tmp_path, {"rnn": [20.0, 21.0, 20.5], "lstm": [15.0, 15.5, 14.8], "gru": [9.0, 9.4, 8.8]},
                      [0, 1, 2])
    assert c["tests"]["fid"]["tiers"] == [["gru"], ["lstm"], ["rnn"]]
    text = verdict("lstm", c, "fid", "FID", 2, 1.0)
    assert text == ("**FID** (lower is better): `gru` 9.07 ± 0.31 is better than `lstm` 15.10 ± 0.36 and `rnn` "
                    "20.50 ± 0.50; `lstm` is better than `rnn` (Welch tests over 3 seeds, Holm-adjusted, p < 0.001); "
                    "the headline `lstm` is in tier 2 of 3.")
    assert verdict("gru", c, "fid", "FID", 2, 1.0).endswith("; the headline is in the best tier.")


def test_verdict_says_so_when_nothing_is_separable_and_how_many_seeds_would_be(tmp_path):
    c = comparison_of(tmp_path, {"rnn": [10.0, 14.0, 12.0], "lstm": [11.0, 15.0, 13.5]}, [0, 1, 2])
    n = c["tests"]["fid"]["pairs"][0]["seeds"]["seeds_for_80_power"]
    assert n > 3
    assert verdict("rnn", c, "fid", "FID", 2, 1.0) == (
        "**FID:** no variant is separated from another (Welch tests over 3 seeds, Holm-adjusted); the closest pair, "
        f"`rnn` and `lstm`, would need {n} seeds per variant for 80% power.")


def test_environment_groups_runs_by_machine_and_names_cpu_isa_blas_and_threads(tmp_path):
    c = comparison_of(tmp_path, {"rnn": [10.0, 11.0], "lstm": [12.0, 13.0]}, [0, 1])
    lines = render_environment(c, packages())
    row = next(line for line in lines if line.startswith("| all 4 |"))
    assert "Test CPU" in row and "AVX2 (avx2)" in row and "mkl 2024.2, oneDNN v3.1" in row and "1 × 2" in row
    other = train_of("lstm", 1)
    other["environment"] = {**other["environment"], "device_name": "Other CPU"}
    c["runs"]["lstm-1"]["environment"] = other["environment"]
    lines = render_environment(c, packages())
    assert any(line.startswith("| `lstm-1` | Other CPU |") for line in lines)
    assert any(line.startswith("| `rnn-0`, `rnn-1`, `lstm-0` | Test CPU |") for line in lines)
    assert any("Bit-identical numbers need the same hardware and software" in line for line in lines)


def test_samples_figure_puts_every_grid_at_one_pixel_per_pixel_under_its_name(tmp_path):
    rng = np.random.default_rng(0)
    grids = {n: make_grid(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)) for n in ("real", "a", "b", "c")}
    canvas = samples_canvas(grids, {"b": "b (headline)"}, per_row=3)
    side = grids["real"].shape[0]
    assert canvas.shape == (2 * (28 + side) + 12, 3 * side + 2 * 12, 3)
    # each grid is in its tile, unscaled: real top-left, b (the third) top-right, c bottom-left
    assert np.array_equal(canvas[28:28 + side, :side], grids["real"])
    assert np.array_equal(canvas[28:28 + side, 2 * (side + 12):], grids["b"])
    assert np.array_equal(canvas[28 + side + 12 + 28:, :side], grids["c"])
    assert (canvas[:20, :side] < 128).any()   # a label above the grid
    samples_figure(grids, {"b": "b (headline)"}, tmp_path / "s.jpg", per_row=3)
    assert (tmp_path / "s.jpg").read_bytes()[:2] == b"\xff\xd8"
    decoded = cv2.cvtColor(cv2.imread(str(tmp_path / "s.jpg")), cv2.COLOR_BGR2RGB)
    assert decoded.shape == canvas.shape


def test_sample_grids_are_jpeg_a_quarter_of_the_doubled_png_and_close_to_the_pixels(tmp_path):
    """64 faces of 32 px (a smooth image, as samples are): one pixel per pixel, JPEG 4:4:4."""
    rng = np.random.default_rng(1)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8).reshape(-1, 32, 3),
                              (5, 5), 1.5).reshape(64, 32, 32, 3)
    grid = make_grid(smooth)
    write_jpeg(grid, tmp_path / "g.jpg")
    save_grid(smooth, tmp_path / "g.png", scale=2)       # what the sample stage writes
    assert (tmp_path / "g.jpg").stat().st_size < (tmp_path / "g.png").stat().st_size / 4
    decoded = cv2.cvtColor(cv2.imread(str(tmp_path / "g.jpg")), cv2.COLOR_BGR2RGB).astype(int)
    assert decoded.shape == grid.shape and np.abs(decoded - grid).mean() < 4


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
    env = packages()["packages"]
    for name in ("python", "torch", "numpy", "dvc"):
        assert env[name][0].isdigit(), (name, env[name])


def _attribute_comparison(tmp_path):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 11.0], "dcgan": [9.0, 9.5]})
    for name, (tv, produced) in {"rnn-0": (0.3, 2), "rnn-1": (0.32, 3), "dcgan-0": (0.05, 7), "dcgan-1": (0.06, 8),
                                 "real": (0.02, 8)}.items():
        m = json.loads((metrics / f"{name}.json").read_text())
        m["attributes"] = attributes_of(tv, produced)
        (metrics / f"{name}.json").write_text(json.dumps(m))
    return compare_runs(params_for(["rnn", "dcgan"], [0, 1]), models, metrics)


SUMMARY = {"available": True, "kept": ["Male", "Smiling"], "dropped": {"Bald": "constant in the training split (frequency 0)"},
           "min_accuracy": 0.85, "trained_on": {"images": 500}, "measured_on": {"images": 100},
           "real_frequency": {"Male": 0.5, "Smiling": 0.5},
           "per_attribute": {"Male": {"real_frequency": 0.5, "balanced_accuracy": 0.97, "accuracy": 0.97},
                             "Smiling": {"real_frequency": 0.5, "balanced_accuracy": 0.95, "accuracy": 0.96},
                             "Bald": {"real_frequency": 0.0}},
           "modes": {"attributes": ["Male", "Smiling"], "k": 2, "real_images": 800, "real_modes": 8}}


def test_the_attribute_section_has_every_variant_the_real_row_the_classifier_and_the_figure(tmp_path):
    from rnngan.report.attributes import attribute_lines, attributes_figure
    from rnngan.report.verdict import tiers_text

    c = _attribute_comparison(tmp_path)
    md = "\n".join(attribute_lines(c, SUMMARY, tiers_text))
    assert "| rnn | 0.310 ± 0.014 | Male (0.320) | 0.312 ± 0.088 (2 / 3 of 8) |" in md
    assert "| dcgan | 0.055 ± 0.007 |" in md and "| *held-out real* | 0.020 | Male (0.020) | 1.000 (8 of 8) |" in md
    assert "- **attribute TV**, best first: {`dcgan`} > {`rnn`}" in md
    assert "| Bald | 0.000 | n/a | n/a | no: constant in the training split (frequency 0) |" in md
    assert "keeps 2 of 40" in md and "![attribute frequencies](figures/attributes.png)" in md
    attributes_figure(c, SUMMARY, tmp_path / "attributes.png")
    image = cv2.imread(str(tmp_path / "attributes.png"))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def test_the_attribute_section_says_why_when_nothing_was_measured(tmp_path):
    from rnngan.report.attributes import attribute_lines
    from rnngan.report.verdict import tiers_text

    c = comparison_of(tmp_path, {"rnn": [10.0, 11.0], "lstm": [12.0, 13.0]}, [0, 1])
    c["attributes"] = {"measured": False, "reason": "cityscapes publishes no attribute labels"}
    assert attribute_lines(c, {"available": False}, tiers_text)[2] == (
        "Not measured: cityscapes publishes no attribute labels.")

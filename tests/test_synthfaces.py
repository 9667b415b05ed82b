"""synthfaces: CelebA's aligned layout, determinism, landmarks and attributes true to the drawing."""
from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest

from rnngan.data import celeba_format as cf
from rnngan.data import synthfaces as sf

COUNT = 150          # more than two chunks, so chunk boundaries are exercised
FILES = (cf.IMAGE_ZIP, cf.LANDMARK_FILE, cf.ATTR_FILE, cf.PARTITION_FILE)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("RNNGAN_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One dataset written in this process, shared by the format tests."""
    out = tmp_path_factory.mktemp("synth") / "synthfaces"
    summary = sf.write_synthfaces(out, COUNT, seed=3, workers=1)
    return out, summary


def _faces(n: int, seed: int = 0):
    return [sf.draw_face(np.random.default_rng([seed, i])) for i in range(n)]


def _col(name: str) -> int:
    return cf.ATTRIBUTES.index(name)


# --------------------------------------------------------------------------- the written files

def test_written_annotation_files_parse_with_celeba_readers_and_name_the_same_images(written):
    out, summary = written
    names = [cf.image_name(i) for i in range(COUNT)]
    attr_names, attrs = cf.read_attributes(out / cf.ATTR_FILE)
    lm_names, landmarks = cf.read_landmarks(out / cf.LANDMARK_FILE)
    partition = cf.read_partition(out / cf.PARTITION_FILE)
    assert attr_names == names and lm_names == names and list(partition) == names
    assert attrs.shape == (COUNT, len(cf.ATTRIBUTES)) and set(np.unique(attrs)) <= {-1, 1}
    assert landmarks.shape == (COUNT, 5, 2)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert summary["count"] == COUNT
    assert summary["train"] + summary["val"] + summary["test"] == COUNT
    assert summary["images_per_s"] > 0 and summary["seconds"] > 0


def test_written_annotations_are_those_of_draw_face_for_the_same_seed_and_index(written):
    out, _ = written
    _, attrs = cf.read_attributes(out / cf.ATTR_FILE)
    _, landmarks = cf.read_landmarks(out / cf.LANDMARK_FILE)
    for i in (0, 77, COUNT - 1):
        _, lm, attr = sf.draw_face(np.random.default_rng([3, i]))
        np.testing.assert_array_equal(landmarks[i], np.rint(lm))   # CelebA ships integers
        np.testing.assert_array_equal(attrs[i], attr)


def test_zip_holds_the_celeba_folder_and_names_and_every_member_decodes_to_178x218(written):
    out, _ = written
    with zipfile.ZipFile(out / cf.IMAGE_ZIP) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [cf.IMAGE_DIR + "/"] + [
            f"{cf.IMAGE_DIR}/{cf.image_name(i)}" for i in range(COUNT)]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        for info in infos[1:]:
            image = cv2.imdecode(np.frombuffer(zf.read(info), np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (cf.IMAGE_HEIGHT, cf.IMAGE_WIDTH, 3)


def test_partition_is_80_10_10_by_contiguous_index_ranges_like_celeba(written):
    out, summary = written
    splits = np.array(list(cf.read_partition(out / cf.PARTITION_FILE).values()))
    assert (np.diff(splits) >= 0).all()                              # train, then val, then test
    assert (summary["train"], summary["val"], summary["test"]) == (120, 15, 15)
    assert np.bincount(sf.split_of(202_599)).tolist() == [162_079, 20_260, 20_260]


# --------------------------------------------------------------------------- determinism

def test_same_seed_gives_byte_identical_files_whatever_the_number_of_workers(written, tmp_path):
    out, _ = written
    again = tmp_path / "two_workers"
    summary = sf.write_synthfaces(again, COUNT, seed=3, workers=2)   # a real process pool
    assert summary["workers"] == 2
    for name in FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_different_seeds_give_different_faces(tmp_path):
    a = sf.write_synthfaces(tmp_path / "a", 5, seed=1, workers=1)
    b = sf.write_synthfaces(tmp_path / "b", 5, seed=2, workers=1)
    assert a["count"] == b["count"] == 5
    assert (tmp_path / "a" / cf.IMAGE_ZIP).read_bytes() != (tmp_path / "b" / cf.IMAGE_ZIP).read_bytes()


def test_draw_face_is_a_function_of_the_generator_state():
    first = sf.draw_face(np.random.default_rng([9, 4]))
    second = sf.draw_face(np.random.default_rng([9, 4]))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- atomic output

def test_an_interrupted_write_leaves_neither_output_nor_temporary_folder(tmp_path, monkeypatch):
    real = sf._draw_chunk
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt                                  # as if stopped mid-run
        return real(*args)

    monkeypatch.setattr(sf, "_draw_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        sf.write_synthfaces(tmp_path / "synthfaces", 3 * sf.CHUNK, seed=0, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_rewriting_replaces_the_old_output_whole(tmp_path):
    out = tmp_path / "synthfaces"
    sf.write_synthfaces(out, 7, seed=0, workers=1)
    (out / "stale.txt").write_text("left from an older run")
    sf.write_synthfaces(out, 4, seed=0, workers=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert len(cf.read_partition(out / cf.PARTITION_FILE)) == 4


def test_bad_arguments_are_named_errors(tmp_path):
    with pytest.raises(ValueError, match="count"):
        sf.write_synthfaces(tmp_path / "x", 0, seed=0)
    with pytest.raises(ValueError, match="workers"):
        sf.write_synthfaces(tmp_path / "x", 3, seed=0, workers=-1)
    with pytest.raises(ValueError, match="quality"):
        sf.write_synthfaces(tmp_path / "x", 3, seed=0, quality=101)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- the faces

def test_draw_face_returns_a_bgr_image_landmarks_and_attributes_of_celeba_shapes():
    image, landmarks, attributes = sf.draw_face(np.random.default_rng(0))
    assert image.dtype == np.uint8 and image.shape == (cf.IMAGE_HEIGHT, cf.IMAGE_WIDTH, 3)
    assert landmarks.dtype == np.float64 and landmarks.shape == (5, 2)
    assert attributes.dtype == np.int8 and attributes.shape == (len(cf.ATTRIBUTES),)
    assert set(np.unique(attributes)) <= {-1, 1}


def test_landmark_geometry_is_that_of_an_aligned_celeba_face():
    for _, lm, _ in _faces(100, seed=5):
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = lm
        eye_distance = np.hypot(rx - lx, ry - ly)
        assert 39 * 0.92 < eye_distance < 39 * 1.08                  # 6 % scale, 1 % shape
        assert lx < nx < rx and mlx < nx < mrx                       # 'left' is image left
        assert max(ly, ry) < ny < min(mly, mry)                      # eyes, nose, mouth
        assert np.abs(lm - sf.MEAN_LANDMARKS).max() < 15             # near CelebA's mean
        assert (lm >= 0).all() and (lm < (cf.IMAGE_WIDTH, cf.IMAGE_HEIGHT)).all()


def test_landmarks_deviate_from_a_similarity_of_the_mean_by_under_a_pixel_at_64():
    """The aligner fits a least-squares similarity onto a 64x64 template (eye distance ~23 px)."""
    scale = 23 / 39
    worst = 0.0
    for _, lm, _ in _faces(200, seed=6):
        src = np.rint(lm) * scale                                    # as written, at 64x64 scale
        dst = sf.MEAN_LANDMARKS * scale
        a, b = src - src.mean(0), dst - dst.mean(0)
        # the best similarity [[p, -q], [q, p]] in closed form
        p = (a * b).sum() / (a ** 2).sum()
        q = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum() / (a ** 2).sum()
        fitted = a @ np.array([[p, q], [-q, p]])
        worst = max(worst, np.linalg.norm(fitted - b, axis=1).max())
    assert worst < 1.0


def test_eye_landmarks_sit_on_dark_pupils_with_lighter_sclera_either_side():
    checked = 0
    for image, lm, attr in _faces(60, seed=7):
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)

        def at(p, r=0):
            x, y = int(round(p[0])), int(round(p[1]))
            return grey[y - r:y + r + 1, x - r:x + r + 1].mean()

        blurry = attr[_col("Blurry")] == 1
        along = (lm[1] - lm[0]) / np.linalg.norm(lm[1] - lm[0])     # the eyes' axis, posed
        for eye, corner, out in ((lm[0], lm[3], -4), (lm[1], lm[4], 4)):
            cheek = (eye + corner) / 2 + (out, 0)
            assert at(eye, 1) < (0.95 if blurry else 0.75) * at(cheek, 1)
            if not blurry and attr[_col("Narrow_Eyes")] == -1:
                # the pupil is the centre of the eye, not merely somewhere in it
                assert at(eye) < at(eye - 5 * along) and at(eye) < at(eye + 5 * along)
                checked += 1
    assert checked > 60


def test_attributes_follow_what_was_drawn_and_vary():
    attrs = np.array([a for _, _, a in _faces(200, seed=8)])
    on = attrs == 1
    for name in ("Smiling", "Eyeglasses", "Male", "Young", "Wearing_Lipstick", "No_Beard"):
        assert 0.1 < on[:, _col(name)].mean() < 0.9, name
    hair = on[:, [_col(c) for c in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]]
    assert (hair.sum(1) <= 1).all()                                   # one hair colour at most
    assert not (on[:, _col("Bald")] & (hair.any(1) | on[:, _col("Bangs")])).any()
    beard = on[:, [_col("Goatee"), _col("Mustache"), _col("5_o_Clock_Shadow")]].any(1)
    assert not (beard & on[:, _col("No_Beard")]).any()
    assert not (beard & ~on[:, _col("Male")]).any()
    never = ("Attractive", "Double_Chin", "High_Cheekbones", "Pointy_Nose", "Wearing_Hat")
    assert not on[:, [_col(n) for n in never]].any()


def _style_with(attribute: str, seed: int = 12):
    """The first drawn style that shows `attribute`, with dark hair and no full beard (a white
    moustache on pale skin, or one inside a beard, is drawn but hard to see)."""
    for i in range(500):
        style = sf._sample_style(np.random.default_rng([seed, i]))
        if (sf._attributes(style)[_col(attribute)] == 1 and style.beard != "full"
                and style.hair_name in ("black", "dark_brown", "brown")):
            return style
    raise AssertionError(f"no face with {attribute} in 500 draws")


@pytest.mark.parametrize("attribute, off, region", [
    ("Eyeglasses", {"glasses": None}, "eyes"),
    ("Mustache", {"moustache": False}, "mouth"),
    ("Wearing_Earrings", {"earrings": None}, "ears"),
    ("Wearing_Lipstick", {"lipstick": False, "eyeshadow": None,
                          "lips": (120.0, 130.0, 170.0)}, "mouth"),
])
def test_an_attribute_is_set_exactly_when_its_feature_is_drawn(attribute, off, region):
    import dataclasses

    style = _style_with(attribute)
    plain = dataclasses.replace(style, **off)
    assert sf._attributes(plain)[_col(attribute)] == -1
    with_it, landmarks = sf._render(style)
    without, _ = sf._render(plain)
    changed = np.abs(with_it.astype(int) - without.astype(int)).max(axis=2) > 40
    ys, xs = np.nonzero(changed)
    assert len(ys) > 20                                               # it is visibly drawn
    (lx, ly), (rx, ry) = landmarks[:2]
    near = {"eyes": (np.abs(ys - (ly + ry) / 2) < 20),
            "mouth": (np.abs(ys - landmarks[3:, 1].mean()) < 15),
            "ears": (np.abs(ys - (ly + ry) / 2 - 24) < 12) & ((xs < lx - 15) | (xs > rx + 15))}[region]
    assert near.mean() > 0.9                                          # and where it belongs


def test_open_smiles_show_teeth_and_closed_mouths_do_not():
    """Teeth: bright, nearly grey pixels just below the line between the mouth corners."""
    teeth = {"open smile": [], "closed": []}
    for image, lm, attr in _faces(120, seed=9):
        x, y = np.rint((lm[3] + lm[4]) / 2).astype(int)
        window = image[y - 1:y + 7, x - 6:x + 7].astype(int)
        white = (window.min(axis=2) > 140) & (np.ptp(window, axis=2) < 30)
        if attr[_col("Smiling")] == 1 and attr[_col("Mouth_Slightly_Open")] == 1:
            teeth["open smile"].append(white.sum() >= 3)
        elif attr[_col("Mouth_Slightly_Open")] == -1:
            teeth["closed"].append(white.sum() >= 3)
    assert len(teeth["open smile"]) >= 20 and np.mean(teeth["open smile"]) > 0.9
    assert len(teeth["closed"]) >= 20 and np.mean(teeth["closed"]) < 0.1


def test_faces_vary_pixel_by_pixel():
    images = np.array([image for image, _, _ in _faces(50, seed=10)], dtype=np.float64)
    assert images.std(axis=0).mean() > 30                             # not one face repeated
    grey = images.mean(axis=3)
    assert len({g.tobytes() for g in grey}) == 50

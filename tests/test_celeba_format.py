"""CelebA's annotation files, byte for byte as published (first rows of the real files)."""
import numpy as np
import pytest

from rnngan.data import celeba_format as cf

# The first image's rows of the published files, as CelebA ships them.
ATTR_ROW_000001 = ("000001.jpg -1  1  1 -1 -1 -1 -1 -1 -1 -1 -1  1 -1 -1 -1 -1 -1 -1  1  1 -1  1 "
                   "-1 -1  1 -1 -1  1 -1 -1 -1  1  1 -1  1 -1  1 -1 -1  1")
LANDMARK_ROW_000001 = "000001.jpg    69  109  106  113   77  142   73  152  108  154"
LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                   "rightmouth_x rightmouth_y ")


def test_attribute_file_matches_the_published_layout(tmp_path):
    values = np.array([[int(v) for v in ATTR_ROW_000001.split()[1:]]])
    path = tmp_path / cf.ATTR_FILE
    cf.write_attributes(path, ["000001.jpg"], values)
    lines = path.read_text().split("\n")
    assert lines[0] == "1"
    assert lines[1] == " ".join(cf.ATTRIBUTES) + " "
    assert lines[1].startswith("5_o_Clock_Shadow Arched_Eyebrows") and lines[1].endswith("Young ")
    assert lines[2] == ATTR_ROW_000001
    names, read = cf.read_attributes(path)
    assert names == ["000001.jpg"] and np.array_equal(read, values)


def test_landmark_file_matches_the_published_layout(tmp_path):
    lm = np.array([[[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]]], dtype=float)
    path = tmp_path / cf.LANDMARK_FILE
    cf.write_landmarks(path, ["000001.jpg"], lm + 0.2)  # written rounded, as published
    assert path.read_text().split("\n")[:3] == ["1", LANDMARK_HEADER, LANDMARK_ROW_000001]
    names, read = cf.read_landmarks(path)
    assert names == ["000001.jpg"] and np.array_equal(read, lm)


def test_partition_file_has_no_header(tmp_path):
    path = tmp_path / cf.PARTITION_FILE
    cf.write_partition(path, ["000001.jpg", "162771.jpg", "182638.jpg"], [0, 1, 2])
    assert path.read_text() == "000001.jpg 0\n162771.jpg 1\n182638.jpg 2\n"
    assert cf.read_partition(path) == {"000001.jpg": 0, "162771.jpg": 1, "182638.jpg": 2}


def test_reader_tolerates_tabs_and_windows_line_ends(tmp_path):
    path = tmp_path / cf.LANDMARK_FILE
    path.write_bytes(("1\r\n" + LANDMARK_HEADER + "\r\n" + LANDMARK_ROW_000001.replace("    ", "\t")
                      + "\r\n").encode())
    assert cf.read_landmarks(path)[1][0, 0].tolist() == [69, 109]


@pytest.mark.parametrize("text, message", [
    ("x\n" + LANDMARK_HEADER + "\n", "first line must be the image count"),
    ("1\nlefteye_x lefteye_y\n" + LANDMARK_ROW_000001 + "\n", "line 2 must be the header"),
    ("2\n" + LANDMARK_HEADER + "\n" + LANDMARK_ROW_000001 + "\n", "count line says 2 but 1 rows follow"),
    ("1\n" + LANDMARK_HEADER + "\n000001.jpg 69 109\n", "line 3: expected 11 fields, got 3"),
    ("1\n" + LANDMARK_HEADER + "\n000001.jpg" + " x" * 10 + "\n", "landmark values must be numbers"),
])
def test_malformed_landmark_files_are_named_errors(tmp_path, text, message):
    path = tmp_path / cf.LANDMARK_FILE
    path.write_text(text)
    with pytest.raises(cf.FormatError, match=message) as err:
        cf.read_landmarks(path)
    assert cf.LANDMARK_FILE in str(err.value)


def test_bad_partition_value_is_a_named_error(tmp_path):
    path = tmp_path / cf.PARTITION_FILE
    path.write_text("000001.jpg 3\n")
    with pytest.raises(cf.FormatError, match="split of 000001.jpg must be 0, 1 or 2"):
        cf.read_partition(path)


def test_image_names_count_from_one():
    assert cf.image_name(0) == "000001.jpg" and cf.image_name(202598) == "202599.jpg"

"""Tiny copies of the three datasets, built here in each publisher's exact format.

- CelebA: the Google Drive folder's layout (Img/img_align_celeba.zip of 178 x 218 JPEGs,
  Anno/list_landmarks_align_celeba.txt and list_attr_celeba.txt, Eval/list_eval_partition.txt),
  drawn by synthfaces, whose files follow CelebA's text formats (count line, header, rows).
- LSUN: an LMDB database as LSUN's export writes it (one record per image; key: the image's
  40-hex-digit SHA-1 as ASCII bytes; value: the JPEG, quality 75, shorter side 256 px), in
  bedroom_{train,val}_lmdb/ (data.mdb, lock.mdb) and zipped as bedroom_{split}_lmdb.zip.
- Cityscapes: leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png at
  2048 x 1024, and leftImg8bit_trainvaltest.zip with README and license.txt beside the folder.

Images carry a known colour layout so that tests can tell which crop was taken.
"""
from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np

from rnngan.data import celeba_format as cf

# Colours (RGB) of the parts of a fixture image, so a crop can be recognised.
CENTRE_RGB = (200, 60, 40)      # the centred square of LSUN images, the left half of Cityscapes ones
EDGE_RGB = (30, 90, 220)        # outside that square (LSUN), the right half (Cityscapes)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# CelebA

def write_celeba_drive_folder(root: Path, count: int = 40, seed: int = 0) -> dict[str, Path]:
    """CelebA as its Google Drive folder holds it: Img/, Anno/, Eval/. Returns name -> path."""
    from rnngan.data.synthfaces import write_synthfaces

    flat = root.parent / f".{root.name}-flat"
    write_synthfaces(flat, count=count, seed=seed, workers=1)
    places = {cf.IMAGE_ZIP: "Img", cf.LANDMARK_FILE: "Anno", cf.ATTR_FILE: "Anno", cf.PARTITION_FILE: "Eval"}
    paths = {}
    for name, sub in places.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        paths[name] = root / sub / name
        shutil.move(flat / name, paths[name])
    shutil.rmtree(flat)
    return paths


# ---------------------------------------------------------------------------------------------
# LSUN

def lsun_image(width: int, height: int, quality: int = 75) -> bytes:
    """A JPEG whose centred square is CENTRE_RGB and whose margins are EDGE_RGB."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = EDGE_RGB[::-1]
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    image[y0:y0 + side, x0:x0 + side] = CENTRE_RGB[::-1]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def write_lsun_lmdb(folder: Path, images: list[bytes]) -> list[str]:
    """An LMDB database as LSUN's: key = SHA-1 hex of the image (ASCII), value = the image."""
    import lmdb

    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    env = lmdb.open(str(folder), map_size=1 << 28, subdir=True)
    with env.begin(write=True) as txn:
        for data in images:
            key = hashlib.sha1(data).hexdigest()
            txn.put(key.encode("ascii"), data)
            keys.append(key)
    env.close()
    return sorted(keys)


def zip_lmdb(folder: Path, zip_path: Path) -> Path:
    """bedroom_<split>_lmdb.zip as LSUN ships it: the LMDB folder with its two files."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(folder, f"{folder.name}/")
        for name in ("data.mdb", "lock.mdb"):
            zf.write(folder / name, f"{folder.name}/{name}")
    return zip_path


LSUN_SHAPES = [(342, 256), (256, 256), (256, 384), (455, 256), (256, 341), (300, 256)]


def write_lsun(root: Path, train: int = 12, val: int = 3, zipped: bool = True) -> dict:
    """bedroom_train_lmdb and bedroom_val_lmdb (as folders, and zipped when asked)."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", train), ("val", val)):
        images = [lsun_image(*LSUN_SHAPES[(i + (split == "val")) % len(LSUN_SHAPES)]) for i in range(n)]
        # LSUN's images differ; make ours differ too so that their keys (hashes) do.
        images = [_vary(data, 100 * (split == "val") + i) for i, data in enumerate(images)]
        folder = root / f"bedroom_{split}_lmdb"
        out[split] = write_lsun_lmdb(folder, images)
        if zipped:
            zip_lmdb(folder, root / f"bedroom_{split}_lmdb.zip")
    return out


def _vary(data: bytes, i: int) -> bytes:
    """The same image with a JPEG comment that makes its bytes (and SHA-1) unique."""
    comment = f"lsun fixture {i}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + segment + data[2:]


# ---------------------------------------------------------------------------------------------
# Cityscapes

CITIES = {"train": ["aachen", "bochum"], "val": ["frankfurt"], "test": ["berlin"]}


def cityscapes_image(seed: int) -> bytes:
    """A 2048 x 1024 PNG: left half CENTRE_RGB, right half EDGE_RGB, a little texture."""
    rng = np.random.default_rng(seed)
    image = np.empty((1024, 2048, 3), np.uint8)
    image[:, :1024] = CENTRE_RGB[::-1]
    image[:, 1024:] = EDGE_RGB[::-1]
    y, x = rng.integers(0, 1000), rng.integers(0, 2000)
    image[y:y + 16, x:x + 16] = 128
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return buffer.tobytes()


def write_cityscapes(root: Path, per_city: int = 1) -> list[str]:
    """leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png plus README and
    license.txt, as the zip unpacks. Returns the image paths relative to root."""
    names = []
    seed = 0
    for split, cities in CITIES.items():
        for city in cities:
            folder = root / "leftImg8bit" / split / city
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_city):
                name = f"{city}_{k:06d}_{19 + k:06d}_leftImg8bit.png"
                (folder / name).write_bytes(cityscapes_image(seed))
                names.append(f"leftImg8bit/{split}/{city}/{name}")
                seed += 1
    (root / "README").write_text("The Cityscapes Dataset (fixture)\n")
    (root / "license.txt").write_text("fixture licence\n")
    return names


def zip_cityscapes(root: Path, zip_path: Path) -> Path:
    """leftImg8bit_trainvaltest.zip: README, license.txt and the leftImg8bit/ tree, folders included."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("README", "license.txt"):
            zf.write(root / name, name)
        for path in sorted((root / "leftImg8bit").rglob("*")):
            rel = path.relative_to(root).as_posix()
            zf.write(path, rel + "/" if path.is_dir() else rel)
    return zip_path


def write_celeba_wild(root: Path, aligned: dict[str, Path], scale: float = 1.6, seed: int = 0) -> Path:
    """In-the-wild photos made from the aligned ones: each enlarged by `scale`, rotated a little
    and placed at a random spot of a larger photo, with list_landmarks_celeba.txt moved to
    match; written as the extracted img_celeba/ folder (the publisher ships img_celeba.7z)."""
    rng = np.random.default_rng(seed)
    names, marks = cf.read_landmarks(aligned[cf.LANDMARK_FILE])
    folder = root / cf.WILD_IMAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    moved = []
    with zipfile.ZipFile(aligned[cf.IMAGE_ZIP]) as zf:
        for name, points in zip(names, marks):
            image = cv2.imdecode(np.frombuffer(zf.read(f"{cf.IMAGE_DIR}/{name}"), np.uint8), cv2.IMREAD_COLOR)
            angle = rng.uniform(-10, 10)
            width, height = int(rng.integers(380, 460)), int(rng.integers(420, 520))
            matrix = cv2.getRotationMatrix2D((89.0, 109.0), angle, scale)
            matrix[:, 2] += (rng.uniform(0, width - 178 * scale), rng.uniform(0, height - 218 * scale))
            photo = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT)
            ok, buffer = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            (folder / name).write_bytes(buffer.tobytes())
            moved.append(np.rint(points @ matrix[:, :2].T + matrix[:, 2]))
    cf.write_landmarks(root / cf.WILD_LANDMARK_FILE, names, np.stack(moved))
    return folder

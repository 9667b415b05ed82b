"""CelebA, LSUN-Bedroom and Cityscapes through the download and preprocess stages, from local
copies built in tests/formats.py in each publisher's exact format."""
from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import formats as F
from rnngan.config import DataParams, ParamsError, parse_params
from rnngan.data import celeba_format as cf
from rnngan.data import download as dl
from rnngan.data import preprocess as pp
from rnngan.data import sources
from rnngan.data.sources import SourceError, download


def read_index(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def data(dataset: str, source, **kw) -> DataParams:
    return DataParams(dataset=dataset, source=None if source is None else str(source), workers=1, **kw)


@pytest.fixture
def matching_celeba_md5s(monkeypatch):
    """Make the fixture's files the 'published' ones (the real MD5s belong to the real files)."""
    def use(paths: dict[str, Path]) -> None:
        table = tuple(replace(f, md5=F.md5(paths[f.name])) for f in sources.CELEBA_FILES)
        monkeypatch.setattr(sources, "CELEBA_FILES", table)
    return use


@pytest.fixture(scope="module")
def celeba_drive(tmp_path_factory) -> dict[str, Path]:
    return F.write_celeba_drive_folder(tmp_path_factory.mktemp("celeba") / "CelebA", count=30)


# ---------------------------------------------------------------------------------------------
# CelebA

def test_celeba_from_the_drive_folder_copies_verified_files_and_writes_a_manifest(
        celeba_drive, matching_celeba_md5s, tmp_path):
    matching_celeba_md5s(celeba_drive)
    out = tmp_path / "raw" / "celeba"
    download(data("celeba", celeba_drive[cf.IMAGE_ZIP].parents[1]), 0, out, tmp_path / "cache")
    assert sorted(p.name for p in out.iterdir()) == sorted([f.name for f in sources.CELEBA_FILES] + ["manifest.json"])
    for name, path in celeba_drive.items():
        assert (out / name).read_bytes() == path.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(entry["verified"] for entry in manifest["files"].values())


def test_celeba_md5_differing_from_the_published_one_is_an_error_and_writes_nothing(celeba_drive, tmp_path):
    out = tmp_path / "raw" / "celeba"
    with pytest.raises(SourceError, match=r"img_align_celeba\.zip: MD5 [0-9a-f]{32} differs from the "
                                          r"published 00d2c5bc6d35e252742224ab0c1e8fcb.*data\.verify=false"):
        download(data("celeba", celeba_drive[cf.IMAGE_ZIP].parents[1]), 0, out, tmp_path / "cache")
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_celeba_with_verify_false_goes_on_and_marks_the_files_unverified(celeba_drive, tmp_path, caplog):
    out = tmp_path / "raw" / "celeba"
    download(data("celeba", celeba_drive[cf.IMAGE_ZIP].parents[1], verify=False), 0, out, tmp_path / "cache")
    manifest = json.loads((out / "manifest.json").read_text())
    assert not any(entry["verified"] for entry in manifest["files"].values())
    assert "going on because data.verify=false" in caplog.text


def test_celeba_from_the_zip_itself_finds_the_annotations_in_the_drive_layout(
        celeba_drive, matching_celeba_md5s, tmp_path):
    matching_celeba_md5s(celeba_drive)
    out = tmp_path / "celeba"
    download(data("celeba", celeba_drive[cf.IMAGE_ZIP]), 0, out, tmp_path / "cache")
    assert (out / cf.PARTITION_FILE).read_bytes() == celeba_drive[cf.PARTITION_FILE].read_bytes()


def test_celeba_from_an_extracted_image_folder_packs_the_zip(celeba_drive, matching_celeba_md5s, tmp_path):
    matching_celeba_md5s(celeba_drive)
    source = tmp_path / "source"
    with zipfile.ZipFile(celeba_drive[cf.IMAGE_ZIP]) as zf:
        zf.extractall(source)
        members = sorted(i.filename for i in zf.infolist() if not i.is_dir())
    for name in (cf.PARTITION_FILE, cf.LANDMARK_FILE, cf.ATTR_FILE):
        (source / name).write_bytes(celeba_drive[name].read_bytes())
    out = tmp_path / "celeba"
    download(data("celeba", source), 0, out, tmp_path / "cache")
    with zipfile.ZipFile(out / cf.IMAGE_ZIP) as zf:
        assert sorted(zf.namelist()) == members
        assert zf.read(members[0]) == (source / members[0]).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][cf.IMAGE_ZIP]["origin"].startswith("packed from")


def test_celeba_source_without_the_partition_file_names_it(celeba_drive, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in (cf.IMAGE_ZIP, cf.LANDMARK_FILE, cf.ATTR_FILE):
        (source / name).write_bytes(celeba_drive[name].read_bytes())
    with pytest.raises(SourceError, match="no list_eval_partition.txt in it"):
        download(data("celeba", source, verify=False), 0, tmp_path / "celeba", tmp_path / "cache")
    assert not (tmp_path / "celeba").exists()


def test_a_source_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(SourceError, match="nowhere.*no such file or folder"):
        download(data("celeba", tmp_path / "nowhere"), 0, tmp_path / "celeba", tmp_path / "cache")


def test_celeba_center_crop_is_the_central_108px_square_area_resized(celeba_drive, tmp_path):
    raw = tmp_path / "celeba"
    raw.mkdir()
    for name in (cf.IMAGE_ZIP, cf.PARTITION_FILE):
        (raw / name).write_bytes(celeba_drive[name].read_bytes())
    stats = pp.preprocess("celeba", raw, tmp_path / "out", 32, crop="auto", workers=1)
    assert stats["crop"] == "center" and stats["total"] == 30
    first = read_index(tmp_path / "out" / "index.csv")[0]
    with zipfile.ZipFile(raw / cf.IMAGE_ZIP) as zf:
        image = cv2.imdecode(np.frombuffer(zf.read(f"{cf.IMAGE_DIR}/{first['image']}"), np.uint8), cv2.IMREAD_COLOR)
    expected = cv2.resize(image[55:163, 35:143], (32, 32), interpolation=cv2.INTER_AREA)[..., ::-1]
    got = np.load(tmp_path / "out" / f"{first['split']}.npy")[int(first["row"])]
    # Decoded at half size in the DCT domain, so close to (not bit-equal with) a full decode.
    assert np.abs(got.astype(int) - expected).mean() < 3.0


def test_celeba_limit_caps_each_split(celeba_drive, tmp_path):
    raw = tmp_path / "celeba"
    raw.mkdir()
    for name in (cf.IMAGE_ZIP, cf.PARTITION_FILE):
        (raw / name).write_bytes(celeba_drive[name].read_bytes())
    full = pp.preprocess("celeba", raw, tmp_path / "full", 8, workers=1)
    capped = pp.preprocess("celeba", raw, tmp_path / "capped", 8, workers=1, limit=2)
    assert capped["counts"] == {split: min(2, n) for split, n in full["counts"].items()}
    assert capped["left_out_by_limit"] == full["total"] - capped["total"]
    np.testing.assert_array_equal(np.load(tmp_path / "capped" / "train.npy"), np.load(tmp_path / "full" / "train.npy")[:2])


# ---------------------------------------------------------------------------------------------
# LSUN-Bedroom

@pytest.fixture(scope="module")
def lsun(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("lsun") / "published"
    return root, F.write_lsun(root, train=12, val=3)


def test_lsun_from_its_zips_unpacks_the_lmdb_and_takes_the_centre_square(lsun, tmp_path):
    root, keys = lsun
    out = tmp_path / "lsun_bedroom"
    source = tmp_path / "zips"
    source.mkdir()
    for split in ("train", "val"):
        (source / f"bedroom_{split}_lmdb.zip").write_bytes((root / f"bedroom_{split}_lmdb.zip").read_bytes())
    download(data("lsun_bedroom", source), 0, out, tmp_path / "cache")
    assert sorted(p.name for p in out.iterdir()) == ["bedroom_train_lmdb", "bedroom_val_lmdb", "manifest.json"]
    assert (out / "bedroom_train_lmdb" / "data.mdb").read_bytes() == (root / "bedroom_train_lmdb" / "data.mdb").read_bytes()

    stats = pp.preprocess("lsun_bedroom", out, tmp_path / "prepared", 16, workers=2)
    assert stats["counts"] == {"train": 12, "val": 3} and stats["skipped"] == []
    assert stats["decoded_reduced"] == 15        # 256 px short side -> 16 px: decoded at 1/8
    rows = read_index(tmp_path / "prepared" / "index.csv")
    assert [r["image"] for r in rows if r["split"] == "train"] == keys["train"]     # LMDB key order
    images = np.load(tmp_path / "prepared" / "train.npy")
    # Only the centred square's colour survives. The outermost rows or columns may mix in a bit of
    # the margin (JPEG's 2x chroma subsampling and a 1/8-size pixel straddle the border).
    error = np.abs(images.astype(int) - F.CENTRE_RGB)
    assert error[:, 1:-1, 1:-1].max() < 12 and error.max() < 30


def test_lsun_from_unpacked_lmdb_folders(lsun, tmp_path):
    root, _ = lsun
    source = tmp_path / "lmdb"
    for split in ("train", "val"):
        (source / f"bedroom_{split}_lmdb").mkdir(parents=True)
        for name in ("data.mdb", "lock.mdb"):
            (source / f"bedroom_{split}_lmdb" / name).write_bytes((root / f"bedroom_{split}_lmdb" / name).read_bytes())
    out = tmp_path / "lsun_bedroom"
    download(data("lsun_bedroom", source), 0, out, tmp_path / "cache")
    stats = pp.preprocess("lsun_bedroom", out, tmp_path / "prepared", 8, workers=1, limit=5)
    assert stats["counts"] == {"train": 5, "val": 3} and stats["left_out_by_limit"] == 7


def test_lsun_from_a_folder_of_images_packs_them(tmp_path):
    source = tmp_path / "pictures"
    (source / "sub").mkdir(parents=True)
    for i, shape in enumerate(F.LSUN_SHAPES[:4]):
        (source / ("sub" if i % 2 else "") / f"room{i}.jpg").write_bytes(F.lsun_image(*shape))
    (source / "notes.txt").write_text("not an image")
    out = tmp_path / "lsun_bedroom"
    download(data("lsun_bedroom", source), 0, out, tmp_path / "cache")
    with zipfile.ZipFile(out / pp.LSUN_IMAGE_ZIP) as zf:
        assert sorted(zf.namelist()) == ["room0.jpg", "room2.jpg", "sub/room1.jpg", "sub/room3.jpg"]
    stats = pp.preprocess("lsun_bedroom", out, tmp_path / "prepared", 16, workers=1)
    assert stats["layout"] == "image_zip" and stats["counts"] == {"train": 4}


def test_lsun_zip_with_a_member_escaping_the_folder_is_refused_and_nothing_written(tmp_path):
    zip_path = tmp_path / "bedroom_train_lmdb.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("bedroom_train_lmdb/data.mdb", b"x" * 100)
        zf.writestr("bedroom_train_lmdb/../../escaped.txt", b"gotcha")
    out = tmp_path / "raw" / "lsun_bedroom"
    with pytest.raises(dl.UnsafeArchiveError, match="escaped.txt"):
        download(data("lsun_bedroom", zip_path), 0, out, tmp_path / "cache")
    assert not out.exists() and not (tmp_path / "escaped.txt").exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_lsun_corrupt_and_truncated_records_are_skipped_with_reasons(tmp_path):
    good = F.lsun_image(342, 256)
    truncated = good[: len(good) // 2]
    raw = tmp_path / "lsun_bedroom"
    keys = F.write_lsun_lmdb(raw / "bedroom_train_lmdb", [good, truncated, b"GIF89a not an image"])
    stats = pp.preprocess("lsun_bedroom", raw, tmp_path / "prepared", 16, workers=1)
    assert stats["counts"] == {"train": 1}
    reasons = {s["image"]: s["reason"] for s in stats["skipped"]}
    import hashlib
    assert reasons == {hashlib.sha1(truncated).hexdigest(): pp.decode.REASON_TRUNCATED,
                       hashlib.sha1(b"GIF89a not an image").hexdigest(): pp.decode.REASON_UNDECODABLE}
    assert len(keys) == 3


def test_lsun_raw_folder_without_lmdb_or_images_is_a_clear_error(tmp_path):
    (tmp_path / "lsun_bedroom").mkdir()
    with pytest.raises(pp.PreprocessError, match="no bedroom_train_lmdb or bedroom_val_lmdb LMDB folder"):
        pp.preprocess("lsun_bedroom", tmp_path / "lsun_bedroom", tmp_path / "out", 16)


# ---------------------------------------------------------------------------------------------
# Cityscapes

@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("cityscapes")
    names = F.write_cityscapes(root / "tree")
    return root / "tree", F.zip_cityscapes(root / "tree", root / pp.CITYSCAPES_ZIP), names


def test_cityscapes_from_the_zip_halves_give_a_left_and_a_right_square_per_image(cityscapes, tmp_path):
    _, zip_path, _ = cityscapes
    out = tmp_path / "cityscapes"
    download(data("cityscapes", zip_path), 0, out, tmp_path / "cache")
    assert (out / pp.CITYSCAPES_ZIP).read_bytes() == zip_path.read_bytes()
    stats = pp.preprocess("cityscapes", out, tmp_path / "prepared", 16, workers=2)
    assert stats["crop"] == "halves" and stats["counts"] == {"train": 4, "val": 2, "test": 2}
    rows = read_index(tmp_path / "prepared" / "index.csv")
    assert [r["image"] for r in rows[:2]] == ["aachen_000000_000019_leftImg8bit.png#left",
                                             "aachen_000000_000019_leftImg8bit.png#right"]
    train = np.load(tmp_path / "prepared" / "train.npy").astype(int)
    assert np.abs(train[0::2] - F.CENTRE_RGB).mean() < 4 and np.abs(train[1::2] - F.EDGE_RGB).mean() < 4


def test_cityscapes_center_crop_is_the_middle_square(cityscapes, tmp_path):
    _, zip_path, _ = cityscapes
    raw = tmp_path / "cityscapes"
    raw.mkdir()
    (raw / pp.CITYSCAPES_ZIP).write_bytes(zip_path.read_bytes())
    stats = pp.preprocess("cityscapes", raw, tmp_path / "prepared", 8, crop="center", workers=1)
    assert stats["counts"] == {"train": 2, "val": 1, "test": 1}
    image = np.load(tmp_path / "prepared" / "val.npy")[0].astype(int)
    # The middle square straddles the two halves: left half of it one colour, right the other.
    assert np.abs(image[:, :4] - F.CENTRE_RGB).mean() < 4 and np.abs(image[:, 4:] - F.EDGE_RGB).mean() < 4


def test_cityscapes_from_the_extracted_tree_packs_the_same_members(cityscapes, tmp_path):
    tree, _, names = cityscapes
    out = tmp_path / "cityscapes"
    download(data("cityscapes", tree), 0, out, tmp_path / "cache")
    with zipfile.ZipFile(out / pp.CITYSCAPES_ZIP) as zf:
        assert sorted(zf.namelist()) == sorted(names)
        assert zf.read(names[0]) == (tree / names[0]).read_bytes()


def test_a_zip_that_is_not_cityscapes_is_refused_at_download(tmp_path):
    zip_path = tmp_path / pp.CITYSCAPES_ZIP
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("gtFine/train/aachen/aachen_000000_000019_gtFine_color.png", b"x")
    with pytest.raises(SourceError, match="no leftImg8bit/<split>/<city>/"):
        download(data("cityscapes", zip_path), 0, tmp_path / "cityscapes", tmp_path / "cache")
    assert not (tmp_path / "cityscapes").exists()


def test_cityscapes_download_without_credentials_names_the_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    with pytest.raises(dl.DownloadError, match="CITYSCAPES_USERNAME"):
        download(data("cityscapes", None), 0, tmp_path / "cityscapes", tmp_path / "cache")
    assert not (tmp_path / "cityscapes").exists()


# ---------------------------------------------------------------------------------------------
# Params

@pytest.mark.parametrize("dataset, crop, allowed", [
    ("lsun_bedroom", "landmarks", "auto, center"),
    ("cityscapes", "landmarks", "auto, center, halves"),
    ("celeba", "halves", "auto, center, landmarks, wild"),
    ("synthfaces", "wild", "auto, center, landmarks"),
    ("cityscapes", "wild", "auto, center, halves"),
])
def test_a_crop_the_dataset_cannot_take_is_a_params_error_listing_the_allowed(dataset, crop, allowed):
    with pytest.raises(ParamsError, match=f"data.crop={crop}.*allows: {allowed}"):
        parse_params({"data": {"dataset": dataset, "crop": crop}})


def test_limit_must_be_positive_or_null():
    with pytest.raises(ParamsError, match="data.limit=0 must be > 0 or null"):
        parse_params({"data": {"limit": 0}})
    assert parse_params({"data": {"limit": None}}).data.limit is None


# ---------------------------------------------------------------------------------------------
# Downloads, from a loopback server standing in for each publisher

def serve_files(server, files: dict[str, bytes], **route_options) -> dict[str, object]:
    """One FileRoute per path."""
    from loopback import FileRoute

    routes = {path: FileRoute(data=body, **route_options.get(path, {})) for path, body in files.items()}
    server.routes.update(routes)
    return routes


def test_celeba_download_fetches_each_drive_file_verifies_it_and_resumes_after_an_interruption(
        celeba_drive, matching_celeba_md5s, server, tmp_path, monkeypatch):
    from loopback import FileRoute

    matching_celeba_md5s(celeba_drive)
    monkeypatch.setattr(dl, "GDRIVE_BASE", server.base)
    monkeypatch.setattr(dl, "MAX_BACKOFF_S", 0.0)            # retry at once
    by_id = {f.gdrive_id: FileRoute(data=celeba_drive[f.name].read_bytes()) for f in sources.CELEBA_FILES}
    zip_route = by_id[sources.CELEBA_FILES[0].gdrive_id]
    size = len(zip_route.data)
    zip_route.drop_first = size // 3                 # the connection drops a third of the way in,
    down = {"yes": True}                             # then the server stays down for this run

    def drive(h):
        route = by_id[h.query["id"]]
        if route is zip_route and route.requests and down["yes"]:
            return h.reply(503, b"unavailable")
        return route(h)
    server.routes["/download"] = drive
    out, cache = tmp_path / "raw" / "celeba", tmp_path / "downloads"

    with pytest.raises(dl.DownloadError, match="giving up.*run again to resume"):
        download(data("celeba", None), 0, out, cache)
    assert not out.exists()
    part = cache / "celeba" / f"{cf.IMAGE_ZIP}.part"
    kept = part.stat().st_size
    assert 0 < kept < size

    down["yes"] = False
    download(data("celeba", None), 0, out, cache)
    assert zip_route.requests[1:] == [f"bytes={kept}-"]     # only the rest was asked for
    for name, path in celeba_drive.items():
        assert (out / name).read_bytes() == path.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(entry["verified"] for entry in manifest["files"].values())
    assert sorted(p.name for p in (cache / "celeba").iterdir()) == []       # moved into the output


def test_lsun_download_fetches_both_zips_and_unpacks_them(lsun, server, tmp_path, monkeypatch):
    root, keys = lsun
    files = {f"/{f.name}": (root / f.name).read_bytes() for f in sources.LSUN_FILES}
    serve_files(server, files)
    monkeypatch.setattr(sources, "LSUN_FILES", tuple(replace(f, url=server.url(f"/{f.name}"))
                                                    for f in sources.LSUN_FILES))
    out, cache = tmp_path / "lsun_bedroom", tmp_path / "downloads"
    download(data("lsun_bedroom", None), 0, out, cache)
    assert sorted(p.name for p in out.iterdir()) == ["bedroom_train_lmdb", "bedroom_val_lmdb", "manifest.json"]
    assert list((cache / "lsun_bedroom").iterdir()) == []        # the zips are gone once unpacked
    stats = pp.preprocess("lsun_bedroom", out, tmp_path / "prepared", 8, workers=1)
    assert stats["counts"] == {"train": len(keys["train"]), "val": len(keys["val"])}


def test_lsun_download_404_is_a_clear_error_and_writes_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "LSUN_FILES", tuple(replace(f, url=server.url(f"/{f.name}"))
                                                    for f in sources.LSUN_FILES))
    out = tmp_path / "lsun_bedroom"
    with pytest.raises(dl.DownloadError, match=r"bedroom_train_lmdb\.zip: HTTP 404"):
        download(data("lsun_bedroom", None), 0, out, tmp_path / "downloads")
    assert not out.exists()


@pytest.fixture
def cityscapes_site(server, monkeypatch, cityscapes):
    from loopback import PASSWORD, USER, cityscapes_site

    monkeypatch.setattr(dl, "CITYSCAPES_LOGIN_URL", server.url("/login/"))
    monkeypatch.setattr(dl, "CITYSCAPES_PACKAGE_URL", server.url("/file-handling/?packageID={package_id}"))
    monkeypatch.setattr(dl, "CITYSCAPES_MD5_URL", server.url("/md5-sum/?packageID={package_id}"))
    monkeypatch.setenv("CITYSCAPES_USERNAME", USER)
    cityscapes_site(server, cityscapes[1].read_bytes())
    return PASSWORD


def test_cityscapes_download_logs_in_verifies_the_site_md5_and_never_writes_the_password(
        cityscapes_site, cityscapes, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CITYSCAPES_PASSWORD", cityscapes_site)
    out = tmp_path / "cityscapes"
    download(data("cityscapes", None), 0, out, tmp_path / "downloads")
    assert (out / pp.CITYSCAPES_ZIP).read_bytes() == cityscapes[1].read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][pp.CITYSCAPES_ZIP]["verified"]
    for path in out.rglob("*"):
        if path.is_file():
            assert cityscapes_site.encode() not in path.read_bytes()
    assert cityscapes_site not in caplog.text


def test_cityscapes_wrong_password_is_a_login_error_without_the_password(cityscapes_site, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYSCAPES_PASSWORD", "not-" + cityscapes_site)
    with pytest.raises(dl.DownloadError, match="Cityscapes login failed") as e:
        download(data("cityscapes", None), 0, tmp_path / "cityscapes", tmp_path / "downloads")
    assert cityscapes_site not in str(e.value)
    assert not (tmp_path / "cityscapes").exists()


# ---------------------------------------------------------------------------------------------
# Broken inputs

def test_zip_members_with_bad_crc_or_broken_deflate_data_are_skipped_with_the_reason(celeba_drive, tmp_path):
    raw = tmp_path / "celeba"
    raw.mkdir()
    (raw / cf.PARTITION_FILE).write_bytes(celeba_drive[cf.PARTITION_FILE].read_bytes())
    with zipfile.ZipFile(celeba_drive[cf.IMAGE_ZIP]) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        blobs = {n: zf.read(n) for n in names}
    with zipfile.ZipFile(raw / cf.IMAGE_ZIP, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(name, blobs[name], zipfile.ZIP_DEFLATED if i == 1 else zipfile.ZIP_STORED)
    data = bytearray((raw / cf.IMAGE_ZIP).read_bytes())
    with zipfile.ZipFile(raw / cf.IMAGE_ZIP) as zf:
        infos = [zf.getinfo(n) for n in names[:2]]
    for info in infos:              # flip a byte in the middle of each member's data
        start = info.header_offset + 30 + len(info.filename.encode())
        data[start + info.compress_size // 2] ^= 0xFF
    (raw / cf.IMAGE_ZIP).write_bytes(bytes(data))

    stats = pp.preprocess("celeba", raw, tmp_path / "out", 8, workers=1)
    reasons = {s["image"]: s["reason"] for s in stats["skipped"]}
    first, second = (n.split("/")[-1] for n in names[:2])
    assert set(reasons) == {first, second}
    assert reasons[first].startswith("corrupt in the archive") and "CRC" in reasons[first]
    assert reasons[second].startswith("corrupt in the archive")
    assert stats["total"] == len(names) - 2


def test_a_broken_lmdb_database_is_a_preprocess_error_naming_it(tmp_path):
    db = tmp_path / "lsun_bedroom" / "bedroom_train_lmdb"
    db.mkdir(parents=True)
    (db / "data.mdb").write_bytes(b"this is not an LMDB file" * 100)
    with pytest.raises(pp.PreprocessError, match="bedroom_train_lmdb: not a readable LMDB database"):
        pp.preprocess("lsun_bedroom", tmp_path / "lsun_bedroom", tmp_path / "out", 8)
    assert not (tmp_path / "out").exists()


def test_the_download_stage_reports_a_bad_source_in_one_line_and_exits_2(tmp_path):
    import subprocess
    import sys

    import yaml
    from conftest import PROJECT

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"dataset": "celeba", "source": str(tmp_path / "missing")}}))
    result = subprocess.run([sys.executable, "-m", "stages.download", "--params", str(params),
                             "--out", str(tmp_path / "raw" / "celeba"), "--cache", str(tmp_path / "dl")],
                            cwd=PROJECT, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "rnngan download: error: data.source=" in result.stderr and "no such file or folder" in result.stderr
    assert not (tmp_path / "raw" / "celeba").exists()


def test_celeba_wild_photos_from_the_source_align_like_the_aligned_images(celeba_drive, tmp_path):
    source = tmp_path / "CelebA"
    for name, path in celeba_drive.items():
        (source / path.parent.name).mkdir(parents=True, exist_ok=True)
        (source / path.parent.name / name).write_bytes(path.read_bytes())
    F.write_celeba_wild(source / "Img", celeba_drive)
    (source / "Img" / cf.WILD_LANDMARK_FILE).rename(source / "Anno" / cf.WILD_LANDMARK_FILE)
    raw = tmp_path / "raw" / "celeba"
    download(data("celeba", source, verify=False), 0, raw, tmp_path / "cache")
    with zipfile.ZipFile(raw / cf.WILD_IMAGE_ZIP) as zf:
        assert len([n for n in zf.namelist() if n.startswith(f"{cf.WILD_IMAGE_DIR}/")]) == 30

    wild = pp.preprocess("celeba", raw, tmp_path / "wild", 32, crop="wild", workers=1)
    aligned = pp.preprocess("celeba", raw, tmp_path / "aligned", 32, crop="landmarks", workers=1)
    assert wild["layout"] == "celeba_in_the_wild" and wild["counts"] == aligned["counts"]
    assert wild["decoded_reduced"] == 30          # the photos are larger: decoded at reduced size
    a = np.load(tmp_path / "wild" / "train.npy").astype(float)
    b = np.load(tmp_path / "aligned" / "train.npy").astype(float)
    # The same faces on the same template, through different resampling and a JPEG round trip.
    assert np.abs(a - b).mean() < 6
    assert np.abs(a - np.roll(b, 2, axis=2)).mean() > 2 * np.abs(a - b).mean()   # a 2 px slip shows


def test_crop_wild_without_the_photos_says_how_to_get_them(celeba_drive, tmp_path):
    raw = tmp_path / "celeba"
    raw.mkdir()
    for name in (cf.IMAGE_ZIP, cf.PARTITION_FILE):
        (raw / name).write_bytes(celeba_drive[name].read_bytes())
    with pytest.raises(pp.PreprocessError, match="img_celeba.zip: missing; crop=wild needs the in-the-wild photos"):
        pp.preprocess("celeba", raw, tmp_path / "out", 32, crop="wild")


def test_lsun_download_of_a_zip_with_an_escaping_member_is_refused_and_writes_nothing(server, tmp_path, monkeypatch):
    import io

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("bedroom_train_lmdb/data.mdb", b"x" * 100)
        zf.writestr("../../../outside.txt", b"gotcha")
    serve_files(server, {f"/{f.name}": evil.getvalue() for f in sources.LSUN_FILES})
    monkeypatch.setattr(sources, "LSUN_FILES", tuple(replace(f, url=server.url(f"/{f.name}"))
                                                    for f in sources.LSUN_FILES))
    out = tmp_path / "work" / "raw" / "lsun_bedroom"
    with pytest.raises(dl.UnsafeArchiveError, match="outside.txt"):
        download(data("lsun_bedroom", None), 0, out, tmp_path / "work" / "downloads")
    assert not out.exists()
    assert not list(tmp_path.rglob("outside.txt"))


def test_celeba_download_with_a_checksum_mismatch_deletes_it_and_writes_nothing(celeba_drive, server, tmp_path,
                                                                                 monkeypatch):
    from loopback import FileRoute

    monkeypatch.setattr(dl, "GDRIVE_BASE", server.base)
    by_id = {f.gdrive_id: FileRoute(data=celeba_drive[f.name].read_bytes()) for f in sources.CELEBA_FILES}
    server.routes["/download"] = lambda h: by_id[h.query["id"]](h)
    out, cache = tmp_path / "raw" / "celeba", tmp_path / "downloads"
    # The published MD5s belong to the real files, not to the fixture served here.
    with pytest.raises(dl.DownloadError, match=r"img_align_celeba\.zip .*md5 mismatch, expected "
                                               r"00d2c5bc6d35e252742224ab0c1e8fcb"):
        download(data("celeba", None), 0, out, cache)
    assert not out.exists()
    assert list((cache / "celeba").iterdir()) == []

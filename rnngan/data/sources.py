"""The `download` stage: each dataset's files as the publisher ships them, in data/raw/<dataset>/.

A registry keyed by `data.dataset`. Real datasets come from `data.source` (a local folder or
archive) when it is set, else from the publisher:

- celeba: img_align_celeba.zip and the annotation files from the publisher's Google Drive
  files (the list torchvision uses), each checked against its published MD5.
- lsun_bedroom: bedroom_{train,val}_lmdb.zip from dl.yf.io, unpacked into the LMDB folders
  LSUN ships inside them (two files each: data.mdb, lock.mdb); or a folder of image files,
  packed into images.zip.
- cityscapes: leftImg8bit_trainvaltest.zip, downloaded with the user's own account
  (CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD, read from the environment and never written
  anywhere), or from a local copy of the zip or of its leftImg8bit/ folder.

Downloads go to a cache folder outside the pipeline's outputs (`--cache`), resume after an
interruption and are verified before they are moved into the output; the output folder is
written atomically, with a manifest.json saying where each file came from and how it was
checked.
"""
from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnngan.config import DataParams
from rnngan.data import celeba_format as cf
from rnngan.data import download as dl
from rnngan.data import preprocess as pp
from rnngan.errors import UserError
from rnngan.io import atomic_path, log, progress, write_json

MANIFEST = dl.MANIFEST


class SourceError(UserError, ValueError):
    """A `data.source` that does not hold what the dataset needs."""


@dataclass(frozen=True)
class PublishedFile:
    name: str
    md5: str | None = None         # as published (None: the publisher gives none)
    gdrive_id: str | None = None
    url: str | None = None


# CelebA's files on the publisher's Google Drive, with their published MD5s (the same list
# torchvision.datasets.CelebA uses).
CELEBA_FILES = (
    PublishedFile(cf.IMAGE_ZIP, "00d2c5bc6d35e252742224ab0c1e8fcb", gdrive_id="0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
    PublishedFile(cf.PARTITION_FILE, "d32c9cbf5e040fd4025c592c306e6668", gdrive_id="0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
    PublishedFile(cf.LANDMARK_FILE, "cc24ecafdb5b50baae59b03474781f8c", gdrive_id="0B7EVK8r0v71pd0FJY3Blby1HUTQ"),
    PublishedFile(cf.ATTR_FILE, "75e246fa4810816ffd6ee81facbd244c", gdrive_id="0B7EVK8r0v71pblRyaVFSWGxPY0U"),
)

# The in-the-wild photos' landmarks (published MD5). The photos themselves ship only as a
# multi-volume img_celeba.7z, so they come from data.source, extracted (img_celeba/ or a zip of it).
CELEBA_WILD_LANDMARKS = PublishedFile(cf.WILD_LANDMARK_FILE, "063ee6ddb681f96bc9ca28c6febb9d1a",
                                      gdrive_id="0B7EVK8r0v71pTzJIdlJWdHczRlU")

# LSUN publishes no checksums; each zip member's CRC-32 is checked as it is unpacked.
LSUN_URL = "http://dl.yf.io/lsun/scenes/{name}"
LSUN_FILES = tuple(PublishedFile(f"{folder}.zip", url=LSUN_URL.format(name=f"{folder}.zip"))
                   for folder in pp.LSUN_SPLITS.values())

CITYSCAPES_PACKAGE_ID = 3           # leftImg8bit_trainvaltest.zip on cityscapes-dataset.com


# ---------------------------------------------------------------------------------------------
# Shared steps

def _record(manifest: dict, name: str, origin: str, md5: str | None, published: str | None,
            verify: bool) -> None:
    """Check md5 against the published one and note the file in the manifest."""
    if published is not None and md5 is not None and md5 != published:
        message = f"{name}: MD5 {md5} differs from the published {published}"
        if verify:
            raise SourceError(f"{message}; the file is not the one the publisher ships (a partial or "
                              "re-packed copy?). Use the original file, or set data.verify=false to go on anyway")
        log.warning("%s; going on because data.verify=false", message)
    manifest["files"][name] = {"origin": origin, "md5": md5, "published_md5": published,
                               "verified": published is not None and md5 == published}


def _find(root: Path, name: str) -> Path | None:
    """The file or folder called `name` under root (root itself included), shallowest first."""
    if root.name == name:
        return root
    return _index(root).get(name)


@functools.lru_cache(maxsize=8)
def _index(root: Path) -> dict[str, Path]:
    """Every name a source may be looked up by, found in one walk of the folder (a source can
    be a folder of millions of images; walking it once per name would be slow). The cache is
    cleared by each `download` call."""
    wanted = {f.name for f in CELEBA_FILES + LSUN_FILES} | {
        cf.IMAGE_DIR, cf.WILD_IMAGE_ZIP, cf.WILD_IMAGE_DIR, CELEBA_WILD_LANDMARKS.name,
        *pp.LSUN_SPLITS.values(), pp.CITYSCAPES_ZIP, "leftImg8bit"}
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for folder, dirs, files in os.walk(root):
        for name in wanted.intersection(dirs + files):
            path = Path(folder) / name
            best = found.get(name)
            if best is None or (len(path.parts), str(path)) < (len(best.parts), str(best)):
                found[name] = path
    return found


def _local_root(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceError(f"data.source={source!r}: no such file or folder (a relative path is taken from "
                          f"the folder dvc runs in, {Path.cwd()})")
    return path


def _pack_folder(folder: Path, zip_path: Path, arcroot: str, suffixes: tuple[str, ...]) -> int:
    """Pack the image files under `folder` into an uncompressed zip (the images are compressed
    already), members named <arcroot>/<relative path>, sorted. Returns the count."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise SourceError(f"{folder}: no image files ({', '.join(suffixes)}) in it")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in progress(files, unit="file", desc=f"pack {zip_path.name}"):
            rel = path.relative_to(folder).as_posix()
            zf.write(path, f"{arcroot}/{rel}" if arcroot else rel)
    return len(files)


def _fetch_all(files: tuple[PublishedFile, ...], cache: Path, verify: bool,
               get: Callable[[PublishedFile, Path, str | None], Path]) -> dict[str, Path]:
    """Download each file into the cache (resumable, verified) before anything moves into the
    output, so an interruption never loses a finished download."""
    cache.mkdir(parents=True, exist_ok=True)
    return {f.name: get(f, cache / f.name, f.md5 if verify else None) for f in files}


def _move_in(paths: dict[str, Path], out: Path) -> None:
    for name, path in paths.items():
        os.replace(path, out / name)


# ---------------------------------------------------------------------------------------------
# Datasets

def synthfaces(data: DataParams, seed: int, out_dir: Path, cache: Path) -> dict:
    """Draw faces procedurally into CelebA's published aligned layout (offline default)."""
    from rnngan.data.synthfaces import write_synthfaces

    return write_synthfaces(out_dir, count=data.count, seed=seed, workers=data.workers)


def celeba(data: DataParams, seed: int, out_dir: Path, cache: Path) -> dict:
    manifest = {"dataset": "celeba", "files": {}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if data.source is None:
            log.info("celeba: downloading %d files from the publisher's Google Drive", len(CELEBA_FILES))
            paths = _fetch_all(CELEBA_FILES, cache / "celeba", data.verify,
                               lambda f, dest, md5: dl.fetch_gdrive(f.gdrive_id, dest, md5=md5, desc=f.name))
            _move_in(paths, tmp)
            for f in CELEBA_FILES:
                _record(manifest, f.name, f"google drive {f.gdrive_id}", f.md5 if data.verify else None,
                        f.md5, data.verify)
        else:
            _celeba_from_local(_local_root(data.source), tmp, data.verify, manifest)
        write_json(tmp / MANIFEST, manifest)
    return manifest


def _celeba_from_local(root: Path, tmp: Path, verify: bool, manifest: dict) -> None:
    """img_align_celeba.zip (or its extracted img_align_celeba/ folder) and the annotation files,
    found by name anywhere under the folder (the publisher's Drive keeps them in Img/, Anno/
    and Eval/). When source is the zip itself, the annotation files are looked for beside it
    and, for the Drive's layout, in ../Anno and ../Eval."""
    for f in CELEBA_FILES:
        if root.is_file():
            near = [root] if root.name == f.name else [root.parent / f.name, root.parent.parent / "Anno" / f.name,
                                                      root.parent.parent / "Eval" / f.name]
            found = next((p for p in near if p.is_file()), None)
        else:
            found = _find(root, f.name)
        if f.name == cf.IMAGE_ZIP and found is None and root.is_dir():
            images = _find(root, cf.IMAGE_DIR)
            if images is not None and images.is_dir():
                log.info("celeba: packing the extracted %s/ folder into %s", images, cf.IMAGE_ZIP)
                count = _pack_folder(images, tmp / cf.IMAGE_ZIP, cf.IMAGE_DIR, (".jpg",))
                _record(manifest, f.name, f"packed from {images} ({count} images)", None, None, verify)
                continue
        if found is None or not found.is_file():
            raise SourceError(f"data.source={str(root)!r}: no {f.name} in it"
                              + (f" (nor an extracted {cf.IMAGE_DIR}/ folder)" if f.name == cf.IMAGE_ZIP else "")
                              + f"; CelebA needs {', '.join(x.name for x in CELEBA_FILES)}")
        md5 = dl.copy_verified(found, tmp / f.name, desc=f.name)
        _record(manifest, f.name, f"copied from {found}", md5, f.md5, verify)
    if root.is_dir():
        _celeba_wild_from_local(root, tmp, verify, manifest)


def _celeba_wild_from_local(root: Path, tmp: Path, verify: bool, manifest: dict) -> None:
    """The optional in-the-wild photos (for data.crop=wild), when the source has them."""
    marks = _find(root, CELEBA_WILD_LANDMARKS.name)
    photos_zip = _find(root, cf.WILD_IMAGE_ZIP)
    photos = _find(root, cf.WILD_IMAGE_DIR)
    if marks is None or not marks.is_file() or (photos_zip is None and (photos is None or not photos.is_dir())):
        log.info("celeba: no in-the-wild photos (%s/ or %s with %s) in the source; data.crop=wild "
                 "will not be available", cf.WILD_IMAGE_DIR, cf.WILD_IMAGE_ZIP, CELEBA_WILD_LANDMARKS.name)
        return
    md5 = dl.copy_verified(marks, tmp / marks.name, desc=marks.name)
    _record(manifest, marks.name, f"copied from {marks}", md5, CELEBA_WILD_LANDMARKS.md5, verify)
    if photos_zip is not None and photos_zip.is_file():
        md5 = dl.copy_verified(photos_zip, tmp / cf.WILD_IMAGE_ZIP, desc=cf.WILD_IMAGE_ZIP)
        _record(manifest, cf.WILD_IMAGE_ZIP, f"copied from {photos_zip}", md5, None, verify)
    else:
        log.info("celeba: packing the in-the-wild %s/ folder into %s", photos, cf.WILD_IMAGE_ZIP)
        count = _pack_folder(photos, tmp / cf.WILD_IMAGE_ZIP, cf.WILD_IMAGE_DIR, (".jpg",))
        _record(manifest, cf.WILD_IMAGE_ZIP, f"packed from {photos} ({count} images)", None, None, verify)


def lsun_bedroom(data: DataParams, seed: int, out_dir: Path, cache: Path) -> dict:
    manifest = {"dataset": "lsun_bedroom", "files": {}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if data.source is None:
            log.info("lsun_bedroom: downloading %s from %s", ", ".join(f.name for f in LSUN_FILES),
                     LSUN_URL.format(name=""))
            paths = _fetch_all(LSUN_FILES, cache / "lsun_bedroom", data.verify,
                               lambda f, dest, md5: dl.fetch(f.url, dest, md5=md5, desc=f.name))
            for f in LSUN_FILES:
                _unpack_lmdb(paths[f.name], tmp, manifest, f"downloaded from {f.url}")
            for path in paths.values():        # unpacked and CRC-checked: the zips have done their job
                path.unlink()
        else:
            _lsun_from_local(_local_root(data.source), tmp, manifest)
        write_json(tmp / MANIFEST, manifest)
    return manifest


def _unpack_lmdb(zip_path: Path, tmp: Path, manifest: dict, origin: str) -> None:
    folder = zip_path.name.removesuffix(".zip")
    names = dl.safe_extract(zip_path, tmp, members=lambda n: n.startswith(f"{folder}/"), desc=zip_path.name)
    if f"{folder}/data.mdb" not in names:
        raise SourceError(f"{zip_path}: no {folder}/data.mdb in it; is this LSUN's {zip_path.name}?")
    manifest["files"][zip_path.name] = {"origin": origin, "unpacked": sorted(names),
                                        "verified": "CRC-32 of every member (LSUN publishes no checksums)"}


def _lsun_from_local(root: Path, tmp: Path, manifest: dict) -> None:
    """LSUN's zips, the LMDB folders unpacked from them, or a folder of image files."""
    found_any = False
    for folder in pp.LSUN_SPLITS.values():
        zip_path = root if root.name == f"{folder}.zip" else (_find(root, f"{folder}.zip") if root.is_dir() else None)
        db = _find(root, folder) if root.is_dir() else None
        if db is not None and (db / "data.mdb").is_file():
            (tmp / folder).mkdir()
            for name in ("data.mdb", "lock.mdb"):
                if (db / name).is_file():
                    dl.copy_verified(db / name, tmp / folder / name, desc=f"{folder}/{name}")
            manifest["files"][folder] = {"origin": f"copied from {db}", "verified": False}
            found_any = True
        elif zip_path is not None and zip_path.is_file():
            _unpack_lmdb(zip_path, tmp, manifest, f"unpacked from {zip_path}")
            found_any = True
    if found_any:
        return
    if root.is_dir():
        log.info("lsun_bedroom: no LMDB export under %s; packing its image files into %s", root, pp.LSUN_IMAGE_ZIP)
        count = _pack_folder(root, tmp / pp.LSUN_IMAGE_ZIP, "", pp.IMAGE_SUFFIXES)
        manifest["files"][pp.LSUN_IMAGE_ZIP] = {"origin": f"packed from {root} ({count} images)", "verified": False}
        return
    raise SourceError(f"data.source={str(root)!r}: expected LSUN's {' or '.join(f.name for f in LSUN_FILES)}, "
                      "a folder holding them or their LMDB folders, or a folder of image files")


def cityscapes(data: DataParams, seed: int, out_dir: Path, cache: Path) -> dict:
    manifest = {"dataset": "cityscapes", "files": {}}
    name = pp.CITYSCAPES_ZIP
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if data.source is None:
            username, password = dl.cityscapes_credentials()
            session = dl.cityscapes_session(username, password, login_url=dl.CITYSCAPES_LOGIN_URL)
            del password
            published = dl.cityscapes_md5(session, CITYSCAPES_PACKAGE_ID)
            url = dl.CITYSCAPES_PACKAGE_URL.format(package_id=CITYSCAPES_PACKAGE_ID)
            log.info("cityscapes: downloading %s as %s", name, username)
            paths = _fetch_all((PublishedFile(name, published, url=url),), cache / "cityscapes", data.verify,
                               lambda f, dest, md5: dl.fetch(f.url, dest, md5=md5, session=session, desc=f.name))
            _move_in(paths, tmp)
            _record(manifest, name, f"downloaded from {url}", published if data.verify else None,
                    published, data.verify)
        else:
            root = _local_root(data.source)
            found = root if root.is_file() else _find(root, name)
            tree = _find(root, "leftImg8bit") if root.is_dir() else None
            if found is not None and found.is_file():
                md5 = dl.copy_verified(found, tmp / name, desc=name)
                _record(manifest, name, f"copied from {found}", md5, None, data.verify)
            elif tree is not None and tree.is_dir():
                log.info("cityscapes: packing the extracted %s/ folder into %s", tree, name)
                count = _pack_folder(tree, tmp / name, "leftImg8bit", (".png",))
                _record(manifest, name, f"packed from {tree} ({count} images)", None, None, data.verify)
            else:
                raise SourceError(f"data.source={str(root)!r}: no {name} and no leftImg8bit/ folder in it")
            with zipfile.ZipFile(tmp / name) as zf:      # fail here, not in preprocess, on a wrong zip
                if not any(pp.CITYSCAPES_MEMBER.match(n) for n in zf.namelist()):
                    raise SourceError(f"{found or tree}: no leftImg8bit/<split>/<city>/*_leftImg8bit.png "
                                      "images in it; is this Cityscapes' leftImg8bit_trainvaltest.zip?")
        write_json(tmp / MANIFEST, manifest)
    return manifest


SOURCES: dict[str, Callable[[DataParams, int, Path, Path], dict]] = {
    "synthfaces": synthfaces, "celeba": celeba, "lsun_bedroom": lsun_bedroom, "cityscapes": cityscapes}


def download(data: DataParams, seed: int, out_dir: Path, cache: Path) -> dict:
    _index.cache_clear()          # the source may have changed since an earlier call
    if data.dataset not in SOURCES:
        raise SourceError(f"data.dataset={data.dataset!r} has no source; allowed: {', '.join(SOURCES)}")
    return SOURCES[data.dataset](data, seed, Path(out_dir), Path(cache))


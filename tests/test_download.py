"""The download engine against a loopback HTTP server built here: resume, retries, verification,
Google Drive's confirmation page, the Cityscapes login, and safe zip extraction."""
from __future__ import annotations

import hashlib
import logging
import re
import socket
import stat
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import requests

from loopback import DATA, PASSWORD, USER, FileRoute, Handler, LoopbackServer, cityscapes_site
from rnngan.data import download as dl
from rnngan.data.download import (
    DownloadError,
    UnsafeArchiveError,
    cityscapes_credentials,
    cityscapes_session,
    copy_verified,
    fetch,
    fetch_cityscapes,
    fetch_gdrive,
    gdrive_url,
    md5sum,
    safe_extract,
)

DATA_MD5 = hashlib.md5(DATA).hexdigest()
CUT = 100_000                            # a dropped connection stops after this many body bytes


# Drive's interstitial for a file too large to scan, as drive.usercontent.google.com serves it
# (a form that the "Download anyway" button submits as a GET with hidden fields).
DRIVE_INTERSTITIAL = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>
<meta http-equiv="content-type" content="text/html; charset=utf-8"/><style>.uc-main{{padding:0}}</style>
</head><body><div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can't
scan this file for viruses.</p><p class="uc-warning-subcaption"><span class="uc-name-size">
<a href="/open?id={id}">data.zip</a> (300K)</span> is too large for Google to scan for viruses.
Would you still like to download this file?</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action"
 value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="{uuid}">
</form></div></div></body></html>"""
DRIVE_UUID = "5c1e0a4e-8d6b-4f1a-9b7c-2f0e3d4a5b6c"

DRIVE_QUOTA = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>
<script>var x = "not text";</script></head><body><div class="uc-main"><div id="uc-text">
<p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.
Please try accessing the file again later.</p></div></div></body></html>"""



@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []


# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------

def test_fetch_completes_verifies_md5_and_renames_into_place(server, cache, caplog):
    server.routes["/f.zip"] = route = FileRoute()
    dest = cache / "f.zip"
    with caplog.at_level(logging.INFO, logger="rnngan"):
        assert fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0) == dest
    assert dest.read_bytes() == DATA
    assert leftovers(dest) == ["f.zip"]            # no .part left beside it
    assert route.requests == [None]
    assert f"md5 {DATA_MD5} verified" in caplog.text


def test_fetch_resumes_after_dropped_connection_within_one_call(server, cache, caplog):
    server.routes["/f.zip"] = route = FileRoute(drop_first=CUT)
    dest = cache / "f.zip"
    with caplog.at_level(logging.INFO, logger="rnngan"):
        fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert dest.read_bytes() == DATA
    assert len(route.requests) == 2 and route.requests[0] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", route.requests[1]).group(1))
    assert 0 < resumed_at <= CUT
    assert f"resuming from {resumed_at} bytes" in caplog.text
    assert "retry 1" in caplog.text
    assert leftovers(dest) == ["f.zip"]


def test_fetch_resumes_part_left_by_earlier_run_and_md5_covers_its_bytes(server, cache):
    server.routes["/f.zip"] = route = FileRoute()
    dest = cache / "f.zip"
    cache.mkdir()
    (cache / "f.zip.part").write_bytes(DATA[:CUT])
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert route.requests == [f"bytes={CUT}-"]     # only the rest was sent
    assert dest.read_bytes() == DATA
    assert not (cache / "f.zip.part").exists()


def test_fetch_part_with_wrong_first_bytes_fails_md5_after_resume(server, cache):
    """The md5 covers the bytes already on disk: a bad earlier part is caught, not trusted."""
    server.routes["/f.zip"] = FileRoute()
    dest = cache / "f.zip"
    cache.mkdir()
    (cache / "f.zip.part").write_bytes(b"\0" * CUT)
    with pytest.raises(DownloadError, match="md5 mismatch"):
        fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert leftovers(dest) == []


def test_fetch_server_ignoring_range_restarts_from_zero(server, cache, caplog):
    server.routes["/f.zip"] = route = FileRoute(ranges=False)
    dest = cache / "f.zip"
    cache.mkdir()
    (cache / "f.zip.part").write_bytes(b"garbage that must not stay in front")
    with caplog.at_level(logging.INFO, logger="rnngan"):
        fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert route.requests[0].startswith("bytes=")
    assert dest.read_bytes() == DATA
    assert "ignored the Range request; restarting from zero" in caplog.text


def test_fetch_server_ignoring_range_after_drop_restarts_from_zero(server, cache):
    server.routes["/f.zip"] = route = FileRoute(ranges=False, drop_first=CUT)
    dest = cache / "f.zip"
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert len(route.requests) == 2 and route.requests[1].startswith("bytes=")
    assert dest.read_bytes() == DATA


def test_fetch_416_on_complete_part_goes_on_to_verification(server, cache):
    server.routes["/f.zip"] = route = FileRoute()
    dest = cache / "f.zip"
    cache.mkdir()
    (cache / "f.zip.part").write_bytes(DATA)
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert route.requests == [f"bytes={len(DATA)}-"]
    assert dest.read_bytes() == DATA and leftovers(dest) == ["f.zip"]


def test_fetch_checksum_mismatch_names_both_md5s_and_leaves_nothing(server, cache):
    server.routes["/f.zip"] = FileRoute()
    dest = cache / "f.zip"
    wrong = "0" * 32
    with pytest.raises(DownloadError) as e:
        fetch(server.url("/f.zip"), dest, md5=wrong, backoff=0)
    assert wrong in str(e.value) and DATA_MD5 in str(e.value) and "f.zip" in str(e.value)
    assert leftovers(dest) == []                    # neither dest nor .part


@pytest.mark.parametrize("status", [404, 403, 401, 410])
def test_fetch_client_error_fails_at_once_without_retry_or_files(server, cache, status):
    server.routes["/f.zip"] = route = FileRoute(errors=[status] * 10)
    dest = cache / "f.zip"
    url = server.url("/f.zip")
    with pytest.raises(DownloadError) as e:
        fetch(url, dest, md5=DATA_MD5, retries=5, backoff=0)
    assert str(status) in str(e.value) and url in str(e.value)
    assert len(route.requests) == 1
    assert leftovers(dest) == []


@pytest.mark.parametrize("errors", [[500], [503, 502], [429]])
def test_fetch_retries_server_errors_then_succeeds(server, cache, errors, caplog):
    server.routes["/f.zip"] = route = FileRoute(errors=list(errors))
    dest = cache / "f.zip"
    with caplog.at_level(logging.WARNING, logger="rnngan"):
        fetch(server.url("/f.zip"), dest, md5=DATA_MD5, retries=5, backoff=0)
    assert len(route.requests) == len(errors) + 1
    assert dest.read_bytes() == DATA
    assert f"HTTP {errors[0]}" in caplog.text


def test_fetch_retries_exhausted_keeps_part_and_says_so(server, cache):
    server.routes["/f.zip"] = route = FileRoute(errors=[500] * 10)
    dest = cache / "f.zip"
    cache.mkdir()
    part = cache / "f.zip.part"
    part.write_bytes(DATA[:CUT])
    url = server.url("/f.zip")
    with pytest.raises(DownloadError) as e:
        fetch(url, dest, md5=DATA_MD5, retries=3, backoff=0)
    message = str(e.value)
    assert url in message and "HTTP 500" in message
    assert "kept in" in message and str(part) in message and "resume" in message
    assert len(route.requests) == 3
    assert part.read_bytes() == DATA[:CUT] and not dest.exists()


def test_fetch_attempt_that_made_progress_restarts_the_failure_count(server, cache):
    """500, a drop after CUT bytes, 500, then the rest: with retries=3 this is three failures,
    but the drop moved the part forward, so only the two after it count and the fetch succeeds."""
    inner = FileRoute(drop_first=CUT)
    answers = iter([500, "file", 500, "file"])
    server.routes["/f.zip"] = lambda h: (inner(h) if (a := next(answers)) == "file"
                                         else h.reply(a, b"oops\n"))
    dest = cache / "f.zip"
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, retries=3, backoff=0)
    assert dest.read_bytes() == DATA and server.count("/f.zip") == 4


def test_fetch_retries_connection_refused_then_gives_up(cache):
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/f.zip"
    with pytest.raises(DownloadError) as e:
        fetch(url, cache / "f.zip", retries=2, backoff=0, timeout=2)
    assert url in str(e.value) and "ConnectionError" in str(e.value)
    assert "Nothing was received" in str(e.value)
    assert leftovers(cache / "f.zip") == []


def test_fetch_retries_read_timeout(server, cache):
    server.routes["/f.zip"] = route = FileRoute(stall_first=0.6)
    dest = cache / "f.zip"
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0, timeout=0.2)
    assert len(route.requests) == 2 and dest.read_bytes() == DATA


def test_fetch_existing_verified_dest_makes_no_request(server, cache):
    server.routes["/f.zip"] = route = FileRoute()
    dest = cache / "f.zip"
    cache.mkdir()
    dest.write_bytes(DATA)
    assert fetch(server.url("/f.zip"), dest, md5=DATA_MD5) == dest
    assert fetch(server.url("/f.zip"), dest) == dest         # no md5: trusted as is
    assert route.requests == [] and server.seen == []


def test_fetch_existing_dest_with_wrong_md5_is_downloaded_again(server, cache):
    server.routes["/f.zip"] = route = FileRoute()
    dest = cache / "f.zip"
    cache.mkdir()
    dest.write_bytes(b"stale")
    fetch(server.url("/f.zip"), dest, md5=DATA_MD5, backoff=0)
    assert dest.read_bytes() == DATA and route.requests == [None]


def test_fetch_uses_given_session_and_shows_bytes_progress(server, cache, monkeypatch):
    server.routes["/f.zip"] = FileRoute()
    bars = []
    real_progress = dl.progress

    def spy(*args, **kw):
        bars.append(kw)
        return real_progress(*args, **kw)

    monkeypatch.setattr(dl, "progress", spy)
    session = requests.Session()
    session.headers["X-Test"] = "kept"
    fetch(server.url("/f.zip"), cache / "f.zip", md5=DATA_MD5, session=session, desc="the zip")
    assert server.seen[0].headers["X-Test"] == "kept"
    bar = next(b for b in bars if b.get("desc") == "the zip")
    assert bar["unit"] == "B" and bar["unit_scale"] and bar["unit_divisor"] == 1024
    assert bar["total"] == len(DATA) and bar["initial"] == 0


# ---------------------------------------------------------------------------------------------
# HTML answers and Google Drive
# ---------------------------------------------------------------------------------------------

def drive_route(server: LoopbackServer, *, always_interstitial: bool = False):
    file_route = FileRoute()

    def route(h: Handler) -> None:
        if h.query.get("uuid") == DRIVE_UUID and not always_interstitial:
            return file_route(h)
        return h.html(DRIVE_INTERSTITIAL.format(id=h.query.get("id", ""), uuid=DRIVE_UUID,
                                                action=server.url("/download")))

    server.routes["/download"] = route
    return file_route


def test_gdrive_url_is_the_direct_usercontent_download():
    assert gdrive_url("1AbC-d_E") == ("https://drive.usercontent.google.com/download?id=1AbC-d_E"
                                      "&export=download&confirm=t")


def test_fetch_gdrive_follows_virus_scan_interstitial(server, cache, monkeypatch):
    monkeypatch.setattr(dl, "GDRIVE_BASE", server.base)
    file_route = drive_route(server)
    dest = cache / "celeba.zip"
    fetch_gdrive("FILE-ID_1", dest, md5=DATA_MD5, backoff=0)
    assert dest.read_bytes() == DATA
    first, second = server.seen
    assert first.query == {"id": "FILE-ID_1", "export": "download", "confirm": "t"}
    assert second.query == {"id": "FILE-ID_1", "export": "download", "confirm": "t",
                            "uuid": DRIVE_UUID}
    assert file_route.requests == [None]
    assert leftovers(dest) == ["celeba.zip"]


def test_fetch_gdrive_interstitial_followed_at_most_a_few_times(server, cache, monkeypatch):
    monkeypatch.setattr(dl, "GDRIVE_BASE", server.base)
    drive_route(server, always_interstitial=True)
    with pytest.raises(DownloadError, match="confirmation page") as e:
        fetch_gdrive("FILE", cache / "x.zip", md5=None, backoff=0)
    assert "data.source" in str(e.value)
    assert len(server.seen) == dl.MAX_FORM_FOLLOWS + 1


def test_fetch_gdrive_quota_page_is_a_clear_error_pointing_at_data_source(server, cache, monkeypatch):
    monkeypatch.setattr(dl, "GDRIVE_BASE", server.base)
    server.routes["/download"] = lambda h: h.html(DRIVE_QUOTA)
    dest = cache / "celeba.zip"
    with pytest.raises(DownloadError) as e:
        fetch_gdrive("FILE", dest, md5=DATA_MD5, retries=5, backoff=0)
    message = str(e.value)
    assert "Quota exceeded" in message and "Too many users have viewed or downloaded" in message
    assert "can't view or download" in message          # entities decoded
    assert "not text" not in message                    # scripts are not text
    assert "by hand" in message and "data.source" in message
    assert len(server.seen) == 1                        # not retried
    assert leftovers(dest) == []


# ---------------------------------------------------------------------------------------------
# Cityscapes
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def site(server, monkeypatch):
    monkeypatch.setattr(dl, "CITYSCAPES_PACKAGE_URL", server.url("/file-handling/?packageID={package_id}"))
    monkeypatch.setattr(dl, "CITYSCAPES_MD5_URL", server.url("/md5-sum/?packageID={package_id}"))
    return server


def test_cityscapes_login_then_package_download_verified_with_site_md5(site, cache, caplog):
    cityscapes_site(site, DATA)
    with caplog.at_level(logging.INFO, logger="rnngan"):
        session = cityscapes_session(USER, PASSWORD, login_url=site.url("/login/"))
        dest = fetch_cityscapes(3, cache / "leftImg8bit_trainvaltest.zip", session=session, backoff=0)
    assert dest.read_bytes() == DATA
    assert dl.cityscapes_md5(session, 3) == DATA_MD5
    assert f"md5 {DATA_MD5} verified" in caplog.text
    posted = urllib.parse.parse_qs(site.posted[0].decode())
    assert posted == {"username": [USER], "password": [PASSWORD], "submit": ["Login"]}


def test_cityscapes_wrong_password_error_never_shows_the_password(site, tmp_path, caplog, capsys):
    cityscapes_site(site, DATA)
    wrong = "wr0ng-" + PASSWORD
    # caplog at DEBUG on every logger, urllib3's too
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as e:
        cityscapes_session(USER, wrong, login_url=site.url("/login/"))
    message = str(e.value)
    assert f"Cityscapes login failed for user {USER!r}" in message
    assert "CITYSCAPES_USERNAME" in message and "CITYSCAPES_PASSWORD" in message
    out = capsys.readouterr()
    for text in (message, repr(e.value), caplog.text, out.out, out.err,
                 *(repr(x) for x in (e.value.__cause__, e.value.__context__))):
        assert wrong not in text and PASSWORD not in text
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or wrong.encode() not in path.read_bytes()


def test_cityscapes_unreachable_login_error_never_shows_the_password(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as e:
        cityscapes_session(USER, PASSWORD, login_url=f"http://127.0.0.1:{port}/login/", timeout=2)
    assert "Cityscapes login" in str(e.value) and PASSWORD not in str(e.value)
    assert e.value.__cause__ is None


def test_cityscapes_expired_session_gets_login_page_error(site, cache):
    cityscapes_site(site, DATA)
    dest = cache / "leftImg8bit_trainvaltest.zip"
    with pytest.raises(DownloadError) as e:
        fetch_cityscapes(3, dest, session=requests.Session(), backoff=0)   # never logged in
    assert "login page" in str(e.value) and "Cityscapes Dataset" in str(e.value)
    assert "/file-handling/?packageID=3" in str(e.value)
    assert leftovers(dest) == []


def test_cityscapes_credentials_read_from_env_or_name_both_variables():
    env = {"CITYSCAPES_USERNAME": USER, "CITYSCAPES_PASSWORD": PASSWORD}
    assert cityscapes_credentials(env) == (USER, PASSWORD)
    for missing in ({}, {"CITYSCAPES_USERNAME": USER}, {"CITYSCAPES_PASSWORD": PASSWORD}):
        with pytest.raises(DownloadError) as e:
            cityscapes_credentials(missing)
        assert "CITYSCAPES_USERNAME" in str(e.value) and "CITYSCAPES_PASSWORD" in str(e.value)
        assert PASSWORD not in str(e.value)


# ---------------------------------------------------------------------------------------------
# safe_extract
# ---------------------------------------------------------------------------------------------

def make_zip(path: Path, members: dict[str | zipfile.ZipInfo, bytes],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_safe_extract_extracts_members_and_returns_names(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"leftImg8bit/train/a.png": b"A" * 5000,
                                            "leftImg8bit/val/b.png": b"B" * 10,
                                            "README": b"hello"})
    target = tmp_path / "out"
    names = safe_extract(archive, target)
    assert sorted(names) == ["README", "leftImg8bit/train/a.png", "leftImg8bit/val/b.png"]
    assert (target / "leftImg8bit/train/a.png").read_bytes() == b"A" * 5000
    assert (target / "README").read_bytes() == b"hello"
    assert not list(target.rglob("*.part"))


def test_safe_extract_member_filter(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"train/a.png": b"a", "test/b.png": b"b"})
    names = safe_extract(archive, tmp_path / "out", members=lambda n: n.startswith("train/"))
    assert names == ["train/a.png"]
    assert not (tmp_path / "out/test").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt",
                                 "C:/evil.txt", "..\\evil.txt"])
def test_safe_extract_refuses_escaping_paths_before_extracting_anything(tmp_path, bad):
    archive = make_zip(tmp_path / "a.zip", {"good.txt": b"fine", bad: b"evil"})
    target = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(archive, target)
    assert repr(bad) in str(e.value)
    assert not target.exists() or not any(target.iterdir())     # not even good.txt
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep/evil.txt").exists()


def test_safe_extract_refuses_symlink_member(tmp_path):
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "a.zip", {"good.txt": b"fine", link: b"/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="'link' is a symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_safe_extract_refuses_device_member(tmp_path):
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    archive = make_zip(tmp_path / "a.zip", {fifo: b""})
    with pytest.raises(UnsafeArchiveError, match="'pipe' is not a regular file"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_corrupt_member_names_it(tmp_path):
    content = b"stored bytes of the member " * 40
    archive = make_zip(tmp_path / "a.zip", {"ok.txt": b"fine", "broken.bin": content},
                       compression=zipfile.ZIP_STORED)
    raw = bytearray(archive.read_bytes())
    at = raw.index(content) + len(content) // 2
    raw[at] ^= 0xFF                                  # one byte of data, headers untouched
    archive.write_bytes(bytes(raw))
    target = tmp_path / "out"
    with pytest.raises(DownloadError, match="'broken.bin' is corrupt"):
        safe_extract(archive, target)
    assert not (target / "broken.bin").exists()
    assert not list(target.rglob("*.part"))


def test_safe_extract_not_a_zip_is_a_download_error(tmp_path):
    bad = tmp_path / "a.zip"
    bad.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(DownloadError, match="not a readable zip"):
        safe_extract(bad, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# copy_verified, md5sum
# ---------------------------------------------------------------------------------------------

def test_copy_verified_copies_and_returns_md5(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(DATA)
    dest = tmp_path / "raw" / "dest.zip"
    assert copy_verified(src, dest, md5=DATA_MD5.upper()) == DATA_MD5
    assert dest.read_bytes() == DATA
    assert leftovers(dest) == ["dest.zip"]
    assert copy_verified(src, tmp_path / "raw" / "again.zip") == DATA_MD5   # md5 optional


def test_copy_verified_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(DATA)
    dest = tmp_path / "raw" / "dest.zip"
    with pytest.raises(DownloadError) as e:
        copy_verified(src, dest, md5="f" * 32)
    assert "f" * 32 in str(e.value) and DATA_MD5 in str(e.value) and str(src) in str(e.value)
    assert leftovers(dest) == []


def test_copy_verified_missing_source_names_it(tmp_path):
    with pytest.raises(DownloadError, match="no such file"):
        copy_verified(tmp_path / "nope.zip", tmp_path / "dest.zip")


def test_md5sum_matches_hashlib(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(DATA * 5)
    assert md5sum(path) == hashlib.md5(DATA * 5).hexdigest()
    assert md5sum(path, progress_desc="checking f") == hashlib.md5(DATA * 5).hexdigest()

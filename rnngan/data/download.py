"""The download engine behind the `download` stage: resumable, verified HTTP fetches (plain URLs,
Google Drive, the Cityscapes site behind its login), verified local copies and safe zip extraction.

A fetch streams into `<dest>.part` beside `dest` and renames the part onto `dest` only once every
byte has arrived and the md5 (when known) matches. So the download cache holds whole, verified
files, or a `.part` that the next run resumes from, never half a file under the final name.

The md5 of a part is kept in step with the bytes on disk: the bytes an earlier run left are hashed
first, then every appended chunk, so a resumed file is verified without a second read of it.
"""
from __future__ import annotations

import hashlib
import html.parser
import http.client
import os
import posixpath
import re
import stat
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from urllib3.exceptions import ProtocolError

from rnngan.errors import UserError
from rnngan.io import log, progress

# Google Drive serves file bodies from this host; drive.google.com/uc?id=... redirects here.
GDRIVE_BASE = "https://drive.usercontent.google.com"

# The Cityscapes site, as cityscapesScripts' csDownload (cityscapesscripts/download/downloader.py)
# uses it: POST username, password, submit=Login to the login page without following redirects;
# a 302 means logged in (the session cookie is set), anything else means bad credentials.
CITYSCAPES_LOGIN_URL = "https://www.cityscapes-dataset.com/login/"
CITYSCAPES_PACKAGE_URL = "https://www.cityscapes-dataset.com/file-handling/?packageID={package_id}"
# The site publishes each package's md5 as text ("<md5> <file name>"), to logged-in users.
CITYSCAPES_MD5_URL = "https://www.cityscapes-dataset.com/md5-sum/?packageID={package_id}"
CITYSCAPES_PACKAGES = {"leftImg8bit_trainvaltest.zip": 3}   # file name -> packageID
CITYSCAPES_ENV = ("CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD")
CITYSCAPES_REGISTER_URL = "https://www.cityscapes-dataset.com/register/"

MAX_BACKOFF_S = 60.0          # exponential backoff stops growing here
MAX_FORM_FOLLOWS = 2          # Drive's "can't scan for viruses" page, followed at most this often
HTML_PEEK_BYTES = 1 << 20     # an HTML answer is read this far to say what it is
HASH_CHUNK = 1 << 20
NET_READ = 64 * 1024          # most bytes per network read; what a dropped connection can cost
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


class DownloadError(UserError, RuntimeError):
    """A file that could not be fetched or verified; the message names the file or URL and what to do."""


class UnsafeArchiveError(DownloadError):
    """A zip member that would land outside the target folder, or is not a plain file or folder."""


class _Transient(Exception):
    """A failure worth another attempt (the server's fault or the network's)."""


# Network failures that another attempt may get past: dropped or refused connections, timeouts,
# a body shorter than its Content-Length (urllib3 raises ProtocolError(IncompleteRead), requests
# wraps it as ChunkedEncodingError), and the 429 / 5xx answers turned into _Transient below.
_TRANSIENT = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
              requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
              ProtocolError, http.client.IncompleteRead, _Transient)


# The record the download stage writes beside the files: each file's origin and MD5, and whether
# that matched the published MD5 (rnngan.data.sources writes it, the report reads it).
MANIFEST = "manifest.json"

def md5sum(path: Path, progress_desc: str | None = None) -> str:
    """The md5 of a file, read in 1 MiB blocks; a bytes progress bar when progress_desc is given."""
    path = Path(path)
    digest = hashlib.md5()
    quiet = {"disable": True} if progress_desc is None else {}
    with open(path, "rb") as f, progress(total=path.stat().st_size, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=progress_desc, **quiet) as bar:
        for block in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# fetch: one URL into the download cache
# ---------------------------------------------------------------------------------------------

@dataclass
class _Part:
    """The `.part` file and an md5 of exactly the bytes it holds."""
    path: Path
    digest: hashlib._Hash = field(default_factory=hashlib.md5)
    size: int = 0                 # bytes covered by digest

    def sync(self, desc: str) -> int:
        """Bring the digest up to the bytes on disk (left by an earlier run); returns the size."""
        on_disk = self.path.stat().st_size if self.path.exists() else 0
        if on_disk < self.size:   # shrank behind our back: hash it again from the start
            self.digest, self.size = hashlib.md5(), 0
        if on_disk > self.size:
            with open(self.path, "rb") as f, progress(total=on_disk - self.size, unit="B",
                                                      unit_scale=True, unit_divisor=1024,
                                                      desc=f"hashing {desc}") as bar:
                f.seek(self.size)
                for block in iter(lambda: f.read(HASH_CHUNK), b""):
                    self.digest.update(block)
                    self.size += len(block)
                    bar.update(len(block))
        return self.size

    def append(self, chunk: bytes, f) -> None:
        f.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        """Throw the bytes away: the next bytes written are the file's first."""
        self.path.unlink(missing_ok=True)
        self.digest, self.size = hashlib.md5(), 0


def part_path(dest: Path) -> Path:
    """Where `fetch` streams `dest` to until it is complete and verified."""
    return dest.with_name(dest.name + ".part")


def fetch(url: str, dest: Path, *, md5: str | None = None, session: requests.Session | None = None,
          retries: int = 5, backoff: float = 1.0, timeout: float = 60.0, chunk_size: int = 1 << 20,
          desc: str | None = None) -> Path:
    """Download `url` to `dest` (a file in the download cache), resuming and verifying; returns dest.

    - An existing `dest` with the right md5 (or any `dest` when md5 is None) is returned as is.
    - Bytes stream into `dest.name + ".part"`; an existing part is resumed with a Range request
      (206: append; 200: the server ignored Range, start from zero; 416: the part is complete).
    - Connection errors, timeouts, short bodies, HTTP 429 and 5xx are retried, each attempt
      resuming from the bytes on disk, after backoff * 2**k seconds (at most MAX_BACKOFF_S).
      `retries` is how many attempts in a row may fail; an attempt that received new bytes
      starts the count again, so a slow, flaky link is not abandoned while it makes progress.
      When they are used up the part is kept for the next run.
    - chunk_size is the disk write buffer; the network is read in pieces of at most NET_READ.
    - Other 4xx answers fail at once. An HTML answer is followed when it is Google Drive's
      download confirmation form, and is an error naming the page otherwise.
    - The md5 is checked before the part is renamed onto dest; a mismatch deletes the part.
    """
    dest = Path(dest)
    desc = desc or dest.name
    md5 = md5.lower() if md5 else None
    if dest.is_file():
        if md5 is None:
            log.info("%s: already downloaded (no md5 to check it against)", dest)
            return dest
        actual = md5sum(dest, progress_desc=f"checking {dest.name}")
        if actual == md5:
            log.info("%s: already downloaded, md5 %s verified", dest, md5)
            return dest
        log.warning("%s: md5 is %s, expected %s; downloading it again", dest, actual, md5)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _Part(part_path(dest))
    own_session = session is None
    session = session or requests.Session()
    try:
        _download(session, url, part, retries=retries, backoff=backoff, timeout=timeout,
                  chunk_size=chunk_size, desc=desc)
    finally:
        if own_session:
            session.close()
    actual = part.digest.hexdigest()
    if md5 is not None and actual != md5:
        part.restart()
        raise DownloadError(f"{dest.name} (from {url}): md5 mismatch, expected {md5}, got {actual}; "
                            f"the download was deleted. Run again to fetch it afresh, or check the "
                            f"expected md5.")
    if md5 is not None:
        log.info("%s: md5 %s verified", dest.name, actual)
    else:
        log.info("%s: downloaded, md5 %s (none given to check against)", dest.name, actual)
    os.replace(part.path, dest)
    return dest


def _download(session: requests.Session, url: str, part: _Part, *, retries: int, backoff: float,
              timeout: float, chunk_size: int, desc: str) -> None:
    """Attempts until the part holds the whole file; DownloadError when they run out."""
    attempts = max(1, retries)
    failures = follows = 0
    current = url
    while True:
        before = part.sync(desc)   # bytes of an earlier run count as there already, not as progress
        try:
            follow = _attempt(session, current, part, timeout=timeout, chunk_size=chunk_size,
                              desc=desc)
        except _TRANSIENT as e:
            error = _describe(e)
            if part.size > before:    # it moved forward: only failures in a row count
                failures = 0
            failures += 1
            if failures >= attempts:
                raise DownloadError(f"{url}: giving up after {failures} failed attempt(s) in a row; "
                                    f"last error: {error}. {_part_note(part)}") from e
            delay = min(backoff * 2 ** (failures - 1), MAX_BACKOFF_S)
            log.warning("%s: attempt failed (%s); retry %d of %d in %.1f s", desc, error, failures,
                        attempts - 1, delay)
            if delay > 0:
                time.sleep(delay)
            continue
        if follow is None:
            return
        follows += 1
        if follows > MAX_FORM_FOLLOWS:
            raise DownloadError(f"{url}: the server kept answering with its download confirmation "
                                f"page ({follows - 1} times followed). {_BY_HAND}")
        log.info("%s: following the download confirmation form to %s", desc, follow)
        current = follow


_BY_HAND = "Download the file by hand (in a browser) and point data.source at it."


def _part_note(part: _Part) -> str:
    if part.path.exists() and part.path.stat().st_size:
        return (f"The {part.path.stat().st_size} bytes received so far are kept in {part.path}; "
                f"run again to resume from there.")
    return "Nothing was received."


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if not isinstance(e, _Transient) else str(e)
    return text if len(text) <= 300 else text[:297] + "..."


def _attempt(session: requests.Session, url: str, part: _Part, *, timeout: float, chunk_size: int,
             desc: str) -> str | None:
    """One GET. Returns None once the part holds the whole file, or the URL of a confirmation
    form to follow; raises a _TRANSIENT error to be retried or DownloadError to stop."""
    offset = part.sync(desc)
    # identity: byte ranges then count the file's bytes, and Content-Length is the body's length
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except _TRANSIENT:
        raise
    except requests.exceptions.RequestException as e:   # bad URL, redirect loop, ...
        raise DownloadError(f"{url}: {_describe(e)}") from e
    with response:
        status = response.status_code
        if status == 416 and offset:
            total = _range_total(response.headers.get("Content-Range", ""))
            if total is None or total == offset:
                log.info("%s: the server says the %d bytes already received are the whole file",
                         desc, offset)
                return None
            log.warning("%s: the partial file (%d bytes) is longer than the file on the server "
                        "(%d bytes); starting over", desc, offset, total)
            part.restart()
            raise _Transient(f"partial file longer than the file on the server ({total} bytes)")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise DownloadError(f"{url}: HTTP {status} {response.reason}; not retried. "
                                f"{_status_hint(status)}")
        if "html" in response.headers.get("Content-Type", "").lower():
            page = _read_page(response)
            follow = page.confirmation_url(response.url)
            if follow:
                return follow
            raise DownloadError(_html_message(url, page))
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                log.warning("%s: asked for bytes from %d, the server sent %s; starting over",
                            desc, offset, response.headers.get("Content-Range"))
                part.restart()
                raise _Transient(f"server answered Range bytes={offset}- with "
                                 f"Content-Range {response.headers.get('Content-Range')!r}")
            log.info("%s: resuming from %d bytes", desc, offset)
        else:
            if offset:
                log.info("%s: the server ignored the Range request; restarting from zero", desc)
                part.restart()
                offset = 0
            total = _content_length(response)
        _stream(response, part, total=total, offset=offset, chunk_size=chunk_size, desc=desc)
    return None


def _status_hint(status: int) -> str:
    if status == 404:
        return "Check the URL / file id; or download the file by hand and point data.source at it."
    if status in (401, 403):
        return ("The file needs a login or is not shared publicly; download it by hand and point "
                "data.source at it.")
    return _BY_HAND


def _stream(response: requests.Response, part: _Part, *, total: int | None, offset: int,
            chunk_size: int, desc: str) -> None:
    """Append the body to the part, hashing as it goes; a body cut short is _Transient.

    The network is read in pieces of at most NET_READ bytes, because the bytes of a read that a
    dropped connection cuts short are lost (urllib3 raises instead of returning them); the file
    buffers chunk_size bytes per disk write."""
    with open(part.path, "ab", buffering=chunk_size) as f, \
            progress(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=desc) as bar:
        for chunk in response.iter_content(chunk_size=min(chunk_size, NET_READ)):
            part.append(chunk, f)
            bar.update(len(chunk))
    if total is not None and part.size < total:
        raise _Transient(f"connection closed after {part.size} of {total} bytes")
    if total is not None and part.size > total:
        received = part.size
        part.restart()
        raise _Transient(f"received {received} bytes, more than the {total} announced")


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, full size) of a Content-Range 'bytes a-b/n'; None for what is missing."""
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value)
    if not m:
        return None, None
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _range_total(value: str) -> int | None:
    """The full size in a 416's Content-Range 'bytes */n'."""
    m = re.match(r"\s*bytes\s+\*/(\d+)", value)
    return int(m.group(1)) if m else None


def _content_length(response: requests.Response) -> int | None:
    """The body's length when Content-Length counts the bytes iter_content yields."""
    if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None   # a decoded body has another length than the encoded one announced
    try:
        n = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return n if n >= 0 else None


# ---------------------------------------------------------------------------------------------
# HTML answers: Drive's confirmation form (followed) and everything else (a clear error)
# ---------------------------------------------------------------------------------------------

@dataclass
class _Form:
    id: str
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)


class _Page(html.parser.HTMLParser):
    """What an HTML answer says: title, visible text, forms with their hidden fields, links."""

    # Drive's "can't scan this file for viruses" page: <form id="download-form"
    # action="https://drive.usercontent.google.com/download" method="get"> with hidden inputs
    # id, export, confirm, uuid (and sometimes at, authuser). Older pages: id="downloadForm", or
    # a link <a id="uc-download-link" href="/uc?export=download&confirm=...&id=...">.
    FORM_IDS = ("download-form", "downloadForm")
    LINK_IDS = ("uc-download-link",)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.texts: list[str] = []
        self.forms: list[_Form] = []
        self.links: dict[str, str] = {}
        self.has_password = False
        self._form: _Form | None = None
        self._in_title = False
        self._hidden = 0          # depth inside script / style / noscript

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag in ("script", "style", "noscript"):
            self._hidden += 1
        elif tag == "form":
            self._form = _Form(a.get("id", ""), a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "password":
                self.has_password = True
            owner = self._form_by_id(a["form"]) if a.get("form") else self._form
            if kind == "hidden" and owner is not None and a.get("name"):
                owner.fields.append((a["name"], a.get("value", "")))
        elif tag == "a" and a.get("id") in self.LINK_IDS and a.get("href"):
            self.links[a["id"]] = a["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in ("script", "style", "noscript"):
            self._hidden = max(0, self._hidden - 1)
        elif tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            text = " ".join(data.split())
            if text:
                self.texts.append(text)

    def _form_by_id(self, form_id: str) -> _Form | None:
        return next((f for f in self.forms if f.id == form_id), None)

    def confirmation_url(self, base: str) -> str | None:
        """The URL Drive's 'download anyway' button goes to, or None when this is not that page."""
        for form in self.forms:
            if form.id in self.FORM_IDS and form.method in ("", "get"):
                action = urllib.parse.urljoin(base, form.action or base)
                parts = urllib.parse.urlsplit(action)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                query.update(form.fields)     # the hidden inputs are what the button submits
                return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        for link_id in self.LINK_IDS:
            if link_id in self.links:
                return urllib.parse.urljoin(base, self.links[link_id])
        return None

    def summary(self, limit: int = 240) -> str:
        """The title and the first meaningful text, briefly."""
        title = " ".join(self.title.split())
        texts = [t for t in self.texts if t != title]
        text = " ".join([title] + texts if title else texts)
        return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _read_page(response: requests.Response) -> _Page:
    body = b""
    for chunk in response.iter_content(chunk_size=64 * 1024):
        body += chunk
        if len(body) >= HTML_PEEK_BYTES:
            break
    charset = "utf-8"
    if "charset=" in response.headers.get("Content-Type", "").lower() and response.encoding:
        charset = response.encoding
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _html_message(url: str, page: _Page) -> str:
    what = ("a login page (not logged in, or the session expired)" if page.has_password
            else "an HTML page")
    return f"{url}: expected the file but got {what}: {page.summary()!r}. {_BY_HAND}"


# ---------------------------------------------------------------------------------------------
# Google Drive
# ---------------------------------------------------------------------------------------------

def gdrive_url(file_id: str) -> str:
    """The direct download URL of a public Drive file; confirm=t skips the virus-scan page
    where Drive still honours it (the form is followed where it does not)."""
    return f"{GDRIVE_BASE}/download?id={urllib.parse.quote(file_id, safe='')}&export=download&confirm=t"


def fetch_gdrive(file_id: str, dest: Path, *, md5: str | None, **kw) -> Path:
    """`fetch` a public Google Drive file by id (keyword arguments as for `fetch`)."""
    return fetch(gdrive_url(file_id), dest, md5=md5, **kw)


# ---------------------------------------------------------------------------------------------
# Cityscapes (needs an account)
# ---------------------------------------------------------------------------------------------

def cityscapes_credentials(env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(username, password) from CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD."""
    missing = [name for name in CITYSCAPES_ENV if not env.get(name)]
    if missing:
        raise DownloadError(
            f"Cityscapes downloads need an account: set {CITYSCAPES_ENV[0]} and {CITYSCAPES_ENV[1]} "
            f"(missing: {', '.join(missing)}; register at {CITYSCAPES_REGISTER_URL}), or download "
            f"the package by hand and point data.source at it.")
    return env[CITYSCAPES_ENV[0]], env[CITYSCAPES_ENV[1]]


def cityscapes_session(username: str, password: str, *, login_url: str = CITYSCAPES_LOGIN_URL,
                       timeout: float = 60.0) -> requests.Session:
    """A session logged in to the Cityscapes site. The password appears in no message or log."""
    session = requests.Session()

    def redact(text: str) -> str:
        return text.replace(password, "***") if password else text

    try:
        # like csDownload: load the login page first (cookies), then post the form
        session.get(login_url, allow_redirects=False, timeout=timeout)
        response = session.post(login_url, data={"username": username, "password": password,
                                                 "submit": "Login"},
                                allow_redirects=False, timeout=timeout)
    except requests.exceptions.RequestException as e:
        session.close()
        raise DownloadError(redact(f"Cityscapes login at {login_url} failed: {_describe(e)}; "
                                   f"check the network and try again")) from None
    if response.status_code >= 500:
        session.close()
        raise DownloadError(f"Cityscapes login at {login_url}: HTTP {response.status_code}; "
                            f"the site is having trouble, try again later")
    if response.status_code != 302:   # a successful login redirects; a failed one shows the form
        session.close()
        raise DownloadError(redact(f"Cityscapes login failed for user {username!r}: check "
                                   f"{CITYSCAPES_ENV[0]} / {CITYSCAPES_ENV[1]}"))
    log.info("Cityscapes: logged in as %s", username)
    return session


def cityscapes_md5(session: requests.Session, package_id: int, *, timeout: float = 60.0) -> str | None:
    """The md5 the site publishes for a package, or None (with a warning) when it gives none."""
    url = CITYSCAPES_MD5_URL.format(package_id=package_id)
    try:
        response = session.get(url, allow_redirects=False, timeout=timeout)
    except requests.exceptions.RequestException as e:
        log.warning("Cityscapes: no md5 for package %s (%s); the download is not verified",
                    package_id, _describe(e))
        return None
    words = response.text.split() if response.status_code == 200 else []
    if not words or not _MD5_RE.match(words[0]):
        log.warning("Cityscapes: no md5 for package %s (HTTP %d); the download is not verified",
                    package_id, response.status_code)
        return None
    return words[0].lower()


def fetch_cityscapes(package_id: int, dest: Path, *, session: requests.Session,
                     md5: str | None = None, **kw) -> Path:
    """`fetch` a Cityscapes package with a logged-in session, checked against the site's md5
    unless one is given."""
    md5 = md5 or cityscapes_md5(session, package_id, timeout=kw.get("timeout", 60.0))
    return fetch(CITYSCAPES_PACKAGE_URL.format(package_id=package_id), dest, md5=md5,
                 session=session, **kw)


# ---------------------------------------------------------------------------------------------
# Local files and archives
# ---------------------------------------------------------------------------------------------

def copy_verified(src: Path, dest: Path, *, md5: str | None = None, desc: str | None = None) -> str:
    """Copy a local file to dest, hashing in the same pass; returns its md5.

    Written to a temporary name beside dest and renamed into place; on an md5 mismatch nothing
    is left at dest and DownloadError names the file and both md5s."""
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise DownloadError(f"{src}: no such file (check data.source)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.md5()
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout, \
                progress(total=src.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=desc or f"copying {src.name}") as bar:
            for block in iter(lambda: fin.read(HASH_CHUNK), b""):
                fout.write(block)
                digest.update(block)
                bar.update(len(block))
        actual = digest.hexdigest()
        if md5 is not None and actual != md5.lower():
            raise DownloadError(f"{src}: md5 mismatch, expected {md5.lower()}, got {actual}; "
                                f"is data.source the right file?")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s: copied to %s, md5 %s%s", src, dest, actual, " verified" if md5 else "")
    return actual


def _member_path(zip_path: Path, info: zipfile.ZipInfo) -> str:
    """A member's normalised relative path; UnsafeArchiveError for a member that is a link or
    device, or whose path is absolute or climbs out of the target folder."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} is a symbolic link; refusing to "
                                 f"extract the archive")
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} is not a regular file "
                                 f"(mode {oct(mode)}); refusing to extract the archive")
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} has an absolute path; refusing to "
                                 f"extract the archive")
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchiveError(f"{zip_path}: member {name!r} would be written outside the "
                                 f"target folder; refusing to extract the archive")
    return norm


def safe_extract(zip_path: Path, target: Path, *, members: Callable[[str], bool] | None = None,
                 desc: str | None = None) -> list[str]:
    """Extract a zip's members into target (created), after checking every member of it.

    Refuses (UnsafeArchiveError, nothing extracted) an archive with a member that is a symlink
    or other non-regular file, or whose path is absolute or leaves target. `members` picks the
    names to extract (all by default). Each file is written to a temporary name and renamed;
    a member whose CRC does not match is a DownloadError naming it. Returns the names of the
    files extracted, as the archive spells them."""
    zip_path, target = Path(zip_path), Path(target)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{zip_path}: not a readable zip archive ({e}); delete it and "
                            f"download it again") from e
    with zf:
        infos = zf.infolist()
        paths = {info.filename: _member_path(zip_path, info) for info in infos}   # all, first
        chosen = [info for info in infos if members is None or members(info.filename)]
        target.mkdir(parents=True, exist_ok=True)
        root = os.path.realpath(target)
        extracted: list[str] = []
        total = sum(info.file_size for info in chosen if not info.is_dir())
        with progress(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=desc or f"extracting {zip_path.name}") as bar:
            for info in chosen:
                rel = paths[info.filename]
                if rel == ".":
                    continue
                out = target / rel
                # a folder that already existed in target could be a link elsewhere
                if os.path.commonpath([root, os.path.realpath(out)]) != root:
                    raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} would be "
                                             f"written outside {target}")
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                _extract_member(zf, info, out, zip_path, bar)
                extracted.append(info.filename)
    log.info("%s: extracted %d file(s) into %s", zip_path, len(extracted), target)
    return extracted


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path, zip_path: Path, bar) -> None:
    tmp = out.with_name(f".{out.name}.part")
    try:
        with zf.open(info) as fin, open(tmp, "wb") as fout:
            # zipfile checks the CRC when the member has been read to its end
            for block in iter(lambda: fin.read(HASH_CHUNK), b""):
                fout.write(block)
                bar.update(len(block))
        os.replace(tmp, out)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DownloadError(f"{zip_path}: member {info.filename!r} is corrupt ({e}); delete the "
                            f"archive and download it again") from e
    finally:
        tmp.unlink(missing_ok=True)

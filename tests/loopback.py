"""A loopback HTTP server on 127.0.0.1 for download tests: routes are callables that can
serve bytes with Range support, drop connections, answer errors, or act as a login site."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = bytes(range(256)) * 1200          # 300 KiB, every byte value, so offsets show in the content

# The fake Cityscapes site's account and session cookie.
USER, PASSWORD = "ada", "s3cr3t-Pa55w0rd!"
SESSION_COOKIE = "csid", "token-42"

LOGIN_PAGE = """<!DOCTYPE html><html><head><title>Login &#8211; Cityscapes Dataset</title></head>
<body><h1>Login</h1><form method="post" action="/login/"><input type="text" name="username">
<input type="password" name="password"><input type="submit" name="submit" value="Login"></form>
</body></html>"""



@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FileRoute:
    """Serves `data` with Range support. Options, each a way servers fail:
    ranges=False  answers every request 200 with the whole file (ignores Range);
    drop_first    on the first request sends the full Content-Length, `drop_first` bytes, then
                  closes the socket;
    errors        statuses answered first, one per request, before the file is served;
    stall_first   on the first request sends headers, then waits this many seconds."""
    data: bytes = DATA
    ranges: bool = True
    drop_first: int | None = None
    errors: list[int] = field(default_factory=list)
    stall_first: float = 0.0
    requests: list[str | None] = field(default_factory=list)   # the Range header of each

    def __call__(self, h: Handler) -> None:
        first = not self.requests
        self.requests.append(h.headers.get("Range"))
        if self.errors:
            return h.reply(self.errors.pop(0), b"oops\n")
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        if m and self.ranges:
            start, status = int(m.group(1)), 206
            if start >= len(self.data):
                return h.reply(416, b"", {"Content-Range": f"bytes */{len(self.data)}"})
        body = self.data[start:]
        headers = {"Content-Type": "application/zip"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
        if first and self.drop_first is not None:
            h.head(status, len(body), headers)
            h.wfile.write(body[:self.drop_first])
            h.wfile.flush()
            h.drop()
            return None
        if first and self.stall_first:
            h.head(status, len(body), headers)
            h.wfile.flush()
            time.sleep(self.stall_first)
            h.drop()
            return None
        return h.reply(status, body, headers)


class Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, *args) -> None:      # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        self.query = dict(urllib.parse.parse_qsl(parts.query))
        self.form = {}
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.form = dict(urllib.parse.parse_qsl(body.decode()))
            self.server.posted.append(body)
        self.server.seen.append(Seen(method, parts.path, self.query, dict(self.headers)))
        route = self.server.routes.get(parts.path)
        if route is None:
            return self.reply(404, b"not found\n")
        route(self)

    def head(self, status: int, length: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def reply(self, status: int, body: bytes | str, headers: dict[str, str] | None = None) -> None:
        body = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": "text/plain", **(headers or {})}
        self.head(status, len(body), headers)
        self.wfile.write(body)

    def html(self, text: str) -> None:
        self.reply(200, text, {"Content-Type": "text/html; charset=utf-8"})

    def redirect(self, location: str, headers: dict[str, str] | None = None) -> None:
        self.reply(302, b"", {"Location": location, **(headers or {})})

    def drop(self) -> None:
        """Close the socket mid-body, as a broken connection does."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Callable[[Handler], None]] = {}
        self.seen: list[Seen] = []
        self.posted: list[bytes] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, path: str) -> int:
        return sum(s.path == path for s in self.seen)


def running_server():
    """A LoopbackServer serving in a thread until the generator is closed (the `server` fixture)."""
    srv = LoopbackServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def cityscapes_site(server: LoopbackServer, payload: bytes) -> FileRoute:
    """The site's login form, session cookie, package download and md5 pages."""
    file_route = FileRoute(data=payload)
    name, value = SESSION_COOKIE

    def logged_in(h: Handler) -> bool:
        return f"{name}={value}" in (h.headers.get("Cookie") or "")

    def login(h: Handler) -> None:
        if h.command == "POST" and h.form == {"username": USER, "password": PASSWORD,
                                              "submit": "Login"}:
            return h.redirect("/", {"Set-Cookie": f"{name}={value}; Path=/; HttpOnly"})
        return h.html(LOGIN_PAGE)                  # GET, or a failed login: the form again

    def package(h: Handler) -> None:
        if h.query.get("packageID") != "3":
            return h.reply(404, b"no such package")
        return file_route(h) if logged_in(h) else h.redirect("/login/")

    def md5_page(h: Handler) -> None:
        if not logged_in(h):
            return h.redirect("/login/")
        return h.reply(200, f"{hashlib.md5(payload).hexdigest()}  leftImg8bit_trainvaltest.zip\n")

    server.routes.update({"/login/": login, "/file-handling/": package, "/md5-sum/": md5_page})
    return file_route

"""A loopback HTTP server standing in for GitHub release assets and the HuggingFace Hub.

It serves seeded byte blobs with Range support and misbehaves per path as told (cuts, stalls,
503s, ignored Range), and answers ``/{repo}/resolve/{revision}/{file}`` and the tree listing
``/api/models/{repo}/tree/{revision}/{folder}`` as the Hub does.
Used by test_weights.py and the end-to-end setup test.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # what the Hub stand-in names as revision


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Route:
    data: bytes
    mode: str = "ok"  # ok | 404 | 500_once | 500_get (every GET; HEAD answers) | 503_once |
    # 503_always | cut_once | stall_once | slow_once | ignore_range
    cut: int = 0  # bytes sent before cutting or stalling
    delay: float = 0.0  # seconds of silence (slow_once, stall_once)
    rate: float = 0.0  # bytes a second for every body; 0: as fast as the loopback goes
    fired: bool = False  # a *_once misbehaviour has happened


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None


class Standin:
    def __init__(self, base: str) -> None:
        self.base = base
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def serve(self, path: str, data: bytes, **how) -> str:
        self.routes[path] = Route(data, **how)
        return self.base + path

    def serve_hub_folder(self, repo: str, revision: str, folder: str, files: dict[str, bytes],
                         lfs: set[str] = frozenset(), listed: dict[str, bytes] | None = None,
                         extra: list[dict] = ()) -> str:
        """Serve ``files`` (paths under ``folder``) and the Hub's recursive listing of it.

        Files in ``lfs`` are listed with an LFS sha256, the others with their git blob id, both
        taken from ``listed`` (default: the files themselves; differing bytes stand for a file
        that does not match the listing). ``extra`` entries are appended to the listing as is.
        Returns the listing's path.
        """
        entries, folders = [], set()
        for path, data in files.items():
            self.serve(f"/{repo}/resolve/{revision}/{path}", data)
            truth = (listed or {}).get(path, data)
            entry = {"type": "file", "path": path, "size": len(truth), "oid": git_blob_id(truth)}
            if path in lfs:
                entry["lfs"] = {"oid": sha(truth), "size": len(truth), "pointerSize": 134}
            entries.append(entry)
            parent = posixpath.dirname(path)
            while parent and parent != folder:
                folders.add(parent)
                parent = posixpath.dirname(parent)
        entries += [{"type": "directory", "path": f, "oid": "0" * 40} for f in sorted(folders)]
        listing = f"/api/models/{repo}/tree/{revision}" + (f"/{quote(folder, safe='')}"
                                                          if folder else "")
        self.serve(listing, json.dumps(entries + list(extra)).encode())
        return listing

    def log(self, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if path is None or s.path == path]


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.answer(body=True)

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def answer(self, body: bool) -> None:
        standin: Standin = self.server.standin  # type: ignore[attr-defined]
        path, asked = self.path.split("?")[0], self.headers.get("Range")
        with standin.lock:
            standin.seen.append(Seen(self.command, path, asked))
            route = standin.routes.get(path)
            once = bool(route and body and route.mode.endswith("_once") and not route.fired)
            if once:
                route.fired = True  # type: ignore[union-attr]
        try:
            self.respond(route, asked, body, once)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests)

    def empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def respond(self, route: Route | None, asked: str | None, body: bool, once: bool) -> None:
        if route is None or route.mode == "404":
            return self.empty(404, X_Error_Code="EntryNotFound")
        if route.mode == "503_always" or (once and route.mode == "503_once"):
            return self.empty(503)
        if (once and route.mode == "500_once") or (body and route.mode == "500_get"):
            return self.empty(500)
        if once and route.mode == "slow_once":
            time.sleep(route.delay)
        data, start = route.data, 0
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if match and route.mode != "ignore_range":
            start = int(match.group(1))
            if start >= len(data):
                return self.empty(416, Content_Range=f"bytes */{len(data)}")
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        rest = data[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.send_header("ETag", f'"{sha(data)}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if not body:
            return None
        if once and route.mode in ("cut_once", "stall_once"):
            self.send(rest[: route.cut], route.rate)
            self.wfile.flush()
            if route.mode == "stall_once":
                time.sleep(route.delay)
            return None  # the connection closes short of Content-Length
        self.send(rest, route.rate)
        return None

    def send(self, data: bytes, rate: float) -> None:
        """``data``, at about ``rate`` bytes a second when a rate is set."""
        if not rate:
            self.wfile.write(data)
            return
        step = max(1, int(rate / 20))  # twenty writes a second
        for start in range(0, len(data), step):
            self.wfile.write(data[start:start + step])
            self.wfile.flush()
            time.sleep(step / rate)


@contextmanager
def serving() -> Iterator[Standin]:
    """A loopback HTTP stand-in for GitHub releases and the Hub, shut down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = False  # so server_close waits for a handler still sleeping
    standin = Standin(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.standin = standin  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        httpd.shutdown()
        httpd.server_close()  # joins handler threads: a stalled one sleeps at most its delay
        thread.join(timeout=5)


# What the environment may carry that would route a loopback test elsewhere.
OUTSIDE_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy", "THB_GITHUB_MIRROR", "HF_ENDPOINT", "HF_TOKEN")


def hermetic_env(monkeypatch) -> None:
    """No proxy, mirror, Hub endpoint or token from outside; 127.0.0.1 is never proxied."""
    for name in OUTSIDE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

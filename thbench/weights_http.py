"""Plain-URL weights over HTTP: requests, a ``.part`` file that outlives a failure, ``Range``.

A URL weight is fetched with requests into ``<dest>.part``, which outlives an interrupted run:
the next attempt, or the next run, asks for the rest with ``Range``. Connection errors, timeouts,
HTTP 408/429/5xx and bodies shorter than their Content-Length are retried with backoff
(:class:`HttpPolicy`), a bounded number of times; any other 4xx fails at once. A host name that
does not resolve fails on the first attempt, without retries.

``THB_GITHUB_MIRROR`` replaces the ``https://github.com/`` prefix of URL weights (see
:func:`rewrite_url`) for hosts that cannot reach GitHub; git clones use the same rule (repo.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests
import urllib3

from thbench.errors import UserError
from thbench.folders import CHUNK
from thbench.specs import Weight
from thbench.weights_disk import _hash_file, _place

if TYPE_CHECKING:  # weights.py builds on this module
    from thbench.weights import Item

GITHUB = "https://github.com/"
MIRROR_VAR = "THB_GITHUB_MIRROR"
PART_SUFFIX = ".part"
USER_AGENT = "talking-head-bench (requests)"
NAME_TIP = (f"check the network and DNS (a proxy goes in HTTPS_PROXY); for hosts that cannot reach "
            f"GitHub set {MIRROR_VAR} to a mirror prefix, for the Hub HF_ENDPOINT; then run the "
            "same command again (finished files are kept)")


def rewrite_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` with its ``https://github.com/`` prefix replaced by ``$THB_GITHUB_MIRROR``.

    The mirror is a prefix (a ``/`` is added if missing): a proxy such as
    ``https://ghproxy.example/https://github.com/``, or a host laying files out like GitHub
    (``https://mirror.example/github/`` serving ``<owner>/<repo>/releases/download/<tag>/<file>``).
    Other URLs, and every URL while the variable is unset or empty, come back unchanged. Used for
    weights and git clones alike (a ``file://`` mirror suits clones; downloads need http(s)).
    """
    mirror = (os.environ if environ is None else environ).get(MIRROR_VAR, "").strip()
    if not mirror or not url.startswith(GITHUB):
        return url
    if not mirror.endswith("/"):
        mirror += "/"
    return mirror + url[len(GITHUB):]


@dataclass(frozen=True)
class HttpPolicy:
    """How hard a plain-URL download tries; seconds throughout."""

    attempts: int = 8  # requests in all, per file, before giving up
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # the longest silence before an attempt is dropped
    backoff: float = 1.0  # pause after the first failure; doubles after each one
    backoff_max: float = 30.0

    def pause(self, failures: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.backoff * 2 ** (failures - 1)
        return min(wanted, self.backoff_max)


def _part(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


class _Transient(Exception):
    """A failure worth another attempt; the message says what happened."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# A refused or dropped connection, a timeout, a short body: requests' errors while connecting,
# urllib3's (requests' transport) while the body is read from response.raw.
_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)


class _PartFile:
    """``<dest>.part`` and the running sha256 of the bytes in it, kept in step."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None]) -> None:
        self.path, self.on_bytes = path, on_bytes
        self.size = path.stat().st_size if path.is_file() else 0
        # On resume, the bytes already there are hashed once, then the hash runs along.
        self.hasher = _hash_file(path) if self.size else hashlib.sha256()

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.on_bytes(-self.size)
        self.size, self.hasher = 0, hashlib.sha256()

    def append(self, response: requests.Response) -> int:
        # read1 hands over whatever has arrived (up to CHUNK): bytes before a cut or a stall
        # reach the part and are not asked for again. The body is the file's own bytes
        # (identity encoding), so nothing is decoded.
        read = getattr(response.raw, "read1", response.raw.read)
        received = 0
        with self.path.open("ab") as fh:
            while chunk := read(CHUNK, decode_content=False):
                fh.write(chunk)
                self.hasher.update(chunk)
                self.size += len(chunk)
                received += len(chunk)
                self.on_bytes(len(chunk))
        return received


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _attempt(url: str, part: _PartFile, weight: Weight, policy: HttpPolicy,
             session: requests.Session) -> str:
    """One request: append to the part what the server sends; return the part's sha256."""
    headers = {"Accept-Encoding": "identity"}  # byte offsets must be the file's own
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    timeout = (policy.connect_timeout, policy.read_timeout)
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status == 416 and part.size:
            # Nothing past what we have: the part is the whole file, or it is not this file.
            digest = part.hasher.hexdigest()
            if ((weight.sha256 is None or digest == weight.sha256)
                    and (weight.size is None or part.size == weight.size)):
                return digest
            part.restart()
            raise _Transient("HTTP 416 for a partial file that does not verify: starting over")
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status} {response.reason}", _int_header(response, "Retry-After"))
        if status not in (200, 206):
            raise _http_refused(url, weight, status, response.reason)
        if status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != part.size:
                part.restart()
                raise _Transient("the server sent another range than the one asked for")
        elif part.size:
            part.restart()  # the server ignored Range: the body is the whole file
        promised = _int_header(response, "Content-Length")
        received = part.append(response)
        if promised is not None and received < promised:
            raise _Transient(f"the body ended after {received} of {promised} bytes")
        return part.hasher.hexdigest()


def _http_refused(url: str, weight: Weight, status: int, reason: str) -> UserError:
    mirror = f" (via {MIRROR_VAR}: check the mirror too)" if url != weight.url else ""
    return UserError(
        f"cannot download {weight.dest}: {url} answered HTTP {status} {reason}{mirror}",
        "check that the weight's url in the model's spec.toml still serves the file; if it has "
        "moved, update the spec's url, size and sha256",
    )


def _download(url: str, part: _PartFile, weight: Weight, policy: HttpPolicy,
              session: requests.Session) -> str:
    """Fetch ``url`` into the part, resuming and retrying; return the complete part's sha256."""
    last = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        if weight.size is not None and part.size > weight.size:
            part.restart()  # longer than the file: cannot be a prefix of it
        retry_after = None
        try:
            return _attempt(url, part, weight, policy, session)
        except _Transient as err:
            last, retry_after = str(err), err.retry_after
        except requests.exceptions.SSLError as err:  # a certificate problem does not go away
            raise UserError(f"cannot download {url}: {err}",
                            "fix the TLS setup (REQUESTS_CA_BUNDLE for a private CA) or use a "
                            f"mirror ({MIRROR_VAR}), then run the same command again") from None
        except _NETWORK_ERRORS as err:
            from thbench.reach import does_not_resolve  # reach builds on this module

            if does_not_resolve(err):  # another attempt cannot fix it: no retry, no backoff
                raise UserError(f"cannot download {url}: its host name does not resolve",
                                NAME_TIP) from None
            last = f"{type(err).__name__}: {err}"
        except requests.RequestException as err:  # a malformed URL, a redirect loop
            raise UserError(f"cannot download {url}: {err}",
                            "check the weight's url in the model's spec.toml") from None
        if attempt < policy.attempts:
            time.sleep(policy.pause(attempt, retry_after))
    resume = f"it resumes from {part.path}" if part.size else "it starts over"
    raise UserError(
        f"could not download {url}: {policy.attempts} attempts failed, the last with: {last}",
        f"check the network (for hosts that cannot reach GitHub, set {MIRROR_VAR} to a mirror "
        f"prefix; for the Hugging Face Hub, HF_ENDPOINT) and run the same command again: {resume}",
    )


def _fetch_url(item: Item, policy: HttpPolicy, session: requests.Session,
               on_bytes: Callable[[int], None]) -> None:
    url = item.source
    if not url.startswith(("http://", "https://")):
        raise UserError(f"cannot download {url}: not an http(s) URL",
                        f"set {MIRROR_VAR} to an http(s) prefix for weights, or unset it")
    part = _part(item.path)
    part.parent.mkdir(parents=True, exist_ok=True)
    digest = _download(url, _PartFile(part, on_bytes), item.weight, policy, session)
    _place(part, item.weight, item.path, digest, url)

"""Model weights: see what is missing, check the disk, download, verify, unpack.

A weight (``specs.Weight``) lands at ``root / dest`` only once its size and sha256 check out,
so ``dest`` either holds the right bytes or does not exist. Beside each verified file a sidecar
``<dest>.sha256`` (JSON: digest, size, mtime, source) lets a re-run trust it without re-hashing
gigabytes; a changed size or mtime means hashing again.

Plain URLs (``url``) are fetched with requests into ``<dest>.part``, which outlives an interrupted
run: the next attempt, or the next run, asks for the rest with ``Range``. Connection errors,
timeouts, HTTP 408/429/5xx and bodies shorter than their Content-Length are retried with
backoff, a bounded number of times; any other 4xx fails at once.

Hub files (``hf_repo`` + ``hf_file`` at ``hf_revision``, or at ``main`` when only a sha256 pins
them) are fetched with huggingface_hub's own HEAD and GET into a staging folder under ``root``, then
verified here and moved into place: against the spec's sha256, or, for a file pinned by
revision alone, against the Hub's own listing at that revision (the LFS sha256, or the git blob
id of a small file). A Hub folder (``hf_folder``, always at a pinned ``hf_revision``) is listed
at that revision, each file fetched and checked the same way, and the folder renamed into place
with a manifest (``.thb-folder.json``: source, each file's size and sha256) that lets a re-run
trust it. huggingface_hub retries on its own (a network error: 5 more tries, 23 s of pauses)
and honours its own settings: ``HF_TOKEN`` (gated or private repositories), ``HF_HUB_OFFLINE``,
``HF_HUB_*`` timeouts; ``HF_ENDPOINT`` (a Hub mirror) is read here at download time and passed
on, because huggingface_hub reads it only once, at import. An interrupted Hub download resumes:
the staging folder outlives a failed download, and the next attempt asks for the rest with
``Range``; it is removed once the file is in place or a check refused it.
(huggingface_hub 2.x also fetches ``/api/agent-harnesses`` from its endpoint for its
user-agent string, unless ``HF_HUB_DISABLE_TELEMETRY=1``.)

A host name that does not resolve fails at once, without retries: a plain URL on its first
attempt, a Hub call before huggingface_hub is asked (the endpoint's name is looked up first).

``THB_GITHUB_MIRROR`` replaces the ``https://github.com/`` prefix of URL weights (see
:func:`rewrite_url`) for hosts that cannot reach GitHub.

An archive weight (``unpack``) is extracted, after it verifies, into a temporary folder beside
``root / unpack`` and renamed into place with a marker holding the archive's sha256, so it is
unpacked once. An archive with a member that would land outside the folder (absolute name,
``..``, a link pointing out, a device file) is refused whole (folders.py). The archive is
kept: its sidecar makes re-runs skip it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import requests
import urllib3
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from thbench import folders
from thbench.errors import UserError
from thbench.folders import CHUNK, FOLDER_MANIFEST
from thbench.specs import SHA256_RE, Weight

GITHUB = "https://github.com/"
MIRROR_VAR = "THB_GITHUB_MIRROR"
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".sha256"
STAGING = ".thb-staging"  # under root: Hub downloads until they verify
DISK_MARGIN = 256 * 1024**2  # left free after everything has landed
UNPACK_FACTOR = 2  # an archive's contents are budgeted at this many times its size
USER_AGENT = "talking-head-bench (requests)"


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


# --- what is there: sidecars and the plan ----------------------------------------------------


def _source(weight: Weight) -> str:
    """Where a weight comes from, as recorded in its sidecar (mirrors serve the same bytes)."""
    if weight.url:
        return weight.url
    if weight.manual:
        return f"by hand: {weight.manual}"
    if weight.hf_folder:
        return f"hf://{weight.hf_repo}@{weight.hf_revision}/{weight.hf_folder}/"
    return f"hf://{weight.hf_repo}@{weight.hf_revision or 'main'}/{weight.hf_file}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path, st: os.stat_result) -> dict | None:
    """The sidecar's record if it describes ``path`` as it is now (same size and mtime)."""
    try:
        record = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or record.get("size") != st.st_size
            or record.get("mtime_ns") != st.st_mtime_ns
            or not SHA256_RE.match(str(record.get("sha256")))):
        return None
    return record


def _write_sidecar(path: Path, digest: str, source: str) -> None:
    st = path.stat()
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "source": source}
    tmp = path.with_name(path.name + SIDECAR_SUFFIX + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, _sidecar(path))


def _hash_file(path: Path) -> hashlib._Hash:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher


HTML_STARTS = (b"<!doctype html", b"<html")  # a download page saved instead of the file


def _verified(weight: Weight, path: Path, write: bool = True) -> str | None:
    """The sha256 of ``path`` if it holds what ``weight`` describes, else None.

    ``write`` False (a dry run) never writes a sidecar. For a Hub folder: its manifest's digest.
    """
    if weight.hf_folder:
        return _folder_verified(weight, path)
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (weight.size is not None and st.st_size != weight.size):
        return None
    record = _read_sidecar(path, st)
    if weight.sha256 is None and weight.manual:
        # Placed by hand with nothing published to check against: hash once, for the record;
        # a saved HTML page (Google Drive's "can't scan for viruses" one) is not a weight.
        if record is None:
            with path.open("rb") as fh:
                if fh.read(64).lstrip().lower().startswith(HTML_STARTS):
                    return None
            digest = _hash_file(path).hexdigest()
            if not write:
                return digest
            _write_sidecar(path, digest, _source(weight))
            record = _read_sidecar(path, path.stat())
        return record["sha256"] if record else None
    if weight.sha256 is None:
        # Nothing to check against but our own record of a download from the pinned revision.
        return record["sha256"] if record and record.get("source") == _source(weight) else None
    if record is not None:
        return record["sha256"] if record["sha256"] == weight.sha256 else None
    digest = _hash_file(path).hexdigest()
    if digest != weight.sha256:
        return None
    if write:
        _write_sidecar(path, digest, _source(weight))
    return digest


def _folder_digest(files: Mapping[str, Mapping]) -> str:
    """One sha256 for a folder: of its sorted ``{relative path: sha256}``."""
    listing = {rel: entry["sha256"] for rel, entry in files.items()}
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def _folder_verified(weight: Weight, path: Path) -> str | None:
    """The folder's digest if ``path`` holds the Hub folder ``weight`` names, as it was fetched.

    Every file in the manifest must be there with its size; one whose mtime changed is hashed
    again. Files added beside them are not looked at.
    """
    try:
        record = json.loads((path / FOLDER_MANIFEST).read_text())
        files = record["files"]
        if record.get("source") != _source(weight) or not isinstance(files, dict) or not files:
            return None
        total = 0
        for rel, entry in files.items():
            st = (path / rel).stat()
            if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
                return None
            if (st.st_mtime_ns != entry.get("mtime_ns")
                    and _hash_file(path / rel).hexdigest() != entry["sha256"]):
                return None
            total += st.st_size
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if weight.size is not None and total != weight.size:
        return None
    return _folder_digest(files)


@dataclass(frozen=True)
class Item:
    """One weight's state under a root: what is there and what is left to do."""

    weight: Weight
    path: Path  # root / dest
    source: str  # the URL (mirror applied) or hf://repo@revision/file
    present: bool  # on disk and verified
    partial: int  # bytes already in <dest>.part, resumed by the download
    to_download: int | None  # bytes still to fetch; None: size unknown until the server says
    unpack_to: Path | None
    unpacked: bool  # unpack_to holds this archive's contents
    sha256: str | None = None  # of the file on disk, when present and verified

    @property
    def needs_fetch(self) -> bool:
        return not (self.present or self.unpacked)

    @property
    def action(self) -> str:
        """ok, download, resume, unpack, download+unpack or resume+unpack."""
        if not self.needs_fetch:
            return "unpack" if self.unpack_to and not self.unpacked else "ok"
        if self.weight.manual:
            return "by hand"
        fetch = "resume" if self.partial else "download"
        return f"{fetch}+unpack" if self.unpack_to else fetch


@dataclass(frozen=True)
class Plan:
    """Every weight's state under ``root`` and the totals; plain data, printable."""

    root: Path
    items: tuple[Item, ...]

    @property
    def to_fetch(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.needs_fetch)

    @property
    def to_download(self) -> int:
        """Bytes still to download (files of unknown size count 0; see ``unknown_sizes``)."""
        return sum(i.to_download or 0 for i in self.items)

    @property
    def unknown_sizes(self) -> int:
        return sum(1 for i in self.items
                   if i.needs_fetch and i.to_download is None and not i.weight.manual)

    @property
    def by_hand(self) -> int:
        return sum(1 for i in self.items if i.needs_fetch and i.weight.manual)

    @property
    def to_unpack(self) -> int:
        """Bytes budgeted for archives still to unpack."""
        return sum(UNPACK_FACTOR * (i.weight.size or 0)
                   for i in self.items if i.unpack_to and not i.unpacked)

    @property
    def done(self) -> bool:
        return all(i.action == "ok" for i in self.items)

    def lines(self) -> list[str]:
        rows = []
        for i in self.items:
            size = decimal(i.weight.size) if i.weight.size else "size unknown"
            if i.action == "ok":
                what = f"{size}, verified" if i.present else "archive removed"
                what += f", unpacked in {i.weight.unpack}" if i.unpack_to else ""
            elif i.action == "unpack":
                what = f"unpack into {i.weight.unpack}"
            elif i.action == "by hand":
                what = f"download it yourself: {i.weight.manual}"
            else:
                left = (f"{decimal(i.to_download)} left of {size}"
                        if i.partial and i.to_download is not None else size)
                what = f"{left} from {i.source}"
                if i.unpack_to:
                    what += f", then unpack into {i.weight.unpack}"
            rows.append(f"{i.action:<15} {i.weight.dest}  ({what})")
        fetch = len(self.to_fetch) - self.by_hand
        summary = f"{len(self.items)} weights under {self.root}: {fetch} to fetch"
        if fetch:
            summary += f", {decimal(self.to_download)}"
            if self.unknown_sizes:
                summary += (f" + {self.unknown_sizes} of unknown size (the server says at "
                            "download time; the disk is checked again then for Hub files)")
        if self.by_hand:
            summary += f", {self.by_hand} to download by hand"
        return [*rows, summary]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def plan(weights: Iterable[Weight], root: Path, *, write: bool = True) -> Plan:
    """What is present and verified under ``root`` and what is left to fetch; no network.

    ``write`` False (a dry run) leaves the disk as it is: no sidecars are written.

    Hashes a file only when it has no sidecar matching its size and mtime (then writes one).
    """
    root = Path(root)
    items = []
    for weight in weights:
        path = root / weight.dest
        digest = _verified(weight, path, write)
        unpack_to = root / weight.unpack if weight.unpack else None
        # An unpacked folder whose marker names the pinned archive needs nothing, archive or not.
        unpacked = bool(unpack_to) and folders.unpacked(unpack_to, weight.sha256 or digest)
        partial = 0
        if digest is None and weight.url:
            try:
                partial = _part(path).stat().st_size
            except OSError:
                partial = 0
            if weight.size is not None and partial > weight.size:
                partial = 0  # longer than the file: restarted
        if digest is not None or unpacked:
            to_download: int | None = 0
        else:
            to_download = None if weight.size is None else weight.size - partial
        source = rewrite_url(weight.url) if weight.url else _source(weight)
        items.append(Item(weight, path, source, digest is not None, partial, to_download,
                          unpack_to, unpacked, digest))
    return Plan(root, tuple(items))


def require_manual(the_plan: Plan) -> None:
    """ERROR + TIP when a weight that only a person can download is not in place yet."""
    missing = [i for i in the_plan.to_fetch if i.weight.manual]
    if missing:
        raise UserError(
            "weights that must be downloaded by hand are missing: " + "; ".join(
                f"{i.path} ({i.weight.manual})" for i in missing),
            "download each to the path named, then run the same setup command again")


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(the_plan: Plan, root: Path | None = None, *, margin: int = DISK_MARGIN) -> None:
    """Refuse, before the first byte, when ``root``'s disk cannot hold what the plan needs.

    Needed: the bytes still to download, ``UNPACK_FACTOR`` times each archive still to unpack,
    and ``margin`` left over. ``root`` defaults to the plan's.
    """
    download, unpack = the_plan.to_download, the_plan.to_unpack
    if not the_plan.to_fetch and not unpack:
        return
    _require_room(root or the_plan.root, "the weights need", download, unpack, margin)


def _require_room(path: Path, who_needs: str, download: int, unpack: int = 0,
                  margin: int = DISK_MARGIN) -> None:
    """ERROR + TIP unless the disk holding ``path`` has more than download + unpack + margin free."""
    where = existing_parent(path)
    free = shutil.disk_usage(where).free
    need = download + unpack + margin
    if free > need:
        return
    parts = f"{decimal(download)} to download"
    if unpack:
        parts += f" + {decimal(unpack)} to unpack"
    raise UserError(
        f"not enough disk space under {where}: {who_needs} {decimal(need)} "
        f"({parts} + {decimal(margin)} to spare), {decimal(free)} is free",
        f"free at least {decimal(need - free)} there and run the same command again "
        "(weights already downloaded are kept)",
    )


# --- plain HTTP --------------------------------------------------------------------------------


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


def _place(got: Path, weight: Weight, dest: Path, digest: str, where: str) -> None:
    """Check size and sha256 of ``got``, then move it to ``dest`` and record the sidecar."""
    tip = (f"run the same command again to download it afresh from {where}; if it fails the "
           "same way, the file changed upstream: report it (the spec pins the old file)")
    size = got.stat().st_size
    if weight.size is not None and size != weight.size:
        got.unlink()
        raise UserError(f"size mismatch for {weight.dest}: expected {weight.size} bytes, "
                        f"got {size}", tip)
    if weight.sha256 is not None and digest != weight.sha256:
        got.unlink()
        raise UserError(f"sha256 mismatch for {weight.dest}: expected {weight.sha256}, "
                        f"got {digest}", tip)
    os.replace(got, dest)
    _write_sidecar(dest, digest, _source(weight))


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


# --- Hugging Face Hub --------------------------------------------------------------------------


class _HubBar:
    """Enough of tqdm for ``hf_hub_download(tqdm_class=...)``: bytes written go to our bars.

    huggingface_hub makes one per plain download and, on Xet-backed repositories, one shared by
    the bytes written and the bytes received (since it has ``update_transfer``). Only bytes
    written count, as for plain URLs; the rest of what it calls is display and does nothing.
    """

    on_bytes: Callable[[int], None] = staticmethod(lambda n: None)

    def __init__(self, *_args, total: float | None = None, initial: float = 0,
                 **_kwargs) -> None:
        self.n, self.total = int(initial), total
        self.on_bytes(int(initial))  # resumed: bytes an earlier attempt left

    def update(self, n: float = 1) -> None:
        self.n += int(n)
        self.on_bytes(int(n))

    def update_transfer(self, n: float = 1) -> None:
        pass

    def set_postfix_str(self, *_args, **_kwargs) -> None:
        pass

    set_transfer_postfix_str = set_description = set_postfix_str

    def refresh(self, *_args, **_kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _hub_bar_class(on_bytes: Callable[[int], None]) -> type[_HubBar]:
    # A class, not a partial: huggingface_hub looks for update_transfer on the class itself.
    return type("HubBar", (_HubBar,), {"on_bytes": staticmethod(on_bytes)})


def _hub_transport_errors() -> tuple[type[BaseException], ...]:
    """Errors huggingface_hub lets through after its own retries: OSError and its HTTP client's
    base error (requests, httpx or httpx2 by version), read off ``HfHubHTTPError``'s bases."""
    from huggingface_hub.errors import HfHubHTTPError

    return tuple(c for c in HfHubHTTPError.__mro__ if c not in (Exception, BaseException, object))


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    if err.__cause__ is not None and str(err.__cause__).strip():
        text += f" ({_first_line(err.__cause__)})"
    return text


NETWORK_TIP = "check the network (or set HF_ENDPOINT to a Hub mirror) and run the same command again"
NAME_TIP = (f"check the network and DNS (a proxy goes in HTTPS_PROXY); for hosts that cannot reach "
            f"GitHub set {MIRROR_VAR} to a mirror prefix, for the Hub HF_ENDPOINT; then run the "
            "same command again (finished files are kept)")


def _hub_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


@contextlib.contextmanager
def _hub_errors(weight: Weight, where: str) -> Iterator[None]:
    """huggingface_hub's errors, after its own retries, as one ERROR + TIP each."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from thbench.reach import HUB, resolves

    key = "hf_folder" if weight.hf_folder else "hf_file"
    if not resolves(_hub_endpoint() or HUB):  # huggingface_hub would retry it for half a minute
        raise UserError(f"could not download {where}: the Hub's host name does not resolve",
                        NAME_TIP)
    try:
        yield
    except LocalEntryNotFoundError as err:  # the Hub could not be asked; an EntryNotFoundError
        raise UserError(f"could not download {where}: {_first_line(err)}", NETWORK_TIP) from None
    except GatedRepoError as err:
        raise UserError(f"{weight.hf_repo} is gated: {_first_line(err)}",
                        "accept its terms on the Hub, set HF_TOKEN to a token of yours and "
                        "run the same command again") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
        raise UserError(
            f"{where} was not found: {_first_line(err)}",
            f"check hf_repo, {key} and hf_revision in the model's spec.toml (a private "
            "repository also needs HF_TOKEN)") from None
    except _hub_transport_errors() as err:
        raise UserError(f"could not download {where}: {_first_line(err)}", NETWORK_TIP) from None


def _staging(root: Path, weight: Weight) -> Path:
    """One weight's staging folder under ``root`` (same filesystem as dest: the move is a
    rename). A failed download leaves it for the next attempt to resume (see ``_drop``)."""
    return root / STAGING / hashlib.sha256(weight.dest.encode()).hexdigest()[:16]


def _drop(staging: Path) -> None:
    """Remove a staging folder, once its weight is placed or refused, and the shared parent once
    empty."""
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()


def _hub_download(weight: Weight, filename: str, staging: Path,
                  on_bytes: Callable[[int], None]) -> Path:
    """``filename`` fetched into ``staging``, resuming what an earlier attempt left there.

    huggingface_hub's own HEAD (redirects, token, errors) and ``http_get`` (retries, resumes
    within the call, checks the length), not ``hf_hub_download``: by 2.4 (its PR #4228) that
    writes to a temporary file of its own, deleted when the download fails (1.0 still resumed its
    ``.incomplete`` file), so nothing survives for the next run. Xet-stored files come over
    HTTP, as without ``hf_xet``.
    """
    from urllib.parse import urlsplit

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    endpoint = _hub_endpoint()
    assert weight.hf_repo
    url = hf_hub_url(weight.hf_repo, filename, revision=weight.hf_revision or "main",
                     endpoint=endpoint)
    meta = get_hf_file_metadata(url, endpoint=endpoint, retry_on_errors=True)
    location = url if meta.xet_file_data is not None else meta.location
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # byte offsets must be the file's own
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN URL: the token stays with the Hub
    got = staging / filename
    got.parent.mkdir(parents=True, exist_ok=True)
    with got.open("ab") as fh:
        if meta.size is not None and fh.tell() > meta.size:  # cannot be a prefix of it
            fh.seek(0)
            fh.truncate()
        http_get(location, fh, resume_size=fh.tell(), headers=headers, expected_size=meta.size,
                 displayed_filename=filename,
                 tqdm_class=_hub_bar_class(on_bytes))  # type: ignore[arg-type]
    return got


def _hub_listing(weight: Weight, folder: str, where: str, recursive: bool) -> list:
    """The Hub's own listing of ``folder`` ("" for the top) at the weight's revision: RepoFile
    entries with path, size, git blob id and, for LFS files, the sha256."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=_hub_endpoint())
    with _hub_errors(weight, where):
        return [f for f in api.list_repo_tree(weight.hf_repo, path_in_repo=folder or None,
                                              revision=weight.hf_revision, recursive=recursive)
                if isinstance(f, RepoFile)]


def _matches_listing(entry, got: Path, where: str) -> str:
    """``got``'s sha256 once it is what the Hub lists as ``entry`` (LFS sha256, else git blob
    id); else a UserError."""
    digest, size = _hash_file(got).hexdigest(), got.stat().st_size
    if entry.lfs is not None:
        ok, expected = digest == entry.lfs.sha256 and size == entry.lfs.size, entry.lfs.sha256
    else:
        ok, expected = _git_blob_id(got) == entry.blob_id and size == entry.size, entry.blob_id
    if not ok:
        raise UserError(f"{entry.path} from {where} does not match the Hub's own listing "
                        f"({expected}); nothing was put in place",
                        "run the same command again; if it fails the same way, report it")
    return digest


def _fetch_hub(item: Item, root: Path, on_bytes: Callable[[int], None]) -> None:
    weight = item.weight
    assert weight.hf_repo and weight.hf_file
    where = f"{item.source} on {_hub_endpoint() or 'https://huggingface.co'}"
    entry = None
    if weight.sha256 is None:  # pinned by revision alone: check it against the Hub's listing
        parent = posixpath.dirname(weight.hf_file)
        entry = next((f for f in _hub_listing(weight, parent, where, recursive=False)
                      if f.path == weight.hf_file), None)
        if entry is None:
            raise UserError(f"{where} was not found: the Hub does not list it at that revision",
                            "check hf_repo, hf_file and hf_revision in the model's spec.toml")
        if weight.size is None:
            _require_room(item.path, f"{weight.dest} needs", entry.size)
    staging = _staging(root, weight)
    with _hub_errors(weight, where):
        got = _hub_download(weight, weight.hf_file, staging, on_bytes)
    try:
        digest = _matches_listing(entry, got, where) if entry else _hash_file(got).hexdigest()
        _place(got, weight, item.path, digest, where)
    finally:
        _drop(staging)


def _git_blob_id(path: Path) -> str:
    """The git blob id (sha1 of ``blob <size>\\0`` + content) the Hub lists for small files."""
    hasher = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _fetch_hub_folder(item: Item, root: Path, on_bytes: Callable[[int], None],
                      on_total: Callable[[int], None]) -> None:
    """List the folder at the pinned revision, fetch and check every file, swap it into place."""
    weight = item.weight
    assert weight.hf_repo and weight.hf_folder and weight.hf_revision
    where = f"{item.source} on {_hub_endpoint() or 'https://huggingface.co'}"
    listing = _hub_listing(weight, weight.hf_folder, where, recursive=True)
    tip = f"check hf_folder and hf_revision of {weight.dest} in the model's spec.toml"
    if not listing:
        raise UserError(f"{where} holds no files", tip)
    prefix = weight.hf_folder + "/"
    for f in listing:
        if not f.path.startswith(prefix) or ".." in f.path.split("/"):
            raise UserError(f"{where}: the Hub listed {f.path!r}, which is not inside the folder",
                            "report it; nothing was downloaded")
    total = sum(f.size for f in listing)
    if weight.size is not None and total != weight.size:
        raise UserError(f"size mismatch for {weight.dest}: the spec says {weight.size} bytes, "
                        f"the Hub lists {total} in {len(listing)} files", tip)
    on_total(total)
    what = f"fetched from {item.source}"
    folders.claim(item.path, what)  # before the first byte
    _require_room(item.path, f"{weight.dest} needs", total)
    staging, files = _staging(root, weight), dict[str, dict]()
    for f in listing:
        with _hub_errors(weight, where):
            got = _hub_download(weight, f.path, staging, on_bytes)
        try:
            digest = _matches_listing(f, got, where)
        except UserError:
            _drop(staging)
            raise
        st = got.stat()
        files[f.path[len(prefix):]] = {"size": st.st_size, "sha256": digest,
                                       "mtime_ns": st.st_mtime_ns}
    folder = staging / weight.hf_folder
    try:
        record = {"source": item.source, "files": files}
        (folder / FOLDER_MANIFEST).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        folders.swap_in(folder, item.path, what)
    finally:
        _drop(staging)


# --- all together ------------------------------------------------------------------------------


def fetch_all(weights: Iterable[Weight], root: Path, *, console: Console | None = None,
              policy: HttpPolicy = HttpPolicy(), margin: int = DISK_MARGIN) -> Plan:
    """Make every weight present and verified under ``root``, unpacked where asked; return the
    final plan.

    Verified files cost no request. The disk is checked before the first byte. A progress bar
    per file and one for all (bytes, speed, time left) go to ``console``. Raises UserError on
    anything the user can act on; a re-run resumes plain-URL downloads.
    """
    weights, root = tuple(weights), Path(root)
    before = plan(weights, root)
    if before.done:
        return before
    require_manual(before)
    check_disk(before, root, margin=margin)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    fetch = before.to_fetch
    with requests.Session() as session, Progress(*columns, console=console) as progress:
        session.headers["User-Agent"] = USER_AGENT
        sizes = [i.weight.size for i in fetch]
        overall = progress.add_task(
            "total", total=None if None in sizes else sum(sizes),  # type: ignore[arg-type]
            completed=sum(i.partial for i in fetch))
        for item in before.items:
            try:
                if item.needs_fetch:
                    task = progress.add_task(item.weight.dest, total=item.weight.size,
                                             completed=item.partial)
                    on_bytes = functools.partial(_advance, progress, (task, overall))
                    item.path.parent.mkdir(parents=True, exist_ok=True)
                    if item.weight.url:
                        _fetch_url(item, policy, session, on_bytes)
                    elif item.weight.hf_folder:
                        _fetch_hub_folder(item, root, on_bytes,
                                          lambda n, t=task: progress.update(t, total=n))
                    else:
                        _fetch_hub(item, root, on_bytes)
                if item.unpack_to and not item.unpacked:
                    digest = _verified(item.weight, item.path)
                    assert digest is not None  # just placed, or present
                    folders.unpack_archive(item.path, item.unpack_to, digest)
            except OSError as err:  # network errors are dealt with above: this is the disk
                raise UserError(f"cannot write {err.filename or item.path}: "
                                f"{err.strerror or err}",
                                f"check free space and permissions under {root}, then run the "
                                "same command again (finished files are kept)") from None
    return plan(weights, root)


def _advance(progress: Progress, tasks: tuple[TaskID, ...], n: int) -> None:
    for task in tasks:
        progress.advance(task, n)

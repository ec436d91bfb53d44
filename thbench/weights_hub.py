"""Hugging Face Hub weights: huggingface_hub's own HEAD and GET, checked, staged, resumed.

Hub files (``hf_repo`` + ``hf_file`` at ``hf_revision``, or at ``main`` when only a sha256 pins
them) are fetched with huggingface_hub's own HEAD and GET into a staging folder under ``root``, then
verified and moved into place (weights_disk.py): against the spec's sha256, or, for a file pinned
by revision alone, against the Hub's own listing at that revision (the LFS sha256, or the git blob
id of a small file). A Hub folder (``hf_folder``, always at a pinned ``hf_revision``) is listed
at that revision, each file fetched and checked the same way, and the folder renamed into place
with a manifest (``.thb-folder.json``: source, each file's size and sha256) that lets a re-run
trust it. huggingface_hub retries on its own (a network error: 5 more tries, 23 s of pauses;
HTTP 408 and 429), and a 5xx answer to the GET is asked again here (``HUB_ATTEMPTS``, pauses
doubling from ``HUB_BACKOFF``), resuming what came before it. huggingface_hub honours its own
settings: ``HF_TOKEN`` (gated or private repositories), ``HF_HUB_OFFLINE``, ``HF_HUB_*``
timeouts; ``HF_ENDPOINT`` (a Hub mirror) is read here at download time and passed on, because
huggingface_hub reads it only once, at import. An interrupted Hub download resumes: the staging
folder outlives a failed download, and the next attempt asks for the rest with ``Range``; it is
removed once the file is in place or a check refused it.
(huggingface_hub 2.x also fetches ``/api/agent-harnesses`` from its endpoint for its
user-agent string, unless ``HF_HUB_DISABLE_TELEMETRY=1``.)

The endpoint's host name is looked up before huggingface_hub is asked: one that does not resolve
fails at once instead of after its retries. huggingface_hub is imported only when a Hub weight is
fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self

from thbench import folders
from thbench.errors import UserError
from thbench.folders import CHUNK, FOLDER_MANIFEST
from thbench.specs import Weight
from thbench.weights_disk import _hash_file, _place, _require_room
from thbench.weights_http import NAME_TIP

if TYPE_CHECKING:  # weights.py builds on this module
    from thbench.weights import Item

STAGING = ".thb-staging"  # under root: Hub downloads until they verify
HUB_ATTEMPTS = 4  # GETs per file while the Hub answers 5xx (huggingface_hub retries none of them)
HUB_BACKOFF = 1.0  # seconds after the first 5xx; doubles after each
NETWORK_TIP = "check the network (or set HF_ENDPOINT to a Hub mirror) and run the same command again"


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


def _hub_fetch(weight: Weight, filename: str, staging: Path,
               on_bytes: Callable[[int], None]) -> Path:
    """``_hub_download``, asked again while the Hub answers 5xx (a restart, an overloaded CDN)."""
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, HUB_ATTEMPTS):
        try:
            return _hub_download(weight, filename, staging, on_bytes)
        except HfHubHTTPError as err:
            if (getattr(err.response, "status_code", None) or 0) < 500:
                raise
            time.sleep(HUB_BACKOFF * 2 ** (attempt - 1))
            # The next attempt's bar starts at the bytes already staged: counted once already.
            with contextlib.suppress(OSError):
                on_bytes(-(staging / filename).stat().st_size)
    return _hub_download(weight, filename, staging, on_bytes)  # the last: its error stands


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
        got = _hub_fetch(weight, weight.hf_file, staging, on_bytes)
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
            got = _hub_fetch(weight, f.path, staging, on_bytes)
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

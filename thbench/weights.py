"""Model weights: see what is missing, check the disk, download, verify, unpack.

The API every caller uses: :func:`plan` (what is present and verified under a root, what is left
to fetch; no network), :func:`check_disk`, :func:`require_manual` and :func:`fetch_all`. The work
is split by concern:

- weights_disk.py: sha256 sidecars and Hub folder manifests (a verified file is not hashed
  again), placing a checked download, room on the disk;
- weights_http.py: plain URLs with requests, resumed from ``<dest>.part``, retried with backoff;
  the ``THB_GITHUB_MIRROR`` rule (:func:`rewrite_url`);
- weights_hub.py: Hugging Face Hub files and folders through huggingface_hub, staged, resumed,
  checked against the spec or the Hub's own listing.

An archive weight (``unpack``) is extracted, after it verifies, into a temporary folder beside
``root / unpack`` and renamed into place with a marker holding the archive's sha256, so it is
unpacked once. An archive with a member that would land outside the folder (absolute name,
``..``, a link pointing out, a device file) is refused whole (folders.py). The archive is
kept: its sidecar makes re-runs skip it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests
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

from thbench import folders, redaction
from thbench.errors import UserError
from thbench.specs import Weight
from thbench.weights_disk import (
    DISK_MARGIN,
    SIDECAR_SUFFIX,
    _require_room,
    _source,
    _verified,
    existing_parent,
)
from thbench.weights_http import GITHUB, MIRROR_VAR, USER_AGENT, HttpPolicy, _fetch_url, _part, rewrite_url
from thbench.weights_hub import _fetch_hub, _fetch_hub_folder
from thbench.weights_hub import _hub_bar_class as _hub_bar_class  # used by tests/test_weights.py
from thbench.weights_hub import _hub_endpoint as _hub_endpoint  # used by doctor.py and reach.py

# What other modules use as weights.X, defined in the modules above.
__all__ = ["DISK_MARGIN", "GITHUB", "MIRROR_VAR", "SIDECAR_SUFFIX", "UNPACK_FACTOR", "USER_AGENT",
           "HttpPolicy", "Item", "Plan", "Weight", "check_disk", "existing_parent", "fetch_all", "plan",
           "require_manual", "rewrite_url"]

UNPACK_FACTOR = 2  # an archive's contents are budgeted at this many times its size


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
                what = f"{left} from {redaction.redact_url(i.source)}"
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


def check_disk(the_plan: Plan, root: Path | None = None, *, margin: int = DISK_MARGIN) -> None:
    """Refuse, before the first byte, when ``root``'s disk cannot hold what the plan needs.

    Needed: the bytes still to download, ``UNPACK_FACTOR`` times each archive still to unpack,
    and ``margin`` left over. ``root`` defaults to the plan's.
    """
    download, unpack = the_plan.to_download, the_plan.to_unpack
    if not the_plan.to_fetch and not unpack:
        return
    _require_room(root or the_plan.root, "the weights need", download, unpack, margin)


# --- all together ------------------------------------------------------------------------------


def fetch_all(weights: Iterable[Weight], root: Path, *, console: Console | None = None,
              policy: HttpPolicy = HttpPolicy(),  # noqa: B008 (frozen: sharing it is safe)
              margin: int = DISK_MARGIN) -> Plan:
    """Make every weight present and verified under ``root``, unpacked where asked; return the
    final plan.

    Verified files cost no request. The disk is checked before the first byte. A progress bar
    per file and one for all (bytes, speed, time left) go to ``console``. Raises UserError on
    anything the user can act on; a re-run resumes plain-URL downloads.
    """
    weights, root = tuple(weights), Path(root)
    for weight in weights:  # what a setup killed mid-unpack or mid-swap left, even if now done
        if weight.unpack or weight.hf_folder:
            folders.clear_leftovers(root / (weight.unpack or weight.dest))
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
            except OSError as err:  # the transports turn network errors into UserErrors: the disk
                raise UserError(f"cannot write {err.filename or item.path}: "
                                f"{err.strerror or err}",
                                f"check free space and permissions under {root}, then run the "
                                "same command again (finished files are kept)") from None
    return plan(weights, root)


def _advance(progress: Progress, tasks: tuple[TaskID, ...], n: int) -> None:
    for task in tasks:
        progress.advance(task, n)

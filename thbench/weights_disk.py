"""What the weights step finds and leaves on disk: verified files, sidecars, room to spare.

A weight (``specs.Weight``) lands at ``root / dest`` only once its size and sha256 check out
(:func:`_place`), so ``dest`` either holds the right bytes or does not exist. Beside each verified
file a sidecar ``<dest>.sha256`` (JSON: digest, size, mtime, source) lets a re-run trust it without
re-hashing gigabytes; a changed size or mtime means hashing again. A Hub folder is trusted through
its manifest (``.thb-folder.json``: source, each file's size, mtime and sha256) instead.

The transports (weights_http.py, weights_hub.py) and the plan (weights.py) build on this module;
it imports neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from rich.filesize import decimal

from thbench.errors import UserError
from thbench.folders import CHUNK, FOLDER_MANIFEST
from thbench.specs import SHA256_RE, Weight

SIDECAR_SUFFIX = ".sha256"
DISK_MARGIN = 256 * 1024**2  # left free after everything has landed


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


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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

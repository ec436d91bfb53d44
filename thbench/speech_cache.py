"""Speech already made, reused when everything that shapes it is the same.

The key is a sha256 of the text, the backend and its spec, its env's identity (the lock and
Python it was built from), the voice (and the digests of its files), speaker, rate, the
sentence silence and the normalisation target: change any and the speech is made again. An
entry is ``<key>.wav`` plus ``<key>.json`` (the speech record, with the WAV's sha256). Both are
written to temporary names and renamed, the record last; a lookup serves a WAV only when its
record is there and its bytes hash to what the record says, so a crash mid-write (a half WAV,
or a WAV without its record) is never served, only made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from thbench import paths
from thbench.files import atomic_write_text, sha256_file

SCHEMA = 1  # bump when the speech pipeline changes what it makes from the same inputs


def key(parts: dict) -> str:
    """The entry's name: a sha256 of ``parts`` (JSON, sorted keys) and the schema."""
    blob = json.dumps({"schema": SCHEMA, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _entry(name: str, root: Path | None = None) -> tuple[Path, Path]:
    folder = (root or paths.speech_cache_root()) / name[:2]
    return folder / f"{name}.wav", folder / f"{name}.json"


def lookup(name: str, root: Path | None = None) -> tuple[Path, dict] | None:
    """The cached WAV and its record, if both are whole; else None."""
    wav, meta = _entry(name, root)
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
        if record.get("sha256") == sha256_file(wav):
            return wav, record
    except (OSError, ValueError):
        pass
    return None


def store(name: str, wav: Path, record: dict, root: Path | None = None) -> Path:
    """Put a copy of ``wav`` with ``record`` (which must hold its sha256) in the cache."""
    cached, meta = _entry(name, root)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(wav, partial)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, cached)
    finally:
        partial.unlink(missing_ok=True)
    atomic_write_text(meta, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return cached


def copy_out(cached: Path, sha256: str, dest: Path) -> bool:
    """Copy a cached WAV to ``dest`` (never overwritten) and check the copy's bytes: a store
    of the same key that replaced the WAV meanwhile, or a crash mid-copy, leaves no ``dest``
    and returns False."""
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(cached, partial)
        if sha256_file(partial) != sha256:
            return False
        os.link(partial, dest)  # FileExistsError rather than replace
        return True
    except FileNotFoundError:
        return False  # the entry went away meanwhile
    finally:
        partial.unlink(missing_ok=True)

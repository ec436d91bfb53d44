"""Small file helpers shared by the modules that write records: atomic writes, hashing, locks."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from rich.console import Console

from thbench.redaction import redact

CHUNK = 1 << 20


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` so that readers see the old content or the new, never half of it.

    Secrets (thbench.redaction) are masked: every record, stamp and report is written here.
    """
    # Unique per process and thread: a bench's threads write records side by side.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_text(redact(text), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temporary is left beside the record
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def waiting_lock(path: Path, busy: str, console: Console) -> Iterator[None]:
    """Hold the file lock ``path``; if another process holds it, say ``busy`` and wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        console.print(f"[yellow]{busy}; waiting for it…")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()

"""The project-local tools folder: programs bootstrap puts in place where apt cannot be used.

On a host without root (a university cluster) ``bootstrap/bootstrap.py`` unpacks the static
ffmpeg of the imageio-ffmpeg wheel into ``.tools/bin/ffmpeg`` (``THB_TOOLS_DIR`` moves
``.tools``) and records what it put there in ``.tools/tools.json``. A program on PATH always
wins; the folder is only the fallback. Stdlib only: bootstrap imports this before anything is
installed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from thbench.paths import REPO_ROOT

TOOLS_DIR_ENV = "THB_TOOLS_DIR"
RECORD_NAME = "tools.json"  # {"ffmpeg": {"source": ..., "sha256": ..., "version": ...}}
RECORD_SCHEMA = 1


def root() -> Path:
    """The tools folder (``THB_TOOLS_DIR``, default ``.tools/`` in the checkout)."""
    value = os.environ.get(TOOLS_DIR_ENV)
    return Path(value).expanduser().resolve() if value else REPO_ROOT / ".tools"


def bin_dir() -> Path:
    return root() / "bin"


def installed(name: str) -> Path | None:
    """``name`` in the tools folder when it is there and executable."""
    path = bin_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def which(name: str) -> str | None:
    """``name`` on PATH, else in the tools folder, else None."""
    found = shutil.which(name)
    if found:
        return found
    local = installed(name)
    return str(local) if local else None


def child_env() -> dict[str, str]:
    """Environment additions for a model's process: the tools folder first on PATH, but only
    when PATH has no ffmpeg of its own (upstream code runs `ffmpeg` by name)."""
    if shutil.which("ffmpeg") or installed("ffmpeg") is None:
        return {}
    return {"PATH": os.pathsep.join([str(bin_dir()), os.environ.get("PATH", os.defpath)])}


def read_record() -> dict:
    """What bootstrap recorded about the tools folder; {} when nothing (or garbage) is there."""
    try:
        record = json.loads((root() / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA else {}


def write_record(name: str, entry: dict) -> None:
    """Record ``entry`` for the tool ``name``, atomically (bootstrap calls this last)."""
    record = read_record() or {"schema": RECORD_SCHEMA}
    record[name] = entry
    path = root() / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)

"""Where things live. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _from_env(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def envs_root() -> Path:
    """Per-model and per-TTS virtual environments (``THB_ENVS_DIR``, default ``.envs/``)."""
    return _from_env("THB_ENVS_DIR", REPO_ROOT / ".envs")


def outputs_root() -> Path:
    """Run folders (``THB_OUTPUTS_DIR``, default ``outputs/``)."""
    return _from_env("THB_OUTPUTS_DIR", REPO_ROOT / "outputs")


def specs_root() -> Path:
    """Folder holding ``solutions/``, ``tts/`` and ``checks/`` (``THB_SPECS_DIR``, for tests)."""
    return _from_env("THB_SPECS_DIR", REPO_ROOT)

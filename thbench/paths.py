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


def cache_root() -> Path:
    """Caches shared by every checkout (``THB_CACHE_DIR``, default the user cache folder,
    e.g. ``~/.cache/talking-head-bench`` on Linux): voices, made speech, Coqui models."""
    if os.environ.get("THB_CACHE_DIR"):
        return _from_env("THB_CACHE_DIR", REPO_ROOT)
    from platformdirs import user_cache_path

    return user_cache_path("talking-head-bench", appauthor=False)


def voices_root() -> Path:
    """Downloaded TTS voices and models, one folder per backend (``THB_VOICES_DIR``, default
    ``<cache>/voices``)."""
    return _from_env("THB_VOICES_DIR", cache_root() / "voices")


def speech_cache_root() -> Path:
    """Speech already made, keyed by everything that shapes it (``<cache>/speech``)."""
    return cache_root() / "speech"


def specs_root() -> Path:
    """Folder holding ``solutions/``, ``tts/`` and ``checks/`` (``THB_SPECS_DIR``, for tests)."""
    return _from_env("THB_SPECS_DIR", REPO_ROOT)

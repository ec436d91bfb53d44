"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from thbench import cli
from thbench.specs import Kind


@pytest.fixture(scope="session", autouse=True)
def hermetic_caches(tmp_path_factory) -> Iterator[Path]:
    """Voices, made speech and Coqui models go to a folder of this test session, never to the
    user's cache (``THB_CACHE_DIR``); a test wanting an empty cache sets its own."""
    root = tmp_path_factory.mktemp("cache")
    old = {var: os.environ.pop(var, None) for var in ("THB_CACHE_DIR", "THB_VOICES_DIR")}
    os.environ["THB_CACHE_DIR"] = str(root)
    try:
        yield root
    finally:
        os.environ.pop("THB_CACHE_DIR")
        os.environ.update({var: value for var, value in old.items() if value is not None})


@pytest.fixture(scope="session", autouse=True)
def no_local_tools(tmp_path_factory) -> Iterator[None]:
    """A developer's rootless tools folder (.tools/) or local env config (thb.local.toml) must
    not leak into the tests: both point at empty places unless a test sets its own."""
    old = {var: os.environ.get(var) for var in ("THB_TOOLS_DIR", "THB_LOCAL_CONFIG")}
    os.environ["THB_TOOLS_DIR"] = str(tmp_path_factory.mktemp("tools"))
    empty = tmp_path_factory.mktemp("local") / "thb.local.toml"
    empty.write_text("# no existing envs: every model uses the project's own\n", encoding="utf-8")
    os.environ["THB_LOCAL_CONFIG"] = str(empty)
    try:
        yield
    finally:
        for var, value in old.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@pytest.fixture(scope="session")
def ready_envs(tmp_path_factory) -> Path:
    """still + Piper + face check, built once per test session in a folder of their own."""
    root = tmp_path_factory.mktemp("envs")
    with envs_dir(root):
        cli.setup_for_run(Kind.MODEL, "still")
    return root


@contextmanager
def envs_dir(root: Path) -> Iterator[Path]:
    """THB_ENVS_DIR set to ``root`` for the block, then as it was."""
    old = os.environ.get("THB_ENVS_DIR")
    os.environ["THB_ENVS_DIR"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("THB_ENVS_DIR")
        else:
            os.environ["THB_ENVS_DIR"] = old

"""Two fresh setups of one spec install the same set: `uv pip freeze` equal, and equal to the lock."""

from __future__ import annotations

import re

import pytest

from thbench import envs, proc, specs
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow


def _pins(text: str) -> dict[str, str]:
    """normalised name -> version of each `name==version` line (a lock's, or freeze's)."""
    pins = {}
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line):
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_two_fresh_setups_of_still_freeze_equal_and_to_the_lock(tmp_path, monkeypatch):
    spec = specs.get(Kind.MODEL, "still")
    frozen = []
    for name in ("one", "two"):
        # Each its own envs folder and an empty uv cache: nothing of the first reaches the second.
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / name / "uv-cache"))
        with envs_dir(tmp_path / name / "envs"):
            env = envs.setup(spec)
        assert env.root.parent == tmp_path / name / "envs" and env.is_ready()
        frozen.append(proc.run([envs.uv_binary(), "pip", "freeze", "--python", env.python],
                               capture=True, timeout=120).stdout)
    assert frozen[0] == frozen[1]
    lock = _pins(spec.requirements.read_text())
    assert lock and _pins(frozen[0]) == lock
    # Nothing beside the pins (a uv venv has no pip or setuptools of its own).
    assert len([line for line in frozen[0].splitlines() if line.strip()]) == len(lock)

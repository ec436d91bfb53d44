"""The tools an env is built with: uv itself, and a Python interpreter of the version a spec asks
for (uv's, then pyenv's, else one ``uv python install`` fetches). envs.py builds on these.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from thbench import proc
from thbench.errors import UserError


def uv_binary() -> str:
    """The uv that runs us (``uv run`` sets UV) or the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise UserError("uv not found", "run `python3 bootstrap/bootstrap.py` to install it")
    return found


def _runs(python: Path, version: str) -> bool:
    try:
        out = proc.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture=True, timeout=60,
        ).stdout.strip()
    except (proc.CommandFailed, UserError):
        return False
    return out == version


def _pyenv_candidates(version: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}"))

    def patch(path: str) -> int:
        number = Path(path).parent.parent.name.split(".")[2]
        return int(number) if number.isdigit() else -1

    return [Path(p) for p in sorted(found, key=patch, reverse=True)]


def find_python(version: str, log: Path | None = None, *, install: bool = True) -> Path | None:
    """An interpreter for ``version`` (e.g. "3.10"): uv's, then pyenv's, else ``uv python install``.

    ``uv python install`` honours ``UV_PYTHON_INSTALL_MIRROR`` for hosts that cannot reach GitHub.
    """
    uv = uv_binary()

    def uv_find() -> Path | None:  # uv-managed or on PATH; never a venv's, never a download
        found = proc.run([uv, "python", "find", "--system", "--no-project", version],
                         env={"UV_PYTHON_DOWNLOADS": "never"}, capture=True, check=False,
                         timeout=120)
        return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None

    if found := uv_find():
        return found
    for candidate in _pyenv_candidates(version):
        if _runs(candidate, version):
            return candidate
    if not install:
        return None
    installed = proc.run([uv, "python", "install", version], log=log, check=False, timeout=1800)
    if installed.returncode == 0 and (found := uv_find()):
        return found
    mirror = os.environ.get("UV_PYTHON_INSTALL_MIRROR")
    raise UserError(
        f"Python {version} is not installed and `uv python install {version}` failed"
        + (f" (mirror: {mirror})" if mirror else "") + (f"; see {log}" if log else ""),
        f"install Python {version} (e.g. `pyenv install {version}`) or set "
        "UV_PYTHON_INSTALL_MIRROR to a python-build-standalone mirror, then run the setup again",
    )


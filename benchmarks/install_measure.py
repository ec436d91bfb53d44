"""What benchmarks/install.py measures of an env once it is installed, and its summaries.

Per env: the bytes under it by inode (hard links from a cache counted once in any union), the
import time of the spec's imports, what it holds against the lock. Over all envs: disk per tool
and cache layout, the uv / pip ratios, whether every env got the same set, notes on the run.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

from thbench import envs, proc

SEEDS = {"pip", "setuptools", "wheel"}  # what `python -m venv` and conda add beside the lock
# The cache layouts: each spec its own cache (its cold and warm envs), or one for all specs.
LAYOUTS = {"cold": "own cache per spec", "warm": "own cache per spec", "shared": "one cache, all specs"}


def lock_pins(lock: Path) -> dict[str, str]:
    """normalised name -> version of every pin in a compiled lock."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line):
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze(python: Path) -> dict[str, str]:
    """What an env holds, as `uv pip freeze` reports it (works on pip's and conda's envs too)."""
    out = proc.run([envs.uv_binary(), "pip", "freeze", "--python", python], capture=True,
                   timeout=120).stdout
    return {normalise(name): version for name, _, version in
            (line.partition("==") for line in out.splitlines() if "==" in line)}


def matches(held: dict[str, str], pins: dict[str, str]) -> bool:
    """Every pin installed at its version; a local tag (+cu118) the index adds is the pin's."""
    return all(held.get(n, "").split("+")[0] == v for n, v in pins.items())


def pip_version(python: Path) -> str:
    """The pip that ran: the one `python -m venv` (or conda) put in the env."""
    return proc.run([python, "-m", "pip", "--version"], capture=True, timeout=60).stdout.split(" from ")[0]


def has_build_constraint(python: Path) -> bool:
    """Whether this pip has `--build-constraint` (pip 25.3+): constraints for isolated builds
    only, as uv's. Older pips have only PIP_CONSTRAINT, which constrains the install too."""
    help_text = proc.run([python, "-m", "pip", "install", "--help"], capture=True, timeout=60).stdout
    return "--build-constraint" in help_text


# --- disk ------------------------------------------------------------------------------------


def inodes(root: Path) -> dict[tuple[int, int], int]:
    """(st_dev, st_ino) -> bytes allocated, for everything under ``root`` (links not followed).

    Keyed by inode, so a file hard-linked into several envs (uv, from its cache) counts once in
    any union. A reflink clone (btrfs, XFS) is its own inode: its shared blocks count twice.
    """
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            st = os.lstat(os.path.join(folder, name))
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return seen


def union_bytes(*maps: dict[tuple[int, int], int]) -> int:
    return sum({key: size for m in maps for key, size in m.items()}.values())


def disk(maps: dict, cache_maps: dict) -> list[dict]:
    """Per tool and cache layout: its envs one by one summed, together (links once), its caches
    (each as its last install left it), and both. ``maps``: (spec, tool, cache) -> inodes;
    ``cache_maps``: (tool, layout) -> {cache folder: inodes}."""
    out = []
    for tool, layout in dict.fromkeys((key[1], LAYOUTS[key[2]]) for key in maps):
        mine = [m for key, m in maps.items() if key[1] == tool and LAYOUTS[key[2]] == layout]
        caches = list(cache_maps.get((tool, layout), {}).values())
        out.append({"tool": tool, "layout": layout, "envs": len(mine),
                    "sum_bytes": sum(sum(m.values()) for m in mine),
                    "together_bytes": union_bytes(*mine), "cache_bytes": union_bytes(*caches),
                    "with_cache_bytes": union_bytes(*mine, *caches)})
    return out


# --- imports ---------------------------------------------------------------------------------


def import_seconds(python: Path, modules: tuple[str, ...], repeat: int) -> dict[str, float]:
    """The spec's imports, less the interpreter's start: the first time, then the median of
    ``repeat`` more. uv writes no .pyc at install (pip does), so its first import compiles them;
    run as on a host that lets Python write them (PYTHONDONTWRITEBYTECODE unset), else every
    import would be a first one."""
    code = "import " + ", ".join(modules) if modules else "pass"

    def once(source: str) -> float:
        return proc.run([python, "-c", source], capture=True, timeout=600,
                        unset_env=["PYTHONDONTWRITEBYTECODE"]).seconds

    first = once(code)
    start = statistics.median(once("pass") for _ in range(repeat))
    warm = statistics.median(once(code) for _ in range(repeat))
    return {"first_s": round(max(first - start, 0), 3), "warm_s": round(max(warm - start, 0), 3),
            "interpreter_start_s": round(start, 3)}


# --- over all envs ---------------------------------------------------------------------------


def same_packages(results: list[dict]) -> dict[str, bool]:
    """Per spec: every tool and cache state installed one and the same set, the lock's (their
    own seeds, pip and setuptools, left out)."""
    out = {}
    for spec in dict.fromkeys(r["spec"] for r in results):
        rows = [r for r in results if r["spec"] == spec]
        out[spec] = all(r["packages"] == rows[0]["packages"] and r["matches_lock"]
                        and not r["extra"] for r in rows)
    return out


def ratios(results: list[dict]) -> dict:
    """uv / pip seconds, per spec and over all specs, cold and warm (below 1: uv is faster)."""
    def seconds(spec: str | None, tool: str, cache: str, key: str) -> float:
        return sum(r[key] for r in results if r["tool"] == tool and r["cache"] == cache
                   and (spec is None or r["spec"] == spec))

    out = {}
    for spec in [*dict.fromkeys(r["spec"] for r in results), None]:
        out[spec or "all"] = {
            f"{cache}_{key}": round(seconds(spec, "uv", cache, key) / pip, 3)
            if (pip := seconds(spec, "pip", cache, key)) else None
            for cache in ("cold", "warm") for key in ("install_s", "total_s")}
    return out


def notes(results: list[dict]) -> list[str]:
    """What the table cannot say: the cache layouts, a pip cache its cold install left (nearly)
    empty, pip's build constraints where they were not build-only."""
    out = ["cold/warm rows: each spec its own cache, empty for cold, the same one again for warm; "
           "'together' of 'own cache per spec' shares links within a spec only. shared rows: each "
           "spec once more, in the order given, into one cache per tool for all specs, as setup's "
           "envs share one uv cache: the first spec's install is cold, a later one's warm for what "
           "the earlier ones left; 'one cache, all specs' is disk as such a machine has it"]
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        out.append("this host sets PYTHONDONTWRITEBYTECODE: every start of a uv env here pays "
                   "its '1st import' (measured with it unset), a pip env's only its 'import'")
    for r in results:
        if r["tool"] == "pip" and r["cache"] == "cold" and r["cache_bytes"] < r["disk_bytes"] / 20:
            out.append(f"{r['spec']}: {r['tool']}'s cache holds {r['cache_bytes'] >> 10} KiB after "
                       "its cold install, so its warm install downloaded again: pip caches only "
                       "what the index's HTTP caching headers allow (a proxy may strip them)")
    for spec in dict.fromkeys(r["spec"] for r in results if r.get("build_constraint") == "PIP_CONSTRAINT"):
        out.append(f"{spec}: this pip has no --build-constraint (pip 25.3+), so its build "
                   "constraints went in PIP_CONSTRAINT, which constrains the install's own "
                   "resolution too (uv's --build-constraint only the isolated builds)")
    return out

"""Install speed of spec locks, measured here: uv against pip, each with an empty and a warm cache.

    uv run nox -s bench-install                          # the still and mouth locks
    uv run nox -s bench-install -- wav2lip tts:piper     # any model, TTS, check or metric spec
    uv run python benchmarks/install.py --help

Per spec, four fresh envs side by side, the same interpreter for all (thbench.envs.find_python):
uv with an empty cache then again with that cache warm (setup's own commands), pip likewise
(`python -m venv`, then `python -m pip install -r requirements.lock`, dependencies checked as
uv does), and conda / mamba / micromamba where installed (conda's Python, pip for the lock).
Measured: seconds per step, the disk each env takes, what the envs take together with hard
links counted once, the import time of the spec's `imports`. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn
from rich.table import Table

from thbench import envs, gpu, proc, profiles, resources, specs
from thbench.errors import UserError, print_error
from thbench.files import atomic_write_text
from thbench.specs import Kind, Spec

SCHEMA = 1
DEFAULT_SPECS = ("still", "mouth")
CONDAS = ("conda", "mamba", "micromamba")
SEEDS = {"pip", "setuptools", "wheel"}  # what `python -m venv` and conda add beside the lock
# Where else each tool could take packages from: unset, so all take them from index().
UV_SOURCES = ["UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_FIND_LINKS", "UV_NO_INDEX"]
PIP_SOURCES = ["PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"]
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
progress_console = Console(stderr=True, highlight=False)


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=list(DEFAULT_SPECS),
                        help="spec names, `kind:name` where two kinds share one (metric:face); "
                             "default: " + " ".join(DEFAULT_SPECS))
    parser.add_argument("--json", type=Path, help="results file (default: in the work folder's parent)")
    parser.add_argument("--work", type=Path,
                        help="folder for the envs and caches (default: a new temp folder); keep it "
                             "on one filesystem so uv can link from its cache")
    parser.add_argument("--keep", action="store_true", help="keep the envs and caches afterwards")
    parser.add_argument("--repeat", type=int, default=3, help="import timings per env (median)")
    return parser.parse_args(argv)


def find_spec(name: str) -> Spec:
    """A spec of any kind by name; `kind:name` picks one where two kinds share the name."""
    kind_text, _, bare = name.rpartition(":")
    if kind_text and kind_text not in {k.value for k in Kind}:
        raise UserError(f"unknown spec kind '{kind_text}' in '{name}'",
                        "use one of " + ", ".join(f"{k.value}:NAME" for k in Kind))
    loaded = specs.load_all()
    kinds = [Kind(kind_text)] if kind_text else list(Kind)
    found = [loaded[k][bare] for k in kinds if bare in loaded[k]]
    if len(found) == 1:
        return found[0]
    if found:
        raise UserError(f"'{bare}' names a " + " and a ".join(s.kind.label for s in found),
                        "say which: " + " or ".join(f"{s.kind.value}:{bare}" for s in found))
    known = sorted({n for k in kinds for n in loaded[k]})
    close = specs._near(bare, known)
    raise UserError(f"no spec named '{bare}'" + (f"; did you mean '{close}'?" if close else ""),
                    "known: " + ", ".join(known))


def index() -> str:
    """The one package index every tool installs from: uv's default (PyPI unless set)."""
    return (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
            or "https://pypi.org/simple")


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


# --- one env ---------------------------------------------------------------------------------


class Installer:
    """The commands of one tool, for one spec, into one folder."""

    def __init__(self, tool: str, spec: Spec, interpreter: Path, root: Path, cache: Path) -> None:
        self.tool, self.spec, self.interpreter, self.cache = tool, spec, interpreter, cache
        self.env = envs.Env(spec, root)  # venv at root/venv, as setup lays it out
        self.log = root / "install.log"

    @property
    def python(self) -> Path:
        return self.env.python  # <prefix>/bin/python for a venv and a conda prefix alike

    def environ(self) -> tuple[dict[str, str], list[str]]:
        """Variables to set and to unset: one cache, and one index for every tool (uv's default,
        PyPI unless UV_DEFAULT_INDEX says otherwise), so that none reads wheels from a nearer
        place than the others (a pip.conf's find-links, say)."""
        if self.tool == "uv":
            return {"UV_CACHE_DIR": str(self.cache), "UV_NO_CONFIG": "1",
                    "UV_DEFAULT_INDEX": index()}, UV_SOURCES
        # No self-update check (a request to PyPI uv does not make); no prompts.
        pip = {"PIP_CACHE_DIR": str(self.cache / "pip"), "PIP_CONFIG_FILE": os.devnull,
               "PIP_INDEX_URL": index(), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}
        if self.spec.build_constraints:  # pip passes PIP_CONSTRAINT on to isolated builds
            pip["PIP_CONSTRAINT"] = str(self.spec.build_constraints)
        if self.tool in CONDAS:
            pip |= {"CONDA_PKGS_DIRS": str(self.cache / "pkgs"),
                    "MAMBA_ROOT_PREFIX": str(self.cache / "root")}
        return pip, PIP_SOURCES

    def venv_argv(self) -> list:
        if self.tool == "uv":
            return envs._venv_argv(self.env, self.interpreter)
        if self.tool == "pip":
            return [self.interpreter, "-m", "venv", self.env.venv]
        # conda's own Python of the spec's minor version, from conda-forge (no defaults ToS).
        return [shutil.which(self.tool), "create", "--yes", "--prefix", self.env.venv,
                "--override-channels", "--channel", "conda-forge", f"python={self.spec.python}", "pip"]

    def torch_argv(self) -> list:
        if self.tool == "uv":
            return envs._torch_argv(self.env)
        argv = [self.python, "-m", "pip", "install", *self.spec.torch.packages]
        index = self.spec.torch.index
        if index and index.startswith("file://"):
            argv += ["--no-index", "--find-links", index]
        elif index:
            argv += ["--index-url", index]
        return argv

    def lock_argv(self, held: Path | None) -> list:
        if self.tool == "uv":
            return envs._lock_argv(self.env, held)
        return [self.python, "-m", "pip", "install", "-r", self.spec.requirements,
                *(["--constraint", held] if held else [])]

    def install(self, step) -> dict:
        """venv → torch → lock, as setup does them; seconds per step."""
        self.env.root.mkdir(parents=True, exist_ok=True)
        variables, unset = self.environ()
        run = {"env": variables, "unset_env": unset, "log": self.log, "timeout": 3600}
        seconds = {}
        step("venv")
        seconds["venv"] = proc.run(self.venv_argv(), **run).seconds
        held = None
        if self.spec.torch:
            step("torch")
            seconds["torch"] = proc.run(self.torch_argv(), **run).seconds
            # The torch pins themselves: setup holds what it installed, the same versions.
            held = self.env.root / "torch-constraints.txt"
            held.write_text("\n".join(self.spec.torch.packages) + "\n")
        step("lock")
        seconds["lock"] = proc.run(self.lock_argv(held), **run).seconds
        return seconds


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


# --- the run ---------------------------------------------------------------------------------


def variants() -> list[tuple[str, str]]:
    tools = ["uv", "pip", *(c for c in CONDAS if shutil.which(c))]
    return [(tool, cache) for tool in tools for cache in ("cold", "warm")]


def measure(chosen: list[Spec], work: Path, repeat: int) -> dict:
    plan = variants()
    results, maps, cache_maps = [], {}, {}
    columns = (SpinnerColumn(), "[progress.description]{task.description}", BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=progress_console, transient=True) as bar:
        task = bar.add_task("", total=len(chosen) * len(plan))
        for spec in chosen:
            log = work / spec.env_id / "python.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            bar.update(task, description=f"{spec.env_id}: find Python {spec.python}")
            interpreter = envs.find_python(spec.python, log)
            for tool, cache in plan:
                # One cache per spec and tool: empty for "cold", the same one again for "warm".
                cache_dir = work / "caches" / f"{spec.env_id}-{tool}"
                installer = Installer(tool, spec, interpreter, work / spec.env_id / f"{tool}-{cache}",
                                      cache_dir)
                label = f"{spec.env_id} · {tool} {cache}"
                try:
                    row = measure_one(installer, repeat,
                                      lambda s, label=label: bar.update(task, description=f"{label}: {s}"))
                except proc.CommandFailed as err:  # recorded, and the others still measured
                    row = {"failed": err.message, "log": str(installer.log)}
                else:
                    maps[(spec.env_id, tool, cache)] = row.pop("_inodes")
                cache_map = inodes(cache_dir) if cache_dir.exists() else {}
                cache_maps[tool] = cache_maps.get(tool, {}) | cache_map
                results.append({"spec": spec.env_id, "tool": tool, "cache": cache, **row,
                                "cache_bytes": sum(cache_map.values())})  # after this install
                bar.advance(task)
    done = [r for r in results if "failed" not in r]
    return {"results": results, "disk": disk(maps, cache_maps), "ratios": ratios(done),
            "same_packages": same_packages(done), "notes": notes(done)}


def measure_one(installer: Installer, repeat: int, step) -> dict:
    """Install, measure the disk, time the imports, list what the env holds."""
    spec, seconds = installer.spec, installer.install(step)
    found = inodes(installer.env.venv)
    step(f"import {', '.join(spec.imports) or '-'}")
    imports = import_seconds(installer.python, spec.imports, repeat)
    held = {n: v for n, v in freeze(installer.python).items() if n not in SEEDS}
    # The torch pins are never in the lock: setup installs them first.
    pins = lock_pins(spec.requirements) | {
        normalise(specs.pin_name(p)): p.split("==", 1)[1].split("+")[0]
        for p in (spec.torch.packages if spec.torch else ())}
    return {"seconds": seconds,
            "install_s": round(sum(v for k, v in seconds.items() if k != "venv"), 2),
            "total_s": round(sum(seconds.values()), 2), "disk_bytes": sum(found.values()),
            "imports": list(spec.imports), "import": imports,
            "python": str(installer.interpreter if installer.tool in ("uv", "pip")
                          else installer.python),
            "pip": None if installer.tool == "uv" else pip_version(installer.python), "packages": held,
            "matches_lock": matches(held, pins), "extra": sorted(set(held) - set(pins)),
            "env": str(installer.env.venv), "log": str(installer.log), "_inodes": found}


def notes(results: list[dict]) -> list[str]:
    """What makes a warm row no warmer: a cache that its cold install left (nearly) empty."""
    out = []
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        out.append("this host sets PYTHONDONTWRITEBYTECODE: every start of a uv env here pays "
                   "its '1st import' (measured with it unset), a pip env's only its 'import'")
    for r in results:
        if r["tool"] == "pip" and r["cache"] == "cold" and r["cache_bytes"] < r["disk_bytes"] / 20:
            out.append(f"{r['spec']}: {r['tool']}'s cache holds {r['cache_bytes'] >> 10} KiB after "
                       "its cold install, so its warm install downloaded again: pip caches only "
                       "what the index's HTTP caching headers allow (a proxy may strip them)")
    return out


def matches(held: dict[str, str], pins: dict[str, str]) -> bool:
    """Every pin installed at its version; a local tag (+cu118) the index adds is the pin's."""
    return all(held.get(n, "").split("+")[0] == v for n, v in pins.items())


def pip_version(python: Path) -> str:
    """The pip that ran: the one `python -m venv` (or conda) put in the env."""
    return proc.run([python, "-m", "pip", "--version"], capture=True, timeout=60).stdout.split(" from ")[0]


def same_packages(results: list[dict]) -> dict[str, bool]:
    """Per spec: every tool and cache state installed one and the same set, the lock's (their
    own seeds, pip and setuptools, left out)."""
    out = {}
    for spec in dict.fromkeys(r["spec"] for r in results):
        rows = [r for r in results if r["spec"] == spec]
        out[spec] = all(r["packages"] == rows[0]["packages"] and r["matches_lock"]
                        and not r["extra"] for r in rows)
    return out


def disk(maps: dict, cache_maps: dict) -> list[dict]:
    """Per tool: its envs one by one summed, together (links once), its caches, and both."""
    out = []
    for tool in dict.fromkeys(key[1] for key in maps):
        mine = [m for key, m in maps.items() if key[1] == tool]
        cache = cache_maps.get(tool, {})
        out.append({"tool": tool, "envs": len(mine), "sum_bytes": sum(sum(m.values()) for m in mine),
                    "together_bytes": union_bytes(*mine), "cache_bytes": union_bytes(cache),
                    "with_cache_bytes": union_bytes(*mine, cache)})
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


def show(report: dict) -> None:
    mb = 1 << 20
    table = Table(title="Install: seconds ↓, disk ↓, import time ↓ (import less interpreter start)")
    for name in ("spec", "tool", "cache", "venv s", "torch s", "lock s", "total s", "disk MB",
                 "1st import s", "import s", "pkgs", "= lock"):
        table.add_column(name, justify="left" if name in ("spec", "tool", "cache") else "right")
    for r in report["results"]:
        if "failed" in r:
            table.add_row(r["spec"], r["tool"], r["cache"], f"[red]FAILED[/] {r['failed']}")
            continue
        s = r["seconds"]
        table.add_row(r["spec"], r["tool"], r["cache"], f"{s['venv']:.1f}",
                      f"{s['torch']:.1f}" if "torch" in s else "-", f"{s['lock']:.1f}",
                      f"{r['total_s']:.1f}", f"{r['disk_bytes'] / mb:.0f}",
                      f"{r['import']['first_s']:.2f}", f"{r['import']['warm_s']:.2f}",
                      str(len(r["packages"])), "yes" if r["matches_lock"] and not r["extra"] else "NO")
    console.print(table)
    ratio = Table(title="uv / pip seconds (below 1: uv faster; torch + lock, and with the venv)")
    for name in ("spec", "cold install", "warm install", "cold total", "warm total"):
        ratio.add_column(name, justify="left" if name == "spec" else "right")
    for spec, r in report["ratios"].items():
        ratio.add_row(spec, *(f"{r[k]:.2f}" if r[k] is not None else "-" for k in
                              ("cold_install_s", "warm_install_s", "cold_total_s", "warm_total_s")))
    console.print(ratio)
    space = Table(title="Disk MB: envs one by one, together (hard links once), cache, envs + cache")
    for name in ("tool", "envs", "summed", "together", "cache", "envs + cache"):
        space.add_column(name, justify="left" if name == "tool" else "right")
    for d in report["disk"]:
        space.add_row(d["tool"], str(d["envs"]), *(f"{d[k] / mb:.0f}" for k in
                      ("sum_bytes", "together_bytes", "cache_bytes", "with_cache_bytes")))
    console.print(space)
    for line in report["notes"]:
        console.print(f"[yellow]note:[/] {line}")
    for tool, why in report["skipped"].items():
        console.print(f"{tool}: {why}")


def versions() -> dict:
    """uv's and each conda's version; pip's is the one in each env (see the results)."""
    out = {"uv": proc.run([envs.uv_binary(), "--version"], capture=True).stdout.strip()}
    for tool in CONDAS:
        if found := shutil.which(tool):
            out[tool] = proc.run([found, "--version"], capture=True, timeout=60).stdout.strip()
    return out


def main(argv: list[str]) -> int:
    opts = _options(argv)
    work = opts.work or Path(tempfile.mkdtemp(prefix="thbench-install-"))
    if work.exists() and any(work.iterdir()):  # before the try: a folder of the user's stays
        print_error(UserError(f"the work folder {work} is not empty: its envs would not be fresh",
                              "name an empty or new folder with --work, or remove that one"))
        return 2
    try:
        if opts.repeat < 1:
            raise UserError(f"--repeat {opts.repeat}", "at least 1, e.g. --repeat 3")
        gpus = gpu.detect()  # the profile setup would choose, torch build and all
        chosen = [profiles.choose(find_spec(name), gpus).spec for name in opts.specs]
        work.mkdir(parents=True, exist_ok=True)
        report = {"schema": SCHEMA, "kind": "install",
                  "created": datetime.now(UTC).isoformat(timespec="seconds"),
                  "machine": resources.host_info(),
                  "filesystem": proc.run(["stat", "--file-system", "--format=%T", work],
                                         capture=True).stdout.strip(),
                  "work": str(work), "index": index(),
                  "cache_counted": "apart: 'cache' and 'envs + cache' columns",
                  "profiles": {s.env_id: s.profile for s in chosen}, "versions": versions(),
                  "skipped": {c: "not installed" for c in CONDAS if not shutil.which(c)},
                  **measure(chosen, work, opts.repeat)}
        show(report)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = opts.json or work.parent / f"thbench-install-{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
        console.print(f"results: {out}" + (f"; envs and caches kept: {work}" if opts.keep else ""))
        return 1 if any("failed" in r for r in report["results"]) else 0
    except UserError as err:
        print_error(err)
        return 2
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Install speed of spec locks, measured here: uv against pip, each with an empty and a warm cache.

    uv run nox -s bench-install                          # the still and mouth locks
    uv run nox -s bench-install -- wav2lip tts:piper     # any model, TTS, check or metric spec
    uv run python benchmarks/install.py --help

Per spec, four fresh envs side by side, the same interpreter for all (thbench.envs.find_python):
uv with an empty cache then again with that cache warm (setup's own commands), pip likewise
(`python -m venv`, then `python -m pip install -r requirements.lock`, dependencies checked as
uv does), and conda / mamba / micromamba where installed (conda's Python, pip for the lock).
Then every spec once more into one cache per tool shared by all specs, as setup's envs share
one uv cache. Measured: seconds per step, the disk each env takes, what the envs take together
with hard links counted once, the import time of the spec's `imports` (install_measure.py).
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

# Beside this script; a test loads the script by its path, which puts no folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import install_measure as measured  # noqa: E402

SCHEMA = 1
DEFAULT_SPECS = ("still", "mouth")
CONDAS = ("conda", "mamba", "micromamba")
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


# --- one env ---------------------------------------------------------------------------------


class Installer:
    """The commands of one tool, for one spec, into one folder."""

    def __init__(self, tool: str, spec: Spec, interpreter: Path, root: Path, cache: Path) -> None:
        self.tool, self.spec, self.interpreter, self.cache = tool, spec, interpreter, cache
        self.env = envs.Env(spec, root)  # venv at root/venv, as setup lays it out
        self.log = root / "install.log"
        self.build_constraint: str | None = None  # how pip got the spec's build constraints

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
        argv = [self.python, "-m", "pip", "install", "-r", self.spec.requirements,
                *(["--constraint", held] if held else [])]
        if self.build_constraint == "--build-constraint":
            argv += ["--build-constraint", self.spec.build_constraints]
        return argv

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
        lock_run = run
        if self.tool != "uv" and self.spec.build_constraints:
            # uv's --build-constraint reaches the isolated builds only. pip's own flag (25.3+)
            # does the same; an older pip has only PIP_CONSTRAINT, which constrains the install
            # too (install_measure.notes says so), and only for this step, as setup's uv does.
            self.build_constraint = ("--build-constraint" if measured.has_build_constraint(
                self.python) else "PIP_CONSTRAINT")
            if self.build_constraint == "PIP_CONSTRAINT":
                lock_run = {**run, "env": {**variables, "PIP_CONSTRAINT": str(self.spec.build_constraints)}}
        step("lock")
        seconds["lock"] = proc.run(self.lock_argv(held), **lock_run).seconds
        return seconds


# --- the run ---------------------------------------------------------------------------------


def tools() -> list[str]:
    return ["uv", "pip", *(c for c in CONDAS if shutil.which(c))]


def plan(chosen: list[Spec]) -> list[tuple[Spec, str, str]]:
    """(spec, tool, cache) in order: per spec its cold and warm envs, each spec its own cache;
    then every spec once more ("shared") into one cache per tool for all specs."""
    per_spec = [(spec, tool, cache) for spec in chosen for tool in tools() for cache in ("cold", "warm")]
    return per_spec + [(spec, tool, "shared") for tool in tools() for spec in chosen]


def measure(chosen: list[Spec], work: Path, repeat: int) -> dict:
    steps, interpreters = plan(chosen), {}
    results, maps, cache_maps = [], {}, {}
    columns = (SpinnerColumn(), "[progress.description]{task.description}", BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=progress_console, transient=True) as bar:
        task = bar.add_task("", total=len(steps))
        for spec, tool, cache in steps:
            if spec.env_id not in interpreters:
                log = work / spec.env_id / "python.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                bar.update(task, description=f"{spec.env_id}: find Python {spec.python}")
                interpreters[spec.env_id] = envs.find_python(spec.python, log)
            cache_dir = work / "caches" / (f"{tool}-shared" if cache == "shared" else f"{spec.env_id}-{tool}")
            installer = Installer(tool, spec, interpreters[spec.env_id],
                                  work / spec.env_id / f"{tool}-{cache}", cache_dir)
            label = f"{spec.env_id} · {tool} {cache}"
            try:
                row = measure_one(installer, repeat,
                                  lambda s, label=label: bar.update(task, description=f"{label}: {s}"))
            except proc.CommandFailed as err:  # recorded, and the others still measured
                row = {"failed": err.message, "log": str(installer.log)}
            else:
                maps[(spec.env_id, tool, cache)] = row.pop("_inodes")
            cache_map = measured.inodes(cache_dir) if cache_dir.exists() else {}
            # Each cache as its last install left it (uv removes its temporary files).
            cache_maps.setdefault((tool, measured.LAYOUTS[cache]), {})[cache_dir] = cache_map
            results.append({"spec": spec.env_id, "tool": tool, "cache": cache, **row,
                            "cache_bytes": sum(cache_map.values())})  # after this install
            bar.advance(task)
    done = [r for r in results if "failed" not in r]
    return {"results": results, "disk": measured.disk(maps, cache_maps),
            "ratios": measured.ratios(done), "same_packages": measured.same_packages(done),
            "notes": measured.notes(done)}


def measure_one(installer: Installer, repeat: int, step) -> dict:
    """Install, measure the disk, time the imports, list what the env holds."""
    spec, seconds = installer.spec, installer.install(step)
    found = measured.inodes(installer.env.venv)
    step(f"import {', '.join(spec.imports) or '-'}")
    imports = measured.import_seconds(installer.python, spec.imports, repeat)
    held = {n: v for n, v in measured.freeze(installer.python).items() if n not in measured.SEEDS}
    # The torch pins are never in the lock: setup installs them first.
    pins = measured.lock_pins(spec.requirements) | {
        measured.normalise(specs.pin_name(p)): p.split("==", 1)[1].split("+")[0]
        for p in (spec.torch.packages if spec.torch else ())}
    return {"seconds": seconds,
            "install_s": round(sum(v for k, v in seconds.items() if k != "venv"), 2),
            "total_s": round(sum(seconds.values()), 2), "disk_bytes": sum(found.values()),
            "imports": list(spec.imports), "import": imports,
            "python": str(installer.interpreter if installer.tool in ("uv", "pip")
                          else installer.python),
            "pip": None if installer.tool == "uv" else measured.pip_version(installer.python),
            "build_constraint": installer.build_constraint, "packages": held,
            "matches_lock": measured.matches(held, pins), "extra": sorted(set(held) - set(pins)),
            "env": str(installer.env.venv), "log": str(installer.log), "_inodes": found}


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
    space = Table(title="Disk MB: envs one by one, together (hard links once), cache, envs + cache; "
                        "per cache layout (see the first note)")
    for name in ("tool", "cache layout", "envs", "summed", "together", "cache", "envs + cache"):
        space.add_column(name, justify="left" if name in ("tool", "cache layout") else "right")
    for d in report["disk"]:
        space.add_row(d["tool"], d["layout"], str(d["envs"]), *(f"{d[k] / mb:.0f}" for k in
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


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet: what mkdir(parents=True) makes."""
    top, path = None, path.absolute()
    while not path.exists() and path != path.parent:
        top, path = path, path.parent
    return top


def _work_folder(given: Path | None) -> tuple[Path, Path | None]:
    """The work folder and what of it this run creates (removed at the end); ERROR + TIP for a
    file or a folder that is not empty (a folder of the user's is never removed)."""
    if given is None:
        made = Path(tempfile.mkdtemp(prefix="thbench-install-"))
        return made, made
    if given.exists() and not given.is_dir():
        raise UserError(f"--work {given} is a file, not a folder",
                        "name a new or empty folder with --work (it holds the envs and caches)")
    if given.is_dir() and any(given.iterdir()):
        raise UserError(f"the work folder {given} is not empty: its envs would not be fresh",
                        "name an empty or new folder with --work, or remove that one")
    return given, _first_missing(given)


def _clean(work: Path, made: Path | None, keep: Path | None) -> None:
    """Remove what this run made: the folders it created, else what it put in the user's (empty)
    folder, but never the results file."""
    if made and not (keep and keep.absolute().is_relative_to(made.absolute())):
        shutil.rmtree(made, ignore_errors=True)
        return
    for child in (work.iterdir() if work.is_dir() else ()):
        if not (keep and keep.absolute().is_relative_to(child.absolute())):
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


def main(argv: list[str]) -> int:
    opts = _options(argv)
    try:
        work, made = _work_folder(opts.work)
    except UserError as err:  # before anything is made: nothing to remove
        print_error(err)
        return 2
    out = None
    try:
        if opts.repeat < 1:
            raise UserError(f"--repeat {opts.repeat}", "at least 1, e.g. --repeat 3")
        gpus = gpu.detect()  # the profile setup would choose, torch build and all
        chosen = [profiles.choose(find_spec(name), gpus).spec for name in opts.specs]
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--work {work}: cannot make it ({err.strerror})",
                            "name a folder that can be made, on one filesystem") from None
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
        out = opts.json or work.absolute().parent / f"thbench-install-{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
        console.print(f"results: {out}" + (f"; envs and caches kept: {work}" if opts.keep else ""))
        return 1 if any("failed" in r for r in report["results"]) else 0
    except UserError as err:
        print_error(err)
        return 2
    finally:
        if not opts.keep:
            _clean(work, made, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

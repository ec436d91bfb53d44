"""An env the project did not build (a conda env, any venv): used as it is, never changed.

A model's entry in the local config (thbench/local_config.py) names it. Setup checks it instead
of building: the interpreter runs and is a Python, the spec's imports import, torch is the build
the spec asks for and computes on the GPU, conda/pip double installs are reported
(thbench/conda_conflicts.py); external_checks.py makes the rows of that table. What was found
goes to a check record in the project's own folder, ``<envs>/external/<kind>-<name>/``
(check.json, check.log, the run lock and, when the config names no checkout, the project's own
checkout and weights); a run reads it as it reads a stamp. Nothing is installed into the env,
and nothing of ours is written under its prefix or a weights folder the config names: every
interpreter start has PYTHONDONTWRITEBYTECODE set, and NUMBA_CACHE_DIR points numba's
``cache=True`` (librosa) at our folder. A checkout the config names is read, never changed by
the project, but the model's own upstream code writes its temp files there as it does when run
by hand (README: 'Existing environments').
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path

from thbench import conda_conflicts, external_checks, gpu, health, local_config, paths, proc, profiles, specs
from thbench.envs import Env, console
from thbench.errors import UserError
from thbench.external_checks import NEVER_CHANGED, _conflicts, _lock_rows, _Rows, torch_rows
from thbench.files import atomic_write_text, waiting_lock
from thbench.local_config import EnvRef, ModelLocal
from thbench.specs import Kind, Spec

CHECK_SCHEMA = 2  # 2: the fingerprint covers every site folder (site_dirs), not only site
NO_WRITES = {"PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ written into the env
# Where the interpreter imports installed packages from: purelib/platlib, the user site (when
# enabled, even before it exists: a later `pip install --user` creates it) and every other
# site-packages or dist-packages folder on sys.path (Debian's, a .pth's).
INFO = ("import json, os, site, sys, sysconfig; p = sysconfig.get_paths(); print(json.dumps({"
        "'python': '%d.%d.%d' % sys.version_info[:3], 'prefix': sys.prefix, "
        "'executable': sys.executable, 'site': sorted({p['purelib'], p['platlib']}), "
        "'user_site': site.getusersitepackages() if site.ENABLE_USER_SITE else None, "
        "'path_sites': [d for d in sys.path if os.path.basename(d.rstrip('/')) in "
        "('site-packages', 'dist-packages') and os.path.isdir(d)]}))")
CONDA_TOOLS = ("conda", "mamba", "micromamba")


@dataclass(frozen=True)
class Resolved:
    kind: str  # conda or python
    ref: str  # as configured
    python: Path
    prefix: Path | None  # a conda env's prefix
    name: str | None  # a conda env's name


def configured(spec: Spec) -> ExternalEnv | None:
    """The existing env the local config names for ``spec``, or None (build our own)."""
    if spec.kind is not Kind.MODEL or not _any_local_config():
        return None
    names = tuple(sorted({f.parent.name for f in specs.spec_files(Kind.MODEL)} | {spec.name}))
    local = _tables(_config_key(), names).get(spec.name)
    if not (local and local.env):
        return None
    return ExternalEnv(spec, paths.envs_root() / "external" / spec.env_id, local=local)


def _config_key() -> tuple:
    """All the config is made of: the file (its bytes: an mtime can miss an edit in the same
    tick) and every THB_ENV_* value."""
    path = local_config.config_path()
    try:
        content = path.read_bytes()
    except OSError:
        content = None
    named = "THB_LOCAL_CONFIG" in os.environ
    return str(path), named, content, tuple(sorted((k, v) for k, v in os.environ.items()
                                                   if k.startswith("THB_ENV_")))


@lru_cache(maxsize=16)
def _tables(key: tuple, names: tuple[str, ...]) -> dict[str, ModelLocal]:
    """The parsed config, once per config state (Env.of asks for every spec, doctor for all)."""
    return local_config.load(list(names))


def _any_local_config() -> bool:
    return (local_config.config_path().is_file() or "THB_LOCAL_CONFIG" in os.environ
            or any(key.startswith("THB_ENV_") for key in os.environ))


def resolve(ref: EnvRef) -> Resolved:
    """The interpreter ``ref`` names; ERROR + TIP for an unknown conda env or a non-Python."""
    if ref.kind == "python":
        return Resolved("python", str(ref), _require_python(Path(ref.value), str(ref)), None, None)
    if "/" in ref.value:
        prefix = Path(ref.value).expanduser()
        name = None
        if not conda_conflicts.is_conda_prefix(prefix):
            raise UserError(f"{ref}: {prefix} is not a conda env (it has no conda-meta folder)",
                            "give the prefix `conda env list` shows, or use "
                            "env = \"python:/path/to/bin/python\" for a plain venv")
    else:
        name, prefix = ref.value, _conda_prefix(ref.value)
    return Resolved("conda", str(ref), _require_python(prefix / "bin" / "python", str(ref)),
                    prefix.resolve(), name)


def _conda_prefix(name: str) -> Path:
    tool = os.environ.get("CONDA_EXE") or next(filter(None, map(shutil.which, CONDA_TOOLS)), None)
    if not tool:
        raise UserError(f"conda:{name} is a conda env name, and no conda, mamba or micromamba is "
                        "on PATH to look it up",
                        f'give its prefix instead: env = "conda:/path/to/envs/{name}"')
    listed = proc.run([tool, "env", "list", "--json"], capture=True, check=False, timeout=120)
    try:
        prefixes = [Path(p) for p in json.loads(listed.stdout)["envs"]]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"`{tool} env list --json` did not list envs (exit {listed.returncode})",
                        f'give the env\'s prefix instead: env = "conda:/path/to/envs/{name}"') from None
    root = _root_prefix(tool, prefixes)
    named: dict[str, Path] = {}
    for prefix in prefixes:  # `conda create -p /scratch/x` has no name: only its prefix finds it
        if prefix == root:
            named["base"] = prefix
        elif prefix.parent.name == "envs":
            named.setdefault(prefix.name, prefix)
    if name not in named:
        known = ", ".join(sorted(named)) or "none"
        unnamed = [str(p) for p in prefixes if p not in named.values()]
        by_prefix = f"; by prefix only: {', '.join(unnamed)}" if unnamed else ""
        raise UserError(f"no conda env named '{name}' ({Path(tool).name} knows: {known}{by_prefix})",
                        f"use one of those names, or the env's prefix (env = \"conda:/path/to/"
                        f"env\"); `{Path(tool).name} env list` shows them")
    return named[name]


def _root_prefix(tool: str, prefixes: list[Path]) -> Path | None:
    """conda's base: ``info --json`` says (root_prefix; micromamba: base environment), else the
    listing's first entry when it holds the others' envs/ folder."""
    shown = proc.run([tool, "info", "--json"], capture=True, check=False, timeout=120)
    try:
        info = json.loads(shown.stdout)
        root = info.get("root_prefix") or info.get("base environment")
    except (ValueError, AttributeError):
        root = None
    if isinstance(root, str) and root:
        return Path(root)
    first = prefixes[0] if prefixes else None
    if first and ((first / "envs").is_dir() or any(p.parent == first / "envs" for p in prefixes)):
        return first
    return None


def _require_python(python: Path, ref: str) -> Path:
    tip = ("point it at a Python interpreter, e.g. python:/path/to/venvs/still/bin/python "
           "(`which python` inside the env prints it)")
    if not python.is_file():
        raise UserError(f"{ref}: {python} does not exist", tip)
    try:
        info = _info(python)
    except (UserError, ValueError, KeyError, TypeError):
        raise UserError(f"{ref}: {python} is not a Python interpreter (it does not run "
                        "`python -c` and print its version)", tip) from None
    if not info.get("python"):
        raise UserError(f"{ref}: {python} is not a Python interpreter", tip)
    return python


def _info(python: Path) -> dict:
    """The interpreter's version, prefix and site folders; ValueError when it prints none."""
    out = proc.run([python, "-c", INFO], capture=True, env=NO_WRITES, timeout=60).stdout
    info = _last_json(out)
    user = [info["user_site"]] if info.get("user_site") else []
    info["site_dirs"] = list(dict.fromkeys([*info["site"], *info.get("path_sites", []), *user]))
    return info


def _last_json(out: str) -> dict:
    """The JSON object on the last line of ``out``; ValueError for no output or anything else."""
    lines = out.strip().splitlines()
    found = json.loads(lines[-1]) if lines else None
    if not isinstance(found, dict):
        raise ValueError("no JSON report on its last line")
    return found


@dataclass(frozen=True)
class ExternalEnv(Env):
    local: ModelLocal | None = None

    @cached_property
    def _resolution(self) -> Resolved | UserError:
        assert self.local and self.local.env
        try:
            return resolve(self.local.env)
        except UserError as err:  # kept, so that doctor and require_ready can show it
            return err

    @property
    def resolved(self) -> Resolved:
        found = self._resolution
        if isinstance(found, UserError):
            raise found
        return found

    def problem(self) -> UserError | None:
        """Why the env named cannot be used at all (no such conda env, not a Python), or None."""
        found = self._resolution
        return found if isinstance(found, UserError) else None

    @property
    def python(self) -> Path:
        return self.resolved.python

    @property
    def venv(self) -> Path:
        return Path((self.read_stamp() or {}).get("external", {}).get("prefix") or self.python.parent.parent)

    @property
    def stamp_path(self) -> Path:
        return self.root / "check.json"

    @property
    def log(self) -> Path:
        return self.root / "check.log"

    @property
    def run_env(self) -> dict[str, str]:
        return {**NO_WRITES, "NUMBA_CACHE_DIR": str(self.root / "numba-cache")}

    @property
    def repo(self) -> Path:
        return self.local.repo if self.local and self.local.repo else self.root / "repo"

    @property
    def weights_root(self) -> Path:
        if self.spec.repo:  # upstream reads its weights inside its checkout
            return self.repo
        return self.local.weights if self.local and self.local.weights else self.root / "data"

    @property
    def identity(self) -> str:
        assert self.local
        parts = [str(self.local.env), str(self.local.repo), str(self.local.weights),
                 self.spec.sha256, self.spec.lock_sha256, self.spec.profile]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def is_ready(self) -> bool:
        record = self.read_stamp()
        if not record or record.get("schema") != CHECK_SCHEMA or record.get("identity") != self.identity:
            return False
        if self.problem():  # problem() says why
            return False
        found = self.resolved
        if str(found.python) != record["external"]["interpreter"]:
            return False
        if fingerprint(found.python, record["external"]["site_dirs"], found.prefix) != record["fingerprint"]:
            return False
        return all((self.weights_root / w.dest).exists() or w.unpack for w in self.spec.weights)

    def require_ready(self) -> ExternalEnv:
        _ = self.resolved  # an unknown conda env or a non-Python: its own ERROR + TIP
        profile = (self.read_stamp() or {}).get("profile", self.spec.profile)
        if profile != self.spec.profile and profile in self.spec.profile_names:
            return replace(self, spec=self.spec.with_profile(profile)).require_ready()
        if self.is_ready():
            return self
        state = "changed since its check" if self.read_stamp() else "not checked yet"
        raise UserError(f"model '{self.spec.name}': the existing env {self.local.env} "
                        f"({self.local.source}) is {state}",
                        f"run `uv run nox -s {self.spec.setup_session}` to check it "
                        f"({NEVER_CHANGED}), then the same command again")


def fingerprint(python: Path, site: list[str], prefix: Path | None) -> str:
    """What the env holds, from names and mtimes only: any install or removal changes it."""
    real = python.resolve()
    st = real.stat()
    parts: list = [str(real), st.st_size, st.st_mtime_ns]
    folders = [Path(s) for s in site] + ([prefix / "conda-meta"] if prefix else [])
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            parts.append([str(folder), None])
            continue
        parts.append([str(folder), [[e.name, e.stat(follow_symlinks=False).st_mtime_ns]
                                    for e in entries]])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


# --- the check: setup for an env we did not build ---------------------------------------------


def check(env: ExternalEnv, *, profile: str | None = None, dry_run: bool = False) -> ExternalEnv:
    """Check ``env`` against its spec, print the health table; ERROR + TIP on any ERROR row.

    The profile (which torch build to compare with) is ``profile``, else the first that supports
    the GPU, else the default: a GPU no profile supports is the check's own ERROR row, after
    the env is found, not a refusal before it.
    """
    env = _profiled(env, profile)
    spec, local = env.spec, env.local
    assert local and local.env
    console.print(f"[bold]{spec.env_id}[/]: existing env [bold]{local.env}[/] "
                  f"[dim](from {local.source}; {NEVER_CHANGED})[/]")
    found = env.resolved
    if dry_run:
        console.print(f"  would check {found.python}: imports {', '.join(spec.imports) or '-'}"
                      + (", torch build and GPU" if spec.torch else "")
                      + (", conda/pip conflicts" if found.prefix else "")
                      + f"; record in {env.stamp_path}")
        return env
    with waiting_lock(Path(str(env.root) + ".lock"), f"another check of {spec.env_id} is running",
                      console):
        env.root.mkdir(parents=True, exist_ok=True)
        env.stamp_path.unlink(missing_ok=True)
        env.log.write_text("")
        rows = _Rows()
        try:
            info = _info(found.python)
        except (UserError, ValueError, KeyError, TypeError):
            raise UserError(f"{local.env}: {found.python} no longer reports as a Python "
                            "interpreter", "check the env still exists, then run the setup "
                            "again") from None
        external_checks._checkout(env, rows)
        checked_weights = external_checks._weights(env, rows)
        report = _probe(env, rows, info)
        conflicts = _conflicts(found, info, rows)
        rows.print(f"{spec.env_id} in {local.env}")
        if rows.errors:
            check_name, _, detail, tip = rows.errors[0]
            more = f" (and {len(rows.errors) - 1} more ERROR rows above)" if len(rows.errors) > 1 else ""
            raise UserError(f"{spec.env_id}: {check_name}: {detail}{more}", tip)
        record = {
            "schema": CHECK_SCHEMA, "env": spec.env_id, "profile": spec.profile,
            "identity": env.identity, "spec_sha256": spec.sha256, "lock_sha256": spec.lock_sha256,
            "external": {"kind": found.kind, "ref": found.ref, "name": found.name,
                         "prefix": str(found.prefix or info["prefix"]),
                         "interpreter": str(found.python), "executable": info["executable"],
                         "python": info["python"], "site": info["site"],
                         "site_dirs": info["site_dirs"], "source": local.source},
            "repo": external_checks._repo_record(env), "weights": checked_weights,
            "python": report["python"], "interpreter": str(found.python),
            "torch": report["torch"], "packages": report["packages"],
            "installers": external_checks._installers(info["site"]),
            "conflicts": [c.to_dict() for c in conflicts],
            "checks": [{"check": c, "status": s, "detail": d, "tip": t} for c, s, d, t in rows.rows],
            "fingerprint": fingerprint(found.python, info["site_dirs"], found.prefix),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(env.stamp_path, json.dumps(record, indent=2) + "\n")
    warns = sum(1 for r in rows.rows if r[1] == "WARN")
    console.print(f"[green]✓[/] {spec.env_id} ready in {local.env}"
                  + (f" [yellow]({warns} WARN)[/]" if warns else ""))
    return env


def _profiled(env: ExternalEnv, profile: str | None) -> ExternalEnv:
    if profile:
        spec = env.spec.with_profile(profile)
    else:
        try:
            spec = profiles.choose(env.spec, gpu.detect()).spec
        except UserError:  # torch_rows says what this GPU lacks, with the env's own torch
            spec = env.spec
    return env if spec == env.spec else replace(env, spec=spec)


def _probe(env: ExternalEnv, rows: _Rows, info: dict) -> dict:
    spec = env.spec
    out = proc.run([env.python, health.HEALTH_PROBE, *spec.imports], capture=True,
                   env={**health.OFFLINE_ENV, **env.run_env}, log=env.log, timeout=600).stdout
    try:
        report = _last_json(out)
    except ValueError:
        raise UserError(f"{spec.env_id}: the health probe under {env.python} printed no report",
                        f"see {env.log}; the interpreter must be Python 3.8 or newer") from None
    short = ".".join(report["python"].split(".")[:2])
    rows.add("python", "OK" if short == spec.python else "WARN",
             f"{report['python']} at {env.python}",
             "" if short == spec.python else f"the spec builds with Python {spec.python}")
    for name, state in report["imports"].items():
        rows.add(f"import {name}", "OK" if state == "ok" else "ERROR",
                 "ok" if state == "ok" else state,
                 "" if state == "ok" else f"install it in that env yourself ({NEVER_CHANGED}); "
                 f"see {env.log}")
    _lock_rows(spec, report["packages"], rows)
    if spec.torch:
        torch_rows(spec, report.get("torch") or {"error": "torch is not installed"}, gpu.detect(),
                   rows)
    return report

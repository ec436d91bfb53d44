"""An env the project did not build (a conda env, any venv): used as it is, never changed.

A model's entry in the local config (thbench/local_config.py) names it. Setup checks it instead
of building: the interpreter runs and is a Python, the spec's imports import, torch is the build
the spec asks for and computes on the GPU, conda/pip double installs are reported
(thbench/conda_conflicts.py); external_checks.py makes the rows of that table. What was found
goes to a check record in the project's own folder, ``<envs>/external/<kind>-<name>/``
(check.json, check.log, the run lock and, when the config names no checkout, the project's own
checkout and weights); a run reads it as it reads a stamp. Nothing is installed into the env,
and nothing is written under its prefix, a checkout or a weights folder the config names: every
interpreter start has PYTHONDONTWRITEBYTECODE set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from thbench import conda_conflicts, gpu, health, local_config, paths, proc, repo, specs, weights
from thbench.envs import Env, console
from thbench.errors import UserError
from thbench.external_checks import NEVER_CHANGED, _conflicts, _installers, _lock_rows, _Rows, torch_rows
from thbench.files import atomic_write_text, waiting_lock
from thbench.local_config import EnvRef, ModelLocal
from thbench.specs import Kind, Spec

CHECK_SCHEMA = 1
NO_WRITES = {"PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ written into the env
INFO = ("import json, sys, sysconfig; p = sysconfig.get_paths(); print(json.dumps({'python': "
        "'%d.%d.%d' % sys.version_info[:3], 'prefix': sys.prefix, 'executable': sys.executable, "
        "'site': sorted({p['purelib'], p['platlib']})}))")
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
    names = sorted(set(specs.load_all()[Kind.MODEL]) | {spec.name})
    local = local_config.for_model(spec.name, names)
    return ExternalEnv(spec, paths.envs_root() / "external" / spec.env_id, local=local) if local else None


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
    named = {(p.name if p.parent.name == "envs" else "base"): p for p in prefixes}
    if name not in named:
        known = ", ".join(sorted(named)) or "none"
        raise UserError(f"no conda env named '{name}' ({Path(tool).name} knows: {known})",
                        f"use one of those names, or the env's prefix (env = \"conda:/path/to/"
                        f"env\"); `{Path(tool).name} env list` shows them")
    return named[name]


def _require_python(python: Path, ref: str) -> Path:
    tip = ("point it at a Python interpreter, e.g. python:/home/me/venvs/still/bin/python "
           "(`which python` inside the env prints it)")
    if not python.is_file():
        raise UserError(f"{ref}: {python} does not exist", tip)
    try:
        info = _info(python)
    except (UserError, ValueError, KeyError):
        raise UserError(f"{ref}: {python} is not a Python interpreter (it does not run "
                        "`python -c` and print its version)", tip) from None
    if not info.get("python"):
        raise UserError(f"{ref}: {python} is not a Python interpreter", tip)
    return python


def _info(python: Path) -> dict:
    out = proc.run([python, "-c", INFO], capture=True, env=NO_WRITES, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


@dataclass(frozen=True)
class ExternalEnv(Env):
    local: ModelLocal | None = None

    @cached_property
    def resolved(self) -> Resolved:
        assert self.local and self.local.env
        return resolve(self.local.env)

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
        return dict(NO_WRITES)

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
        if not record or record.get("identity") != self.identity:
            return False
        try:
            python = self.python
        except UserError:
            return False
        if str(python) != record["external"]["interpreter"]:
            return False
        if fingerprint(python, record["external"]["site"], self.resolved.prefix) != record["fingerprint"]:
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


def check(env: ExternalEnv, *, dry_run: bool = False) -> ExternalEnv:
    """Check ``env`` against its spec, print the health table; ERROR + TIP on any ERROR row."""
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
        info = _info(found.python)
        _checkout(env, rows)
        checked_weights = _weights(env, rows)
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
                         "python": info["python"], "site": info["site"], "source": local.source},
            "repo": _repo_record(env), "weights": checked_weights,
            "python": report["python"], "interpreter": str(found.python),
            "torch": report["torch"], "packages": report["packages"],
            "installers": _installers(info["site"]),
            "conflicts": [c.to_dict() for c in conflicts],
            "checks": [{"check": c, "status": s, "detail": d, "tip": t} for c, s, d, t in rows.rows],
            "fingerprint": fingerprint(found.python, info["site"], found.prefix),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(env.stamp_path, json.dumps(record, indent=2) + "\n")
    warns = sum(1 for r in rows.rows if r[1] == "WARN")
    console.print(f"[green]✓[/] {spec.env_id} ready in {local.env}"
                  + (f" [yellow]({warns} WARN)[/]" if warns else ""))
    return env


def _checkout(env: ExternalEnv, rows: _Rows) -> None:
    pinned = env.spec.repo
    if not pinned:
        return
    if not (env.local and env.local.repo):
        repo.checkout(pinned, env.repo, log=env.log)
        rows.add("checkout", "OK", f"{pinned.url} at {pinned.commit[:12]} in {env.repo}")
        return
    from thbench.runs import SHELL_SAFE_PATH  # runs builds on envs, which imports this lazily

    if not SHELL_SAFE_PATH.match(str(env.repo)):
        rows.add("checkout", "ERROR", f"{env.repo} holds spaces or shell syntax, and "
                 f"{env.spec.name}'s upstream code passes paths through a shell",
                 "move the checkout to a path of letters, digits and . _ - / only")
        return
    head = proc.run(["git", "-C", env.repo, "rev-parse", "HEAD"], capture=True, check=False,
                    env={"GIT_OPTIONAL_LOCKS": "0"}, timeout=60)  # read-only: no index refresh
    commit = head.stdout.strip()
    if head.returncode != 0:
        rows.add("checkout", "WARN", f"{env.repo} is not a git checkout; the spec pins "
                 f"{pinned.commit[:12]}", "results may differ from the pinned upstream code")
    elif commit != pinned.commit:
        rows.add("checkout", "WARN", f"{env.repo} is at {commit[:12]}, the spec pins "
                 f"{pinned.commit[:12]}", "results may differ from the pinned upstream code")
    else:
        rows.add("checkout", "OK", f"{env.repo} at the pinned {commit[:12]}")


def _repo_record(env: ExternalEnv) -> dict | None:
    if not env.spec.repo:
        return None
    return {"url": env.spec.repo.url, "pinned": env.spec.repo.commit, "path": str(env.repo),
            "given": bool(env.local and env.local.repo)}


def _weights(env: ExternalEnv, rows: _Rows) -> list[dict]:
    """Weights verified where the config puts them (never written there), else fetched as usual."""
    spec, local = env.spec, env.local
    if not spec.weights:
        return []
    given = local.weights if local else None
    if given and spec.repo and local.repo and given != local.repo:
        rows.add("weights", "ERROR", f"{spec.name} reads its weights inside its checkout "
                 f"{local.repo}, not {given}", "leave `weights` out (they are looked for in the "
                 "checkout), or leave `repo` out: the project's own checkout links them")
        return []
    where = given or (local.repo if local and local.repo else None)
    if where is None:  # nothing named: fetched into the project's own folder, as setup does
        fetched = weights.fetch_all(spec.weights, env.weights_root, console=console)
        rows.add("weights", "OK", f"{len(spec.weights)} present and verified in {env.weights_root}")
        return [{"dest": i.weight.dest, "sha256": i.sha256 or i.weight.sha256} for i in fetched.items]
    plan = weights.plan(spec.weights, where, write=False)  # no sidecars in a folder we don't own
    missing = [i.weight.dest for i in plan.items if i.needs_fetch]
    if missing:
        rows.add("weights", "ERROR", f"{len(missing)} of {len(plan.items)} missing or not matching "
                 f"their sha256 in {where}: {', '.join(missing[:4])}",
                 "put the files there (each spec [[weights]] dest, relative to that folder), or "
                 "leave `repo` and `weights` out to let the project fetch its own copy")
        return []
    if where != env.weights_root:  # our checkout: link each weight to the folder named
        for item in plan.items:
            link = env.weights_root / item.weight.dest
            if link.is_symlink():
                link.unlink()
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(item.path)
    rows.add("weights", "OK", f"{len(plan.items)} verified in {where}")
    return [{"dest": i.weight.dest, "sha256": i.sha256} for i in plan.items]


def _probe(env: ExternalEnv, rows: _Rows, info: dict) -> dict:
    spec = env.spec
    out = proc.run([env.python, health.HEALTH_PROBE, *spec.imports], capture=True,
                   env={**health.OFFLINE_ENV, **NO_WRITES}, log=env.log, timeout=600).stdout
    report = json.loads(out.strip().splitlines()[-1])
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

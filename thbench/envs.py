"""One uv virtual environment per spec: found or built, stamped, reused only when the stamp matches.

Layout, under ``paths.envs_root()`` (``.envs/`` by default, ``THB_ENVS_DIR`` to move it)::

    <kind>-<name>/venv/          the interpreter and packages (deleted and rebuilt on change)
    <kind>-<name>/stamp.json     written last, only after every step and the health check passed
    <kind>-<name>/setup.log      output of every command of the last setup
    <kind>-<name>/repo/          an upstream model's checkout, with its weights where it wants them
    <kind>-<name>/standins.json  a rehearsal env only: the stand-in weights it made (rehearsal.py)
    <kind>-<name>.lock           file lock: two setups of one env never interleave
    <kind>-<name>.run.lock       file lock: one inference per env at a time

uv's cache (``UV_CACHE_DIR``, uv's default otherwise) is shared by every env, so the same wheel
is stored once and linked into each env (reflink or hardlink where the filesystem allows).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from rich.console import Console

from thbench import gpu, health, library_logs, paths, proc, profiles, reach, rehearsal, repo, weights
from thbench.env_stamp import _torch_dist_version, build_stamp
from thbench.errors import UserError
from thbench.files import atomic_write_text, waiting_lock
from thbench.interpreters import find_python, uv_binary
from thbench.specs import DEFAULT_PROFILE, Spec, pin_name

console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Env:
    spec: Spec
    root: Path
    rehearse: bool = False  # stand-in weights from the spec's rehearsal script (rehearsal.py)

    @classmethod
    def of(cls, spec: Spec, *, rehearse: bool = False) -> Env:
        if rehearse:
            spec = rehearsal.spec_for(spec)
        elif external := _external(spec):  # the local config names an env we did not build
            return external
        return cls(spec, paths.envs_root() / spec.env_id, rehearse)

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp_path(self) -> Path:
        return self.root / "stamp.json"

    @property
    def run_env(self) -> dict[str, str]:
        """Environment variables every command run with this env's Python gets."""
        return {}

    @property
    def log(self) -> Path:
        return self.root / "setup.log"

    @property
    def repo(self) -> Path:
        """The upstream checkout ({repo} in argv templates)."""
        return self.root / "repo"

    @property
    def weights_root(self) -> Path:
        """Weight destinations are relative to this: the checkout, where upstream expects them."""
        return self.repo if self.spec.repo else self.root / "data"

    @property
    def identity(self) -> str:
        """What the env is built from; any change means a rebuild."""
        torch = self.spec.torch
        parts = {
            "python": self.spec.python,
            "torch": [list(torch.packages), torch.index] if torch else None,
            "lock": self.spec.lock_sha256,
            "build_constraints": (self.spec.build_constraints.read_text()
                                  if self.spec.build_constraints else None),
            "imports": list(self.spec.imports),
            "profile": self.spec.profile,
            "repo": ([self.spec.repo.url, self.spec.repo.commit]
                     + ([list(self.spec.repo.exclude)] if self.spec.repo.exclude else [])
                     if self.spec.repo else None),
            "weights": [[w.dest, w.sha256 or w.hf_revision, w.unpack]
                        + ([w.hf_folder] if w.hf_folder else []) for w in self.spec.weights],
        }
        if self.rehearse:  # only then, so real envs keep the identity they were stamped with
            parts["rehearsal"] = [self.spec.rehearsal.script,
                                  (self.spec.folder / self.spec.rehearsal.script).read_text()]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def read_stamp(self) -> dict | None:
        try:
            return json.loads(self.stamp_path.read_text())
        except (OSError, ValueError):
            return None

    def is_ready(self) -> bool:
        stamp = self.read_stamp()
        if not stamp or stamp.get("identity") != self.identity:
            return False
        if any(not (self.weights_root / w.dest).exists() and not w.unpack
               for w in self.spec.weights):
            return False  # deleted since setup; stat only, the hashes were checked then
        torch = stamp.get("torch") or {}
        # Replaced after setup (a stray `pip install` in the env)? The dist-info name is compared
        # with the one recorded then: torch.__version__ may carry a local tag the metadata lacks.
        recorded = torch.get("dist", torch.get("version"))
        if recorded and _torch_dist_version(self.venv) != recorded:
            return False
        try:
            proc.run([self.python, "-c", "pass"], timeout=60)
        except (proc.CommandFailed, UserError):
            return False
        return True


def _external(spec: Spec):
    """The existing env the local config names for ``spec`` (external_env.py), or None."""
    from thbench import external_env  # it builds on Env

    return external_env.configured(spec)


def require_ready(spec: Spec, *, rehearse: bool = False) -> Env:
    """The env of ``spec`` (in the profile it was set up with) if current, else ERROR + TIP.

    A rehearsal env (stand-in weights) serves only a rehearsal run, and a real env only a real one.
    An existing env named in the local config serves real runs once checked (external_env.py).
    """
    if not rehearse and (external := _external(spec)):
        return external.require_ready()
    env = Env.of(spec, rehearse=rehearse)
    stamp = env.read_stamp() or {}
    profile = stamp.get("profile", DEFAULT_PROFILE)
    if profile != spec.profile and profile in spec.profile_names:
        env = Env.of(spec.with_profile(profile), rehearse=rehearse)
    if stamp and bool(stamp.get("rehearsal")) != rehearse:
        if rehearse:
            raise UserError(f"model '{spec.name}' is set up with real weights, not for a rehearsal",
                            "run it without --rehearse (a rehearsal never replaces real weights)")
        raise UserError(
            f"model '{spec.name}' is set up for a rehearsal: its weights are random stand-ins, "
            "and its videos show nothing of the model",
            f"run `uv run nox -s {spec.setup_session}` for the real weights, or add --rehearse")
    if env.is_ready():
        return env
    what = spec.kind.label
    state = "changed since its setup" if env.read_stamp() else "not set up"
    raise UserError(
        f"{what} '{spec.name}' is {state} (env: {env.root})",
        f"run `uv run nox -s {spec.setup_session}"
        + (" -- --rehearse" if rehearse else "") + "`, then the same command again",
    )


# --- building --------------------------------------------------------------------------------


@contextmanager
def _step(title: str, seconds: dict[str, float] | None = None, key: str = "") -> Iterator[None]:
    """Show a step with a spinner, then its time; ``seconds[key]`` records it for the stamp."""
    start = time.monotonic()
    with console.status(f"{title}…"):
        yield
    took = time.monotonic() - start
    if seconds is not None:
        seconds[key] = round(seconds.get(key, 0) + took, 1)
    console.print(f"  [green]✓[/] {title} [dim]({took:.1f}s)[/]")


def _installed(env: Env) -> dict[str, str]:
    out = proc.run([uv_binary(), "pip", "list", "--python", env.python, "--format", "json"],
                   capture=True, log=env.log).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


def setup(spec: Spec, *, profile: str | None = None, force: bool = False,
          dry_run: bool = False, rehearse: bool = False) -> Env:
    """Build the env of ``spec`` unless its stamp already matches; all or nothing.

    The profile (torch build) is ``profile`` if given, else the first that supports the GPU.
    Steps: checkout → venv → torch → lock (torch held) → weights → health check → stamp.
    ``dry_run`` prints that plan, with sizes, and touches neither the network nor the disk.
    ``rehearse`` makes stand-in weights instead of fetching them (thbench/rehearsal.py).
    """
    if not rehearse and (external := _external(spec)):  # checked, not built; its GPU: a row
        from thbench import external_env  # it builds on Env

        return external_env.check(external, profile=profile, dry_run=dry_run)
    choice = profiles.choose(spec, gpu.detect(), profile)
    spec = choice.spec
    env = Env.of(spec, rehearse=rehearse)
    spec = env.spec
    if dry_run:
        from thbench import dryrun  # it builds on this module's commands

        dryrun.print_plan(env, choice.reason)
        return env
    if spec.torch:
        console.print(f"{spec.env_id}: profile [bold]{spec.profile}[/] — {choice.reason}")
    with waiting_lock(Path(str(env.root) + ".lock"),
                      f"another setup of {spec.env_id} is running", console):
        if not force and env.is_ready():
            stamp = env.read_stamp() or {}
            console.print(f"[green]✓[/] {spec.env_id} is up to date "
                          f"[dim](set up {stamp.get('created', '?')}; {env.root})[/]")
            return env
        console.print(f"[bold]Setting up {spec.env_id}[/] [dim]→ {env.root} (log: {env.log})[/]")
        env.stamp_path.unlink(missing_ok=True)
        env.root.mkdir(parents=True, exist_ok=True)
        env.log.write_text("")
        start = time.monotonic()
        try:
            with library_logs.to_file(env.log):  # urllib3, huggingface_hub…: the log only
                stamp = _build(env)
        except BaseException:
            # Nothing half-built looks usable; the checkout and the weights (verified files,
            # resumable parts) stay, so a re-run does not fetch them again.
            shutil.rmtree(env.venv, ignore_errors=True)
            raise
        stamp["seconds"] = round(time.monotonic() - start, 1)
        atomic_write_text(env.stamp_path, json.dumps(stamp, indent=2) + "\n")
        console.print(f"[green]✓[/] {spec.env_id} ready in {stamp['seconds']:.1f}s")
        return env


# The commands, built once for both the real setup and the dry run.


def _venv_argv(env: Env, interpreter: Path | str) -> list:
    return [uv_binary(), "venv", "--clear", "--python", interpreter, env.venv]


def _torch_argv(env: Env) -> list:
    torch = env.spec.torch
    assert torch is not None
    argv = [uv_binary(), "pip", "install", "--python", env.python, *torch.packages]
    if torch.index and torch.index.startswith("file://"):
        # A folder of wheels (carried to an offline GPU host, or a test's stand-ins).
        argv += ["--no-index", "--find-links", url2pathname(urlparse(torch.index).path)]
    elif torch.index:
        argv += ["--index-url", torch.index]
    return argv


def _lock_argv(env: Env, held: Path | None) -> list:
    argv = [uv_binary(), "pip", "install", "--python", env.python, "-r", env.spec.requirements]
    if held:
        argv += ["--constraint", held]
    if env.spec.build_constraints:
        argv += ["--build-constraint", env.spec.build_constraints]
    return argv


def _precheck_weights(env: Env) -> None:
    """Before the long installs: every host a weight still comes from answers (reach.py)."""
    to_fetch = weights.plan(env.spec.weights, env.weights_root).to_fetch if env.spec.weights else ()
    if to_fetch:
        reach.require_reachable(to_fetch, who=env.spec.env_id)


def _build(env: Env) -> dict:
    spec, uv = env.spec, uv_binary()
    took: dict[str, float] = {}  # seconds per step, for the stamp (and a rehearsal's record)
    if spec.repo:
        with _step(f"check out {spec.repo.url} at {spec.repo.commit[:12]}", took, "checkout"):
            repo.checkout(spec.repo, env.repo, log=env.log)
    if env.rehearse:  # before the long installs: never write stand-ins over real weights
        rehearsal.refuse_real_weights(spec, env.weights_root, env.root)
    else:
        # A real setup replaces a rehearsal's stand-ins, first of all: a stand-in at a manual
        # weight's dest would otherwise pass for the file a person placed there.
        rehearsal.remove_standins(env.root, env.weights_root, env.log)
        if any(w.manual for w in spec.weights):  # before the long installs: a person must act
            weights.require_manual(weights.plan(spec.weights, env.weights_root))
        _precheck_weights(env)
    with _step(f"find Python {spec.python}", took, "python"):
        interpreter = find_python(spec.python, env.log)
    with _step(f"create venv with {interpreter}", took, "venv"):
        proc.run(_venv_argv(env, interpreter), log=env.log, timeout=600)
    constraints: list[str] = []
    held = None
    if spec.torch:
        index = spec.torch.index
        with _step(f"install {' '.join(spec.torch.packages)} from {index or 'PyPI'}", took,
                   "torch"):
            proc.run(_torch_argv(env), log=env.log, timeout=3600)
        installed = _installed(env)
        pinned = {pin_name(p) for p in spec.torch.packages}
        constraints = [f"{name}=={installed[name]}" for name in sorted(pinned)]
        held = env.root / "torch-constraints.txt"
        held.write_text("\n".join(constraints) + "\n")
    with _step(f"install {spec.requirements.name}"
               + (" with torch held fixed" if constraints else ""), took, "lock"):
        proc.run(_lock_argv(env, held), log=env.log, timeout=3600)
    fetched, standins = None, None
    if spec.weights and env.rehearse:
        with _step(f"make {len(spec.weights)} stand-in weights with "
                   f"{spec.rehearsal.script} (random, seed {rehearsal.SEED})", took, "standins"):
            standins = rehearsal.make_standins(spec, env.python, env.repo, env.weights_root,
                                               env.root, env.log)
    elif spec.weights:
        console.print(f"  weights → {env.weights_root}")
        start = time.monotonic()
        fetched = weights.fetch_all(spec.weights, env.weights_root, console=console)
        took["weights"] = round(time.monotonic() - start, 1)
        console.print(f"  [green]✓[/] {len(spec.weights)} weights present and verified")
    with _step("health check: " + (", ".join(spec.imports) or "interpreter"), took, "health"):
        report = health.health_check(env, expected=constraints)
    return build_stamp(env, interpreter=interpreter, report=report, fetched=fetched,
                       standins=standins, took=took, uv=uv)

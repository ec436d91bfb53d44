"""Model, TTS and check specs: one TOML file each, parsed and validated once, all errors together.

A spec lives at ``<kind dir>/<name>/spec.toml`` (``solutions/still/spec.toml``,
``tts/piper/spec.toml``, ``checks/face/spec.toml``); the files it names (lock, entry script)
sit beside it. Loading never imports anything heavy: listing models stays instant.

This module holds the spec type and the loader; the tables are parsed in spec_tables.py (env
and sources), spec_commands.py (the argv template) and spec_checks.py (the shared checks).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from thbench import paths
from thbench.errors import UserError

# Beyond what parse uses, these are re-exported: importers of specs (rehearsal_spec, weights_disk,
# benchmarks, tests) read them from here.
from thbench.spec_checks import (  # noqa: F401
    PIN_RE,
    _check_lock,
    _Checker,
    _http_url,
    _near,
    _pin,
    _rel,
    _relative,
    _str_list,
    pin_name,
)
from thbench.spec_commands import PLACEHOLDER_RE, PLACEHOLDERS, Command, _command, expand  # noqa: F401
from thbench.spec_kinds import Kind
from thbench.spec_tables import (  # noqa: F401
    ENV_KEYS,
    HEX40_RE,
    SHA256_RE,
    SUPPORTED_PYTHONS,
    Lock,
    Repo,
    Torch,
    Weight,
    _env_fields,
    _repo,
    _torch,
    _weights,
)

if TYPE_CHECKING:
    from thbench.metric_spec import MetricDecl
    from thbench.rehearsal_spec import Rehearsal

SCHEMA_VERSION = 1
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class Gpu(StrEnum):
    NONE = "none"  # runs on CPU only
    OPTIONAL = "optional"  # uses a GPU when there is one, runs (slowly) without
    REQUIRED = "required"  # upstream code is CUDA-only


DEFAULT_TTS = "piper"  # the backend `invoke run --text` speaks with unless told


@dataclass(frozen=True)
class Profile:
    """Another way to build a model's env (e.g. a newer torch for newer GPUs).

    Keys it leaves out keep the spec's top-level values, which form the 'default' profile.
    """

    name: str
    description: str
    python: str | None = None
    requirements: Path | None = None
    build_constraints: Path | None = None
    torch: Torch | None = None
    lock: Lock | None = None


DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Spec:
    kind: Kind
    name: str
    path: Path
    description: str
    python: str
    requirements: Path
    imports: tuple[str, ...]
    command: Command
    sha256: str
    build_constraints: Path | None = None  # for sdists built while installing the lock
    lock: Lock | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)  # beside the default one
    profile: str = DEFAULT_PROFILE  # the one this object's env fields describe
    gpu: Gpu = Gpu.NONE
    cpu_speed: str | None = None  # gpu = "optional": how slow a CPU run is, with its source
    baseline: bool = False
    torch: Torch | None = None
    repo: Repo | None = None
    weights: tuple[Weight, ...] = ()
    license: str | None = None
    rehearsal: Rehearsal | None = None  # models: how to run upstream code on stand-in weights
    metrics: tuple[MetricDecl, ...] = ()  # metric specs: what each measurement is, declared

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def profile_names(self) -> list[str]:
        return [DEFAULT_PROFILE, *self.profiles]

    def with_profile(self, name: str) -> Spec:
        """This spec with a profile's env fields in place of the top-level ones."""
        if name == DEFAULT_PROFILE:
            return self
        if name not in self.profiles:
            raise UserError(
                f"{self.name} has no profile '{name}' (profiles: {', '.join(self.profile_names)})",
                f"pass one of them: --profile {self.profile_names[-1]}")
        chosen = self.profiles[name]
        changes = {key: getattr(chosen, key) for key in ENV_KEYS if getattr(chosen, key)}
        return replace(self, profile=name, **changes)

    @property
    def env_id(self) -> str:
        return f"{self.kind.value}-{self.name}"

    @property
    def setup_session(self) -> str:
        return {
            Kind.MODEL: f"setup-{self.name}",
            Kind.TTS: f"setup-tts-{self.name}",
            Kind.CHECK: f"setup-check-{self.name}",
            Kind.METRIC: f"setup-metric-{self.name}",
        }[self.kind]

    @property
    def lock_sha256(self) -> str:
        return hashlib.sha256(self.requirements.read_bytes()).hexdigest()


# --- validation (tables: spec_tables.py, spec_commands.py; shared checks: spec_checks.py) -----


def parse(path: Path, kind: Kind) -> tuple[Spec | None, list[str]]:
    """Parse and validate one spec file; return the spec (or None) and every problem found."""
    checker = _Checker(path)
    raw = path.read_bytes()
    try:
        spec = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        return None, [f"{_rel(path)}: not valid TOML: {err}"]
    name = path.parent.name
    if not NAME_RE.match(name):
        checker.bad("(folder name)", name, "must be lowercase letters, digits and _", "v_express")

    allowed = ["schema", "description", *ENV_KEYS, "imports", "license", "profiles",
               kind.command_table]
    if kind is Kind.MODEL:
        allowed += ["gpu", "cpu_speed", "baseline", "repo", "weights", "rehearsal"]
    if kind is Kind.METRIC:
        allowed += ["weights", "metrics"]
    checker.unknown_keys(spec, allowed, "")
    checker.get(spec, "schema", int, f"schema = {SCHEMA_VERSION}",
                test=lambda v: None if v == SCHEMA_VERSION else f"this version reads schema {SCHEMA_VERSION}")
    description = checker.get(spec, "description", str, '"Static-frame baseline"',
                              test=lambda v: None if v.strip() and "\n" not in v else "one line")
    env_fields = _env_fields(checker, spec, path.parent, "", required=True)
    module = _str_list(lambda v: None if re.match(r"^[\w.]+$", v) else "a module name")
    imports = checker.get(spec, "imports", list, '["numpy", "cv2"]', required=False,
                          test=module) or []
    license_ = checker.get(spec, "license", str, '"Apache-2.0"', required=False)
    gpu = Gpu.NONE
    cpu_speed = None
    baseline = False
    repo = None
    rehearsal = None
    metrics: tuple[MetricDecl, ...] = ()
    weights: tuple[Weight, ...] = ()
    if kind is Kind.METRIC:
        from thbench import metric_spec  # it reuses this module's checks: imported late

        weights = _weights(checker, spec)
        metrics = metric_spec.parse(checker, spec)
    if kind is Kind.MODEL:
        gpu_raw = checker.get(spec, "gpu", str, 'gpu = "required"',
                              test=lambda v: None if v in Gpu.__members__.values() else
                              "must be one of " + ", ".join(g.value for g in Gpu))
        gpu = Gpu(gpu_raw) if gpu_raw else Gpu.NONE
        cpu_speed = checker.get(spec, "cpu_speed", str,
                                '"~7 min per second of video on a desktop CPU (upstream #227)"',
                                required=False,
                                test=lambda v: None if v.strip() and "\n" not in v else "one line")
        if cpu_speed and gpu is not Gpu.OPTIONAL:
            checker.bad("cpu_speed", cpu_speed, 'only for gpu = "optional" models',
                        'gpu = "optional"')
        baseline = bool(checker.get(spec, "baseline", bool, "baseline = true", required=False))
        repo = _repo(checker, spec)
        weights = _weights(checker, spec)
        from thbench import rehearsal_spec  # it reuses this module's checks: imported late

        known = {k: v for k, v in PLACEHOLDERS[kind].items() if repo or k != "repo"}
        rehearsal = rehearsal_spec.parse(checker, spec, path.parent, known)
    profiles: dict[str, Profile] = {}
    tables = checker.get(spec, "profiles", dict, "[profiles.blackwell] …", required=False) or {}
    for profile_name, table in tables.items():
        prefix = f"profiles.{profile_name}."
        if not NAME_RE.match(profile_name) or profile_name == DEFAULT_PROFILE:
            checker.bad(prefix[:-1], profile_name, "a lowercase name other than 'default'",
                        "[profiles.blackwell]")
        if not isinstance(table, dict):
            checker.bad(prefix[:-1], table, "must be a table", "[profiles.blackwell]")
            continue
        checker.unknown_keys(table, ["description", *ENV_KEYS], prefix)
        about = checker.get(table, "description", str, '"torch 2.7 cu128 for Blackwell"', prefix)
        fields = _env_fields(checker, table, path.parent, prefix, required=False)
        if "requirements" in fields and "lock" not in fields and "lock" in spec:
            checker.bad(f"{prefix}lock", None, "a profile with its own requirements needs its "
                        "own [lock] source", f'[{prefix}lock] source = "requirements-x.in"')
        profiles[profile_name] = Profile(profile_name, about or "", **fields)
    command = _command(checker, spec, kind, has_repo="repo" in spec)

    if checker.problems:
        return None, checker.problems
    assert description and env_fields["python"] and env_fields["requirements"] and command
    return Spec(
        kind=kind, name=name, path=path, description=description, **env_fields,
        imports=tuple(imports), command=command,
        sha256=hashlib.sha256(raw).hexdigest(), gpu=gpu, cpu_speed=cpu_speed, baseline=baseline,
        repo=repo, weights=weights, license=license_, profiles=profiles, rehearsal=rehearsal,
        metrics=metrics,
    ), []


def spec_files(kind: Kind, root: Path | None = None) -> list[Path]:
    base = (root or paths.specs_root()) / kind.folder
    return sorted(base.glob("*/spec.toml"))


def load_all(root: Path | None = None) -> dict[Kind, dict[str, Spec]]:
    """Load every spec under ``root``; raise one UserError listing every problem in every file."""
    problems: list[str] = []
    loaded: dict[Kind, dict[str, Spec]] = {kind: {} for kind in Kind}
    for kind in Kind:
        for file in spec_files(kind, root):
            spec, found = parse(file, kind)
            problems += found
            if spec:
                loaded[kind][spec.name] = spec
    if problems:
        raise SpecError(problems)
    return loaded


class SpecError(UserError):
    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in spec files: " + "; ".join(problems),
            "fix the keys named above; the README's 'Spec reference' lists every key",
        )
        self.problems = problems


def get(kind: Kind, name: str, root: Path | None = None) -> Spec:
    """One spec by name, or ERROR naming the closest known one."""
    specs = load_all(root)[kind]
    if name in specs:
        return specs[name]
    what = kind.label
    close = _near(name, specs)
    known = ", ".join(sorted(specs)) or "none"
    if close:
        raise UserError(f"unknown {what} '{name}'; did you mean '{close}'?",
                        f"run the same command with {close} (known: {known})")
    raise UserError(f"unknown {what} '{name}' (known: {known})",
                    "list them with `uv run invoke models`")

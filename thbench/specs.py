"""Model, TTS and check specs: one TOML file each, parsed and validated once, all errors together.

A spec lives at ``<kind dir>/<name>/spec.toml`` (``solutions/still/spec.toml``,
``tts/piper/spec.toml``, ``checks/face/spec.toml``); the files it names (lock, entry script)
sit beside it. Loading never imports anything heavy: listing models stays instant.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thbench import paths
from thbench.errors import UserError
from thbench.spec_checks import (  # noqa: F401  (pin_name, _near: used by importers of specs)
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

if TYPE_CHECKING:
    from thbench.metric_spec import MetricDecl
    from thbench.rehearsal_spec import Rehearsal

SCHEMA_VERSION = 1
SUPPORTED_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Kind(StrEnum):
    MODEL = "model"
    TTS = "tts"
    CHECK = "check"
    METRIC = "metric"

    @property
    def folder(self) -> str:
        return {Kind.MODEL: "solutions", Kind.TTS: "tts", Kind.CHECK: "checks",
                Kind.METRIC: "metrics"}[self]

    @property
    def label(self) -> str:
        return {Kind.MODEL: "model", Kind.TTS: "TTS backend", Kind.CHECK: "check",
                Kind.METRIC: "metric"}[self]

    @property
    def command_table(self) -> str:
        return {Kind.MODEL: "inference", Kind.TTS: "synthesis", Kind.CHECK: "command",
                Kind.METRIC: "command"}[self]


class Gpu(StrEnum):
    NONE = "none"  # runs on CPU only
    OPTIONAL = "optional"  # uses a GPU when there is one, runs (slowly) without
    REQUIRED = "required"  # upstream code is CUDA-only


DEFAULT_TTS = "piper"  # the backend `invoke run --text` speaks with unless told

# Placeholders an argv template may use, per kind, and what each expands to.
PLACEHOLDERS: dict[Kind, dict[str, str]] = {
    Kind.MODEL: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "repo": "the pinned upstream checkout (only with [repo])",
        "image": "the input face image",
        "audio": "the speech WAV",
        "work_dir": "an empty folder for the model's files, inside the run folder",
        "run_dir": "the run folder",
    },
    Kind.TTS: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "request": "speech request JSON: pieces of text, voice, speaker, rate, out_dir "
                   "(thbench/speech.py)",
    },
    Kind.CHECK: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "image": "the image to check",
    },
    Kind.METRIC: {
        "python": "the env's interpreter",
        "spec_dir": "folder of spec.toml",
        "video": "the normalised video to score (thbench/score.py)",
        "audio": "its speech, normalised to a mono WAV",
        "image": "the source image the video was made from",
        "out": "the JSON file the command writes its measurements to",
        "weights": "the env's weights folder ([[weights]] dest are relative to it)",
    },
}


@dataclass(frozen=True)
class Torch:
    packages: tuple[str, ...]
    index: str | None  # None: PyPI


@dataclass(frozen=True)
class Lock:
    """How requirements.lock is compiled from its source; `nox -s locks` re-resolves it."""

    source: Path
    platform: str = "x86_64-manylinux_2_28"
    no_emit: tuple[str, ...] = ()  # beyond the [torch] packages, which are never emitted


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
class Repo:
    url: str
    commit: str
    # Paths left out of the checkout (gitignore wildcards, relative to its root): files the
    # inference never reads, such as demo animations a mirror may lack. See thbench/repo.py.
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Weight:
    dest: str  # relative to the env's data folder (or the repo checkout)
    size: int | None
    sha256: str | None
    url: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    hf_revision: str | None = None
    unpack: str | None = None  # archive: extract into this folder (relative, like dest)
    manual: str | None = None  # no download URL we may use: where a person gets the file
    hf_folder: str | None = None  # a Hub folder (every file under it) landing at dest


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    cwd: str | None  # template; None: the work folder
    timeout: float
    output: str | None  # glob relative to {work_dir} where the result appears (models)
    # TTS only: the argv printing the backend's voices as JSON (thbench/voices.py; None: the
    # backend's voices come from a committed catalogue), and the voice used when none is asked.
    voices: tuple[str, ...] | None = None
    default_voice: str | None = None
    sample_rate: int | None = None  # models: the speech rate upstream reads (None: any)

    def expand(self, values: dict[str, str]) -> list[str]:
        return [expand(arg, values) for arg in self.argv]


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


def expand(template: str, values: dict[str, str]) -> str:
    """Fill ``{name}`` placeholders; the result is one argv element, never shell text."""
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


# --- validation (the shared checks live in spec_checks.py) ----------------------------------


def _command(checker: _Checker, spec: dict[str, Any], kind: Kind, has_repo: bool) -> Command | None:
    table_name = kind.command_table
    table = checker.get(spec, table_name, dict, f"[{table_name}] argv = [...]")
    if table is None:
        return None
    prefix = f"{table_name}."
    allowed = ["argv", "cwd", "timeout"] + (["output", "sample_rate"] if kind is Kind.MODEL else [])
    if kind is Kind.TTS:
        allowed += ["voices", "default_voice"]
    checker.unknown_keys(table, allowed, prefix)
    known = dict(PLACEHOLDERS[kind])
    if not has_repo:
        known.pop("repo", None)

    def placeholders_known(value: str) -> str | None:
        for name in PLACEHOLDER_RE.findall(value):
            if name not in known:
                return f"unknown placeholder {{{name}}}; known: " + ", ".join(
                    "{" + k + "}" for k in known
                )
        return None

    example = '["{python}", "{spec_dir}/run.py", "--image", "{image}"]'
    argv = checker.get(table, "argv", list, example, prefix, test=_str_list(placeholders_known))
    if argv is not None and not argv:
        checker.bad(f"{prefix}argv", argv, "must not be empty", example)
        argv = None
    cwd = checker.get(table, "cwd", str, '"{repo}"', prefix, required=False, test=placeholders_known)
    timeout = checker.get(
        table,
        "timeout",
        (int, float),
        "timeout = 3600",
        prefix,
        required=False,
        test=lambda v: None if v > 0 else "must be a positive number of seconds",
    )
    output, sample_rate = None, None
    if kind is Kind.MODEL:
        output = checker.get(table, "output", str, '"*.mp4"', prefix, test=_relative)
        sample_rate = checker.get(table, "sample_rate", int, "sample_rate = 16000", prefix,
                                  required=False, test=lambda v: None if 8000 <= v <= 96000
                                  else "a rate in Hz, 8000-96000")
    voices, default_voice = None, None
    if kind is Kind.TTS:
        listing = {k: v for k, v in known.items() if k in ("python", "spec_dir")}
        voices = checker.get(table, "voices", list, '["{python}", "{spec_dir}/say.py", "--voices-json"]',
                             prefix, required=False, test=_str_list(
                                 lambda v: None if set(PLACEHOLDER_RE.findall(v)) <= set(listing)
                                 else "only {python} and {spec_dir} are known here"))
        default_voice = checker.get(table, "default_voice", str, '"en"', prefix, required=False)
    if argv is None:
        return None
    return Command(tuple(argv), cwd, float(timeout or 3600), output,
                   tuple(voices) if voices else None, default_voice, sample_rate)


def _torch(checker: _Checker, spec: dict[str, Any], prefix: str = "") -> Torch | None:
    table = checker.get(spec, "torch", dict, '[torch] packages = ["torch==2.1.2"]', prefix,
                        required=False)
    if table is None:
        return None
    prefix += "torch."
    checker.unknown_keys(table, ["packages", "index"], prefix)
    packages = checker.get(
        table, "packages", list, '["torch==2.1.2", "torchvision==0.16.2"]', prefix,
        test=_str_list(_pin),
    )
    if packages and not any(pin_name(p) == "torch" for p in packages):
        checker.bad(f"{prefix}packages", packages, "must pin torch itself", '["torch==2.1.2"]')
    index = checker.get(
        table, "index", str, '"https://download.pytorch.org/whl/cu121"', prefix,
        required=False, test=_http_url,
    )
    return Torch(tuple(packages), index) if packages else None


def _lock(checker: _Checker, spec: dict[str, Any], folder: Path, prefix: str = "") -> Lock | None:
    table = checker.get(spec, "lock", dict, '[lock] source = "requirements.in"', prefix,
                        required=False)
    if table is None:
        return None
    prefix += "lock."
    checker.unknown_keys(table, ["source", "platform", "no_emit"], prefix)
    source = checker.get(table, "source", str, '"requirements.in"', prefix, test=_relative)
    if source and not (folder / source).is_file():
        checker.bad(f"{prefix}source", source, "no such file beside spec.toml",
                    '"requirements.in"')
        source = None
    platform = checker.get(table, "platform", str, '"x86_64-manylinux_2_28"', prefix,
                           required=False)
    no_emit = checker.get(table, "no_emit", list, '["nvidia-cudnn-cu11"]', prefix,
                          required=False, test=_str_list()) or []
    if not source:
        return None
    return Lock(folder / source, platform or Lock.platform, tuple(no_emit))


def _repo(checker: _Checker, spec: dict[str, Any]) -> Repo | None:
    table = checker.get(spec, "repo", dict, '[repo] url = "https://github.com/o/r"', required=False)
    if table is None:
        return None
    checker.unknown_keys(table, ["url", "commit", "exclude"], "repo.")
    url = checker.get(table, "url", str, '"https://github.com/OpenTalker/SadTalker"', "repo.",
                      test=_http_url)
    commit = checker.get(
        table, "commit", str, '"cd4c0465ae0b54a6f85af57f5c65fec9fe23e7f8"', "repo.",
        test=lambda v: None if HEX40_RE.match(v) else "must be a full 40-hex commit id",
    )
    exclude = checker.get(table, "exclude", list, '["docs/*.gif"]', "repo.", required=False,
                          test=_str_list(_exclude_pattern)) or []
    return Repo(url, commit, tuple(exclude)) if url and commit else None


def _exclude_pattern(value: str) -> str | None:
    """A path glob under the checkout's root, written into git's sparse-checkout file."""
    if value != value.strip() or "\n" in value or "\r" in value:
        return "no surrounding spaces or line breaks"
    if value.startswith(("!", "#")):
        return "a path to leave out, without a leading '!' or '#'"
    if value.startswith("/") or ".." in value.split("/"):
        return "a path relative to the checkout's root (already anchored there), without '..'"
    return None


def _weights(checker: _Checker, spec: dict[str, Any]) -> tuple[Weight, ...]:
    items = checker.get(spec, "weights", list, "[[weights]] tables", required=False) or []
    result = []
    allowed = ["dest", "size", "sha256", "url", "hf_repo", "hf_file", "hf_folder", "hf_revision",
               "unpack", "manual"]
    for i, table in enumerate(items):
        prefix = f"weights[{i}]."
        if not isinstance(table, dict):
            checker.bad(f"weights[{i}]", table, "must be a table", '[[weights]] dest = "x.pth"')
            continue
        checker.unknown_keys(table, allowed, prefix)
        dest = checker.get(table, "dest", str, '"checkpoints/model.pth"', prefix, test=_relative)
        size = checker.get(table, "size", int, "size = 155779231", prefix, required=False,
                           test=lambda v: None if v > 0 else "must be > 0")
        sha = checker.get(table, "sha256", str, '"84a8…f64c" (64 hex)', prefix, required=False,
                          test=lambda v: None if SHA256_RE.match(v) else "must be 64 lowercase hex")
        url = checker.get(table, "url", str, '"https://…/file.pth"', prefix, required=False,
                          test=_http_url)
        hf_repo = checker.get(table, "hf_repo", str, '"BadToBest/EchoMimic"', prefix, required=False)
        hf_file = checker.get(table, "hf_file", str, '"face_locator.pth"', prefix, required=False)
        hf_folder = checker.get(table, "hf_folder", str, '"model_ckpts/wav2vec2-base-960h"', prefix,
                                required=False, test=_relative)
        hf_rev = checker.get(
            table, "hf_revision", str, "a 40-hex commit id", prefix, required=False,
            test=lambda v: None if HEX40_RE.match(v) else "must be a full 40-hex commit id",
        )
        unpack = checker.get(table, "unpack", str, '"models/buffalo_l"', prefix, required=False,
                             test=_relative)
        if unpack and not re.search(r"\.(zip|tar|tar\.gz|tgz|tar\.xz|tar\.bz2)$", dest or ""):
            checker.bad(f"{prefix}unpack", unpack, "dest must name a .zip or .tar[.gz|.xz|.bz2]",
                        'dest = "downloads/buffalo_l.zip"')
        manual = checker.get(table, "manual", str, '"Google Drive file <id>: gdown <id>"', prefix,
                             required=False)
        if sum(x is not None for x in (url, hf_repo, manual)) != 1:
            checker.bad(f"{prefix}url", url, "give exactly one of url, hf_repo or manual",
                        '"https://…"')
        if hf_folder:
            # Every file under it, verified against the Hub's own listing at that revision.
            if not (hf_repo and hf_rev) or hf_file or sha or unpack:
                checker.bad(f"{prefix}hf_folder", hf_folder,
                            "an hf_folder weight needs hf_repo and hf_revision, and no hf_file, "
                            "sha256 or unpack",
                            'hf_repo = "tk93/V-Express", hf_revision = "<40 hex>"')
        elif hf_repo and not (hf_file and (hf_rev or sha)):
            checker.bad(f"{prefix}hf_file", hf_file,
                        "an hf_repo weight needs hf_file (or hf_folder) and an hf_revision or "
                        "sha256", 'hf_file = "x.pth", hf_revision = "<40 hex>"')
        elif (hf_file or hf_rev) and not hf_repo:
            checker.bad(f"{prefix}hf_repo", hf_repo, "hf_file and hf_revision need hf_repo",
                        '"BadToBest/EchoMimic"')
        if url and not sha:
            checker.bad(f"{prefix}sha256", sha, "a url weight needs its sha256", '"<64 hex>"')
        if dest:
            result.append(Weight(dest, size, sha, url, hf_repo, hf_file, hf_rev, unpack, manual,
                                 hf_folder.strip("/") if hf_folder else None))
    return tuple(result)


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


# What a profile may change: everything that decides how the env is built.
ENV_KEYS = ("python", "requirements", "build_constraints", "torch", "lock")


def _env_fields(checker: _Checker, table: dict[str, Any], folder: Path, prefix: str,
                required: bool) -> dict[str, Any]:
    """The env-building keys of the top level (required) or of a profile (each optional)."""
    fields: dict[str, Any] = {}
    python = checker.get(
        table, "python", str, 'python = "3.10"', prefix, required=required,
        test=lambda v: None if v in SUPPORTED_PYTHONS else
        "must be one of " + ", ".join(SUPPORTED_PYTHONS),
    )
    if python:
        fields["python"] = python
    for key, example in (("requirements", '"requirements.lock"'),
                         ("build_constraints", '"build-constraints.txt"')):
        name = checker.get(table, key, str, example, prefix,
                           required=required and key == "requirements", test=_relative)
        if not name:
            continue
        file = folder / name
        if not file.is_file():
            checker.bad(f"{prefix}{key}", name, "no such file beside spec.toml", example)
        else:
            if key == "requirements":
                _check_lock(checker, file, f"{prefix}{key}")
            fields[key] = file
    if "torch" in table:
        fields["torch"] = _torch(checker, table, prefix)
    if "lock" in table:
        fields["lock"] = _lock(checker, table, folder, prefix)
    return fields


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

"""doctor's checks of this machine: each returns its table lines; none changes anything.

Package managers, the Pythons the specs need, system tools, GPUs and the driver, disk. The
network and the envs are in doctor.py, which runs them all.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from rich.filesize import decimal

from thbench import envs, gpu, paths, proc, profiles, weights
from thbench import tools as found_tools  # `tools` is the check below
from thbench.errors import UserError
from thbench.specs import Gpu as GpuNeed
from thbench.specs import Spec

BOOTSTRAP_TIP = "run `python3 bootstrap/bootstrap.py` (apt packages and uv)"
SIZE_TIME_CAP_S = 5.0  # the uv cache walk stops here: a huge cache on a network disk is slow
GITHUB_ROOT = "https://github.com/"

Probe = Callable[[str], str | None]  # url → why its host does not answer, or None


class Status(StrEnum):
    OK = "OK"
    INFO = "INFO"  # not there, and nothing needs it to be
    WARN = "WARN"
    ERROR = "ERROR"  # only this makes `invoke doctor` exit non-zero


@dataclass(frozen=True)
class Line:
    group: str
    check: str
    status: Status
    detail: str
    tip: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status.value}


def first_line(argv: list, timeout: float = 30) -> str | None:
    """The first line a ``--version``-style command prints, or None when it fails."""
    try:
        result = proc.run(argv, capture=True, check=False, timeout=timeout)
    except UserError:
        return None
    text = (result.stdout.strip() or result.stderr.strip()) if result.returncode == 0 else ""
    return text.splitlines()[0].strip() if text else None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def size_of(folder: Path, cap_s: float = SIZE_TIME_CAP_S) -> tuple[int, bool]:
    """Bytes on disk under ``folder`` (each hard-linked file once) and whether the walk finished
    within ``cap_s``."""
    total, seen, todo = 0, set(), [folder]
    deadline = time.monotonic() + cap_s
    while todo:
        if time.monotonic() > deadline:
            return total, False
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
            except OSError:
                continue
    return total, True


# --- package managers ------------------------------------------------------------------------


def uv_cache_dir() -> Path | None:
    uv = os.environ.get("UV") or shutil.which("uv")
    out = first_line([uv, "cache", "dir"]) if uv else None
    return Path(out) if out else None


def package_managers() -> list[Line]:
    group, lines = "package managers", []
    uv = os.environ.get("UV") or shutil.which("uv")
    version = first_line([uv, "--version"]) if uv else None
    if not version:
        lines.append(Line(group, "uv", Status.ERROR, "not found: every env is built with uv",
                          BOOTSTRAP_TIP))
    else:
        cache = uv_cache_dir()
        if cache and cache.is_dir():
            size, finished = size_of(cache)
            measured = (decimal(size) if finished else
                        f"size not measured: over {SIZE_TIME_CAP_S:g} s (≥ {decimal(size)})")
            where = f"cache {cache} ({measured})"
        else:
            where = f"cache {cache or '?'} (empty)"
        lines.append(Line(group, "uv", Status.OK, f"{version} at {uv}; {where}"))
    for name in ("pip", "conda", "mamba", "micromamba", "pixi"):
        found = shutil.which(name) or (shutil.which("pip3") if name == "pip" else None)
        version = first_line([found, "--version"]) if found else None
        if version:
            lines.append(Line(group, name, Status.OK, f"{version} at {found}"))
        else:
            lines.append(Line(group, name, Status.INFO,
                              "not found (optional: uv builds every env)" if not found
                              else f"{found} does not answer --version"))
    return lines


# --- Pythons ---------------------------------------------------------------------------------


def _pythons_needed(specs: list[Spec]) -> dict[str, list[str]]:
    needed: dict[str, list[str]] = {}
    for spec in specs:
        for name in spec.profile_names:
            python = spec.with_profile(name).python
            who = spec.env_id + ("" if name == spec.profile_names[0] else f" ({name})")
            needed.setdefault(python, []).append(who)
    return dict(sorted(needed.items(), key=lambda kv: _numbers(kv[0])))


def pythons(specs: list[Spec], probe: Probe) -> list[Line]:
    """Where each Python the specs name would come from, in the order setup tries them."""
    lines = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).resolve()
    for version, who in _pythons_needed(specs).items():
        check, needs = f"Python {version}", "for " + ", ".join(who)
        try:
            found = envs.find_python(version, install=False)
        except UserError as err:  # uv itself missing: reported with the package managers
            lines.append(Line("python", check, Status.WARN, f"{needs}: {err.message}", err.tip))
            continue
        if found:
            source = "pyenv" if found.resolve().is_relative_to(pyenv_root) else "found by uv"
            lines.append(Line("python", check, Status.OK, f"{source}: {found} ({needs})"))
            continue
        mirror = os.environ.get("UV_PYTHON_INSTALL_MIRROR", "").strip()
        host = mirror or GITHUB_ROOT
        why = probe(host) if host.startswith(("http://", "https://")) else None
        via = f"from UV_PYTHON_INSTALL_MIRROR {mirror}" if mirror else "from GitHub"
        if why:
            lines.append(Line(
                "python", check, Status.WARN,
                f"not installed; `uv python install {version}` would download {via}, which does "
                f"not answer ({why}) ({needs})",
                f"set UV_PYTHON_INSTALL_MIRROR to a python-build-standalone mirror, or "
                f"`pyenv install {version}`"))
        else:
            lines.append(Line("python", check, Status.OK,
                              f"not installed; setup runs `uv python install {version}` {via} ({needs})"))
    return lines


# --- system tools ----------------------------------------------------------------------------

# name, argv after the binary, what needs it, missing → status
TOOLS = (
    ("ffmpeg", ["-version"], "speech conversion and the output check", Status.ERROR),
    ("ffprobe", ["-version"], "probing inputs and outputs", Status.ERROR),
    ("git", ["--version"], "checking out upstream models", Status.ERROR),
    # Optional: checkouts run with LFS smudging off and weights come over HTTPS.
    ("git-lfs", ["--version"], "nothing thbench runs (optional)", Status.INFO),
)
COMPILERS = ("c++", "g++", "clang++")


def _short(version: str) -> str:
    return version.split(" Copyright")[0]  # ffmpeg's first line runs on with its copyright


def _pyav() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is not None


def run_by_name(specs: list[Spec], program: str) -> list[str]:
    """The specs whose own scripts name ``program`` (quoted) to run it from PATH themselves,
    as metrics/syncnet/score.py does with ffprobe."""
    quoted = (f'"{program}"', f"'{program}'")
    texts = {s.env_id: [p.read_text(encoding="utf-8", errors="replace") for p in s.folder.glob("*.py")]
             for s in specs}
    return sorted(k for k, found in texts.items() if any(q in t for t in found for q in quoted))


def _ffprobe_by_name(specs: list[Spec]) -> Line | None:
    """PyAV stands in for ffprobe in thbench's own probing only: a script that runs `ffprobe`
    itself needs one on the PATH its process gets (PATH and, maybe, the tools folder)."""
    path = found_tools.child_env().get("PATH", os.environ.get("PATH", os.defpath))
    users = run_by_name(specs, "ffprobe")
    if shutil.which("ffprobe", path=path) or not users:
        return None
    return Line("tools", "ffprobe for metrics", Status.WARN,
                f"no ffprobe on PATH, and {', '.join(users)} run{'s' if len(users) == 1 else ''} "
                "`ffprobe` by name (PyAV stands in only for thbench's own probing): "
                "they report not computed here",
                "put a real ffprobe on PATH: `module load ffmpeg` on a cluster, or "
                "`conda install -c conda-forge ffmpeg` (both ship ffprobe)")


def tools(specs: list[Spec] | None = None) -> list[Line]:
    lines = []
    for name, args, why, missing in TOOLS:
        found = found_tools.which(name)  # PATH, else the rootless tools folder (.tools/bin)
        version = first_line([found, *args]) if found else None
        if version:
            lines.append(Line("tools", name, Status.OK, f"{_short(version)} at {found}"))
        elif name == "ffprobe" and _pyav():
            lines.append(Line("tools", name, Status.OK, "not found: PyAV reads the files "
                              "instead (media.probe), as on a host without root"))
        else:
            lines.append(Line("tools", name, missing,
                              f"{'not found on PATH' if not found else f'{found} does not run'}: "
                              f"needed for {why}", BOOTSTRAP_TIP))
        if name == "ffprobe" and (by_name := _ffprobe_by_name(specs or [])):
            lines.append(by_name)
    compiler = next((c for c in map(shutil.which, COMPILERS) if c), None)
    version = first_line([compiler, "--version"]) if compiler else None
    if version:
        lines.append(Line("tools", "C++ compiler", Status.OK, f"{version} at {compiler}"))
    else:
        lines.append(Line("tools", "C++ compiler", Status.WARN,
                          f"none of {', '.join(COMPILERS)} found: locks with sdists that compile "
                          "C/C++ (pyworld, insightface) cannot install", BOOTSTRAP_TIP))
    return lines


# --- GPUs and the driver ---------------------------------------------------------------------


def cuda_on_driver(cuda: str, driver: str) -> tuple[Status, str]:
    """Whether a CUDA ``cuda`` build runs on ``driver``, by the rule in torch_gpu.toml."""
    table = profiles.table()
    own = table["cuda_driver"].get(cuda)
    major = cuda.split(".")[0]
    floor = table["cuda_minor_compat"].get(major)
    have = _numbers(driver)
    if own and have >= _numbers(own):
        return Status.OK, f"driver {driver} ≥ {own}, CUDA {cuda}'s minimum"
    if floor and have >= _numbers(floor):
        below = f"below CUDA {cuda}'s own {own}" if own else f"CUDA {cuda} is not in the table"
        return Status.WARN, (f"driver {driver} is {below} but ≥ {floor}: runs by CUDA {major}.x "
                             "minor version compatibility (PTX JIT and newer driver APIs may fail)")
    if not own and not floor:
        return Status.WARN, f"CUDA {cuda} is not in torch_gpu.toml's driver table"
    return Status.ERROR, f"driver {driver} is too old for CUDA {cuda} (needs ≥ {floor or own})"


def gpus(specs: list[Spec], found: list[gpu.Gpu]) -> list[Line]:
    group = "gpu"
    if not found:
        required = [s for s in specs if s.gpu is GpuNeed.REQUIRED]
        lines = [Line(group, "GPU", Status.WARN if required else Status.INFO,
                      "no NVIDIA GPU found (NVML, nvidia-smi)",
                      "the models marked below need a host whose NVIDIA driver lists a GPU "
                      "(`nvidia-smi`)" if required else "")]
        for spec in specs:
            if spec.gpu is GpuNeed.REQUIRED:
                lines.append(Line(group, spec.env_id, Status.WARN,
                                  'gpu = "required": `invoke run` refuses it here',
                                  f"run it on a GPU host; here only `nox -s {spec.setup_session} "
                                  "-- --rehearse` and a rehearsal run"))
            elif spec.gpu is GpuNeed.OPTIONAL:
                lines.append(Line(group, spec.env_id, Status.INFO,
                                  "runs on the CPU here" + (f": {spec.cpu_speed}" if spec.cpu_speed
                                                            else ", many times slower")))
        return lines
    first = found[0]
    lines = [Line(group, "driver", Status.OK,
                  f"{first.driver}, runs CUDA ≤ {first.driver_cuda or 'unknown'}")]
    for index, device in enumerate(found):
        generation = profiles.generation(device) if device.compute_capability else None
        what = (f"compute capability {device.compute_capability} ({device.sm}"
                + (f", {generation['name']})" if generation else ")")
                if device.compute_capability else "compute capability unknown (nvidia-smi too old)")
        memory = f", {device.memory_mib / 1024:.0f} GiB" if device.memory_mib else ""
        lines.append(Line(group, f"GPU {index}", Status.OK, f"{device.name}, {what}{memory}"))
    for spec in specs:
        if spec.torch:
            lines.append(_profile_line(spec, found))
    return lines


def _cuda_unknown(spec: Spec) -> Line | None:
    """A PyPI torch series torch_gpu.toml [pypi_cuda] does not list yet: its wheels use CUDA,
    just not a known one (profiles.choose takes them for CPU builds and refuses them)."""
    for name in spec.profile_names:
        build = profiles.torch_build(spec.with_profile(name))
        if build is not None and build.cuda is None and build.source.endswith("CUDA unknown"):
            series = ".".join(build.version.split(".")[:2])
            return Line("gpu", spec.env_id, Status.WARN,
                        f"profile {name}: torch {build.version} from PyPI; CUDA build unknown: "
                        "add the series to torch_gpu.toml [pypi_cuda]",
                        f'add "{series}" = "<CUDA of PyPI\'s torch {series} Linux wheels>" to '
                        "thbench/torch_gpu.toml [pypi_cuda], or pin a +cuXXX build from its index")
    return None


def _profile_line(spec: Spec, found: list[gpu.Gpu]) -> Line:
    try:
        choice = profiles.choose(spec, found)
    except UserError as err:
        return _cuda_unknown(spec) or Line("gpu", spec.env_id, Status.ERROR, err.message, err.tip)
    build = profiles.torch_build(choice.spec)
    head = f"profile {choice.spec.profile}: {build}"
    if build is None or build.cuda is None:
        return Line("gpu", spec.env_id, Status.INFO, f"{head}; does not use the GPU")
    status, why = cuda_on_driver(build.cuda, found[0].driver)
    tip = ""
    if status is not Status.OK:
        own = profiles.table()["cuda_driver"].get(build.cuda, "the release's minimum")
        tip = (f"update the NVIDIA driver to ≥ {own}, or set up a profile built for CUDA ≤ "
               f"{found[0].driver_cuda or 'the driver’s'} (`nox -s {spec.setup_session} -- "
               "--profile NAME`)")
    return Line("gpu", spec.env_id, status, f"{head}; {why}", tip)


# --- disk ------------------------------------------------------------------------------------


def _still_to_fetch(env: envs.Env) -> int:
    """Declared bytes of the env's weights not on disk (archives with room to unpack)."""
    total = 0
    for weight in env.spec.weights:
        if weight.manual or (env.weights_root / weight.dest).exists():
            continue
        if weight.unpack and (env.weights_root / weight.unpack).exists():
            continue
        factor = 1 + (weights.UNPACK_FACTOR if weight.unpack else 0)
        total += factor * (weight.size or 0)
    return total


def _env_or_own(spec: Spec) -> envs.Env:
    """The env setup would use; with a broken local config (its own ERROR line), the project's."""
    try:
        return envs.Env.of(spec)
    except UserError:
        return envs.Env(spec, paths.envs_root() / spec.env_id)


def disk(specs: list[Spec], uv_cache: Path | None) -> list[Line]:
    """Free space where envs, weights (inside the envs) and uv's cache live, vs the weights
    still to fetch. Env installs are not counted: their size is known only after a build."""
    needs = {s.env_id: _still_to_fetch(_env_or_own(s)) for s in specs}
    needs = {k: v for k, v in needs.items() if v}
    places = {"envs and weights": paths.envs_root()}
    if uv_cache:
        places["uv cache"] = uv_cache
    by_disk: dict[int, tuple[list[str], Path]] = {}
    for what, where in places.items():
        existing = weights.existing_parent(where)
        by_disk.setdefault(existing.stat().st_dev, ([], existing))[0].append(f"{what} ({where})")
    lines = []
    envs_dev = weights.existing_parent(paths.envs_root()).stat().st_dev
    for dev, (names, where) in by_disk.items():
        free = shutil.disk_usage(where).free
        detail = f"{decimal(free)} free for " + ", ".join(names)
        if dev != envs_dev:
            lines.append(Line("disk", "disk", Status.OK, detail))
            continue
        total = sum(needs.values())
        detail += (f"; weights still to fetch (declared sizes; env installs not counted): "
                   f"{decimal(total)} for {len(needs)} envs" if needs else
                   "; every declared weight is on disk")
        too_big = sorted(k for k, v in needs.items() if v + weights.DISK_MARGIN >= free)
        if too_big:
            lines.append(Line("disk", "disk", Status.ERROR,
                              f"{detail}; not even alone: {', '.join(too_big)}",
                              f"free space under {where} or move the envs (THB_ENVS_DIR)"))
        elif total + weights.DISK_MARGIN >= free:
            lines.append(Line("disk", "disk", Status.WARN, f"{detail}: not all at once",
                              f"free space under {where} or set up fewer models"))
        else:
            lines.append(Line("disk", "disk", Status.OK, detail))
    return lines

"""Packages a conda env holds twice: as a conda package and as a pip (or uv) install over it.

conda's own record of what it installed is ``<prefix>/conda-meta/*.json`` (name, version,
channel and the files each package put down); pip and uv mark what they installed with a
``*.dist-info/INSTALLER`` file reading ``pip`` or ``uv``. A distribution installed by pip/uv
whose name a conda package also provides is a conflict: the two managers disagree on what is
there, and the next ``conda install`` or ``pip install`` may swap it silently. A dist-info that
conda's own package put down (some conda builds ship ``INSTALLER: pip``) is conda's only while
its files still hash as conda recorded them: ``pip install torch==2.1.0`` over conda's 2.1.0
rewrites the same paths. torch is the one
that matters most (a pip torch over conda's pytorch replaces its CUDA build), so it is listed
first. Reads files only; runs nothing and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

PIP_INSTALLERS = ("pip", "uv")
# conda package names whose Python distribution is called otherwise, for records that list no
# dist-info among their files.
ALIASES = {"pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch"}
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
META_RE = re.compile(r"(?:^|/)site-packages/([^/]+?)-[^/-]+?(?:-py[\d.]+)?\.(?:dist|egg)-info(?:/|$)")


def normalise(name: str) -> str:
    """PEP 503: ``Foo_Bar.baz`` and ``foo-bar-baz`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class CondaPackage:
    name: str
    version: str
    build: str
    channel: str
    dists: tuple[str, ...]  # normalised Python distribution names it provides
    files: tuple[str, ...]
    hashes: tuple[tuple[str, str], ...] = ()  # (path, sha256) from paths_data, where recorded


@dataclass(frozen=True)
class Conflict:
    dist: str  # the Python distribution, normalised (torch)
    conda_name: str  # the conda package providing it (pytorch)
    conda_version: str
    conda_channel: str
    pip_version: str
    installer: str  # pip or uv
    conda_files_missing: int  # of the conda package's files, gone from disk (pip removed them)
    conda_files: int

    def line(self) -> str:
        gone = (f"; {self.conda_files_missing} of conda's {self.conda_files} files are gone "
                "(overwritten or removed by the other install)" if self.conda_files_missing else "")
        return (f"{self.dist}: conda package {self.conda_name} {self.conda_version} "
                f"({self.conda_channel}) and a {self.installer} install {self.pip_version}{gone}")

    def to_dict(self) -> dict:
        return asdict(self)


def is_conda_prefix(prefix: Path) -> bool:
    return (Path(prefix) / "conda-meta").is_dir()


def conda_packages(prefix: Path) -> list[CondaPackage]:
    """Every record in ``<prefix>/conda-meta``; a record conda could not have written is skipped."""
    found = []
    for path in sorted((Path(prefix) / "conda-meta").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            name, version = str(record["name"]), str(record["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        files = tuple(str(f) for f in record.get("files") or ())
        dists = {normalise(m.group(1)) for f in files if (m := META_RE.search(f))}
        if not dists:
            dists = {ALIASES.get(name, normalise(name))}
        found.append(CondaPackage(name, version, str(record.get("build", "")),
                                  _channel(str(record.get("channel", ""))), tuple(sorted(dists)),
                                  files, _hashes(record)))
    return found


def _hashes(record: dict) -> tuple[tuple[str, str], ...]:
    """``paths_data.paths[]``: each file's ``_path`` and the ``sha256`` conda linked it with."""
    data = record.get("paths_data")
    entries = data.get("paths") if isinstance(data, dict) else None
    return tuple((str(e["_path"]), str(e["sha256"])) for e in entries or ()
                 if isinstance(e, dict) and e.get("_path") and e.get("sha256"))


def _channel(url: str) -> str:
    """``https://conda.anaconda.org/pytorch/linux-64`` → ``pytorch``; a bare name stays."""
    parts = [p for p in url.rstrip("/").split("/") if p]
    if parts and (parts[-1] == "noarch" or re.match(r"^(linux|osx|win)-", parts[-1])):
        parts = parts[:-1]
    return parts[-1] if parts else "unknown channel"


@dataclass(frozen=True)
class _PipDist:
    name: str
    version: str
    installer: str
    relative: str  # the dist-info folder, relative to the prefix


# The dist-info files pip and uv (re)write on every install; conda's copies hash as recorded.
REWRITTEN = ("INSTALLER", "RECORD")


def pip_installs(prefix: Path, conda_files: dict[str, str | None] | None = None) -> list[_PipDist]:
    """Distributions whose INSTALLER says pip or uv and which are not conda's own files.

    ``conda_files`` maps each path conda records to its sha256 (None where the record has none).
    """
    prefix, conda_files = Path(prefix), conda_files or {}
    found = []
    for info in sorted(prefix.glob("lib/python3*/site-packages/*.dist-info")):
        relative = info.relative_to(prefix).as_posix()
        try:
            installer = (info / "INSTALLER").read_text(encoding="utf-8").strip().lower()
        except OSError:
            continue
        if installer not in PIP_INSTALLERS:
            continue
        if _conda_own(info, relative, conda_files):
            continue  # conda's own package carries this dist-info (built with pip)
        name, version = _name_version(info)
        found.append(_PipDist(normalise(name), version, installer, relative))
    return found


def _conda_own(info: Path, relative: str, conda_files: dict[str, str | None]) -> bool:
    """conda put this dist-info down and no install rewrote it since."""
    if f"{relative}/INSTALLER" not in conda_files:
        return False
    recorded = {n: conda_files.get(f"{relative}/{n}") for n in REWRITTEN}
    if not any(recorded.values()):
        return True  # a record without hashes (old conda): its listing is all there is to go on
    for name, sha in recorded.items():
        if sha and _sha256(info / name) != sha:
            return False
    return True


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _name_version(info: Path) -> tuple[str, str]:
    """From METADATA when readable, else from the folder name (``torch-2.2.0.dist-info``)."""
    name = version = ""
    try:
        for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Version:"):
                version = line.split(":", 1)[1].strip()
            elif not line.strip():
                break
    except OSError:
        pass
    stem = info.name.removesuffix(".dist-info")
    return name or stem.rsplit("-", 1)[0], version or stem.rsplit("-", 1)[-1]


def conflicts(prefix: Path) -> list[Conflict]:
    """Each distribution both conda and pip/uv installed: torch first, then its family, then A-Z."""
    prefix = Path(prefix)
    packages = conda_packages(prefix)
    owned: dict[str, str | None] = {f: None for p in packages for f in p.files}
    owned.update(h for p in packages for h in p.hashes)
    by_dist: dict[str, CondaPackage] = {}
    for package in packages:
        for dist in package.dists:
            by_dist.setdefault(dist, package)
    found = []
    for dist in pip_installs(prefix, owned):
        package = by_dist.get(dist.name)
        if package is None:
            continue
        missing = sum(1 for f in package.files if not (prefix / f).exists())
        found.append(Conflict(dist.name, package.name, package.version, package.channel,
                              dist.version, dist.installer, missing, len(package.files)))
    return sorted(found, key=_order)


def _order(conflict: Conflict) -> tuple[int, str]:
    family = TORCH_FAMILY.index(conflict.dist) if conflict.dist in TORCH_FAMILY else len(TORCH_FAMILY)
    return family, conflict.dist


def tip(found: list[Conflict]) -> str:
    """What to do, naming torch when it is among them."""
    torch = next((c for c in found if c.dist == "torch"), None)
    if torch:
        return (f"the torch that imports is {torch.installer}'s {torch.pip_version}, not conda's "
                f"{torch.conda_name} {torch.conda_version} (and its CUDA build with it): keep one "
                f"manager per package, e.g. `{torch.installer} uninstall torch` then "
                f"`conda install --force-reinstall {torch.conda_name}={torch.conda_version}` in "
                "that env yourself (the project never changes it)")
    names = ", ".join(c.dist for c in found)
    return (f"keep one manager per package: reinstall {names} with conda, or remove the conda "
            "package and keep the pip one (the project never changes the env)")

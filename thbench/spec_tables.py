"""A spec's env and source tables: ``[torch]``, ``[lock]``, ``[repo]``, ``[[weights]]`` and the
env keys (python, requirements, ...) that the top level sets and a profile may change.

Parsed with the shared checks of spec_checks.py; specs.parse calls these with its own checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thbench.spec_checks import _check_lock, _Checker, _http_url, _pin, _relative, _str_list, pin_name

SUPPORTED_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# What a profile may change: everything that decides how the env is built.
ENV_KEYS = ("python", "requirements", "build_constraints", "torch", "lock")


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


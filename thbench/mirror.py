"""A ``THB_GITHUB_MIRROR`` folder made from git repositories already on this machine.

``make(dest, [("OpenTalker/SadTalker", path), …])`` gives ``dest/OpenTalker/SadTalker`` and so
on: bare repositories laid out as GitHub names them, each holding no objects of its own. Its
``objects/info/alternates`` points at the source's objects, its refs are copies of the source's,
and its config lets upload-pack serve what ``thbench.repo`` asks for over ``file://``: a commit
by id (``uploadpack.allowAnySHA1InWant``) and a partial fetch (``uploadpack.allowFilter``). Those
settings must live in the served repository: git drops ``-c`` and config from the environment
when it starts a local upload-pack.

The sources are only read (``rev-parse``, ``for-each-ref``, ``symbolic-ref``), never written, so
a read-only snapshot can be served as it is. A re-run converges: a mirror repository that already
matches is left alone, one that differs (other source, refs moved) is rebuilt beside and swapped
in, and a folder this module did not make is never replaced.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from thbench import proc
from thbench.errors import UserError
from thbench.repo import GIT_ENV, GIT_UNSET, LOCAL_TIMEOUT, MIRROR_VAR

# GitHub's owner and repository names: letters, digits, '-', '_', '.'; not '.' or '..'.
SLUG_RE = re.compile(r"^(?!\.\.?/)[A-Za-z0-9_.-]+/(?!\.\.?$)[A-Za-z0-9_.-]+$")
SERVE_CONFIG = {"uploadpack.allowFilter": "true", "uploadpack.allowAnySHA1InWant": "true"}
MARKER_KEY = "thbench.mirrorOf"  # the source's objects folder; marks a folder as made here
EXAMPLE = "OpenTalker/SadTalker=/srv/git/SadTalker.git"


@dataclass(frozen=True)
class Served:
    slug: str  # owner/name, as in https://github.com/owner/name
    source: Path  # the repository given
    path: Path  # the mirror repository, dest/owner/name
    refs: int
    action: str  # "made", "rebuilt" or "unchanged"


def parse_pairs(pairs: Iterable[str]) -> list[tuple[str, Path]]:
    """``owner/name=PATH`` items as (slug, path); every bad item reported in one UserError."""
    parsed, problems = [], []
    for item in pairs:
        slug, sep, path = item.partition("=")
        slug = slug.strip().strip("/")
        if not sep or not path or not SLUG_RE.match(slug):
            problems.append(f"{item!r} is not owner/name=PATH")
        else:
            parsed.append((slug, Path(path).expanduser()))
    slugs = [slug for slug, _ in parsed]
    problems += [f"{slug} is given twice" for slug in sorted(set(slugs)) if slugs.count(slug) > 1]
    if problems:
        raise UserError("; ".join(problems), f"give each repository as --repo {EXAMPLE}")
    if not parsed:
        raise UserError("no repositories given", f"give one or more: --repo {EXAMPLE}")
    return parsed


def make(dest: Path, sources: Sequence[tuple[str, Path]]) -> list[Served]:
    """Serve each (owner/name, path) as ``dest/owner/name``; the sources are left untouched."""
    dest = Path(dest).expanduser().absolute()
    return [_serve(dest, slug, Path(source).absolute()) for slug, source in sources]


def env_line(dest: Path) -> str:
    """``THB_GITHUB_MIRROR=file:///…/``: the setting that makes ``dest`` stand in for GitHub."""
    return f"{MIRROR_VAR}={Path(dest).expanduser().absolute().as_uri()}/"


def _serve(dest: Path, slug: str, source: Path) -> Served:
    if not SLUG_RE.match(slug):  # also keeps dest/slug inside dest
        raise UserError(f"{slug!r} is not owner/name", f"e.g. --repo {EXAMPLE}")
    objects = _objects_of(source)
    refs = _refs(objects.parent)
    head = _git(objects.parent, "symbolic-ref", "--quiet", "HEAD", capture=True,
                check=False).stdout.strip()
    target = dest / slug
    if target.exists() or target.is_symlink():
        if _marker(target) is None:
            raise UserError(
                f"{target} exists and was not made by `invoke mirror`, so it is not replaced",
                f"move {target} away (or choose another --dest) and run the same command again")
        if _matches(target, objects, refs, head):
            return Served(slug, source, target, len(refs), "unchanged")
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = _beside(target, "new")  # built beside, then renamed: never served half-made
    try:
        _build(fresh, objects, refs, head)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if not (target.exists() or target.is_symlink()):
        os.rename(fresh, target)
        return Served(slug, source, target, len(refs), "made")
    aside = _beside(target, "old")
    os.rename(target, aside / target.name)
    try:
        os.rename(fresh, target)
    except BaseException:
        os.rename(aside / target.name, target)
        shutil.rmtree(fresh, ignore_errors=True)
        os.rmdir(aside)
        raise
    shutil.rmtree(aside)  # refs and config only: its objects live in the source
    return Served(slug, source, target, len(refs), "rebuilt")


def _objects_of(source: Path) -> Path:
    """The objects folder of the repository at ``source`` (a bare one, or a work tree)."""
    if not source.exists():
        raise UserError(f"{source} does not exist", f"give an existing repository: --repo {EXAMPLE}")
    if "\n" in str(source):  # the alternates file holds one path per line
        raise UserError(f"{source!r} holds a line break", "move the repository to a plain path")
    for git_dir in (source, source / ".git"):
        # --git-dir, never discovery: a plain folder inside some other repository is no source.
        found = _git(git_dir, "rev-parse", "--path-format=absolute", "--git-path", "objects",
                     capture=True, check=False)
        if found.returncode == 0 and Path(found.stdout.strip()).is_dir():
            return Path(found.stdout.strip())
    raise UserError(f"{source} is not a git repository (bare, or a work tree with .git)",
                    f"give the repository's folder, e.g. --repo {EXAMPLE}")


def _refs(git_dir: Path) -> list[tuple[str, str]]:
    """(refname, object id) of every ref, HEAD aside."""
    listed = _git(git_dir, "for-each-ref", "--format=%(refname) %(objectname)",
                  capture=True).stdout
    return [tuple(line.split(" ", 1)) for line in listed.splitlines() if line]  # type: ignore[misc]


def _config(target: Path, key: str) -> str | None:
    """One key of the repository's own config file (never the user's or the system's)."""
    found = proc.run(["git", "config", "--file", str(target / "config"), "--get", key],
                     env=GIT_ENV, unset_env=GIT_UNSET, timeout=LOCAL_TIMEOUT, capture=True,
                     check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def _marker(target: Path) -> str | None:
    return _config(target, MARKER_KEY) if (target / "config").is_file() else None


def _matches(target: Path, objects: Path, refs: list[tuple[str, str]], head: str) -> bool:
    """Whether the mirror repository at ``target`` already serves ``objects`` with ``refs``."""
    try:
        alternates = (target / "objects" / "info" / "alternates").read_text().splitlines()
    except OSError:
        return False
    served = all(_config(target, key) == value for key, value in SERVE_CONFIG.items())
    own_head = _git(target, "symbolic-ref", "--quiet", "HEAD", capture=True,
                    check=False).stdout.strip()
    return (alternates == [str(objects)] and _marker(target) == str(objects) and served
            and sorted(_refs(target)) == sorted(refs) and (own_head == head or not head))


def _build(fresh: Path, objects: Path, refs: list[tuple[str, str]], head: str) -> None:
    proc.run(["git", "init", "--bare", "--quiet", str(fresh)], env=GIT_ENV, unset_env=GIT_UNSET,
             timeout=LOCAL_TIMEOUT)
    # gitrepository-layout(5): one objects folder per line, searched after the repository's own.
    (fresh / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    for key, value in {**SERVE_CONFIG, MARKER_KEY: str(objects)}.items():
        _git(fresh, "config", key, value)
    # One update-ref per ref (proc.run gives a command no stdin, so no `update-ref --stdin`);
    # each checks that its object exists, here through the alternates.
    for refname, oid in refs:
        _git(fresh, "update-ref", "--no-deref", refname, oid)
    if head and any(refname == head for refname, _ in refs):
        _git(fresh, "symbolic-ref", "HEAD", head)  # the branch a plain clone checks out


def _beside(target: Path, tag: str) -> Path:
    while True:
        folder = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _git(git_dir: Path, *args: str, **kwargs) -> proc.Completed:
    """git on the repository ``git_dir`` itself (bare layout), never one found above it."""
    return proc.run(["git", "--git-dir", str(git_dir), *args], env=GIT_ENV, unset_env=GIT_UNSET,
                    timeout=LOCAL_TIMEOUT, **kwargs)

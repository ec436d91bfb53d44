"""An upstream repository checked out at its pinned commit: fetched once, reused while pristine.

``checkout(repo, dest)`` leaves ``dest`` a git checkout whose HEAD is ``repo.commit`` and whose
tracked files are as committed. A checkout already in that state is left alone (no network),
whatever untracked files it holds: weights are downloaded into the checkout, and an idempotent
re-run must never cost a re-download.

Anything else (no checkout yet, another commit, a tracked file edited or deleted) is rebuilt from
scratch in a temporary folder beside ``dest`` and swapped in: ``dest`` is never half-fetched, a
failed fetch leaves it exactly as it was, and no temporary folder is left behind.

Files git does not track (downloaded weights, an upstream ``results/`` folder, a nested clone of a
weights repository) move from the old checkout into the new one after the swap, except where the
new commit tracks a file at the same path: there the committed file wins. They are moved, never
copied (same filesystem, one rename each, so gigabytes cost nothing), and the old checkout is
deleted only after every move succeeded; if a move fails the old checkout is kept beside ``dest``
and the error names it, so nothing is lost. Files carried over are not vouched for: weights are
checked against their sha256 by the downloader, not here. Edits to tracked files are discarded:
the point of a rebuild is a pristine checkout (the log lists what was modified).

``repo.exclude`` leaves paths out (demo animations the inference never reads, which some mirrors
lack): the fetch is then a partial clone (``--filter=blob:none``: the commit and its trees, no
file contents), git's sparse-checkout file lists ``/*`` and ``!/<pattern>`` for each, and the
checkout fetches only the blobs it writes. HEAD is still exactly the pinned commit, every tree and
every file written is checked by git against its object id, and the left-out paths stay in the
index, marked skip-worktree (``excluded_paths``). A server that cannot filter sends every blob
instead (git warns and carries on), as does the full fetch for a server that refuses commit ids:
both work wherever the server has every blob. A checkout whose sparse patterns differ from the
wanted ones (exclude added, changed or dropped) is rebuilt.

``THB_GITHUB_MIRROR`` replaces the ``https://github.com/`` prefix of every URL fetched, for hosts
that cannot reach GitHub: a proxy (``https://ghproxy.example/https://github.com/``) or a folder of
bare mirrors (``file:///srv/mirror/`` holding ``example/model`` or ``example/model.git``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from thbench import proc, redaction
from thbench.errors import UserError
from thbench.specs import Repo
from thbench.weights import MIRROR_VAR, rewrite_url  # one mirror rule for clones and downloads

# Never prompt for a password (a missing or private repository fails instead of hanging);
# never download LFS objects on checkout (weights come from our own downloader, sha256-checked).
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}
# Inherited from a git hook or a wrapper, these would point every command at another repository.
GIT_UNSET = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
             "GIT_COMMON_DIR", "GIT_NAMESPACE")
LOCAL_TIMEOUT = 300  # init, status, checkout: seconds
FETCH_TIMEOUT = 1800  # a full fetch of a big repository over a slow link
PARTIAL_FILTER = "blob:none"  # with exclude: commits and trees now, file contents on checkout


def sparse_patterns(exclude: tuple[str, ...]) -> tuple[str, ...] | None:
    """git's non-cone sparse-checkout lines for ``exclude``; None: no sparse checkout at all."""
    if not exclude:
        return None
    return ("/*", *(f"!/{pattern}" for pattern in exclude))


def checkout(repo: Repo, dest: Path, *, log: Path | None) -> Path:
    """Make ``dest`` a pristine checkout of ``repo.url`` at ``repo.commit``; return ``dest``.

    Runs only three local git commands when ``dest`` already is one. Raises UserError when the
    repository cannot be fetched, does not hold the commit, or cannot send a file the checkout
    needs; ``dest`` is then untouched.
    """
    dest = Path(dest)
    wanted = sparse_patterns(repo.exclude)
    state = _state(dest, log)
    if state is not None and state.head == repo.commit and not state.modified:
        if state.sparse == wanted:
            return dest
        _note(log, f"{dest}: left-out paths changed (sparse patterns {list(state.sparse or [])}"
              f" → {list(wanted or [])}); rebuilding")
    if state is None and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(
            f"{dest} exists and is not a git checkout, so it cannot be replaced by "
            f"{repo.url} at {repo.commit[:12]}",
            f"move {dest} away (or delete it) and run the same command again",
        )
    if state is not None and state.modified:
        _note(log, f"{dest}: tracked files modified; rebuilding, which discards: "
              + ", ".join(state.modified))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fresh = _beside(dest, "new")
    try:
        _fetch_commit(repo, fresh, log)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    _swap_in(fresh, dest, carry_untracked=state is not None, log=log)
    return dest


def _beside(dest: Path, tag: str) -> Path:
    """A new empty folder next to ``dest`` (same filesystem: renames between them are atomic).

    Made with mkdir, not tempfile.mkdtemp, so it gets the umask's mode rather than 0700: the
    new checkout is this folder, renamed.
    """
    while True:
        folder = dest.parent / f".{dest.name}.{tag}-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def excluded_paths(dest: Path, *, log: Path | None = None) -> list[str]:
    """Tracked paths of the checkout at ``dest`` that are left out of its work tree."""
    listed = _git(dest, "ls-files", "-t", "-z", log=log, capture=True).stdout
    # -t tags each entry; "S" is skip-worktree: in the commit, not written (sparse checkout).
    return [entry[2:] for entry in listed.split("\0") if entry.startswith("S ")]


def _git(repo_dir: Path, *args: str, log: Path | None, timeout: float = LOCAL_TIMEOUT,
         **kwargs) -> proc.Completed:
    """git on the repository at ``repo_dir`` only, never one found in a parent folder."""
    argv = ["git", "--git-dir", str(repo_dir / ".git"), "--work-tree", str(repo_dir), *args]
    return proc.run(argv, env=GIT_ENV, unset_env=GIT_UNSET, log=log, timeout=timeout, **kwargs)


# --- the state of an existing folder ---------------------------------------------------------


@dataclass(frozen=True)
class _State:
    head: str | None  # None: no readable HEAD (a broken checkout)
    modified: tuple[str, ...]  # tracked paths that differ from HEAD
    sparse: tuple[str, ...] | None = None  # its sparse-checkout lines; None: not sparse


def _state(dest: Path, log: Path | None) -> _State | None:
    """HEAD and modified tracked files of the checkout at ``dest``; None if it is not one."""
    if not (dest / ".git").exists():
        return None
    head = _git(dest, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", log=log,
                capture=True, check=False)
    status = _git(dest, "status", "--porcelain", "-z", "--untracked-files=no", log=log,
                  capture=True, check=False)
    if head.returncode != 0 or status.returncode != 0:
        # Broken: rebuilt, keeping its untracked files if git can still list them.
        listable = _git(dest, "ls-files", "--others", "-z", log=log, capture=True, check=False)
        return _State(None, ()) if listable.returncode == 0 else None
    modified = tuple(entry[3:] for entry in status.stdout.split("\0") if entry)
    return _State(head.stdout.strip(), modified, _sparse(dest, log))


def _sparse(dest: Path, log: Path | None) -> tuple[str, ...] | None:
    """The sparse-checkout lines in force at ``dest`` (git keeps the file after a disable)."""
    enabled = _git(dest, "config", "--type=bool", "--get", "core.sparseCheckout", log=log,
                   capture=True, check=False)
    if enabled.stdout.strip() != "true":
        return None
    try:  # the file git-sparse-checkout(1) documents, $GIT_DIR/info/sparse-checkout
        text = (dest / ".git" / "info" / "sparse-checkout").read_text(encoding="utf-8")
    except OSError:
        return ()
    return tuple(line for line in text.splitlines() if line.strip())


# --- fetching --------------------------------------------------------------------------------


def _fetch_commit(repo: Repo, work: Path, log: Path | None) -> None:
    """Fill the empty folder ``work`` with a checkout of ``repo.commit``."""
    url = rewrite_url(repo.url)
    proc.run(["git", "init", "--quiet", "--initial-branch=thbench", str(work)], env=GIT_ENV,
             unset_env=GIT_UNSET, log=log, timeout=LOCAL_TIMEOUT)
    _git(work, "remote", "add", "origin", url, log=log)
    if url != repo.url:  # provenance: what the mirror stands in for
        _git(work, "remote", "add", "upstream", repo.url, log=log)
    # GitHub serves any commit by id, so one shallow fetch is enough. A server that refuses
    # objects it did not advertise (protocol v0 without uploadpack.allow*SHA1InWant) gets a
    # full fetch of its branches and tags instead, which holds every commit worth pinning.
    # With exclude: a partial clone, so blobs of left-out paths are never asked for (a server
    # missing them would abort the whole pack otherwise).
    partial = [f"--filter={PARTIAL_FILTER}"] if repo.exclude else []
    shallow = _git(work, "fetch", *partial, "--depth", "1", "--no-tags", "origin", repo.commit,
                   log=log, timeout=FETCH_TIMEOUT, check=False)
    if shallow.returncode != 0:
        if shallow.returncode == -1:  # timed out: a second, bigger fetch would too
            raise UserError(f"fetching {repo.commit} from {url} timed out after "
                            f"{FETCH_TIMEOUT}s", _tip(repo, url))
        _note(log, "fetching the commit by id failed; fetching every branch and tag instead")
        if partial:
            # Unfiltered: a server that refuses unadvertised objects refuses the checkout's lazy
            # blob fetches too (a blob is never a branch tip), so a filtered full fetch could
            # never be checked out. The filtered attempt made blob:none origin's default: drop it.
            _git(work, "config", "--unset", "remote.origin.partialclonefilter", log=log,
                 check=False)
        try:
            _git(work, "fetch", "--tags", "origin", log=log, timeout=FETCH_TIMEOUT)
        except proc.CommandFailed as err:
            raise UserError(f"cannot fetch {url} (for commit {repo.commit}): {_reason(err.tail)}",
                            _tip(repo, url, err.tail)) from None
        found = _git(work, "cat-file", "-e", f"{repo.commit}^{{commit}}", log=log, check=False)
        if found.returncode != 0:
            raise UserError(f"commit {repo.commit} is not in {url} (none of its branches or "
                            "tags holds it)", _tip(repo, url))
    if repo.exclude:
        _git(work, "sparse-checkout", "set", "--no-cone", *sparse_patterns(repo.exclude),
             log=log)
    try:  # in a partial clone this fetches the blobs it writes: network time
        _git(work, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach",
             repo.commit, log=log, timeout=FETCH_TIMEOUT if repo.exclude else LOCAL_TIMEOUT)
    except proc.CommandFailed as err:
        if not repo.exclude:
            raise
        lacking = _paths_of(work, repo.commit, _unreadable(err.tail), log)
        if not lacking:  # not a missing object: the network, most likely
            raise UserError(f"checking out {repo.commit[:12]} from {url} failed while fetching "
                            f"its files: {_reason(err.tail)}", _tip(repo, url)) from None
        raise UserError(
            f"checking out {repo.commit[:12]} from {url} failed: the server cannot send "
            f"{', '.join(lacking)}, which [repo] exclude does not cover ({_reason(err.tail)})",
            "use a mirror that holds them, or, if the inference never reads them, add them to "
            "[repo] exclude in the spec") from None
    if (stored := redaction.without_credentials(url)) != url:  # .git/config keeps no password
        _git(work, "remote", "set-url", "origin", stored, log=log)
    head = _git(work, "rev-parse", "HEAD", log=log, capture=True).stdout.strip()
    if head != repo.commit:  # not expected from any git; but never hand out the wrong code
        raise UserError(f"checking out {repo.commit} from {url} gave {head}", _tip(repo, url))
    if repo.exclude:
        left_out = excluded_paths(work, log=log)
        _note(log, f"left out of the checkout ([repo] exclude = {list(repo.exclude)}): "
              + (", ".join(left_out) if left_out else "nothing (no tracked path matches)"))


def _unreadable(output: str) -> set[str]:
    """Object ids git says the server lacks (upload-pack: "not our ref", "unable to read")."""
    return set(re.findall(r"(?:not our ref|unable to read) ([0-9a-f]{40})", output))


def _paths_of(work: Path, commit: str, oids: set[str], log: Path | None) -> list[str]:
    """The paths in ``commit`` whose blobs are ``oids`` (its trees are local: no network)."""
    if not oids:
        return []
    listed = _git(work, "ls-tree", "-r", "-z", commit, log=log, capture=True, check=False)
    paths = []
    for entry in filter(None, listed.stdout.split("\0")):
        meta, _, path = entry.partition("\t")
        if meta.split()[-1] in oids:
            paths.append(path)
    return sorted(paths) or [f"object {oid}" for oid in sorted(oids)]


def _tip(repo: Repo, url: str, output: str = "") -> str:
    if _unreadable(output) or "repository corruption" in output:
        # The server lacks objects of the commit: files the inference may never read.
        return (f"{url} lacks some objects of {repo.commit[:12]}: use a complete mirror, or, "
                "if they are files the inference never reads, list them in [repo] exclude")
    if url != repo.url:
        network = (f"check that {MIRROR_VAR} ({os.environ.get(MIRROR_VAR)!r}) mirrors "
                   f"{repo.url} and is reachable")
    else:
        network = (f"check the network, or set {MIRROR_VAR} to a prefix that replaces "
                   "https://github.com/ (e.g. file:///srv/mirror/)")
    return f"{network}; or check [repo] commit in the spec (a full 40-hex commit of {repo.url})"


def _reason(tail: str) -> str:
    """git's own explanation: its first fatal/error line, else its last line."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else "no output"


# --- swapping the new checkout in ------------------------------------------------------------


def _swap_in(fresh: Path, dest: Path, *, carry_untracked: bool, log: Path | None) -> None:
    """Rename ``fresh`` to ``dest``; move the old checkout's untracked files into it."""
    if not dest.exists():
        os.rename(fresh, dest)
        return
    aside = _beside(dest, "old")
    old = aside / dest.name
    os.rename(dest, old)  # renames within one folder tree: atomic, nothing copied
    try:
        os.rename(fresh, dest)
    except BaseException:
        os.rename(old, dest)
        shutil.rmtree(fresh, ignore_errors=True)
        os.rmdir(aside)
        raise
    if carry_untracked:
        try:
            _carry_untracked(old, dest, log)
        except (OSError, proc.CommandFailed) as err:
            raise UserError(
                f"{dest} is the new checkout, but moving the old one's untracked files into "
                f"it failed ({err}); those not moved are still in {old}",
                f"move what you need from {old} into {dest}, then delete {aside}",
            ) from None
    shutil.rmtree(aside)


def _carry_untracked(old: Path, new: Path, log: Path | None) -> None:
    # Without --exclude-standard, ignored files are listed too (weights usually are ignored);
    # a nested repository is listed once, as a folder ending in "/", and moves as a whole.
    listed = _git(old, "ls-files", "--others", "-z", log=log, capture=True).stdout
    for entry in filter(None, listed.split("\0")):
        relative = entry.rstrip("/")
        if _occupied(new, relative):
            _note(log, f"not carried over (the new commit tracks this path): {relative}")
            continue
        (new / relative).parent.mkdir(parents=True, exist_ok=True)
        os.rename(old / relative, new / relative)


def _occupied(root: Path, relative: str) -> bool:
    """Whether ``root/relative`` exists, or one of its parents is something other than a folder."""
    path = root
    parts = Path(relative).parts
    for i, part in enumerate(parts):
        path = path / part
        if not os.path.lexists(path):
            return False
        if i == len(parts) - 1 or path.is_symlink() or not path.is_dir():
            return True
    return True


def _note(log: Path | None, text: str) -> None:
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"[thbench] {text}\n")

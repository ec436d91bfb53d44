"""Pinned checkouts against a real local bare repository standing in for GitHub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from thbench import proc, repo, specs
from thbench.errors import UserError
from thbench.specs import Kind, Repo

UNKNOWN = "0123456789abcdef0123456789abcdef01234567"
IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def git(*args: str, cwd: Path | None = None) -> str:
    return proc.run(["git", *IDENTITY, *args], cwd=cwd, capture=True).stdout.strip()


@dataclass(frozen=True)
class Remote:
    bare: Path
    url: str
    first: str  # inference.py says "one"; not a branch tip
    second: str  # inference.py says "two"; also tracks new.py; the tip of main


@pytest.fixture
def remote(tmp_path) -> Remote:
    work = tmp_path / "upstream"
    work.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    (work / "inference.py").write_text("print('one')\n")
    git("add", "inference.py", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "inference.py").write_text("print('two')\n")
    (work / "new.py").write_text("# tracked from the second commit on\n")
    git("add", "inference.py", "new.py", cwd=work)
    git("commit", "--quiet", "-m", "second", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    bare = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return Remote(bare, bare.as_uri(), first, second)


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch):
    monkeypatch.delenv(repo.MIRROR_VAR, raising=False)


def fetches(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("$ ") and " fetch " in line)


def leftovers(folder: Path, keep: str = "model") -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_checkout_reuse_move_and_carry_over(tmp_path, remote):
    dest, log = tmp_path / "envs" / "model", tmp_path / "setup.log"
    assert repo.checkout(Repo(remote.url, remote.first), dest, log=log) == dest
    assert (dest / "inference.py").read_text() == "print('one')\n"
    assert not (dest / "new.py").exists()
    assert git("-C", str(dest), "rev-parse", "HEAD") == remote.first
    assert fetches(log) == 1 and leftovers(dest.parent) == []

    # Weights land in the checkout; a re-run fetches nothing and touches nothing.
    (dest / "checkpoints").mkdir()
    (dest / "checkpoints" / "model.pth").write_bytes(b"weights")
    mtime = (dest / "inference.py").stat().st_mtime_ns
    repo.checkout(Repo(remote.url, remote.first), dest, log=log)
    assert fetches(log) == 1
    assert (dest / "checkpoints" / "model.pth").read_bytes() == b"weights"
    assert (dest / "inference.py").stat().st_mtime_ns == mtime

    # A new pinned commit: HEAD moves, untracked files follow unless the commit tracks the path.
    (dest / "new.py").write_text("an untracked file in the way\n")
    nested = dest / "pretrained_weights"
    nested.mkdir()
    git("init", "--quiet", cwd=nested)  # e.g. a weights repository cloned into the checkout
    (nested / "unet.pth").write_bytes(b"unet")
    repo.checkout(Repo(remote.url, remote.second), dest, log=log)
    assert git("-C", str(dest), "rev-parse", "HEAD") == remote.second
    assert (dest / "inference.py").read_text() == "print('two')\n"
    assert (dest / "new.py").read_text() == "# tracked from the second commit on\n"
    assert (dest / "checkpoints" / "model.pth").read_bytes() == b"weights"
    assert (nested / "unet.pth").read_bytes() == b"unet" and (nested / ".git").is_dir()
    assert "not carried over (the new commit tracks this path): new.py" in log.read_text()
    assert git("-C", str(dest), "status", "--porcelain", "--untracked-files=no") == ""
    assert leftovers(dest.parent) == []


def test_a_modified_tracked_file_is_rebuilt_to_pristine(tmp_path, remote):
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    pinned = Repo(remote.url, remote.first)
    repo.checkout(pinned, dest, log=log)
    (dest / "inference.py").write_text("print('patched')\n")
    (dest / "weights.bin").write_bytes(b"w")
    repo.checkout(pinned, dest, log=log)
    assert (dest / "inference.py").read_text() == "print('one')\n"
    assert (dest / "weights.bin").read_bytes() == b"w"
    assert fetches(log) == 2
    assert "rebuilding, which discards: inference.py" in log.read_text()

    (dest / "inference.py").unlink()  # a deleted tracked file counts as modified too
    repo.checkout(pinned, dest, log=None)
    assert (dest / "inference.py").read_text() == "print('one')\n"
    assert leftovers(tmp_path, keep="model") == ["remote.git", "setup.log", "upstream"]


@pytest.mark.parametrize("existing", [False, True], ids=["no-checkout", "good-checkout"])
def test_an_unknown_commit_is_an_error_and_changes_nothing(tmp_path, remote, existing):
    dest = tmp_path / "envs" / "model"
    if existing:
        repo.checkout(Repo(remote.url, remote.first), dest, log=None)
        (dest / "weights.bin").write_bytes(b"w")
    with pytest.raises(UserError) as caught:
        repo.checkout(Repo(remote.url, UNKNOWN), dest, log=tmp_path / "setup.log")
    err = caught.value
    assert remote.url in err.message and UNKNOWN in err.message
    assert repo.MIRROR_VAR in err.tip and "[repo] commit" in err.tip
    if existing:
        assert git("-C", str(dest), "rev-parse", "HEAD") == remote.first
        assert (dest / "weights.bin").read_bytes() == b"w"
        assert leftovers(dest.parent) == []
    else:
        assert list(dest.parent.iterdir()) == []


def test_an_unreachable_remote_names_the_url(tmp_path):
    url = (tmp_path / "missing.git").as_uri()
    with pytest.raises(UserError) as caught:
        repo.checkout(Repo(url, UNKNOWN), tmp_path / "envs" / "model", log=None)
    assert caught.value.message.startswith(f"cannot fetch {url} (for commit {UNKNOWN})")
    assert list((tmp_path / "envs").iterdir()) == []


def test_a_folder_that_is_not_a_checkout_is_not_replaced(tmp_path, remote):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as caught:
        repo.checkout(Repo(remote.url, remote.first), dest, log=None)
    assert "is not a git checkout" in caught.value.message
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]

    (dest / "notes.txt").unlink()  # an empty folder is simply filled
    repo.checkout(Repo(remote.url, remote.first), dest, log=None)
    assert (dest / "inference.py").read_text() == "print('one')\n"


def test_checkout_through_a_mirror_never_touches_the_network(tmp_path, remote, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "example").mkdir(parents=True)
    remote.bare.rename(mirror / "example" / "model")
    monkeypatch.setenv(repo.MIRROR_VAR, mirror.as_uri() + "/")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")  # git refuses https:// outright
    dest = tmp_path / "model"
    repo.checkout(Repo("https://github.com/example/model", remote.second), dest, log=None)
    assert (dest / "inference.py").read_text() == "print('two')\n"
    assert git("-C", str(dest), "remote", "get-url", "origin") == f"{mirror.as_uri()}/example/model"
    assert git("-C", str(dest), "remote", "get-url", "upstream") == "https://github.com/example/model"

    with pytest.raises(UserError) as caught:  # a mirror without the repository
        repo.checkout(Repo("https://github.com/example/other", remote.second), tmp_path / "o",
                      log=None)
    assert f"{mirror.as_uri()}/example/other" in caught.value.message
    assert repo.MIRROR_VAR in caught.value.tip


def _protocol(monkeypatch, version: int) -> None:
    """Make every git command below speak the given wire protocol (config by environment)."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.version")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(version))


@pytest.fixture
def strict_remote(remote) -> Remote:
    for key in ("uploadpack.allowReachableSHA1InWant", "uploadpack.allowAnySHA1InWant",
                "uploadpack.allowTipSHA1InWant"):
        git("-C", str(remote.bare), "config", key, "false")
    return remote


def test_protocol_v0_server_refusing_unadvertised_commits_gets_a_full_fetch(
    tmp_path, strict_remote, monkeypatch
):
    # Over protocol v0 a server without uploadpack.allow*SHA1InWant refuses a commit that is
    # not a branch or tag tip ("Server does not allow request for unadvertised object").
    _protocol(monkeypatch, 0)
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    repo.checkout(Repo(strict_remote.url, strict_remote.first), dest, log=log)
    assert (dest / "inference.py").read_text() == "print('one')\n"
    text = log.read_text()
    assert "unadvertised object" in text and "fetching every branch and tag instead" in text
    assert fetches(log) == 2

    with pytest.raises(UserError) as caught:  # after the full fetch: the commit is not there
        repo.checkout(Repo(strict_remote.url, UNKNOWN), tmp_path / "other", log=None)
    assert caught.value.message.startswith(f"commit {UNKNOWN} is not in {strict_remote.url}")


def test_protocol_v2_serves_a_non_tip_commit_whatever_the_server_config(
    tmp_path, strict_remote, monkeypatch
):
    # git 2.39's protocol v2 (the default) does not check wants against the advertised refs,
    # so the shallow fetch by id succeeds even with every uploadpack.allow*SHA1InWant false.
    _protocol(monkeypatch, 2)
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    repo.checkout(Repo(strict_remote.url, strict_remote.first), dest, log=log)
    assert (dest / "inference.py").read_text() == "print('one')\n"
    assert fetches(log) == 1 and "fetching every branch" not in log.read_text()


# --- [repo] exclude: a partial clone with a sparse checkout ----------------------------------


@dataclass(frozen=True)
class DocsRemote:
    bare: Path
    url: str
    pinned: str  # inference.py, docs/demo.gif, docs/logo.png, src/docs/keep.gif; not a tip
    gif_blob: str  # docs/demo.gif's blob


def docs_remote(tmp_path: Path, *, damaged: bool, filters: bool) -> DocsRemote:
    """A bare repository; ``damaged``: docs/demo.gif's blob deleted from it (as in some mirrors)."""
    work = tmp_path / "docs-upstream"
    (work / "docs").mkdir(parents=True)
    (work / "src" / "docs").mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    (work / "inference.py").write_text("print('docs')\n")
    (work / "docs" / "demo.gif").write_bytes(b"GIF89a demo animation")
    (work / "docs" / "logo.png").write_bytes(b"\x89PNG watermark")
    (work / "src" / "docs" / "keep.gif").write_bytes(b"GIF89a read by the code")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "pinned", cwd=work)
    pinned = git("rev-parse", "HEAD", cwd=work)
    gif_blob = git("rev-parse", "HEAD:docs/demo.gif", cwd=work)
    (work / "inference.py").write_text("print('later')\n")
    git("commit", "--quiet", "-am", "later", cwd=work)  # the pinned commit is not a branch tip
    bare = tmp_path / "docs-remote.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))  # a local clone keeps objects loose
    if damaged:
        loose = bare / "objects" / gif_blob[:2] / gif_blob[2:]
        assert loose.is_file() and not list((bare / "objects" / "pack").glob("*.pack"))
        loose.unlink()
        assert proc.run(["git", "--git-dir", str(bare), "cat-file", "-e", gif_blob],
                        check=False).returncode != 0
    if filters:
        git("--git-dir", str(bare), "config", "uploadpack.allowFilter", "true")
    return DocsRemote(bare, bare.as_uri(), pinned, gif_blob)


GIFS = ("docs/*.gif",)


def files(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(dest).parts)


def test_exclude_checks_out_the_pinned_commit_from_a_server_lacking_a_left_out_blob(tmp_path):
    remote = docs_remote(tmp_path, damaged=True, filters=True)
    dest, log = tmp_path / "envs" / "model", tmp_path / "setup.log"
    with pytest.raises(UserError) as caught:  # the plain fetch: the server aborts its pack
        repo.checkout(Repo(remote.url, remote.pinned), dest, log=None)
    assert caught.value.message.startswith(f"cannot fetch {remote.url}")
    assert "[repo] exclude" in caught.value.tip
    assert list(dest.parent.iterdir()) == []

    pinned = Repo(remote.url, remote.pinned, GIFS)
    assert repo.checkout(pinned, dest, log=log) == dest
    assert git("-C", str(dest), "rev-parse", "HEAD") == remote.pinned
    assert git("-C", str(dest), "status", "--porcelain") == ""
    # Anchored at the root: src/docs/keep.gif is not under docs/, so it is checked out.
    assert files(dest) == ["docs/logo.png", "inference.py", "src/docs/keep.gif"]
    assert (dest / "docs" / "logo.png").read_bytes() == b"\x89PNG watermark"
    assert repo.excluded_paths(dest) == ["docs/demo.gif"]
    text = log.read_text()
    assert "--filter=blob:none" in text and "sparse-checkout set --no-cone" in text
    assert "left out of the checkout ([repo] exclude = ['docs/*.gif']): docs/demo.gif" in text
    assert fetches(log) == 1 and leftovers(dest.parent) == []

    (dest / "checkpoints").mkdir()
    (dest / "checkpoints" / "model.pth").write_bytes(b"weights")
    mtime = (dest / "inference.py").stat().st_mtime_ns
    repo.checkout(pinned, dest, log=log)  # a re-run: no fetch, nothing touched
    assert fetches(log) == 1 and (dest / "inference.py").stat().st_mtime_ns == mtime
    assert (dest / "checkpoints" / "model.pth").read_bytes() == b"weights"


def test_a_changed_exclude_list_rebuilds_the_checkout(tmp_path):
    remote = docs_remote(tmp_path, damaged=False, filters=True)
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    every = ["docs/demo.gif", "docs/logo.png", "inference.py", "src/docs/keep.gif"]
    repo.checkout(Repo(remote.url, remote.pinned), dest, log=log)
    assert files(dest) == every and repo.excluded_paths(dest) == []
    (dest / "weights.bin").write_bytes(b"w")

    steps = [(GIFS, ["docs/demo.gif"]),
             (("docs/",), ["docs/demo.gif", "docs/logo.png"]),  # not src/docs/: anchored
             ((), [])]
    for count, (exclude, left_out) in enumerate(steps, start=2):
        repo.checkout(Repo(remote.url, remote.pinned, exclude), dest, log=log)
        assert fetches(log) == count, exclude
        assert repo.excluded_paths(dest) == left_out
        assert files(dest) == sorted(set(every) - set(left_out)) + ["weights.bin"]
        assert git("-C", str(dest), "status", "--porcelain", "--untracked-files=no") == ""
        assert git("-C", str(dest), "rev-parse", "HEAD") == remote.pinned
    assert log.read_text().count("left-out paths changed") == 3
    assert leftovers(tmp_path, keep="model") == ["docs-remote.git", "docs-upstream", "setup.log"]


@pytest.mark.parametrize("existing", [False, True], ids=["no-checkout", "good-checkout"])
def test_a_lacking_blob_that_exclude_does_not_cover_is_a_user_error(tmp_path, existing):
    remote = docs_remote(tmp_path, damaged=True, filters=True)
    dest = tmp_path / "envs" / "model"
    if existing:
        repo.checkout(Repo(remote.url, remote.pinned, GIFS), dest, log=None)
    with pytest.raises(UserError) as caught:
        repo.checkout(Repo(remote.url, remote.pinned, ("docs/*.png",)), dest, log=None)
    err = caught.value
    assert err.message.startswith(f"checking out {remote.pinned[:12]} from {remote.url} failed: "
                                  "the server cannot send docs/demo.gif, which [repo] exclude "
                                  "does not cover")
    assert "[repo] exclude" in err.tip
    if existing:  # untouched
        assert repo.excluded_paths(dest) == ["docs/demo.gif"] and leftovers(dest.parent) == []
    else:
        assert list(dest.parent.iterdir()) == []


def test_exclude_on_a_server_that_cannot_filter_gets_every_blob(tmp_path):
    remote = docs_remote(tmp_path, damaged=False, filters=False)
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    repo.checkout(Repo(remote.url, remote.pinned, GIFS), dest, log=log)
    assert "filtering not recognized by server" in log.read_text()
    assert repo.excluded_paths(dest) == ["docs/demo.gif"] and not (dest / "docs/demo.gif").exists()
    assert git("-C", str(dest), "rev-parse", "HEAD") == remote.pinned


def test_exclude_on_a_v0_server_refusing_commit_ids_gets_an_unfiltered_full_fetch(
    tmp_path, monkeypatch
):
    # Such a server refuses the checkout's lazy blob fetches too (blobs are never advertised),
    # so the full fetch brings every blob; the sparse checkout still leaves the GIF out.
    remote = docs_remote(tmp_path, damaged=False, filters=True)
    for key in ("uploadpack.allowReachableSHA1InWant", "uploadpack.allowAnySHA1InWant",
                "uploadpack.allowTipSHA1InWant"):
        git("--git-dir", str(remote.bare), "config", key, "false")
    _protocol(monkeypatch, 0)
    dest, log = tmp_path / "model", tmp_path / "setup.log"
    repo.checkout(Repo(remote.url, remote.pinned, GIFS), dest, log=log)
    assert "fetching every branch and tag instead" in log.read_text() and fetches(log) == 2
    assert repo.excluded_paths(dest) == ["docs/demo.gif"]
    assert files(dest) == ["docs/logo.png", "inference.py", "src/docs/keep.gif"]


@pytest.mark.parametrize(("value", "why"), [
    ('["!docs/*.gif"]', "without a leading '!' or '#'"),
    ('["/docs"]', "relative to the checkout's root"),
    ('["docs/../src"]', "without '..'"),
    ('[""]', "every item must be a non-empty string"),
    ('[" docs"]', "no surrounding spaces or line breaks"),
    ('"docs/*.gif"', "must be a list"),
])
def test_exclude_patterns_are_validated(tmp_path, value, why):
    from tests.test_specs import GOOD_MODEL, write_spec

    text = GOOD_MODEL.replace('commit = "cd4c', f'exclude = {value}\ncommit = "cd4c')
    spec, problems = specs.parse(write_spec(tmp_path, Kind.MODEL, "demo", text), Kind.MODEL)
    assert spec is None and len(problems) == 1
    assert problems[0].startswith("solutions/demo/spec.toml: repo.exclude = ")
    assert why in problems[0] and "(e.g. [\"docs/*.gif\"])" in problems[0]

    good = GOOD_MODEL.replace('commit = "cd4c', 'exclude = ["docs/*.gif"]\ncommit = "cd4c')
    spec, problems = specs.parse(write_spec(tmp_path / "ok", Kind.MODEL, "demo", good), Kind.MODEL)
    assert problems == [] and spec.repo.exclude == ("docs/*.gif",)

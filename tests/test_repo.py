"""Pinned checkouts against a real local bare repository standing in for GitHub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from thbench import proc, repo
from thbench.errors import UserError
from thbench.specs import Repo

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

"""A THB_GITHUB_MIRROR folder made from local bare repositories, which stay untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Context

import tasks
from tests.test_repo import GIFS, docs_remote, files, git
from thbench import mirror, repo
from thbench.errors import UserError
from thbench.specs import Repo

GITHUB_URL = "https://github.com/example/model"


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every path under ``folder``: its mode and its bytes (or a link's target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        content = (str(path.readlink()) if path.is_symlink() else
                   path.read_bytes() if path.is_file() else b"")
        found[str(path.relative_to(folder))] = (mode, content)
    return found


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A source lacking docs/demo.gif's blob and with no uploadpack config of its own."""
    source = docs_remote(tmp_path, damaged=True, filters=False)
    monkeypatch.setenv(repo.MIRROR_VAR, "")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")  # a checkout may never reach GitHub
    return source


def test_the_mirror_task_serves_a_partial_fetch_and_leaves_the_source_untouched(
    tmp_path, served, monkeypatch, capsys
):
    before = snapshot(served.bare)
    dest = tmp_path / "mirror"
    tasks.mirror(Context(), dest=str(dest), repo=[f"example/model={served.bare}"])
    out = capsys.readouterr().out
    assert f"made  example/model → {served.bare} (1 ref)" in out
    line = f"export {repo.MIRROR_VAR}={dest.as_uri()}/"
    assert out.splitlines()[-1] == line
    served_repo = dest / "example" / "model"
    assert (served_repo / "objects" / "info" / "alternates").read_text() == \
        f"{served.bare / 'objects'}\n"
    assert git("--git-dir", str(served_repo), "config", "uploadpack.allowFilter") == "true"
    assert git("--git-dir", str(served_repo), "symbolic-ref", "HEAD") == "refs/heads/main"

    monkeypatch.setenv(repo.MIRROR_VAR, line.split("=", 1)[1])
    dest_co = tmp_path / "model"
    repo.checkout(Repo(GITHUB_URL, served.pinned, GIFS), dest_co, log=None)
    assert git("-C", str(dest_co), "rev-parse", "HEAD") == served.pinned
    assert files(dest_co) == ["docs/logo.png", "inference.py", "src/docs/keep.gif"]
    assert repo.excluded_paths(dest_co) == ["docs/demo.gif"]
    with pytest.raises(UserError):  # without exclude the lacking blob still stops the fetch
        repo.checkout(Repo(GITHUB_URL, served.pinned), tmp_path / "plain", log=None)

    mirrored = snapshot(served_repo)
    tasks.mirror(Context(), dest=str(dest), repo=[f"example/model={served.bare}"])
    assert "unchanged  example/model" in capsys.readouterr().out
    assert snapshot(served_repo) == mirrored
    assert snapshot(served.bare) == before


def test_a_re_run_follows_the_source(tmp_path, served):
    dest = tmp_path / "mirror"
    [first] = mirror.make(dest, [("example/model", served.bare)])
    git("--git-dir", str(served.bare), "update-ref", "refs/heads/pinned", served.pinned)
    [again] = mirror.make(dest, [("example/model", served.bare)])
    assert (first.action, first.refs, again.action, again.refs) == ("made", 1, "rebuilt", 2)
    assert git("--git-dir", str(again.path), "rev-parse", "refs/heads/pinned") == served.pinned
    assert sorted(p.name for p in (dest / "example").iterdir()) == ["model"]

    other = tmp_path / "other.git"  # another source for the same name
    git("clone", "--quiet", "--bare", str(served.bare), str(other))
    [moved] = mirror.make(dest, [("example/model", other)])
    assert moved.action == "rebuilt"
    assert (moved.path / "objects" / "info" / "alternates").read_text() == f"{other / 'objects'}\n"


def test_a_work_tree_is_a_source_too(tmp_path, served):
    work = tmp_path / "docs-upstream"  # docs_remote's working repository
    [made] = mirror.make(tmp_path / "mirror", [("example/model", work)])
    assert (made.path / "objects" / "info" / "alternates").read_text() == \
        f"{work / '.git' / 'objects'}\n"


@pytest.mark.parametrize(("pairs", "message"), [
    ([], "no repositories given"),
    (["example/model"], "'example/model' is not owner/name=PATH"),
    (["example=/x"], "'example=/x' is not owner/name=PATH"),
    (["a/b/c=/x"], "'a/b/c=/x' is not owner/name=PATH"),
    (["../model=/x"], "'../model=/x' is not owner/name=PATH"),
    (["example/..=/x"], "'example/..=/x' is not owner/name=PATH"),
    (["example/model=/x", "example/model=/y"], "example/model is given twice"),
])
def test_bad_pairs_are_named(pairs, message):
    with pytest.raises(UserError) as caught:
        mirror.parse_pairs(pairs)
    assert caught.value.message == message
    assert "--repo OpenTalker/SadTalker=" in caught.value.tip


def test_what_is_not_a_repository_and_what_was_not_made_here_are_refused(tmp_path, served):
    dest = tmp_path / "mirror"
    inside = tmp_path / "docs-upstream" / "docs"  # a plain folder inside a work tree
    for source, message in ((tmp_path / "missing", "does not exist"),
                            (inside, "is not a git repository")):
        with pytest.raises(UserError) as caught:
            mirror.make(dest, [("example/model", source)])
        assert caught.value.message == f"{source} {message}" + (
            " (bare, or a work tree with .git)" if "git" in message else "")
    assert not dest.exists()

    foreign = dest / "example" / "model"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as caught:
        mirror.make(dest, [("example/model", served.bare)])
    assert "was not made by `invoke mirror`" in caught.value.message
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["model"]


def test_the_task_without_dest_prints_error_and_tip(capsys):
    with pytest.raises(SystemExit) as caught:
        tasks.mirror(Context(), repo=["example/model=/x"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR: no --dest given\nTIP: e.g. `uv run invoke mirror --dest")

"""benchmarks/install.py: links counted once, spec names, and a real run on the still lock."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from thbench import envs, paths, proc
from thbench.errors import UserError

from . import standins

SCRIPT = paths.REPO_ROOT / "benchmarks" / "install.py"


@pytest.fixture(scope="module")
def bench():
    found = importlib.util.spec_from_file_location("bench_install", SCRIPT)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def test_a_hard_linked_file_counts_once_in_a_union(bench, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "shared").write_bytes(os.urandom(1 << 16))
    os.link(one / "shared", two / "shared")
    (two / "own").write_bytes(os.urandom(1 << 16))
    a, b = bench.measured.inodes(one), bench.measured.inodes(two)
    st = os.lstat(one / "shared")
    shared = a[(st.st_dev, st.st_ino)]
    assert shared >= 1 << 16 and (st.st_dev, st.st_ino) in b
    assert bench.measured.union_bytes(a, b) == sum(a.values()) + sum(b.values()) - shared


def test_disk_is_counted_per_cache_layout_and_one_cache_shares_links_across_specs(bench):
    numpy, own = (1, 1), {n: (1, 100 + n) for n in range(4)}  # (st_dev, st_ino) keys
    maps = {("model-a", "uv", "cold"): {numpy: 10, own[0]: 1}, ("model-a", "uv", "warm"): {numpy: 10},
            ("model-b", "uv", "cold"): {(1, 2): 10, own[1]: 1},  # its own cache: its own inode
            ("model-a", "uv", "shared"): {numpy: 10, own[2]: 1},
            ("model-b", "uv", "shared"): {numpy: 10, own[3]: 1}}  # one cache: the same inode
    caches = {("uv", "own cache per spec"): {"a": {(2, 1): 5}, "b": {(2, 2): 5}},
              ("uv", "one cache, all specs"): {"shared": {(2, 3): 7}}}
    rows = {d["layout"]: d for d in bench.measured.disk(maps, caches)}
    own_cache, one_cache = rows["own cache per spec"], rows["one cache, all specs"]
    assert (own_cache["envs"], own_cache["sum_bytes"], own_cache["together_bytes"]) == (3, 32, 22)
    assert own_cache["cache_bytes"] == 10 and own_cache["with_cache_bytes"] == 32
    assert (one_cache["envs"], one_cache["sum_bytes"], one_cache["together_bytes"]) == (2, 22, 12)
    assert one_cache["with_cache_bytes"] == 19
    assert bench.plan([]) == [] and bench.measured.LAYOUTS["shared"] == "one cache, all specs"


def test_pip_build_constraints_are_build_only_where_this_pip_can(bench):
    python = envs.find_python("3.11", None, install=False)
    version = bench.measured.pip_version(python)  # "pip 23.2.1"
    newer = tuple(int(n) for n in version.split()[1].split(".")[:2]) >= (25, 3)
    assert bench.measured.has_build_constraint(python) is newer
    row = {"spec": "model-x", "tool": "pip", "cache": "cold", "build_constraint": "PIP_CONSTRAINT",
           "cache_bytes": 1 << 30, "disk_bytes": 1 << 20}
    [note] = [n for n in bench.measured.notes([row]) if n.startswith("model-x")]
    assert "PIP_CONSTRAINT" in note and "too" in note
    assert bench.measured.notes([])[0].startswith("cold/warm rows: each spec its own cache")


def test_a_work_path_that_is_a_file_is_an_error_and_a_users_folder_stays(bench, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine\n")
    assert bench.main(["still", "--work", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "TIP" in err and "Traceback" not in err
    assert a_file.read_text() == "mine\n"
    mine = tmp_path / "mine"
    mine.mkdir()
    assert bench.main(["nosuchspec", "--work", str(mine)]) == 2
    assert "no spec named 'nosuchspec'" in capsys.readouterr().err and mine.is_dir()
    new = tmp_path / "new" / "deeper"
    assert bench.main(["nosuchspec", "--work", str(new)]) == 2
    assert not (tmp_path / "new").exists()


def test_only_what_the_run_made_is_removed(bench, tmp_path):
    mine = tmp_path / "mine"
    (mine / "model-still" / "uv-cold").mkdir(parents=True)
    (mine / "results.json").write_text("{}")
    bench._clean(mine, bench._work_folder(tmp_path / "other")[1], None)  # made nothing in mine
    bench._clean(mine, None, mine / "results.json")  # the user's folder: its content only
    assert mine.is_dir() and [p.name for p in mine.iterdir()] == ["results.json"]
    made, top = bench._work_folder(tmp_path / "a" / "b")
    assert top == tmp_path / "a"
    made.mkdir(parents=True)
    bench._clean(made, top, None)
    assert not top.exists()


def test_spec_names_of_any_kind(bench):
    assert bench.find_spec("metric:face").kind.value == "metric"
    assert bench.find_spec("piper").kind.value == "tts"
    with pytest.raises(UserError, match="'face' names a check and a metric") as caught:
        bench.find_spec("face")
    assert caught.value.tip == "say which: check:face or metric:face"
    with pytest.raises(UserError, match="did you mean 'still'"):
        bench.find_spec("stil")
    with pytest.raises(UserError, match="unknown spec kind 'modle'"):
        bench.find_spec("modle:still")


@pytest.mark.slow
def test_bench_install_on_the_still_lock(tmp_path):
    work, out = tmp_path / "work", tmp_path / "install.json"
    done = proc.run([sys.executable, SCRIPT, "still", "--work", work, "--json", out, "--keep",
                     "--repeat", "1"], capture=True, timeout=1200)
    assert f"results: {out}" in done.stdout
    report = json.loads(out.read_text())
    assert report["schema"] == 1 and report["kind"] == "install"
    assert report["machine"]["cores"] >= 1 and report["versions"]["uv"].startswith("uv ")
    rows = report["results"]
    assert {(r["tool"], r["cache"]) for r in rows} >= {
        ("uv", "cold"), ("uv", "warm"), ("uv", "shared"), ("pip", "cold"), ("pip", "warm"),
        ("pip", "shared")}
    assert len(rows) == len({(r["tool"], r["cache"]) for r in rows})
    for r in rows:
        assert r["spec"] == "model-still" and r["imports"] == ["imageio_ffmpeg"]
        assert set(r["seconds"]) == {"venv", "lock"} and r["disk_bytes"] > 1 << 20
        assert r["packages"] == {"imageio-ffmpeg": "0.6.0"} and r["matches_lock"] and not r["extra"]
        assert set(r["import"]) == {"first_s", "warm_s", "interpreter_start_s"}
        # Each install really gave an env that works: its ffmpeg binary is found.
        check = "import os, imageio_ffmpeg; assert os.access(imageio_ffmpeg.get_ffmpeg_exe(), os.X_OK)"
        proc.run([os.path.join(r["env"], "bin", "python"), "-c", check], timeout=120)
    assert report["same_packages"] == {"model-still": True}
    assert set(report["ratios"]) == {"model-still", "all"}
    assert all(isinstance(v, float) and v > 0 for v in report["ratios"]["all"].values())
    disk = {d["tool"]: d for d in report["disk"] if d["layout"] == "own cache per spec"}
    assert disk["uv"]["envs"] == disk["pip"]["envs"] == 2
    one = {d["tool"]: d for d in report["disk"] if d["layout"] == "one cache, all specs"}
    assert one["uv"]["envs"] == one["pip"]["envs"] == 1 and one["uv"]["cache_bytes"] > 0
    assert disk["pip"]["together_bytes"] == disk["pip"]["sum_bytes"]  # pip copies: nothing shared
    if report["filesystem"] not in ("btrfs", "xfs"):  # there uv clones (own inodes), not links
        assert disk["uv"]["together_bytes"] < disk["uv"]["sum_bytes"]
        assert disk["uv"]["with_cache_bytes"] < disk["uv"]["together_bytes"] + disk["uv"]["cache_bytes"]


TORCH_SPEC = """\
schema = 1
description = "a lock with torch held, torch from a folder of wheels"
python = "3.11"
requirements = "requirements.lock"
build_constraints = "build-constraints.txt"
imports = ["six", "torch"]

[torch]
packages = ["torch==2.1.2+cpu"]
index = "{index}"

[command]
argv = ["{{python}}", "-c", "print(1)"]
"""


@pytest.mark.slow
def test_a_spec_with_torch_gets_its_torch_step_from_its_index_with_both_tools(tmp_path):
    wheels = tmp_path / "wheels"
    standins.build_torch(wheels, "2.1.2+cpu")  # a stand-in torch: a tiny wheel, never PyPI's
    folder = tmp_path / "specs" / "checks" / "tiny"
    folder.mkdir(parents=True)
    (folder / "requirements.in").write_text("six==1.17.0\n")
    proc.run([envs.uv_binary(), "pip", "compile", "--quiet", "--generate-hashes",
              "--python-version", "3.11", folder / "requirements.in", "-o", folder / "requirements.lock"])
    (folder / "spec.toml").write_text(TORCH_SPEC.format(index=wheels.as_uri()))
    (folder / "build-constraints.txt").write_text("cython<3.1\n")
    out = tmp_path / "install.json"
    proc.run([sys.executable, SCRIPT, "tiny", "--work", tmp_path / "work", "--json", out, "--keep",
              "--repeat", "1"], env={"THB_SPECS_DIR": str(tmp_path / "specs")}, timeout=600)
    report = json.loads(out.read_text())
    for r in report["results"]:
        assert set(r["seconds"]) == {"venv", "torch", "lock"}, r
        assert r["packages"] == {"six": "1.17.0", "torch": "2.1.2+cpu"} and r["matches_lock"]
        if r["tool"] == "pip":  # the pip `python -m venv` bundles decides how
            builds_only = "--build-constraint" in proc.run(
                [os.path.join(r["env"], "bin", "python"), "-m", "pip", "install", "--help"],
                capture=True).stdout
            assert r["build_constraint"] == ("--build-constraint" if builds_only else "PIP_CONSTRAINT")
            assert ("--build-constraint" in Path(r["log"]).read_text()) is builds_only
        else:
            assert r["build_constraint"] is None
    assert report["same_packages"] == {"check-tiny": True}
    assert any("PIP_CONSTRAINT" in n for n in report["notes"]) == any(
        r.get("build_constraint") == "PIP_CONSTRAINT" for r in report["results"])


@pytest.mark.slow
def test_a_pip_with_build_constraint_is_told_so(bench, tmp_path):
    """uv's seed pip is PyPI's newest (25.3+ has --build-constraint); the bundled one is older."""
    proc.run([envs.uv_binary(), "venv", "--seed", "--python", "3.11", tmp_path / "venv"], timeout=300)
    assert bench.measured.has_build_constraint(tmp_path / "venv" / "bin" / "python")

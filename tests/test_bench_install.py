"""benchmarks/install.py: links counted once, spec names, and a real run on the still lock."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

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
    a, b = bench.inodes(one), bench.inodes(two)
    st = os.lstat(one / "shared")
    shared = a[(st.st_dev, st.st_ino)]
    assert shared >= 1 << 16 and (st.st_dev, st.st_ino) in b
    assert bench.union_bytes(a, b) == sum(a.values()) + sum(b.values()) - shared


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
        ("uv", "cold"), ("uv", "warm"), ("pip", "cold"), ("pip", "warm")}
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
    disk = {d["tool"]: d for d in report["disk"]}
    assert disk["uv"]["envs"] == disk["pip"]["envs"] == 2
    assert disk["pip"]["together_bytes"] == disk["pip"]["sum_bytes"]  # pip copies: nothing shared
    if report["filesystem"] not in ("btrfs", "xfs"):  # there uv clones (own inodes), not links
        assert disk["uv"]["together_bytes"] < disk["uv"]["sum_bytes"]
        assert disk["uv"]["with_cache_bytes"] < disk["uv"]["together_bytes"] + disk["uv"]["cache_bytes"]


TORCH_SPEC = """\
schema = 1
description = "a lock with torch held, torch from a folder of wheels"
python = "3.11"
requirements = "requirements.lock"
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
    out = tmp_path / "install.json"
    proc.run([sys.executable, SCRIPT, "tiny", "--work", tmp_path / "work", "--json", out,
              "--repeat", "1"], env={"THB_SPECS_DIR": str(tmp_path / "specs")}, timeout=600)
    report = json.loads(out.read_text())
    for r in report["results"]:
        assert set(r["seconds"]) == {"venv", "torch", "lock"}, r
        assert r["packages"] == {"six": "1.17.0", "torch": "2.1.2+cpu"} and r["matches_lock"]
    assert report["same_packages"] == {"check-tiny": True}

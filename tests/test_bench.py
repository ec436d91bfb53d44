"""`invoke bench` for real: the `still` env, a model that fails, a slow one killed mid-bench.

Every cell is an ordinary run (its own run folder and run.json); these tests read the folders a
user would read. Metric envs are not set up here (tests/test_metric_scripts.py builds them), so
every score says "not computed" for them — which is itself checked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from thbench import bench as benches
from thbench import paths, proc, run_record

pytestmark = pytest.mark.slow
FACE = paths.REPO_ROOT / "assets" / "face.png"

CASES = """\
schema = 1
[[case]]
id = "hello"
image = "{face}"
text = "Hello there."
[[case]]
id = "tone"
image = "{face}"
audio = "{audio}"
tags = ["audio"]
"""

BROKEN = """\
schema = 1
description = "a model whose inference always fails"
python = "3.11"
gpu = "none"
requirements = "requirements.lock"
[inference]
argv = ["{python}", "-c", "import sys; print('upstream says: out of luck'); sys.exit(4)"]
output = "result.mp4"
timeout = 60
"""

SLOW = """\
\"\"\"`still`, after a pause: long enough for a test to kill the bench in the middle.\"\"\"
import os, runpy, sys, time
time.sleep(float(os.environ.get("THB_TEST_SLOW_SECONDS", "3")))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def world(tmp_path, ready_envs, monkeypatch) -> dict:
    """A specs root with the real still, piper, face check and metric specs, plus two test
    models; envs in the session's ready folder; outputs in tmp."""
    root = tmp_path / "specs"
    for kind in ("tts", "checks", "metrics"):
        shutil.copytree(paths.REPO_ROOT / kind, root / kind)
    shutil.copytree(paths.REPO_ROOT / "solutions" / "still", root / "solutions" / "still")
    broken = root / "solutions" / "broken"
    broken.mkdir()
    (broken / "requirements.lock").write_text("")
    (broken / "spec.toml").write_text(BROKEN)
    slow = root / "solutions" / "slow"
    shutil.copytree(root / "solutions" / "still", slow)
    (slow / "slow.py").write_text(SLOW)
    spec = (slow / "spec.toml").read_text().replace(
        '"{spec_dir}/still.py"', '"{spec_dir}/slow.py", "{spec_dir}/still.py"')
    (slow / "spec.toml").write_text(spec.replace("Static-frame baseline", "Slow still"))
    audio = tmp_path / "tone.wav"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=1.5",
              audio])
    cases = tmp_path / "cases.toml"
    cases.write_text(CASES.format(face=FACE, audio=audio))
    env = {"THB_SPECS_DIR": str(root), "THB_ENVS_DIR": str(ready_envs),
           "THB_OUTPUTS_DIR": str(tmp_path / "outputs"), "THB_TEST_SLOW_SECONDS": "3"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for model in ("broken", "slow"):
        run_cli("nox", "-s", f"setup-{model}", check=True)
    return {"cases": cases, "outputs": tmp_path / "outputs", "root": root}


def run_cli(tool: str, *args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """`invoke …` / `nox …` as a user types them, in the test's environment."""
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=paths.REPO_ROOT,
                          capture_output=True, text=True, timeout=900, check=check, **kwargs)


def bench_folder(outputs: Path) -> Path:
    (folder,) = (outputs / "bench").iterdir()
    return folder


def cells(folder: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["cell"]: json.loads(p.read_text())
            for p in (folder / "cells").glob("*.json")}


def one_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(("ERROR:", "TIP:"))]
    assert [line[:4] for line in lines] == ["ERRO", "TIP:"], result.stderr
    return "\n".join(lines)


def test_mistakes_are_found_before_the_first_run(world):
    outputs, cases = world["outputs"], str(world["cases"])
    said = {
        "unknown": one_error(run_cli("invoke", "bench", "--models", "still,stil", "--cases", cases)),
        "repeated": one_error(run_cli("invoke", "bench", "--models", "still,still")),
        "empty": one_error(run_cli("invoke", "bench", "--models", "still,,broken")),
        "cases": one_error(run_cli("invoke", "bench", "--models", "still", "--cases",
                                   str(world["root"]))),
        "repeat": one_error(run_cli("invoke", "bench", "--models", "still", "--repeat", "0")),
        "resume": one_error(run_cli("invoke", "bench", "--resume", "20990101-000000-0000")),
    }
    assert "did you mean 'still'" in said["unknown"]
    assert "more than once" in said["repeated"] and "empty name" in said["empty"]
    assert "no cases file" in said["cases"] and "at least 1" in said["repeat"]
    for flag, value in (("--repeat", "two"), ("--jobs", "0"), ("--time-limit", "x")):
        assert f"{flag} {value}: not a whole number" in one_error(
            run_cli("invoke", "bench", "--models", "still", flag, value))
    assert "cannot change it" in one_error(
        run_cli("invoke", "bench", "--resume", "x", "--metrics", "face"))
    assert "no bench '20990101-000000-0000'" in said["resume"]
    bad = world["cases"].with_name("bad.toml")
    bad.write_text(world["cases"].read_text().replace('"hello"', '"tone"')
                   .replace(str(FACE), "nowhere.png", 1))
    message = one_error(run_cli("invoke", "bench", "--models", "still", "--cases", str(bad)))
    assert f"{bad}:4: case[0].image:" in message and "'tone' is used by an earlier case" in message
    not_set_up = run_cli("invoke", "bench", "--models", "still", "--cases", cases,
                         env=dict(os.environ, THB_ENVS_DIR=str(world["root"] / "none")))
    assert "is not set up" in one_error(not_set_up)
    assert not (outputs / "bench").exists() and not (outputs / "still").exists()


def test_a_bench_id_already_taken_is_never_reused(world, monkeypatch):
    """Two benches planned in the same second with the same random part: the second gets
    another id and a folder of its own; the first bench's record is untouched."""
    ids = iter(["20990101-000000-aaaa", "20990101-000000-aaaa", "20990101-000000-bbbb"])
    monkeypatch.setattr(run_record, "new_run_id", lambda: next(ids))
    request = benches.Request(models="still", cases=world["cases"], face_check=False)
    first = benches.plan(request)
    record = (first.folder / "bench.json").read_bytes()
    second = benches.plan(request)
    assert (first.id, second.id) == ("20990101-000000-aaaa", "20990101-000000-bbbb")
    assert (first.folder / "bench.json").read_bytes() == record
    assert json.loads((second.folder / "bench.json").read_text())["bench_id"] == second.id


def test_a_bench_runs_every_cell_speaks_once_and_a_failure_does_not_stop_it(world):
    result = run_cli("invoke", "bench", "--models", "broken,still", "--cases", str(world["cases"]),
                     "--repeat", "2")
    assert result.returncode == 1, result.stderr  # some cells failed: the bench says so
    assert "Traceback" not in result.stderr
    folder = bench_folder(world["outputs"])
    found = cells(folder)
    assert len(found) == 8
    for cell_id, record in found.items():
        model, case, repeat = cell_id.split("/")
        run_dir = (folder / record["run_dir"]).resolve()
        assert (folder / "runs" / model / case / repeat).resolve() == run_dir
        run = json.loads((run_dir / "run.json").read_text())
        assert run["model"] == model and record["attempt"] == 1
        if model == "broken":
            assert record["status"] == "failed" and "exited with status 4" in record["error"]
            assert run["failure"]["stage"] == "inference"
            continue
        assert record["status"] == "ok" and record["scored"] and run["status"] == "ok"
        assert run["check"]["passed"] and run["measurements"]["inference"]["peak_rss_bytes"] > 0
        assert run["measurements"]["rtf"] > 0 and run["host"]["cores"] == os.cpu_count()
        score = json.loads((run_dir / "score.json").read_text())
        assert score["run"]["bench_id"] == folder.name and score["normalised"]["fps"] == 25
        for metric in score["metrics"].values():  # no metric env is set up in this test
            assert metric["value"] is None and "not set up" in metric["not_computed"]
        if case == "hello":  # spoken once for the bench, reused by every run of every model
            assert run["speech"]["reused"]["source"] == str(folder / "speech" / "hello.wav")
            assert not (run_dir / "logs" / "tts.log").exists()
    assert sorted(p.name for p in (folder / "speech").glob("*.wav")) == ["hello.wav"]
    assert "2 ok" not in result.stderr and "4 ok, 4 failed" in result.stderr
    # Complete (failed cells are results): the report's command, by id under THB_OUTPUTS_DIR.
    assert f"report: `uv run invoke report {folder.name}`" in result.stderr

    again = run_cli("invoke", "bench", "--resume", str(folder), "--retry-failed")
    assert again.returncode == 1 and "4 cells already complete: kept" in again.stderr
    for cell_id, record in cells(folder).items():  # failed cells ran again; ok ones did not
        assert record["attempt"] == (2 if cell_id.startswith("broken/") else 1), record
        assert record["status"] == ("failed" if cell_id.startswith("broken/") else "ok")
    resumed = json.loads((folder / "bench.json").read_text())["resumed"]
    assert [r["executor"]["name"] for r in resumed] == ["local"]


def live_cells(folder: Path) -> list[str]:
    """Each cell's status; "running+" once a running cell's run folder exists."""
    return [v["status"] + ("+" if v["run_dir"] else "") for v in cells(folder).values()]


def test_kill_9_in_the_middle_then_resume_keeps_complete_cells(world):
    """The bench and every process under it die at once (kill -9, as in a power cut)."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "invoke", "bench", "--models", "slow", "--cases",
         str(world["cases"]), "--repeat", "2"], cwd=paths.REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    folder = None
    while time.monotonic() < deadline:  # wait for one cell done and the next one running
        time.sleep(0.2)
        if (world["outputs"] / "bench").exists() and any((world["outputs"] / "bench").iterdir()):
            folder = bench_folder(world["outputs"])
            states = live_cells(folder)
            if "ok+" in states and "running+" in states:
                break
    assert folder is not None, "the bench never got going"
    tree = [bench.pid] + [p.pid for p in psutil.Process(bench.pid).children(recursive=True)]
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    bench.wait(timeout=30)
    before = cells(folder)
    done = {k: v for k, v in before.items() if v["status"] == "ok"}
    interrupted = [k for k, v in before.items() if v["status"] == "running"]
    assert done and interrupted
    kept = {k: (folder / v["run_dir"]).resolve() for k, v in done.items()}
    stamps = {k: (p / "run.json").stat().st_mtime_ns for k, p in kept.items()}

    resumed = run_cli("invoke", "bench", "--resume", folder.name)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} cell{'s' if len(done) > 1 else ''} already complete: kept" in resumed.stderr
    after = cells(folder)
    assert all(v["status"] == "ok" for v in after.values())
    for cell_id, run_dir in kept.items():  # complete cells: same run, untouched
        assert (folder / after[cell_id]["run_dir"]).resolve() == run_dir
        assert (run_dir / "run.json").stat().st_mtime_ns == stamps[cell_id]
    for cell_id in interrupted:  # redone in a new folder; the dead attempt's folder stays
        old = before[cell_id]["run_dir"]
        assert after[cell_id]["attempt"] == 2 and after[cell_id]["attempts"] == [old]
        assert after[cell_id]["run_dir"] != old and (folder / old / "run.json").exists()
    runs = list((world["outputs"] / "slow").iterdir())
    assert len(runs) == len(after) + len(interrupted)


def test_the_slurm_path_through_submitits_local_executor(world):
    result = run_cli("invoke", "bench", "--models", "still", "--cases", str(world["cases"]),
                     "--executor", "submitit-local", "--time-limit", "10")
    assert result.returncode == 0, result.stderr
    folder = bench_folder(world["outputs"])
    assert {v["status"] for v in cells(folder).values()} == {"ok"}
    assert json.loads((folder / "bench.json").read_text())["executor"]["name"] == "submitit-local"
    assert list((folder / "submitit").glob("*_submitted.pkl"))  # the jobs were pickled
    assert list((folder / "submitit").glob("*_result.pkl"))  # and their results collected
    slurm = run_cli("invoke", "bench", "--models", "still", "--executor", "slurm")
    assert "sbatch" in one_error(slurm)


def test_ctrl_c_stops_every_cell_and_says_how_to_resume(world):
    """SIGINT reaches the bench (the terminal's foreground group), not the cells' own groups:
    the bench must stop them itself, and leave nothing running."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "invoke", "bench", "--models", "slow", "--cases",
         str(world["cases"])], cwd=paths.REPO_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.2)
        bench_root = world["outputs"] / "bench"
        if bench_root.exists() and any(bench_root.iterdir()) and \
                "running+" in live_cells(bench_folder(world["outputs"])):
            break
    cell_pids = [p.pid for p in psutil.Process(bench.pid).children(recursive=True)]
    os.killpg(bench.pid, signal.SIGINT)
    _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 130, stderr
    assert "Traceback" not in stderr
    folder = bench_folder(world["outputs"])
    assert f"ERROR: bench {folder.name} was interrupted" in stderr
    assert f"TIP: resume it with `uv run invoke bench --resume {folder.name}`" in stderr
    time.sleep(1)
    assert not [pid for pid in cell_pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    stopped = [v for v in cells(folder).values() if v["run_dir"] and v["status"] != "ok"]
    assert stopped
    for record in stopped:  # the run that was cut off says so
        run = json.loads((folder / record["run_dir"] / "run.json").read_text())
        assert run["status"] == "failed" and run["failure"]["reason"] == "interrupted"

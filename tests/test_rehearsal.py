"""Rehearsal mode end to end on the stand-in upstream model of test_pipeline.py.

The stand-in's own rehearse.py writes every declared weight; setup downloads nothing; the run
goes through the real entry point to a checked video; a real run refuses the rehearsal env; a
real setup replaces the stand-ins with the real weights; a rehearsal never overwrites real
weights; an expected stop is recorded as such, an unexpected failure as a failure.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from thbench import envs, paths, proc, rehearsal, runs, specs
from thbench.errors import UserError
from thbench.specs import Kind

from .test_pipeline import world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow

REHEARSE = '''\
"""Stand-in weights for the stand-in model: what its infer.py reads, marked as stand-ins."""
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--root", type=pathlib.Path); p.add_argument("--seed", type=int)
a = p.parse_args()
for rel, text in {"checkpoints/gain.bin": "stand-in gain", "tables/lut/lut.txt": "stand-in-lut",
                  "encoder/config.json": '{"stand-in": %d}' % a.seed}.items():
    (a.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (a.root / rel).write_text(text + "\\n")
'''

REHEARSAL_TABLE = """
[rehearsal]
script = "rehearse.py"
argv = ["--rehearsal-marker", "{work_dir}"]
"""


def rehearsable(write_spec) -> specs.Spec:
    spec = write_spec()
    (spec.folder / "rehearse.py").write_text(REHEARSE)
    with (spec.folder / "spec.toml").open("a") as fh:
        fh.write(REHEARSAL_TABLE)
    return specs.get(Kind.MODEL, "standin")


def lone_model(tmp_path, monkeypatch, name: str, spec_text: str, script: str) -> specs.Spec:
    """A model spec of its own (no repo, an empty lock) with its rehearse.py, in tmp_path."""
    folder = tmp_path / "specs" / "solutions" / name
    folder.mkdir(parents=True)
    (folder / "requirements.lock").write_text("")
    (folder / "rehearse.py").write_text(script)
    (folder / "spec.toml").write_text(spec_text)
    monkeypatch.setenv("THB_SPECS_DIR", str(tmp_path / "specs"))
    monkeypatch.setenv("THB_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("THB_OUTPUTS_DIR", str(tmp_path / "out"))
    return specs.get(Kind.MODEL, name)


def speech(tmp_path):
    audio = tmp_path / "speech.wav"
    if not audio.exists():
        proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1.2", audio])
    return audio


def test_rehearsal_runs_real_code_on_standins_and_a_real_setup_replaces_them(world):  # noqa: F811
    write_spec, server, tmp_path = world
    spec = rehearsable(write_spec)
    env = envs.setup(spec, rehearse=True)
    assert [r for r in server.log() if r.path != "/"] == []  # no weight was asked for
    stamp = env.read_stamp()
    made = {m["dest"] for m in stamp["rehearsal"]["standins"]}
    assert made == {"checkpoints/gain.bin", "tables/lut", "encoder"}  # unpack folder, not archive
    assert rehearsal.standins_file(env.root).is_file()
    assert set(stamp["steps"]) >= {"checkout", "venv", "torch", "lock", "standins", "health"}

    request = runs.Request(model="standin", image=paths.REPO_ROOT / "assets/face.png",
                           audio=speech(tmp_path), outputs=tmp_path / "outputs", face_check=False)
    result = runs.run(runs.Request(**{**request.__dict__, "rehearse": True}))
    assert result.ok and result.record["status"] == "ok", result.record["failure"]
    log = (result.run_dir / "logs/inference.log").read_text()
    assert 'stand-in-lut {"stand-in": 0}' in log  # upstream read the stand-ins
    assert f"extra options ['--rehearsal-marker', '{result.run_dir / 'work'}']" in log
    assert result.record["rehearsal"]["standins"] is True
    record = rehearsal.build_record(spec, stamp, result.record)
    assert record["reached"] == "checked video" and record["check"]["passed"]
    assert record["upstream"]["commit"] == spec.repo.commit
    assert any("rehearse.py with seed 0" in s for s in record["substituted"])

    with pytest.raises(UserError) as caught:  # a real run never takes stand-in weights
        runs.run(request)
    assert "set up for a rehearsal" in caught.value.message
    assert "nox -s setup-standin" in caught.value.tip

    real = envs.setup(spec)  # a real setup deletes the stand-ins and fetches the real weights
    assert not rehearsal.standins_file(real.root).exists()
    assert real.read_stamp()["rehearsal"] is None
    gain = (real.repo / "checkpoints/gain.bin").read_bytes()
    assert hashlib.sha256(gain).hexdigest() == spec.weights[0].sha256
    assert (real.repo / "tables/lut/lut.txt").read_text() == "lut-v1\n"
    assert runs.run(request).ok

    with pytest.raises(UserError) as caught:  # and a rehearsal never overwrites them
        envs.setup(spec, rehearse=True)
    assert "real weights are in place" in caught.value.message
    assert "THB_ENVS_DIR=" in caught.value.tip
    assert hashlib.sha256((real.repo / "checkpoints/gain.bin").read_bytes()).hexdigest() \
        == spec.weights[0].sha256


STOPPING = """\
schema = 1
description = "a model that needs a GPU past its loading stage"
python = "3.11"
gpu = "required"
requirements = "requirements.lock"

[inference]
argv = ["{{python}}", "-c", "import sys; print('loaded; {message}'); sys.exit(1)"]
output = "result.mp4"
timeout = 60

[rehearsal]
script = "rehearse.py"

[[rehearsal.stops]]  # the array-of-tables form of `stops = [{{when = …, reached = …}}]`
when = "loaded; RuntimeError: Found no NVIDIA driver"
reached = "weights loaded; stops at the first CUDA call"
"""


@pytest.mark.parametrize(("message", "status"), [
    ("RuntimeError: Found no NVIDIA driver on your system", "stopped"),
    ("KeyError: state_dict", "failed"),
])
def test_an_expected_stop_is_recorded_as_reached_and_anything_else_as_a_failure(
        tmp_path, monkeypatch, message, status):
    spec = lone_model(tmp_path, monkeypatch, "gpuonly", STOPPING.format(message=message), "")
    monkeypatch.setattr("thbench.gpu.detect", lambda: [])
    with pytest.raises(UserError) as caught:  # a real setup of a GPU-only model still refuses
        runs.run(runs.Request(model="gpuonly", image=paths.REPO_ROOT / "assets/face.png",
                              audio=speech(tmp_path), face_check=False,
                              outputs=tmp_path / "out"))
    assert "needs an NVIDIA GPU" in caught.value.message
    envs.setup(spec, rehearse=True)
    request = runs.Request(model="gpuonly", image=paths.REPO_ROOT / "assets/face.png",
                           audio=speech(tmp_path), face_check=False, outputs=tmp_path / "out",
                           rehearse=True)
    if status == "failed":
        with pytest.raises(UserError) as caught:
            runs.run(request)
        assert caught.value.exit_code == 1 and "inference stage failed" in caught.value.message
        (run_dir,) = (tmp_path / "out" / "gpuonly").iterdir()
        recorded = json.loads((run_dir / "run.json").read_text())
        assert recorded["status"] == "failed" and recorded["rehearsal"]["reached"] is None
        stamp = envs.Env.of(spec, rehearse=True).read_stamp()
        committed = rehearsal.build_record(spec, stamp, recorded)
        assert committed["reached"].startswith("failed at inference: ")
        assert committed["reached"].endswith("loaded; KeyError: state_dict")
        assert str(tmp_path) not in json.dumps(committed)  # no path of this machine
        assert "<envs>/model-gpuonly/venv/bin/python" in committed["failure"]["reason"]
        return
    result = runs.run(request)
    assert result.ok and result.record["status"] == "stopped"
    assert result.record["rehearsal"]["reached"] == "weights loaded; stops at the first CUDA call"
    assert result.record["stages"]["inference"]["status"] == "stopped"
    assert result.record["check"] is None and result.record["video"] is None
    stamp = envs.Env.of(spec, rehearse=True).read_stamp()
    assert rehearsal.build_record(spec, stamp, result.record)["reached"] == \
        "weights loaded; stops at the first CUDA call"


MANUAL = """\
schema = 1
description = "a model whose one weight a person downloads"
python = "3.11"
gpu = "optional"
requirements = "requirements.lock"

[[weights]]
dest = "ck/model.pth"
manual = "Drive file 1abc: gdown 1abc -O ck/model.pth"

[inference]
argv = ["{python}", "-c", "pass"]
output = "result.mp4"
timeout = 60

[rehearsal]
script = "rehearse.py"
"""

WRITE_CK = """\
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--root", type=pathlib.Path); p.add_argument("--seed")
root = p.parse_args().root
(root / "ck").mkdir(parents=True, exist_ok=True)
(root / "ck/model.pth").write_bytes(b"stand-in")
"""


def test_a_standin_never_passes_for_a_weight_a_person_must_place(tmp_path, monkeypatch, capsys):
    spec = lone_model(tmp_path, monkeypatch, "manualone", MANUAL, WRITE_CK)
    env = envs.setup(spec, rehearse=True)  # no manual download asked for: the script made it
    standin = env.weights_root / "ck/model.pth"
    assert standin.read_bytes() == b"stand-in"
    envs.setup(spec, rehearse=True, force=True)  # its own stand-in is no real weight to keep
    which = shutil.which  # a machine without util-linux's unshare: --offline says so, early
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "unshare" else which(name))
    with pytest.raises(UserError) as caught:
        runs.run(runs.Request(model="manualone", image=paths.REPO_ROOT / "assets/face.png",
                              audio=speech(tmp_path), face_check=False, rehearse=True,
                              offline=True))
    assert "--offline needs `unshare`" in caught.value.message
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(shutil, "which", which)
    capsys.readouterr()
    envs.setup(spec, dry_run=True)  # the plan of a real setup counts the stand-in as gone
    plan = capsys.readouterr().out
    assert "delete the 1 stand-in weights" in plan and "1 to download by hand" in plan
    with pytest.raises(UserError) as caught:
        envs.setup(spec)
    assert "must be downloaded by hand are missing" in caught.value.message
    assert "gdown 1abc" in caught.value.message
    assert not standin.exists()


def test_a_rehearsal_whose_setup_fails_is_recorded_as_such(tmp_path, monkeypatch):
    from thbench import cli

    broken = "import sys; print('ImportError: no module named upstream_thing'); sys.exit(1)\n"
    spec = lone_model(tmp_path, monkeypatch, "failing", MANUAL, broken)
    with pytest.raises(UserError) as caught:
        cli.rehearse("failing", text="Hello")
    assert "exited with status 1" in caught.value.message
    record = json.loads((spec.folder / "rehearsal.json").read_text())
    assert record["status"] == "failed" and record["reached"].startswith("failed at setup: ")
    assert record["spec_sha256"] == spec.sha256
    assert str(tmp_path) not in json.dumps(record)  # committed: no folder of this machine

"""The upstream-model pipeline end to end, on local stand-ins for the hosts this machine lacks.

A model spec like the real ones points at: a bare git repository (the "GitHub" remote, reached
through THB_GITHUB_MIRROR) holding a small inference script; weight files on a loopback HTTP
server (one transfer cut short, which must resume; one archive to unpack) and a folder from the
same server standing in for the HuggingFace Hub (listing + files, as HF_ENDPOINT); real requirements
from PyPI; and a torch stand-in wheel from a local folder. Setup, the replaced-torch guard, and
`run` through to the output check all run for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from thbench import envs, gpu, paths, proc, runs, specs
from thbench.errors import UserError
from thbench.specs import Kind

from . import standin_model, standins
from .standin_model import ENCODER, git
from .weight_server import COMMIT, serving

pytestmark = pytest.mark.slow

@pytest.fixture
def world(tmp_path, monkeypatch):
    """Spec root with the stand-in model, its remote, its weights server, its torch wheel."""
    root = tmp_path / "specs"
    model = standin_model.make_model(root, tmp_path)
    monkeypatch.setenv("THB_SPECS_DIR", str(root))
    monkeypatch.setenv("THB_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("THB_GITHUB_MIRROR", model.mirror.as_uri() + "/")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    from huggingface_hub import constants  # settings it read at import, as their variables would

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with serving() as server:
        model.serve(server, mode="cut_once", cut=200_000)
        monkeypatch.setenv("HF_ENDPOINT", server.base)

        def write_spec(gain_sha: str | None = None) -> specs.Spec:
            model.write_spec(server.base, gain_sha)
            return specs.get(Kind.MODEL, "standin")

        yield write_spec, server, tmp_path


def test_setup_resumes_verifies_and_refuses_corrupt_weights(world):
    write_spec, server, tmp_path = world
    # First the spec holds a wrong sha256 for gain.bin, as if the file upstream had changed.
    wrong = write_spec(gain_sha="0" * 64)
    with pytest.raises(UserError) as caught:
        envs.setup(wrong)
    assert "sha256 mismatch for checkpoints/gain.bin" in caught.value.message
    env = envs.Env.of(wrong)
    assert not env.stamp_path.exists() and not env.venv.exists()
    assert not (env.repo / "checkpoints/gain.bin").exists()
    ranges = [s.range for s in server.log("/gain.bin")]
    assert ranges[0] is None and ranges[1] == "bytes=200000-"  # the cut transfer resumed

    spec = write_spec()
    env = envs.setup(spec)
    stamp = json.loads(env.stamp_path.read_text())
    assert stamp["repo"]["commit"] == spec.repo.commit
    assert stamp["torch"]["version"] == "2.1.2+cpu"
    assert {w["dest"]: w["source"] for w in stamp["weights"]} == {
        "checkpoints/gain.bin": server.base + "/gain.bin",
        "downloads/lut.tar.gz": server.base + "/lut.tar.gz",
        "encoder": f"hf://thb-test/standin@{COMMIT}/model_ckpts/encoder/"}
    encoder = {rel: hashlib.sha256(data).hexdigest() for rel, data in (
        (path.removeprefix("model_ckpts/encoder/"), data) for path, data in ENCODER.items())}
    assert stamp["weights"][2]["sha256"] == hashlib.sha256(
        json.dumps(encoder, sort_keys=True).encode()).hexdigest()  # the folder's digest
    assert (env.repo / "encoder/config.json").read_bytes() == ENCODER["model_ckpts/encoder/config.json"]
    assert (env.repo / "tables/lut/lut.txt").read_text() == "lut-v1\n"
    assert git("rev-parse", "HEAD", cwd=env.repo) == spec.repo.commit
    log = env.log.read_text()
    assert log.index("git") < log.index("venv") < log.index("torch==2.1.2+cpu") \
        < log.index("requirements.lock")  # checkout, venv, torch first, then the lock

    requests_before = len(server.log())
    envs.setup(spec)  # unchanged spec: a no-op, not one request
    assert len(server.log()) == requests_before


def test_run_chain_on_the_stand_in_model_and_the_replaced_torch_guard(world, capsys):
    write_spec, _, tmp_path = world
    spec = write_spec()
    env = envs.setup(spec)
    audio = tmp_path / "speech.wav"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1.5", audio])
    request = runs.Request(model="standin", image=paths.REPO_ROOT / "assets/face.png",
                           audio=audio, outputs=tmp_path / "outputs", face_check=False)
    result = runs.run(request)
    assert result.ok, result.record["failure"]
    if not gpu.detect():  # a GPU-optional model says how slow the CPU will be, from its spec
        assert "will run on the CPU (stand-in: about a second)" in capsys.readouterr().err
    assert result.record["env"]["repo"]["commit"] == spec.repo.commit
    inference_log = (result.run_dir / "logs/inference.log").read_text()
    assert 'lut-v1 {"dim": 4} torch 2.1.2+cpu' in inference_log  # every weight, as placed
    assert {i["name"]: i["ok"] for i in result.record["check"]["items"]}["duration"]

    # A stray install replaces torch after setup: `run` refuses and names the setup command.
    other = standins.build_torch(tmp_path / "other", "2.4.0+cpu")
    proc.run([envs.uv_binary(), "pip", "install", "--python", env.python, other])
    with pytest.raises(UserError) as caught:
        runs.run(request)
    assert "changed since its setup" in caught.value.message
    assert "uv run nox -s setup-standin" in caught.value.tip
    rebuilt = envs.setup(spec)  # and setup puts the pinned build back
    assert json.loads(rebuilt.stamp_path.read_text())["torch"]["version"] == "2.1.2+cpu"


BROKEN = """\
schema = 1
description = "a model whose inference fails"
python = "3.11"
gpu = "none"
requirements = "requirements.lock"

[inference]
argv = ["{{python}}", "-c", "import sys; print('upstream says: {message}'); sys.exit({code})"]
output = "result.mp4"
timeout = 60
"""


@pytest.mark.parametrize(("code", "reason"), [(3, "exited with status 3"),
                                              (0, "wrote nothing matching 'result.mp4'")])
def test_a_failing_inference_is_recorded_and_exits_1(tmp_path, ready_envs, code, reason):
    root = tmp_path / "specs"
    folder = root / "solutions" / "broken"
    folder.mkdir(parents=True)
    (folder / "requirements.lock").write_text("")
    (folder / "spec.toml").write_text(BROKEN.format(message="no GPU kernels", code=code))
    for kind in ("tts", "checks"):  # a model's setup also sets up the default TTS and face check
        shutil.copytree(paths.REPO_ROOT / kind, root / kind)
    env = dict(os.environ, THB_SPECS_DIR=str(root), THB_ENVS_DIR=str(ready_envs),
               THB_OUTPUTS_DIR=str(tmp_path / "outputs"))
    audio = tmp_path / "a.wav"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", audio])
    subprocess.run([sys.executable, "-m", "nox", "-s", "setup-broken"], cwd=paths.REPO_ROOT,
                   env=env, check=True, capture_output=True, timeout=600)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "run", "broken", "--image", str(paths.REPO_ROOT /
         "assets/face.png"), "--audio", str(audio), "--no-face-check"],
        cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("ERROR:", "TIP:"))]
    assert len(errors) == 2 and "the inference stage failed" in errors[0] and reason in errors[0]
    (run_dir,) = (tmp_path / "outputs" / "broken").iterdir()
    assert str(run_dir / "run.json") in errors[1]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["failure"]["stage"] == "inference"
    assert reason in record["failure"]["reason"]
    assert record["stages"]["inference"]["status"] == "failed"
    assert "upstream says: no GPU kernels" in (run_dir / "logs/inference.log").read_text()


def test_upstream_models_refuse_run_paths_a_shell_would_misread(world):
    write_spec, _, tmp_path = world
    envs.setup(write_spec())
    audio = tmp_path / "speech.wav"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", audio])
    for bad in ("my outputs", "out$(id)"):
        request = runs.Request(model="standin", image=paths.REPO_ROOT / "assets/face.png",
                               audio=audio, outputs=tmp_path / bad, face_check=False)
        with pytest.raises(UserError) as caught:
            runs.run(request)
        assert "passes paths through a shell" in caught.value.message
        assert not (tmp_path / bad).exists()

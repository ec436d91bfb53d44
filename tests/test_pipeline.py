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
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from thbench import envs, gpu, paths, proc, runs, specs
from thbench.errors import UserError
from thbench.specs import Kind

from . import standins
from .weight_server import COMMIT, serving

pytestmark = pytest.mark.slow

INFER = '''\
"""Stand-in upstream model: checks its weights, then renders image + audio like `still`."""
import argparse, hashlib, pathlib, subprocess, sys, wave
import imageio_ffmpeg, torch

p = argparse.ArgumentParser()
p.add_argument("--image"); p.add_argument("--audio"); p.add_argument("--out")
a, extra = p.parse_known_args()  # a rehearsal may add options; say what came
print("extra options", extra)
gain = pathlib.Path("checkpoints/gain.bin").read_bytes()  # cwd is the checkout, as upstream
table = pathlib.Path("tables/lut/lut.txt").read_text()
encoder = pathlib.Path("encoder/config.json").read_text()
print("weights", hashlib.sha256(gain).hexdigest()[:12], table.strip(), encoder.strip(),
      "torch", torch.__version__)
with wave.open(a.audio) as w:
    frames = round(w.getnframes() / w.getframerate() * 25)
sys.exit(subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-loop", "1",
    "-framerate", "25", "-i", a.image, "-i", a.audio, "-vf", "scale=256:256,format=yuv420p",
    "-frames:v", str(frames), "-c:v", "libx264", "-c:a", "aac", a.out]).returncode)
'''

SPEC = """\
schema = 1
description = "stand-in upstream model for tests"
python = "3.11"
gpu = "optional"
cpu_speed = "stand-in: about a second"
requirements = "requirements.lock"
imports = ["imageio_ffmpeg", "torch"]

[torch]
packages = ["torch==2.1.2+cpu"]
index = "{wheels}"

[repo]
url = "https://github.com/example/standin"
commit = "{commit}"

[[weights]]
url = "{gain_url}"
dest = "checkpoints/gain.bin"
size = {gain_size}
sha256 = "{gain_sha}"

[[weights]]
url = "{lut_url}"
dest = "downloads/lut.tar.gz"
size = {lut_size}
sha256 = "{lut_sha}"
unpack = "tables/lut"

[[weights]]
dest = "encoder"
hf_repo = "thb-test/standin"
hf_folder = "model_ckpts/encoder"
hf_revision = "{hub_commit}"

[inference]
argv = ["{{python}}", "{{repo}}/infer.py", "--image", "{{image}}", "--audio", "{{audio}}",
        "--out", "{{work_dir}}/result.mp4"]
cwd = "{{repo}}"
output = "result.mp4"
timeout = 300
"""


ENCODER = {"model_ckpts/encoder/config.json": b'{"dim": 4}\n',
           "model_ckpts/encoder/weights.bin": bytes(range(256)) * 400}


def git(*args: str | Path, cwd: Path | None = None) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return proc.run(["git", *map(str, args)], cwd=cwd, env=env, capture=True).stdout.strip()


def make_remote(mirror: Path) -> str:
    """A bare repo at <mirror>/example/standin whose one commit holds infer.py."""
    work = mirror.parent / "work"
    work.mkdir()
    git("init", "-q", work)
    (work / "infer.py").write_text(INFER)
    git("add", "infer.py", cwd=work)
    git("commit", "-q", "-m", "stand-in model", cwd=work)
    git("clone", "-q", "--bare", work, mirror / "example" / "standin")
    return git("rev-parse", "HEAD", cwd=work)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Spec root with the stand-in model, its remote, its weights server, its torch wheel."""
    root = tmp_path / "specs"
    folder = root / "solutions" / "standin"
    folder.mkdir(parents=True)
    shutil.copyfile(paths.REPO_ROOT / "solutions/still/requirements.lock",
                    folder / "requirements.lock")  # imageio-ffmpeg, hashed, from PyPI
    commit = make_remote(tmp_path / "mirror")
    wheels = tmp_path / "wheels"
    standins.build_torch(wheels, "2.1.2+cpu")
    monkeypatch.setenv("THB_SPECS_DIR", str(root))
    monkeypatch.setenv("THB_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("THB_GITHUB_MIRROR", (tmp_path / "mirror").as_uri() + "/")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    from huggingface_hub import constants  # settings it read at import, as their variables would

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    gain = bytes(range(256)) * 2000  # 512 kB
    lut = tar_gz({"lut.txt": b"lut-v1\n"})
    with serving() as server:
        server.serve("/gain.bin", gain, mode="cut_once", cut=200_000)
        server.serve("/lut.tar.gz", lut)
        monkeypatch.setenv("HF_ENDPOINT", server.base)
        server.serve_hub_folder("thb-test/standin", COMMIT, "model_ckpts/encoder", ENCODER,
                                lfs={"model_ckpts/encoder/weights.bin"})

        def write_spec(gain_sha: str = hashlib.sha256(gain).hexdigest()) -> specs.Spec:
            (folder / "spec.toml").write_text(SPEC.format(
                wheels=wheels.as_uri(), commit=commit, hub_commit=COMMIT,
                gain_url=server.base + "/gain.bin", gain_size=len(gain), gain_sha=gain_sha,
                lut_url=server.base + "/lut.tar.gz", lut_size=len(lut),
                lut_sha=hashlib.sha256(lut).hexdigest()))
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

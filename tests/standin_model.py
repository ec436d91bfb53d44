"""A stand-in upstream model, built like the real ones, for tests and the fault-injection script.

Its spec points at a bare git repository (the "GitHub" remote, reached through
THB_GITHUB_MIRROR) holding a small inference script; at weight files on a loopback HTTP server
(`tests/weight_server.py`): one plain file, one archive to unpack, and a Hub folder (listing +
files, as HF_ENDPOINT); at real requirements from PyPI (the `still` lock); and at a torch
stand-in wheel from a local folder (`tests/standins.py`).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from thbench import paths, proc

from . import standins
from .weight_server import COMMIT, Standin

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
GAIN = bytes(range(256)) * 2000  # 512 kB
HUB_REPO, HUB_FOLDER = "thb-test/standin", "model_ckpts/encoder"


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


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class StandinModel:
    """The stand-in's spec folder and what its spec names; ``write_spec`` writes spec.toml."""

    folder: Path  # <specs root>/solutions/standin
    mirror: Path  # THB_GITHUB_MIRROR's folder
    commit: str
    wheels: Path  # the torch stand-in's folder
    gain: bytes = GAIN
    lut: bytes = tar_gz({"lut.txt": b"lut-v1\n"})
    encoder: dict[str, bytes] | None = None

    @property
    def files(self) -> dict[str, bytes]:
        return self.encoder or ENCODER

    def serve(self, server: Standin, **gain_how) -> None:
        """Put every weight on ``server``; ``gain_how`` (mode, cut, rate…) applies to gain.bin."""
        server.serve("/gain.bin", self.gain, **gain_how)
        server.serve("/lut.tar.gz", self.lut)
        server.serve_hub_folder(HUB_REPO, COMMIT, HUB_FOLDER, self.files,
                                lfs={f"{HUB_FOLDER}/weights.bin"})

    def write_spec(self, base: str, gain_sha: str | None = None) -> Path:
        """spec.toml with weights at ``base`` (the server's address)."""
        path = self.folder / "spec.toml"
        path.write_text(SPEC.format(
            wheels=self.wheels.as_uri(), commit=self.commit, hub_commit=COMMIT,
            gain_url=base + "/gain.bin", gain_size=len(self.gain),
            gain_sha=gain_sha or sha(self.gain), lut_url=base + "/lut.tar.gz",
            lut_size=len(self.lut), lut_sha=sha(self.lut)))
        return path


def make_model(specs_root: Path, work: Path, **weights) -> StandinModel:
    """The stand-in under ``specs_root``/solutions/standin, its remote and wheel under ``work``."""
    folder = specs_root / "solutions" / "standin"
    folder.mkdir(parents=True)
    shutil.copyfile(paths.REPO_ROOT / "solutions/still/requirements.lock",
                    folder / "requirements.lock")  # imageio-ffmpeg, hashed, from PyPI
    commit = make_remote(work / "mirror")
    wheels = work / "wheels"
    standins.build_torch(wheels, "2.1.2+cpu")
    return StandinModel(folder, work / "mirror", commit, wheels, **weights)

"""The world the fault-injection script works in, and how it kills and checks.

A temporary folder holds a specs root (the real Piper and face-check specs, and the stand-in
upstream model of `tests/standin_model.py` with weights big enough to be caught mid-download and
an archive big enough to be caught mid-unpack), its git remote, a torch stand-in wheel, and the
envs, outputs and cache folders. A loopback server in this process (`tests/weight_server.py`)
serves the weights at a set rate, so a killed command never takes the server with it.
Every command is run as a user types it (`python -m nox …`, `python -m invoke …`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests import standin_model
from tests.standin_model import HUB_FOLDER, StandinModel
from tests.weight_server import OUTSIDE_VARS, Standin
from thbench import paths, proc

FACE = paths.REPO_ROOT / "assets" / "face.png"
RATE = 4_000_000  # bytes a second from the loopback server: a download lasts a second or two
UNPACK_MEMBERS = 3000  # small files: unpacking takes long enough to be caught in the middle
SETUP = "setup-standin"


def lut_archive(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        members = {"lut.txt": b"lut-v1\n"} | {
            f"rows/{i:04d}.bin": rng.randbytes(2048) for i in range(UNPACK_MEMBERS)}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class World:
    work: Path
    model: StandinModel
    server: Standin
    audio: Path
    cases: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def envs(self) -> Path:
        return self.work / "envs"

    @property
    def standin_env(self) -> Path:
        return self.envs / "model-standin"

    def outputs(self, name: str) -> Path:
        return self.work / "outputs" / name


def build(work: Path, server: Standin, seed: int) -> World:
    """The folders, the model and its weights on ``server`` (rate-limited), and the variables."""
    rng = random.Random(seed)
    specs_root = work / "specs"
    for kind in ("tts", "checks"):  # a model's setup also sets up Piper and the face check
        shutil.copytree(paths.REPO_ROOT / kind, specs_root / kind)
    encoder = {f"{HUB_FOLDER}/config.json": b'{"dim": 4}\n',
               f"{HUB_FOLDER}/weights.bin": rng.randbytes(3_000_000)}
    model = standin_model.make_model(specs_root, work, gain=rng.randbytes(6_000_000),
                                     lut=lut_archive(rng), encoder=encoder)
    model.serve(server, rate=RATE)
    for path in ("/lut.tar.gz", f"/thb-test/standin/resolve/{standin_model.COMMIT}/"
                 f"{HUB_FOLDER}/weights.bin"):
        server.routes[path].rate = RATE
    model.write_spec(server.base)
    audio = work / "tone.wav"
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
              "sine=frequency=300:duration=1.5", audio])
    cases = work / "cases.toml"
    cases.write_text(f'schema = 1\n[[case]]\nid = "tone"\nimage = "{FACE}"\naudio = "{audio}"\n'
                     f'[[case]]\nid = "hello"\nimage = "{FACE}"\ntext = "Hello there."\n')
    local = work / "thb.local.toml"
    local.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARS}
    env.update(THB_SPECS_DIR=str(specs_root), THB_ENVS_DIR=str(work / "envs"),
               THB_OUTPUTS_DIR=str(work / "outputs" / "default"),
               THB_CACHE_DIR=str(work / "cache"), THB_LOCAL_CONFIG=str(local),
               THB_GITHUB_MIRROR=model.mirror.as_uri() + "/", HF_ENDPOINT=server.base,
               NO_PROXY="127.0.0.1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HUB_OFFLINE="0")
    return World(work, model, server, audio, cases, env)


# --- commands ----------------------------------------------------------------------------------

def argv(tool: str, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", tool, *map(str, args)]


def start(world: World, command: list[str], log: Path, **env: str) -> subprocess.Popen:
    """A command in a session of its own (so all of it can be frozen and killed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=paths.REPO_ROOT, env={**world.env, **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@dataclass
class Finished:
    code: int
    output: str

    @property
    def said(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(("ERROR:", "TIP:"))]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output

    @property
    def one_error_and_tip(self) -> bool:
        return [line[:4] for line in self.said] == ["ERRO", "TIP:"] and not self.traceback


def finish(world: World, command: list[str], log: Path, timeout: float = 900,
           **env: str) -> Finished:
    code = wait_or_kill(start(world, command, log, **env), timeout)
    return Finished(code, log.read_text(errors="replace"))


def wait_or_kill(child: subprocess.Popen, timeout: float = 900) -> int:
    """The command's exit status; past ``timeout``, it and all under it are killed: -9."""
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        power_cut(child)
        return -9


def tree(child: subprocess.Popen) -> list[psutil.Process]:
    try:
        top = psutil.Process(child.pid)
        return [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def freeze(child: subprocess.Popen) -> list[psutil.Process]:
    """SIGSTOP the command and everything under it, until no new process appears: the state on
    disk then stays exactly as it is at this moment."""
    stopped: dict[int, psutil.Process] = {}
    while True:
        fresh = [p for p in tree(child) if p.pid not in stopped]
        if not fresh:
            return list(stopped.values())
        for p in fresh:
            try:
                p.send_signal(signal.SIGSTOP)
                stopped[p.pid] = p
            except psutil.NoSuchProcess:
                pass


def power_cut(child: subprocess.Popen, frozen: list[psutil.Process] | None = None) -> None:
    """kill -9 the command and everything under it at once, as a power cut does."""
    for p in frozen if frozen is not None else freeze(child):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    child.wait(timeout=60)


def wait_for(child: subprocess.Popen, seconds: float, until=None, poll: float = 0.002) -> bool:
    """Sleep ``seconds``, or until ``until()`` is true; False if the command ended first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline if until is None else not until():
        if child.poll() is not None:
            return False
        time.sleep(poll)
    return child.poll() is None


# --- what is on disk ---------------------------------------------------------------------------

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def json_files_broken(*roots: Path) -> list[str]:
    """Every .json file under ``roots`` that does not parse: a half-written record."""
    broken = []
    for root in roots:
        for path in root.rglob("*.json") if root.exists() else ():
            try:
                json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                broken.append(str(path.relative_to(root.parent)))
    return broken

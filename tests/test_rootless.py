"""A host without root or apt: bootstrap's wheel route, and the chain with what it installs.

The system's ffmpeg, ffprobe, apt-get, dpkg-query and sudo are hidden behind a PATH of a few
symlinks (uv, git, a shell). Bootstrap unpacks the real imageio-ffmpeg wheel (from PyPI once,
then served by a loopback index) into a tools folder; probing is done by the real PyAV.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import bootstrap as boot
from bootstrap import rootless
from thbench import check, media, media_pyav, paths, proc, speech_audio, tools
from thbench.errors import UserError

from .test_bootstrap import Loopback

KEEP_ON_PATH = ("uv", "git", "sh", "bash", "env")  # what a bare cluster login has, less ffmpeg
PROBED_KEYS = ("codec_type", "codec_name", "width", "height", "r_frame_rate", "avg_frame_rate",
               "nb_frames", "duration", "sample_rate", "channels")


# --- fixtures ------------------------------------------------------------------------------------

def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "these tests need uv"
    return found


def _hidden_path(folder: Path, *extra: str) -> str:
    """A folder of symlinks to KEEP_ON_PATH (+ ``extra``), as the whole PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*KEEP_ON_PATH, *extra):
        found = _uv() if name == "uv" else shutil.which(name)
        if found and not (folder / name).exists():
            (folder / name).symlink_to(found)
    return str(folder)


@pytest.fixture(scope="session")
def ffmpeg_wheel(tmp_path_factory) -> Path:
    """The real imageio-ffmpeg wheel bootstrap pins, for this machine, from PyPI (pip caches it)."""
    folder = tmp_path_factory.mktemp("ffmpeg-wheel")
    proc.run([_uv(), "tool", "run", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", f"{rootless.FFMPEG_WHEEL}=={rootless.FFMPEG_WHEEL_VERSION}",
              "-d", folder], timeout=600)
    (wheel,) = folder.glob("imageio_ffmpeg-*.whl")
    return wheel


@pytest.fixture(scope="session")
def index(ffmpeg_wheel) -> Iterator[Loopback]:
    """A loopback PEP 691 index serving that wheel, with its real sha256."""
    server = Loopback()
    page = {"meta": {"api-version": "1.1"}, "name": rootless.FFMPEG_WHEEL, "files": [
        {"filename": ffmpeg_wheel.name, "url": f"../../files/{ffmpeg_wheel.name}",
         "hashes": {"sha256": hashlib.sha256(ffmpeg_wheel.read_bytes()).hexdigest()}}]}
    server.routes[f"/simple/{rootless.FFMPEG_WHEEL}/"] = (boot.PEP691_JSON, json.dumps(page).encode())
    server.routes[f"/files/{ffmpeg_wheel.name}"] = ("application/octet-stream",
                                                   ffmpeg_wheel.read_bytes())
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=10)


def _bootstrap(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = boot.main(argv)
    return code, out.getvalue()


def _packages(folder: Path, *names: str) -> list[str]:
    path = folder / "apt-packages.txt"
    path.write_text("".join(f"{name}\n" for name in names))
    return ["--apt-packages", str(path)]


@pytest.fixture(scope="session")
def installed(tmp_path_factory, index) -> dict:
    """Bootstrap run once on a hidden PATH: its output, exit status and tools folder."""
    root = tmp_path_factory.mktemp("rootless")
    uv_dir = root / "uv-bin"
    uv_dir.mkdir()
    shutil.copy2(_uv(), uv_dir / "uv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", _hidden_path(root / "path"))
        patch.setenv("UV_INSTALL_DIR", str(uv_dir))
        patch.setenv("THB_TOOLS_DIR", str(root / "tools"))
        patch.setenv("UV_INDEX_URL", f"{index.url}/simple/")
        args = _packages(root, "ffmpeg", "git", "git-lfs", "chromium")
        first = _bootstrap(args)
        seen = list(index.seen)
        second = _bootstrap(args)
    return {"first": first, "second": second, "seen": seen, "seen_after": list(index.seen),
            "tools": root / "tools", "path": root / "path"}


@pytest.fixture
def rootless_host(installed, monkeypatch) -> Path:
    """This test runs with no system ffmpeg/ffprobe on PATH and the wheel's in the tools folder."""
    monkeypatch.setenv("PATH", str(installed["path"]))
    monkeypatch.setenv("THB_TOOLS_DIR", str(installed["tools"]))
    return installed["tools"] / "bin" / "ffmpeg"


def _make(ffmpeg: str | Path, *args: str | Path) -> None:
    proc.run([ffmpeg, "-v", "error", "-y", *map(str, args)], timeout=120)


# --- bootstrap -----------------------------------------------------------------------------------

def test_bootstrap_without_apt_installs_the_wheel_ffmpeg_once(installed, ffmpeg_wheel):
    code, out = installed["first"]
    assert code == 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "not found" in lines["apt-get"]
    assert "optional: thbench never runs it" in out and "skipped: only the browser test" in out
    assert "PyAV (`av`, a project dependency) stands in" in lines["ffprobe"]
    binary = installed["tools"] / "bin" / "ffmpeg"
    assert "ffmpeg n9.0.2" in out and f"({rootless.FFMPEG_SOURCE}) at {binary}" in out
    assert sorted(os.listdir(binary.parent)) == ["ffmpeg"]  # no staging left behind
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    record = json.loads((installed["tools"] / "tools.json").read_text())["ffmpeg"]
    assert record["sha256"] == hashlib.sha256(ffmpeg_wheel.read_bytes()).hexdigest()
    assert record["source"] == rootless.FFMPEG_SOURCE and record["version"].startswith("n9.0.2")
    version = proc.run([binary, "-version"], capture=True).stdout
    assert version.startswith(f"ffmpeg version {record['version']} ")

    code, out = installed["second"]  # converged: found, nothing downloaded
    assert code == 0 and "Everything is present; nothing changed." in out
    assert f"{record['version']} at {binary}" in out
    assert installed["seen_after"] == installed["seen"] and len(installed["seen"]) == 2


def test_no_apt_flag_takes_the_wheel_route_even_as_root(tmp_path, monkeypatch):
    monkeypatch.setenv("THB_TOOLS_DIR", str(tmp_path / "tools"))
    monkeypatch.setenv("PATH", _hidden_path(tmp_path / "path", "apt-get", "dpkg-query"))
    code, out = _bootstrap(["--dry-run", "--no-apt", *_packages(tmp_path, "ffmpeg")])
    assert code == 0, out
    assert "not used (--no-apt)" in out and "apt-get update" not in out
    assert rootless.ffmpeg_step_text() in out and not (tmp_path / "tools").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"),
                    reason="needs root to run bootstrap as an unprivileged user")
def test_an_unprivileged_user_with_apt_gets_the_wheel_route(tmp_path):
    """As `nobody`, for real: apt-get is there but cannot be used."""
    work = Path(tempfile.mkdtemp(prefix="thb-rootless-"))  # pytest's tmp is root-only
    try:
        work.chmod(0o755)
        path = _hidden_path(work / "path", "apt-get", "dpkg-query", "sudo", "python3")
        (work / "uv").mkdir()
        shutil.copy2(_uv(), work / "uv" / "uv")
        packages = _packages(work, "ffmpeg", "git", "thb-surely-not-a-debian-package")
        env = {"PATH": path, "HOME": str(work), "UV_INSTALL_DIR": str(work / "uv"),
               "THB_TOOLS_DIR": str(work / "tools")}
        result = subprocess.run(
            [shutil.which("runuser"), "-u", "nobody", "--", "/usr/bin/python3",
             str(paths.REPO_ROOT / "bootstrap" / "bootstrap.py"), "--dry-run", *packages],
            env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(work)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    sudo_words = "sudo asks for a password" if shutil.which("sudo") else "no sudo"
    assert f"not usable: not root, and {sudo_words}" in out
    assert "package: git" in out and "installed" in out  # dpkg-query asked, unprivileged
    assert rootless.ASK_ADMIN in out  # the missing package
    assert "download the imageio-ffmpeg" in out and "apt-get install" not in out


def test_the_wheel_ffmpeg_has_what_the_chain_and_models_use(rootless_host):
    encoders = proc.run([rootless_host, "-hide_banner", "-encoders"], capture=True).stdout
    filters = proc.run([rootless_host, "-hide_banner", "-filters"], capture=True).stdout
    codecs = {line.split()[1] for line in encoders.splitlines() if len(line.split()) > 1}
    assert {"libx264", "aac", "pcm_s16le", "pcm_f32le", "libmp3lame"} <= codecs
    names = {line.split()[1] for line in filters.splitlines() if len(line.split()) > 1}
    assert {"ebur128", "volume", "scale", "format", "fps", "aresample", "ametadata"} <= names


# --- thbench with the wheel's ffmpeg and PyAV ----------------------------------------------------

def test_media_finds_the_tools_and_probes_with_pyav(rootless_host, tmp_path):
    assert shutil.which("ffmpeg") is None and shutil.which("ffprobe") is None
    assert media.ffmpeg() == str(rootless_host)
    with pytest.raises(UserError, match="^ffprobe not found on PATH$"):
        media.ffprobe()
    photo, mp3 = tmp_path / "face.png", tmp_path / "talk.mp3"
    _make(rootless_host, "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", photo)
    _make(rootless_host, "-f", "lavfi", "-i", "sine=f=220:d=1.5:sample_rate=24000", mp3)
    assert media.validate_image(photo) == media.ImageInfo(320, 240, "png")
    audio = media.validate_audio(mp3)
    assert audio.codec == "mp3" and audio.sample_rate == 24000 and audio.channels == 1
    assert 1.45 < audio.duration < 1.6
    wav = media.to_wav(mp3, tmp_path / "speech.wav", sample_rate=16000)
    assert media.wav_rate(wav) == 16000 and 1.45 < media.wav_duration(wav) < 1.6
    levelled = speech_audio.normalise(mp3, tmp_path / "levelled.wav", sample_rate=16000)
    assert levelled["within_tolerance"] and levelled["sample_rate"] == 16000
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    with pytest.raises(UserError, match=r"notes.txt is not an image \(PyAV: Invalid data"):
        media.validate_image(text)


@pytest.mark.skipif(not shutil.which("ffprobe"), reason="needs the system ffprobe to compare")
def test_pyav_probe_gives_what_ffprobe_gives(tmp_path):
    made = {"png": ["-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1"],
            "jpg": ["-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1"],
            "wav": ["-f", "lavfi", "-i", "sine=d=1.5:sample_rate=16000"],
            "m4a": ["-f", "lavfi", "-i", "sine=d=1"],
            "mp4": ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i",
                    "sine=d=2", "-t", "2", "-c:v", "libx264", "-c:a", "aac"],
            "avi": ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1", "-c:v", "mjpeg"]}
    # (MP3 is left out: FFmpeg 5.1's ffprobe and PyAV's FFmpeg 8 estimate its length differently.)
    for suffix, args in made.items():
        path = tmp_path / f"sample.{suffix}"
        _make("ffmpeg", *args, path)
        ffprobe, pyav = media.probe(path), media_pyav.probe(path, tip=None, expected=None)
        for key in ("format_name", "duration", "nb_streams"):
            assert ffprobe["format"].get(key) == pyav["format"].get(key), (suffix, key)
        assert len(ffprobe["streams"]) == len(pyav["streams"])
        for theirs, ours in zip(ffprobe["streams"], pyav["streams"], strict=True):
            assert {k: theirs.get(k) for k in PROBED_KEYS} == {k: ours.get(k) for k in PROBED_KEYS}
        if suffix in ("mp4", "avi"):
            assert media.count_frames(path) == {"mp4": 50, "avi": 10}[suffix]


def _talking_video(ffmpeg: str | Path, photo: Path, wav: Path, out: Path) -> None:
    """A still picture over the speech, as the `still` model encodes it (libx264 + aac)."""
    with wave.open(str(wav)) as w:
        frames = round(w.getnframes() / w.getframerate() * 25)
    _make(ffmpeg, "-loop", "1", "-framerate", "25", "-i", photo, "-i", wav, "-frames:v",
          str(frames), "-vf", "format=yuv420p", "-c:v", "libx264", "-c:a", "aac", out)


def test_the_output_check_runs_on_the_wheel_tools(rootless_host, tmp_path):
    photo, wav = tmp_path / "face.png", tmp_path / "speech.wav"
    _make(rootless_host, "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", photo)
    _make(rootless_host, "-f", "lavfi", "-i", "sine=d=2:sample_rate=16000", "-c:a", "pcm_s16le",
          wav)
    video = tmp_path / "video.mp4"
    _talking_video(rootless_host, photo, wav, video)
    report = check.check_video(video, wav)
    assert report.passed, [item for item in report.items if not item.ok]
    assert report.item("duration").detail.startswith("video 2.000 s (50 frames at 25.000 fps)")

    black = tmp_path / "black.png"  # and a failure is still seen as one
    _make(rootless_host, "-f", "lavfi", "-i", "color=black:size=320x240", "-frames:v", "1", black)
    dark = tmp_path / "dark.mp4"
    _talking_video(rootless_host, black, wav, dark)
    assert not check.check_video(dark, wav).item("not_black").ok


def test_model_processes_find_ffmpeg_by_name(rootless_host, tmp_path, monkeypatch):
    extra = tools.child_env()
    assert extra["PATH"].split(os.pathsep)[0] == str(rootless_host.parent)
    found = proc.run(["sh", "-c", "command -v ffmpeg"], env=extra, capture=True).stdout.strip()
    assert found == str(rootless_host)
    own = tmp_path / "own-bin"  # a host with an ffmpeg of its own keeps it first
    own.mkdir()
    (own / "ffmpeg").symlink_to(rootless_host)
    monkeypatch.setenv("PATH", os.pathsep.join([str(own), os.environ["PATH"]]))
    assert tools.child_env() == {}


# --- end to end ----------------------------------------------------------------------------------

BY_NAME = """\
schema = 1
description = "stand-in upstream model that runs `ffmpeg` by name, as Wav2Lip and SadTalker do"
python = "3.11"
gpu = "none"
requirements = "requirements.lock"

[inference]
argv = ["{python}", "-c", '''
import subprocess, sys, wave
with wave.open(sys.argv[2]) as w:
    frames = round(w.getnframes() / w.getframerate() * 25)
sys.exit(subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-framerate", "25", "-i",
    sys.argv[1], "-i", sys.argv[2], "-frames:v", str(frames), "-vf", "scale=256:256,format=yuv420p",
    "-c:v", "libx264", "-c:a", "aac", "result.mp4"]).returncode)
''', "{image}", "{audio}"]
output = "result.mp4"
timeout = 120
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["by_name", "still"])
def test_invoke_run_on_a_host_without_ffmpeg(model, rootless_host, ready_envs, tmp_path):
    """`invoke run` with no system ffmpeg/ffprobe: the wheel's ffmpeg, PyAV, and a model that
    calls `ffmpeg` by name (by_name) or imageio-ffmpeg's own (still)."""
    root = tmp_path / "specs"
    env = dict(os.environ, THB_ENVS_DIR=str(ready_envs), THB_OUTPUTS_DIR=str(tmp_path / "out"))
    if model == "by_name":
        folder = root / "solutions" / model
        folder.mkdir(parents=True)
        (folder / "requirements.lock").write_text("")
        (folder / "spec.toml").write_text(BY_NAME)
        for kind in ("tts", "checks"):  # a model's setup also sets up the default TTS and face check
            shutil.copytree(paths.REPO_ROOT / kind, root / kind)
        env["THB_SPECS_DIR"] = str(root)
        subprocess.run([sys.executable, "-m", "nox", "-s", f"setup-{model}"], cwd=paths.REPO_ROOT,
                       env=env, check=True, capture_output=True, timeout=600)
    audio = tmp_path / "talk.mp3"
    _make(rootless_host, "-f", "lavfi", "-i", "sine=f=220:d=2", audio)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "run", model, "--image",
         str(paths.REPO_ROOT / "assets" / "face.png"), "--audio", str(audio), "--no-face-check"],
        cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out" / model).iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["check"]["passed"], record
    assert record["tools"]["ffmpeg"].startswith("n9.0.2")  # the wheel's, not the system's

"""The `mouth` baseline end to end: a real env, real Piper speech, real FaceMesh, real ffmpeg."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from thbench import cli, media, paths, proc
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow

FACE = paths.REPO_ROOT / "assets" / "face.png"
TEXT = "Hello there, this is a short test of the moving mouth."
FPS = 25  # solutions/mouth/spec.toml
# Boxes (x0, y0, x1, y1) in assets/face.png (288x288): the eyes and brows, well above the lips,
# and the lips and chin (mouth corners near y=140, chin near y=178).
EYES = (95, 80, 195, 120)
LOWER_FACE = (110, 135, 175, 190)


@pytest.fixture(scope="module")
def mouth_envs(ready_envs) -> Path:
    """The mouth env, built beside the session's still + Piper + face check (see conftest)."""
    with envs_dir(ready_envs):
        cli.setup_for_run(Kind.MODEL, "mouth")
    return ready_envs


def _invoke_run(envs_root: Path, outputs: Path, *args: str) -> tuple[subprocess.CompletedProcess,
                                                                        Path, dict]:
    """`invoke run mouth ARGS` as a user runs it; its one run folder and record."""
    env = dict(os.environ, THB_ENVS_DIR=str(envs_root), THB_OUTPUTS_DIR=str(outputs))
    result = subprocess.run([sys.executable, "-m", "invoke", "run", "mouth", *args],
                            cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    (run_dir,) = (outputs / "mouth").iterdir()
    return result, run_dir, json.loads((run_dir / "run.json").read_text())


def _gray_frames(video: Path, width: int, height: int) -> list[bytes]:
    argv = [media.ffmpeg(), "-v", "error", "-i", media.path_arg(video), "-map", "0:v:0",
            "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = proc.run(argv, capture_bytes=True, timeout=120).stdout_bytes
    size = width * height
    return [raw[i:i + size] for i in range(0, len(raw) - size + 1, size)]


def _mean_abs_diff(a: bytes, b: bytes, width: int, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    total = sum(abs(a[y * width + x] - b[y * width + x]) for y in range(y0, y1)
                for x in range(x0, x1))
    return total / ((x1 - x0) * (y1 - y0))


def _rms_per_frame(wav_path: Path, frames: int) -> list[float]:
    with wave.open(str(wav_path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        rate, raw = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = memoryview(raw).cast("h")
    edges = [round(i * rate / FPS) for i in range(frames + 1)]
    return [math.sqrt(sum(s * s for s in samples[a:b]) / max(1, b - a))
            for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return cov / (sx * sy)


def test_mouth_run_moves_the_lower_face_with_the_speech_and_nothing_above(mouth_envs, tmp_path):
    result, run_dir, record = _invoke_run(mouth_envs, tmp_path / "outputs", "--image", str(FACE),
                                          "--text", TEXT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert record["status"] == "ok" and record["baseline"] is True
    assert all(item["ok"] for item in record["check"]["items"]), record["check"]
    log = (run_dir / "logs" / "inference.log").read_text()
    assert "mouth: " in log and " frames at 25 fps" in log

    frames = _gray_frames(run_dir / "video.mp4", 288, 288)
    assert len(frames) >= 2 * FPS  # a few seconds of speech
    # Each frame against the one whose mouth is most closed, at the quietest moment: the lower
    # face changes (the mouth opens), the eyes stay what they were (encoder noise only).
    rms = _rms_per_frame(run_dir / "speech.wav", len(frames))
    quiet = frames[rms.index(min(rms))]
    lower = [_mean_abs_diff(frame, quiet, 288, LOWER_FACE) for frame in frames]
    eyes = [_mean_abs_diff(frame, quiet, 288, EYES) for frame in frames]
    assert max(lower) > 8, lower
    assert max(eyes) < 1.5, eyes
    assert max(lower) > 10 * max(eyes)
    # ...and it changes with the sound: loud frames have the mouth open.
    assert _pearson(rms, lower) > 0.5


def test_an_image_with_no_face_fails_the_inference_stage(mouth_envs, tmp_path):
    grey, audio = tmp_path / "grey.png", tmp_path / "speech.wav"
    proc.run([media.ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=256x256",
              "-frames:v", "1", grey])
    proc.run([media.ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", audio])
    # --no-face-check: the run's own face check would refuse the image before the model sees
    # it; here the model itself must refuse.
    result, run_dir, record = _invoke_run(mouth_envs, tmp_path / "outputs", "--image", str(grey),
                                          "--audio", str(audio), "--no-face-check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert record["status"] == "failed"
    assert record["failure"]["stage"] == "inference"
    assert "exited with status 3" in record["failure"]["reason"]
    assert "mouth: no face found in" in (run_dir / "logs" / "inference.log").read_text()
    assert not (run_dir / "video.mp4").exists()

"""The metric scripts (metrics/face, metrics/identity) in their real envs, on videos made here.

Every video is a few seconds of Matroska, H.264 yuv420p at 25 fps with 16 kHz mono PCM, as
thbench/score.py hands them over. The talking mouth is made by warping the real face.png's
lower lip down by a syllable envelope that also drives the sound, so the true audio-video
offset is known: shifting the sound by 0.5 s must move the landmark lag by 12.5 frames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from thbench import envs, media, paths, proc, specs
from thbench.specs import Kind

pytestmark = pytest.mark.slow

FACE = paths.REPO_ROOT / "assets" / "face.png"
OTHER_FACE = paths.REPO_ROOT / "assets" / "other-face.png"
FPS = 25
# Bursts of a 180 Hz tone: 0.4 s on, 0.4 s off (silences over 300 ms), after 0.2 s of quiet.
BURSTS = ["-f", "lavfi", "-i",
          "aevalsrc='0.5*sin(2*PI*180*t)*gt(t,0.2)*lt(mod(t-0.2,0.8),0.4)':s=16000"]

# Runs under the face env's Python (numpy, OpenCV, MediaPipe): finds face.png's mouth with
# FaceMesh, then drops the lower lip and jaw by a random syllable envelope, frame by frame, a
# dark gap opening between the lips; writes the frames and the matching sound, shifted by
# --delay seconds (positive: the sound comes later than the mouth).
TALKING_MOUTH = '''\
import argparse, pathlib, wave
import cv2, mediapipe as mp, numpy as np

p = argparse.ArgumentParser()
p.add_argument("--image"); p.add_argument("--out"); p.add_argument("--seconds", type=float)
p.add_argument("--delays", type=float, nargs="+")
a = p.parse_args()
out = pathlib.Path(a.out)
fps, rate = 25, 16000
rng = np.random.default_rng(7)
n = int(a.seconds * fps)
env = np.zeros(n)
i = 3
while i < n - 3:
    on = int(rng.integers(3, 9))
    env[i:i + on] = rng.uniform(0.4, 1.0)
    i += on + int(rng.choice([2, 3, 4, 12, 15]))
env = np.convolve(env, np.array([1, 2, 4, 2, 1]) / 10, "same")  # articulation is not a step
img = cv2.imread(a.image)
h, w = img.shape[:2]
with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
    found = mesh.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).multi_face_landmarks[0]
lm = np.array([(m.x * w, m.y * h) for m in found.landmark])
lip_y = (lm[13, 1] + lm[14, 1]) / 2
cx, half = (lm[61, 0] + lm[291, 0]) / 2, (lm[291, 0] - lm[61, 0]) / 2 + 4
chin = lm[152, 1] + 15
full_drop = lip_y + 0.4 * (chin - lip_y)
amplitude = 0.23 * np.linalg.norm(lm[33] - lm[263])
yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
wx = np.clip(np.cos((xx - cx) / half * np.pi / 2), 0, None) ** 2 * (np.abs(xx - cx) < half)
wy = np.where(yy < lip_y, 0, np.where(yy < full_drop, 1,
              np.clip((chin - yy) / (chin - full_drop), 0, 1)))
source = img.astype(np.float32)
frames = out / "frames"
frames.mkdir(parents=True)
for f in range(n):
    src_y = (yy - amplitude * env[f] * wx * wy).astype(np.float32)
    frame = cv2.remap(source, xx, src_y, cv2.INTER_LINEAR)
    frame[(yy >= lip_y) & (src_y < lip_y)] = (35, 25, 45)
    cv2.imwrite(str(frames / f"{f:04d}.png"), np.clip(frame, 0, 255).astype(np.uint8))
t = np.arange(int(a.seconds * rate)) / rate
loud = np.interp(t * fps, np.arange(n), env)
voice = loud * (0.4 * np.sin(2 * np.pi * 150 * t) + 0.2 * np.sin(2 * np.pi * 300 * t)
                + 0.15 * rng.standard_normal(len(t)))
for delay in a.delays:
    shift = int(round(delay * rate))
    x = (np.concatenate([np.zeros(shift), voice])[:len(t)] if shift >= 0
         else np.concatenate([voice[-shift:], np.zeros(-shift)]))
    with wave.open(str(out / f"speech{delay:+.1f}.wav"), "wb") as wav:
        wav.setnchannels(1); wav.setsampwidth(2); wav.setframerate(rate)
        wav.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
'''


@pytest.fixture(scope="module")
def metric_envs(tmp_path_factory) -> dict[str, envs.Env]:
    """Both metric envs, built once for this module in a folder of their own."""
    root = tmp_path_factory.mktemp("metric-envs")
    old = os.environ.get("THB_ENVS_DIR")
    os.environ["THB_ENVS_DIR"] = str(root)
    try:
        return {name: envs.setup(specs.get(Kind.METRIC, name)) for name in ("face", "identity")}
    finally:
        if old is None:
            os.environ.pop("THB_ENVS_DIR")
        else:
            os.environ["THB_ENVS_DIR"] = old


def _ffmpeg(*args: object, log: Path) -> None:
    proc.run([media.ffmpeg(), "-nostdin", "-v", "error", "-y", *map(str, args)], log=log,
             timeout=300)


def _normalised(picture: list, sound: list, out: Path, seconds: float,
                vf: str = "") -> tuple[Path, Path]:
    """``out`` as score.py normalises (MKV, H.264 yuv420p 25 fps, PCM 16 kHz mono) + its WAV."""
    log = out.with_suffix(".log")
    _ffmpeg(*picture, *sound, "-t", seconds, "-map", "0:v:0", "-map", "1:a:0",
            "-vf", f"{vf}{',' if vf else ''}fps={FPS},format=yuv420p", "-c:v", "libx264",
            "-crf", "18", "-preset", "veryfast", "-c:a", "pcm_s16le", "-ar", 16000, "-ac", 1,
            out, log=log)
    wav = out.with_suffix(".wav")
    _ffmpeg("-i", out, "-map", "0:a:0", "-c:a", "pcm_s16le", wav, log=log)
    return out, wav


def _still(image: Path, out: Path, seconds: float = 4.0, vf: str = "") -> tuple[Path, Path]:
    """``image`` held for ``seconds`` (moved by ``vf``, if given) over the tone bursts."""
    return _normalised(["-loop", 1, "-framerate", FPS, "-i", image],
                       BURSTS, out, seconds, vf)


def _score(env: envs.Env, video: Path, audio: Path | str, image: Path, out: Path,
           check: bool = True) -> dict | int:
    """Run the spec's own argv, as thbench/score.py expands it; its JSON (or exit status)."""
    values = {"python": str(env.python), "spec_dir": str(env.spec.folder), "video": str(video),
              "audio": str(audio), "image": str(image), "out": str(out),
              "weights": str(env.weights_root)}
    done = proc.run(env.spec.command.expand(values), cwd=out.parent, log=out.with_suffix(".log"),
                    timeout=env.spec.command.timeout, check=check)
    if not check:
        return done.returncode
    record = json.loads(out.read_text(encoding="utf-8"))
    assert set(record["metrics"]) == {d.id for d in env.spec.metrics}  # every declared id
    for metric in record["metrics"].values():  # a value, or a reason: never both, never neither
        assert (metric["value"] is None) == bool(metric["not_computed"]), metric
    return record


def _values(record: dict) -> dict:
    return {k: m["value"] for k, m in record["metrics"].items()}


def test_face_metrics_on_a_still_face(metric_envs, tmp_path):
    video, wav = _still(FACE, tmp_path / "still.mkv")
    record = _score(metric_envs["face"], video, wav, FACE, tmp_path / "face.json")
    got = _values(record)
    assert record["version"]["mediapipe"] == "0.10.21"
    assert got["face_found"] == 1.0
    assert got["blink_rate"] == 0.0  # open eyes that never close: measured, not missing
    assert record["metrics"]["blink_rate"]["extra"]["median_ear"] > 0.21
    assert 0 < got["head_motion"] < 0.02  # landmark jitter only (eye-corner distances a frame)
    assert got["face_sharpness_laplacian"] > 100
    assert 0 <= got["flicker_outside_face"] < 1  # an unchanging picture, re-encoded
    assert got["silent_mouth_motion"] is not None  # the bursts leave 0.4 s silences
    assert record["metrics"]["silent_mouth_motion"]["extra"]["silent_runs"] >= 3


def test_face_metrics_without_a_face_say_why(metric_envs, tmp_path):
    video, wav = _normalised(["-f", "lavfi", "-i", f"color=c=gray:s=256x256:r={FPS}"],
                             BURSTS,
                             tmp_path / "noface.mkv", 4.0)
    record = _score(metric_envs["face"], video, wav, FACE, tmp_path / "face.json")
    metrics = record["metrics"]
    assert metrics["face_found"]["value"] == 0.0
    for name in ("lip_loudness_r", "lip_loudness_lag", "silent_mouth_motion", "blink_rate",
                 "head_motion", "face_sharpness_laplacian"):
        assert metrics[name]["value"] is None
        assert "face" in metrics[name]["not_computed"], metrics[name]
    assert metrics["flicker_outside_face"]["value"] is not None  # the whole frame is outside


def test_face_metrics_of_a_moving_face(metric_envs, tmp_path):
    """A still face panned around a padded frame: the head moves, the background too."""
    pan = "pad=400:400:56:56:color=white,crop=288:288:'56+40*sin(2*PI*t/2)':'56+20*cos(2*PI*t/2)'"
    video, wav = _still(FACE, tmp_path / "pan.mkv", vf=pan)
    still_video, still_wav = _still(FACE, tmp_path / "still.mkv")
    moving = _values(_score(metric_envs["face"], video, wav, FACE, tmp_path / "pan.json"))
    still = _values(_score(metric_envs["face"], still_video, still_wav, FACE,
                           tmp_path / "still.json"))
    assert moving["face_found"] > 0.95
    assert moving["head_motion"] > 3 * still["head_motion"]
    assert moving["flicker_outside_face"] > 3 * still["flicker_outside_face"] + 1


def test_face_metrics_without_audio(metric_envs, tmp_path):
    video, _ = _still(FACE, tmp_path / "still.mkv", seconds=3.2)
    record = _score(metric_envs["face"], video, "", FACE, tmp_path / "face.json")
    for name in ("lip_loudness_r", "lip_loudness_lag", "silent_mouth_motion"):
        assert record["metrics"][name]["not_computed"] == "the video has no audio track"
    assert record["metrics"]["face_found"]["value"] == 1.0


def test_lip_sync_lag_finds_a_known_audio_offset(metric_envs, tmp_path):
    face_env = metric_envs["face"]
    made = tmp_path / "talking"
    delays = (0.0, 0.5, -0.5)  # seconds the sound comes after the picture
    proc.run([face_env.python, "-c", TALKING_MOUTH, "--image", FACE, "--out", made,
              "--seconds", "5", "--delays", *map(str, delays)], log=tmp_path / "make.log",
             timeout=600)
    results = {}
    for delay in delays:
        video, wav = _normalised(["-framerate", FPS, "-i", made / "frames" / "%04d.png"],
                                 ["-i", made / f"speech{delay:+.1f}.wav"],
                                 tmp_path / f"talk{delay:+.1f}.mkv", 5.0)
        results[delay] = _values(_score(face_env, video, wav, FACE,
                                        tmp_path / f"talk{delay:+.1f}.json"))
    for delay, got in results.items():
        expected = -delay * FPS  # sound 0.5 s late = the mouth moves 12.5 frames before it
        assert abs(got["lip_loudness_lag"] - expected) <= 2, (delay, got)
        assert got["lip_loudness_r"] > 0.5, (delay, got)
    # In sync, the mouth rests in the silences; with the sound shifted it moves there.
    assert results[0.0]["silent_mouth_motion"] < results[0.5]["silent_mouth_motion"]


def test_face_script_refuses_an_unreadable_video(metric_envs, tmp_path):
    bad = tmp_path / "not-a-video.mkv"
    bad.write_text("no video here")
    assert _score(metric_envs["face"], bad, "", FACE, tmp_path / "face.json", check=False) == 3
    assert not (tmp_path / "face.json").exists()


def test_identity_distance_same_and_other_face(metric_envs, tmp_path):
    env = metric_envs["identity"]
    same = _score(env, *_still(FACE, tmp_path / "same.mkv", seconds=3.0), FACE,
                  tmp_path / "same.json")
    other = _score(env, *_still(OTHER_FACE, tmp_path / "other.mkv", seconds=3.0), FACE,
                   tmp_path / "other.json")
    same_metric = same["metrics"]["identity_dlib_distance"]
    other_metric = other["metrics"]["identity_dlib_distance"]
    assert same_metric["value"] < 0.3
    assert same_metric["extra"]["share_under_threshold"] == 1.0
    assert other_metric["value"] > 0.6
    assert other_metric["extra"]["share_under_threshold"] == 0.0
    assert same_metric["settings"]["every_nth_frame"] >= 1
    assert same["version"]["face-recognition-models"] == "0.3.0"


def test_identity_not_computed_without_a_face(metric_envs, tmp_path):
    env = metric_envs["identity"]
    video, wav = _normalised(["-f", "lavfi", "-i", f"color=c=gray:s=256x256:r={FPS}"],
                             BURSTS,
                             tmp_path / "noface.mkv", 2.0)
    faceless_video = _score(env, video, wav, FACE, tmp_path / "a.json")["metrics"]
    assert faceless_video["identity_dlib_distance"]["value"] is None
    assert "sampled frames" in faceless_video["identity_dlib_distance"]["not_computed"]
    gray = tmp_path / "gray.png"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=256x256", "-frames:v", 1, gray,
            log=tmp_path / "gray.log")
    faceless_image = _score(env, *_still(FACE, tmp_path / "face.mkv", seconds=1.0), gray,
                            tmp_path / "b.json")["metrics"]
    assert faceless_image["identity_dlib_distance"]["not_computed"] == (
        "no face found in the source image gray.png")

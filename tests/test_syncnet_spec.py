"""metrics/syncnet: the spec as declared, and score.py's not-computed paths without torch.

score.py checks everything that needs no model (sound, weights, ffmpeg, length) before it
imports torch, so those paths run here under the orchestrator's own Python; a ``torch`` module
that raises on import is put first on the path to prove it. The pipeline itself needs the env
and the real weights and is not imitated here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from thbench import media, paths, proc, score, specs
from thbench.metric_spec import Direction
from thbench.specs import Kind

SPEC_DIR = paths.specs_root() / "metrics" / "syncnet"
SCRIPT = SPEC_DIR / "score.py"
# ../shared/upstream/metrics.md, "Findings of 2026-12-01": the same bytes in every source.
PUBLISHED = {
    "syncnet_v2.model": (54573114,
                         "961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442"),
    "sfd_face.pth": (89844381,
                     "d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491"),
}
VGG = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"


@pytest.fixture(scope="module")
def spec():
    return specs.get(Kind.METRIC, "syncnet")


def test_spec_declares_three_syncnet_metrics(spec):
    assert spec.kind is Kind.METRIC and spec.python == "3.11"
    assert [(m.id, m.direction) for m in spec.metrics] == [
        ("lse_c", Direction.HIGHER), ("lse_d", Direction.LOWER),
        ("syncnet_offset", Direction.NONE)]
    labels = {m.id: m.label for m in spec.metrics}
    assert labels["lse_c"] == "LSE-C (SyncNet confidence)"
    assert labels["lse_d"] == "LSE-D (SyncNet distance)"
    about = " ".join(m.about for m in spec.metrics)
    for fact in ("syncnet-python", "S3FD", "more than 50 frames", "0.40", "±15",
                 "max over tracks", "min over tracks", "Wav2Lip was trained against"):
        assert fact in about


def test_spec_pins_torch_and_keeps_it_out_of_the_lock(spec):
    pins = dict(p.split("==") for p in spec.torch.packages)
    assert set(pins) == {"torch", "torchvision"} and spec.torch.index is None
    lock = spec.requirements.read_text(encoding="utf-8")
    assert "syncnet-python==0.2.3" in lock
    assert "\ntorch==" not in lock and "\ntorchvision==" not in lock


def test_weights_are_the_published_vgg_files(spec):
    by_name = {Path(w.dest).name: w for w in spec.weights}
    assert set(by_name) == set(PUBLISHED)
    for name, (size, sha) in PUBLISHED.items():
        weight = by_name[name]
        assert (weight.size, weight.sha256, weight.url) == (size, sha, VGG + name)
        assert weight.dest == f"syncnet/{name}"


def test_command_hands_over_the_weights_folder(spec):
    argv = spec.command.expand({"python": "PY", "spec_dir": "SD", "video": "V", "audio": "A",
                                "image": "I", "out": "O", "weights": "W"})
    assert argv[:2] == ["PY", "SD/score.py"]
    assert argv[argv.index("--weights") + 1] == "W" and argv[argv.index("--audio") + 1] == "A"


@pytest.fixture
def no_torch(tmp_path):
    """A path entry whose ``torch`` fails on import: these paths must not reach for it."""
    folder = tmp_path / "no-torch"
    folder.mkdir()
    (folder / "torch.py").write_text("raise ImportError('score.py imported torch')\n")
    return {"PYTHONPATH": str(folder)}


def make_video(path: Path, seconds: float) -> Path:
    """A still 25 fps H.264 Matroska with 16 kHz mono PCM, as thbench/score.py normalises."""
    proc.run([media.ffmpeg(), "-nostdin", "-loglevel", "error", "-y",
              "-f", "lavfi", "-i", f"color=c=gray:s=128x128:r=25:d={seconds}",
              "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={seconds}",
              "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-ac", "1",
              "-shortest", str(path)], timeout=120)
    proc.run([media.ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-i", str(path),
              "-map", "0:a:0", "-c:a", "pcm_s16le", str(path.with_suffix(".wav"))], timeout=120)
    return path


def run_script(tmp_path: Path, env: dict, *, video: Path, audio: str, weights: Path):
    out = tmp_path / "syncnet.json"
    done = proc.run([sys.executable, SCRIPT, "--video", video, "--audio", audio,
                     "--image", tmp_path / "face.png", "--out", out, "--weights", weights],
                    env=env, capture=True, check=False, timeout=120)
    return done, (json.loads(out.read_text()) if out.exists() else None)


def assert_all_not_computed(produced: dict, spec, *words: str) -> None:
    assert set(produced["metrics"]) == {"lse_c", "lse_d", "syncnet_offset"}
    for metric in produced["metrics"].values():
        assert metric["value"] is None
        assert all(word in metric["not_computed"] for word in words), metric["not_computed"]
        assert metric["settings"]["min_track_frames"] == "more than 50 detections"
        assert metric["settings"]["offset_window_frames"] == 15
    # …and the orchestrator records them as not computed, with the script's reason.
    for merged in score._merge(spec, produced).values():
        assert merged["value"] is None and all(w in merged["not_computed"] for w in words)


def test_missing_weights_name_the_setup_command(spec, tmp_path, no_torch):
    video = make_video(tmp_path / "clip.mkv", 3)
    empty = tmp_path / "weights"
    empty.mkdir()
    done, produced = run_script(tmp_path, no_torch, video=video,
                                audio=str(video.with_suffix(".wav")), weights=empty)
    assert done.returncode == 0, done.stderr
    assert_all_not_computed(produced, spec, "weights missing", "sfd_face.pth",
                            "syncnet_v2.model", "uv run nox -s setup-metric-syncnet")
    assert {"syncnet-python", "torch"} <= set(produced["version"])


def test_no_audio_track_is_not_computed(spec, tmp_path, no_torch):
    video = make_video(tmp_path / "clip.mkv", 3)
    done, produced = run_script(tmp_path, no_torch, video=video, audio="", weights=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_all_not_computed(produced, spec, "no audio track")


def test_video_shorter_than_a_track_is_not_computed(spec, tmp_path, no_torch):
    video = make_video(tmp_path / "clip.mkv", 1)  # 25 frames; a track needs more than 50
    weights = tmp_path / "weights"
    for name in PUBLISHED:  # present is all the pre-check asks; the model never loads
        (weights / "syncnet").mkdir(parents=True, exist_ok=True)
        (weights / "syncnet" / name).write_bytes(b"")
    done, produced = run_script(tmp_path, no_torch, video=video,
                                audio=str(video.with_suffix(".wav")), weights=weights)
    assert done.returncode == 0, done.stderr
    assert_all_not_computed(produced, spec, "25 frames", "more than 50")


def test_a_missing_video_is_an_error_not_a_score(tmp_path, no_torch):
    done, produced = run_script(tmp_path, no_torch, video=tmp_path / "absent.mkv", audio="",
                                weights=tmp_path)
    assert done.returncode == 3 and produced is None
    assert "absent.mkv: no such file" in done.stderr


def test_weights_that_are_not_the_published_files_give_no_lse(spec, tmp_path, no_torch):
    """A hand-made weights folder (setup checks the hashes; a person may not): never LSE."""
    video = make_video(tmp_path / "clip.mkv", 3)
    folder = tmp_path / "weights"
    for weight in spec.weights:
        (folder / weight.dest).parent.mkdir(parents=True, exist_ok=True)
        (folder / weight.dest).write_bytes(b"not the VGG file")
    done, produced = run_script(tmp_path, no_torch, video=video,
                                audio=str(video.with_suffix(".wav")), weights=folder)
    assert done.returncode == 0, done.stderr
    assert_all_not_computed(produced, spec, "not the published VGG files", "setup-metric-syncnet")
    assert produced["version"]["weights_published"] is False

"""The metrics discriminate: a real bench of `still` and `mouth` on the default cases, scored.

Built once for the module (both baselines, Piper, the face and identity metric envs), then read
as a user would read it. What must hold, from the issue that asked for the metrics:
- on every default case the moving mouth's landmark lip-sync beats the still image's;
- a copy of a mouth video with its audio delayed by 0.5 s gets its offset estimated within
  ±2 frames of the 12.5 it really is;
- `still` keeps identity best (it is the source image), and a video of another person is
  further from the source face than either;
- the report of the bench renders in headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from thbench import bench as benches
from thbench import cli, envs, executors, paths, proc, score, specs
from thbench.specs import Kind

from .conftest import envs_dir

pytestmark = pytest.mark.slow
FACE = paths.REPO_ROOT / "assets" / "face.png"
OTHER_FACE = paths.REPO_ROOT / "assets" / "other-face.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def scored(ready_envs, tmp_path_factory) -> dict:
    outputs = tmp_path_factory.mktemp("discrimination")
    with envs_dir(ready_envs):
        cli.setup_for_run(Kind.MODEL, "mouth")
        for name in ("face", "identity"):
            envs.setup(specs.get(Kind.METRIC, name))
        summary = cli.bench(benches.Request(models="still,mouth", outputs=outputs,
                                            metrics="face,identity"),
                            executors.Options(jobs=2))
        assert summary.complete and summary.counts["ok"] == 8, summary.counts
        folder = summary.bench.folder
        scores = {}
        for path in (folder / "cells").glob("*.json"):
            cell = json.loads(path.read_text())
            run_dir = (folder / cell["run_dir"]).resolve()
            scores[(cell["model"], cell["case"])] = {
                "dir": run_dir, **json.loads((run_dir / "score.json").read_text())}
        yield {"folder": folder, "scores": scores, "outputs": outputs}


def value(record: dict, metric: str) -> float | None:
    return record["metrics"][metric]["value"]


CASES = ("short", "medium", "long", "recorded")


def test_mouth_beats_still_on_landmark_lip_sync_on_every_default_case(scored):
    scored_cases = 0
    for case in CASES:
        mouth = scored["scores"][("mouth", case)]["metrics"]["lip_loudness_r"]
        still = scored["scores"][("still", case)]["metrics"]["lip_loudness_r"]
        seconds = scored["scores"][("mouth", case)]["video"]["seconds"]
        if seconds < 3.2:  # under the lag window's 80 frames: neither can be scored, and says so
            assert mouth["value"] is None and still["value"] is None
            assert "needs 80" in mouth["not_computed"] and "needs 80" in still["not_computed"]
            continue
        scored_cases += 1
        assert mouth["value"] is not None and mouth["value"] > 0.5, (case, mouth)
        # A still mouth has no lip motion to correlate: said as such, or far below the mouth's.
        assert (still["value"] is None and still["not_computed"]) or \
            still["value"] < mouth["value"] - 0.3, (case, still)
        assert abs(value(scored["scores"][("mouth", case)], "lip_loudness_lag")) <= 2
    assert scored_cases == 3  # medium, long, recorded


def test_a_half_second_audio_delay_is_estimated_within_two_frames(scored, tmp_path):
    mouth = scored["scores"][("mouth", "long")]["dir"] / "video.mp4"
    delayed = tmp_path / "delayed.mp4"
    proc.run(["ffmpeg", "-v", "error", "-i", mouth, "-itsoffset", "0.5", "-i", mouth,
              "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", delayed])
    record = score.score(delayed, FACE, tmp_path, label="delayed", names=["face"])
    lag = value(record, "lip_loudness_lag")
    # Audio later than the picture: the mouth moves before its sound, a negative lag (12.5 frames).
    assert lag is not None and abs(lag - -12.5) <= 2, record["metrics"]["lip_loudness_lag"]


def test_still_keeps_identity_best_and_another_face_is_further_than_either(scored, tmp_path):
    for case in CASES:
        still = value(scored["scores"][("still", case)], "identity_dlib_distance")
        mouth = value(scored["scores"][("mouth", case)], "identity_dlib_distance")
        assert still is not None and mouth is not None and still <= mouth, (case, still, mouth)
        assert mouth < 0.6  # the same person, by dlib's own threshold
    speech = scored["scores"][("still", "medium")]["dir"] / "speech.wav"
    other = tmp_path / "other.mp4"
    proc.run(["ffmpeg", "-v", "error", "-loop", "1", "-framerate", "25", "-i", OTHER_FACE,
              "-i", speech, "-shortest", "-vf", "format=yuv420p", "-c:v", "libx264",
              "-c:a", "aac", other])
    record = score.score(other, FACE, tmp_path, label="another face", names=["identity"])
    distance = value(record, "identity_dlib_distance")
    worst = max(value(scored["scores"][(m, c)], "identity_dlib_distance")
                for m in ("still", "mouth") for c in CASES)
    assert distance is not None and distance > max(worst, 0.6)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `python3 bootstrap/bootstrap.py` "
                    "installs it")
def test_the_report_of_the_bench_renders(scored, tmp_path):
    out = tmp_path / "report"
    index = cli.report([str(scored["folder"])], out)
    profile = tmp_path / "profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
    dom = proc.run([CHROMIUM, *flags, "--dump-dom", index.as_uri()], capture=True,
                   timeout=120).stdout
    assert 'data-rendered="1"' in dom and 'data-videos-ready="8"' in dom
    assert dom.count("<video") == 8 and "landmark lip-sync r" in dom
    shot = out.parent / "report.png"
    proc.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1400,2400", index.as_uri()],
             capture=True, timeout=120)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
    results = json.loads((out / "results.json").read_text())
    assert {row["model"] for row in results["rows"]} == {"still", "mouth"}
    assert Path(index).parent == out


def test_invoke_score_takes_a_video_made_elsewhere_and_the_report_takes_its_record(scored, tmp_path):
    import subprocess
    import sys

    other = tmp_path / "sample from elsewhere.mp4"  # a space: paths are argv items, no shell
    proc.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=220:duration=4",
              "-loop", "1", "-framerate", "25", "-i", FACE, "-shortest", "-map", "1:v",
              "-map", "0:a", "-vf", "format=yuv420p", "-c:v", "libx264", "-c:a", "aac", other])
    env = dict(os.environ, THB_OUTPUTS_DIR=str(tmp_path / "outputs"))

    def invoke(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=paths.REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=600)

    result = invoke("score", str(other), "--image", str(FACE), "--label", "elsewhere")
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "outputs" / "scores").iterdir()
    record = json.loads((folder / "score.json").read_text())
    assert record["label"] == "elsewhere" and record["run"] is None
    assert record["metrics"]["face_found"]["value"] == 1.0
    assert record["metrics"]["identity_dlib_distance"]["value"] < 0.3
    assert set(record["specs"]) >= {"face", "identity"}
    missing = invoke("score", str(tmp_path / "nope.mp4"), "--image", str(FACE))
    assert missing.returncode == 2 and "ERROR: the video" in missing.stderr
    picture = invoke("score", str(FACE), "--image", str(FACE))
    assert picture.returncode == 2 and "is a still image, not a video" in picture.stderr
    assert "Traceback" not in missing.stderr + picture.stderr
    assert len(list((tmp_path / "outputs" / "scores").iterdir())) == 1  # mistakes leave nothing
    report = invoke("report", f"{scored['folder']},{folder}", "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert {row["model"] for row in rows} >= {"still", "mouth", "elsewhere"}

"""LSE-C / LSE-D and the audio-video offset with SyncNet, through syncnet-python's pipeline.

Runs in the metric-syncnet env (syncnet-python 0.2.3, PyPI torch; ffmpeg on PATH):

    score.py --video V.mkv --audio V.wav --image source.png --out syncnet.json --weights DIR

DIR holds spec.toml's [[weights]] at their dest (syncnet/sfd_face.pth, syncnet/syncnet_v2.model).
SyncNetPipeline.inference re-encodes the video to a 25 fps AVI and JPEG frames and the speech to
16 kHz mono, finds faces with S3FD on every frame, cuts scenes, tracks faces by IoU, crops each
track of more than 50 frames to 224 px and lets SyncNet compare mouth and sound within ±15
frames. Per track: LSE-D = the smallest mean embedding distance over those offsets, LSE-C =
median minus that minimum, offset = 15 - argmin; over tracks this package takes the max LSE-C
and the min LSE-D (syncnet-python's variant: the reference script needs tracks of 100 frames,
LatentSync averages over tracks). No qualifying track, no sound, a video shorter than a track
or missing weights: every metric is written as not computed with why, never 0.

Argument parsing and every check that needs no model happen before torch is imported, so they
run (and can be tested) under any Python 3.11. Exit status 0 whenever the output was written;
3 when an input cannot be read or the pipeline fails.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

SPEC = Path(__file__).with_name("spec.toml")  # the weights' names, dests and published sha256
SETUP = "uv run nox -s setup-metric-syncnet"
METRICS = ("lse_c", "lse_d", "syncnet_offset")
AGGREGATE = {"lse_c": "max over tracks", "lse_d": "min over tracks (possibly not LSE-C's track)",
             "syncnet_offset": "the offset of the track with the max LSE-C"}
# Passed to SyncNetPipeline explicitly (these are its 0.2.3 defaults), so the record states what
# was used rather than whatever a later release defaults to.
CONFIG = {"facedet_scale": 0.25, "crop_scale": 0.40, "min_track": 50, "frame_rate": 25,
          "num_failed_det": 25, "min_face_size": 100, "vshift": 15, "audio_sample_rate": 16000,
          "batch_size": 20}
S3FD_CONF = 0.9  # hard-coded in SyncNetPipeline.inference (not a config field)
WEIGHT_KEYS = {"sfd_face.pth": "s3fd_weights", "syncnet_v2.model": "syncnet_weights"}
PACKAGES = ("syncnet-python", "torch", "opencv-contrib-python", "scenedetect", "numpy",
            "python-speech-features")


class Unreadable(Exception):
    pass


def settings(device: str | None) -> dict:
    """What changes the numbers, as this script runs the pipeline."""
    c = CONFIG
    return {
        "protocol": "syncnet-python SyncNetPipeline.inference",
        "reencode": f"by the pipeline: ffmpeg to a {c['frame_rate']} fps AVI (q:v 2, async 1) "
                    f"and JPEG frames (q:v 2); speech resampled to {c['audio_sample_rate']} Hz "
                    "mono WAV (on top of thbench's own normalisation)",
        "frame_rate": c["frame_rate"],
        "sample_rate": c["audio_sample_rate"],
        "face_detector": f"S3FD (sfd_face.pth) on every frame at scale {c['facedet_scale']}, "
                         f"conf >= {S3FD_CONF}, NMS 0.1",
        "s3fd_scale": c["facedet_scale"],
        "s3fd_conf": S3FD_CONF,
        "scene_cuts": "PySceneDetect ContentDetector, default threshold; scenes shorter than "
                      f"{c['min_track']} frames are skipped",
        "tracking": f"IoU > 0.5 with the previous box, gaps up to {c['num_failed_det']} frames, "
                    "boxes interpolated and median-filtered (13 frames)",
        "min_track_frames": f"more than {c['min_track']} detections",
        "min_face_px": c["min_face_size"],
        "crop_scale": c["crop_scale"],
        "crop": "square around the box widened by crop_scale, resized to 224x224",
        "offset_window_frames": c["vshift"],
        "distance": "mean over 5-frame windows of the L2 distance of SyncNet v2 embeddings",
        "device": device,
    }


def declared_weights() -> dict[str, dict]:
    """spec.toml's [[weights]] by file name: dest and published sha256."""
    spec = tomllib.loads(SPEC.read_text(encoding="utf-8"))
    return {Path(w["dest"]).name: w for w in spec.get("weights", [])}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict:
    """Installed versions, from package metadata (no import: torch may not be there)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def record(metrics: dict, version: dict) -> dict:
    return {"implementation": "syncnet-python SyncNetPipeline (S3FD face tracks + SyncNet v2), "
            "run by metrics/syncnet/score.py", "version": version, "metrics": metrics}


def not_computed(why: str, device: str | None = None, extra: dict | None = None) -> dict:
    return {m: {"value": None, "not_computed": why,
                "settings": {**settings(device), "aggregate": AGGREGATE[m]}, "extra": extra}
            for m in METRICS}


def video_frames(video: Path) -> int:
    """Video frames in the file (packets of its first video stream: no decoding)."""
    argv = [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "v:0",
            "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "json", str(video)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
        streams = json.loads(out).get("streams") or []
        return int(streams[0]["nb_read_packets"]) if streams else 0
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
        raise Unreadable(f"{video}: ffprobe cannot count its frames ({err})") from err


def precheck(args: argparse.Namespace, weights: dict[str, Path]) -> tuple[str | None, int]:
    """Why nothing can be computed, found without torch or a model (None: run the pipeline),
    and the video's frame count (0 until it is counted)."""
    if not args.video.is_file():
        raise Unreadable(f"{args.video}: no such file")
    if not args.audio:
        return "the video has no audio track: SyncNet compares the mouth with the sound", 0
    if not Path(args.audio).is_file():
        raise Unreadable(f"{args.audio}: no such file")
    missing = [str(path) for path in weights.values() if not path.is_file()]
    if missing:
        return f"SyncNet weights missing: {', '.join(missing)} (set up with `{SETUP}`)", 0
    tools = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if tools:
        return f"{' and '.join(tools)} not on PATH: syncnet-python runs ffmpeg by name", 0
    frames = video_frames(args.video)
    if frames <= CONFIG["min_track"]:
        return (f"the video has {frames} frames; a SyncNet face track needs more than "
                f"{CONFIG['min_track']} ({CONFIG['min_track'] / CONFIG['frame_rate']:.1f} s at "
                f"{CONFIG['frame_rate']} fps)"), frames
    return None, frames


def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version`: the pipeline's re-encodes depend on it."""
    out = subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-version"], capture_output=True,
                         text=True, check=False, timeout=60).stdout
    return (out.splitlines() or ["unknown"])[0]


def measure(video: Path, audio: Path, weights: dict[str, Path], frames: int) -> dict:
    import torch  # heavy: only once every cheap check has passed
    from syncnet_python import SyncNetPipeline

    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = SyncNetPipeline({**CONFIG, **{WEIGHT_KEYS[name]: str(path)
                                         for name, path in weights.items()}}, device=device)
    # Counted, not changed: how many frames S3FD saw a face in says why no track qualified,
    # and how many frames the pipeline's own re-encode made of the video's (ffmpeg 5.1 puts
    # two copies of the first frame in front when the AVI it writes carries MP3 sound).
    counts = {"video_frames": frames, "frames": 0, "frames_with_face": 0}
    detect = pipe.s3fd.detect_faces

    def counting(*a, **k):
        boxes = detect(*a, **k)
        counts["frames"] += 1
        counts["frames_with_face"] += int(len(boxes) > 0)
        return boxes

    pipe.s3fd.detect_faces = counting
    with tempfile.TemporaryDirectory(prefix="syncnet-") as work:
        try:
            offsets, confs, dists, _, _, _, has_face = pipe.inference(
                video_path=str(video), audio_path=str(audio), cache_dir=work)
        except RuntimeError as err:  # the pipeline's own word for an ffmpeg step that failed
            raise Unreadable(f"syncnet-python's pipeline failed: {err}") from err
    per_track = [{"offset": int(o), "lse_c": round(float(c), 6), "lse_d": round(float(d), 6)}
                 for o, c, d in zip(offsets, confs, dists, strict=True)]
    extra = {**counts, "tracks": len(confs), "per_track": per_track}
    if device == "cuda":
        extra["gpu"] = torch.cuda.get_device_name(0)
    if not has_face or not confs:
        why = (f"no face track of at least {CONFIG['min_track'] + 1} frames (faces over "
               f"{CONFIG['min_face_size']} px, S3FD conf >= {S3FD_CONF}): S3FD found a face in "
               f"{counts['frames_with_face']} of {counts['frames']} frames")
        return not_computed(why, device, extra)
    best = max(range(len(confs)), key=lambda i: confs[i])
    values = {"lse_c": round(float(confs[best]), 6), "lse_d": round(float(min(dists)), 6),
              "syncnet_offset": int(offsets[best])}
    metrics = {}
    for name, value in values.items():
        finite = math.isfinite(value)
        metrics[name] = {"value": value if finite else None,
                         "not_computed": None if finite else f"non-finite value ({value})",
                         "settings": {**settings(device), "aggregate": AGGREGATE[name]},
                         "extra": extra}
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True, help="the normalised video")
    parser.add_argument("--audio", default="", help="its speech as WAV; '' = it has none")
    parser.add_argument("--image", type=Path, help="the source image (not used here)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON to write")
    parser.add_argument("--weights", type=Path, required=True,
                        help="folder holding spec.toml's [[weights]] at their dest")
    args = parser.parse_args()
    declared = declared_weights()
    weights = {name: args.weights / w["dest"] for name, w in declared.items()}
    version = versions()
    try:
        why, frames = precheck(args, weights)
        if why:
            metrics = not_computed(why)
        else:
            # Which files made the numbers: setup checks the hashes, a hand-made folder may not.
            hashes = {name: sha256(path) for name, path in weights.items()}
            version["weights_sha256"] = hashes
            version["weights_published"] = all(hashes[n] == w["sha256"]
                                               for n, w in declared.items())
            version["ffmpeg"] = ffmpeg_version()
            if not version["weights_published"]:  # numbers from other weights are not LSE
                metrics = not_computed("the weights are not the published VGG files (their "
                                       "sha256 differs from spec.toml's); set them up with "
                                       "`uv run nox -s setup-metric-syncnet`")
            else:
                metrics = measure(args.video, Path(args.audio), weights, frames)
                for metric in metrics.values():
                    metric["settings"]["weights"] = "the published VGG files (sha256 as in spec.toml)"
    except Unreadable as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 3
    text = json.dumps(record(metrics, version), indent=1, allow_nan=False) + "\n"
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Face measurements of one video from MediaPipe FaceMesh landmarks; writes one JSON file.

Runs in the metric-face env (mediapipe 0.10.21, whose wheel ships the FaceMesh models):

    score.py --video V.mkv --audio V.wav --image source.png --out face.json

Every declared metric appears in ``--out`` with a value, or a null value and "not_computed"
saying why (no face in enough frames, no silence in the speech, ...): a missing number is
never a 0. Exit status 0 whenever the inputs could be read; 3 when one cannot be.

Landmarks are taken from frames with exactly one face; frames without are gaps, left out.
Lengths are in eye-corner distances (|lm33 - lm263|), so they do not depend on the face's size.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
import wave
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np

MAX_LAG = 15  # frames each way: 0.6 s at 25 fps, as SyncNet's offset search
MIN_PAIRS = 50  # face frames paired with audio at every lag: 2 s at 25 fps
STILL_LIP_STD = 1e-3  # eye-corner distances: below this the mouth does not move (sub-pixel)
LIP = (13, 14)  # inner-lip midpoints, upper and lower
EYE_CORNERS = (33, 263)  # outer eye corners: the unit of length
EYES = ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380))  # p1..p6 for EAR
EAR_CLOSED = 0.21
MAX_BLINK_S = 1.0  # a longer closure is not a blink (eyes shut, or too narrow to tell)
MIN_BLINK_VIDEO_S = 3.0
HEAD_POINTS = (1, 33, 133, 362, 263)  # nose tip and eye corners: move with the head, not speech
MIN_HEAD_PAIRS = 10
SILENCE_MIN_S = 0.3
SILENCE_REL = 0.1  # of the speech's loud level (95th percentile of frame RMS): -20 dB
LOUD_PERCENTILE = 95
MIN_SILENT_DIFFS = 5
BOX_MARGIN = 0.25  # the face box widened by this share of its size each side, for flicker
MIN_OUTSIDE_SHARE = 0.05  # a pair whose face boxes leave less of the frame is skipped


class Unreadable(Exception):
    pass


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples in [-1, 1] (channels averaged) and the sample rate; 16-bit PCM only."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as err:
        raise Unreadable(f"{path}: not a readable WAV file ({err})") from None
    if width != 2:
        raise Unreadable(f"{path}: {8 * width}-bit samples; expected 16-bit PCM")
    samples = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1), rate


def frame_rms(samples: np.ndarray, rate: int, fps: float) -> np.ndarray:
    """RMS of the samples around each video frame's time: one hop (rate / fps) centred on it.

    Centred, not starting at the frame's time: frame t is shown at t / fps, and a window
    starting there would read the sound half a frame later (a +0.5 frame bias in the lag).
    """
    hop = rate / fps
    count = int(len(samples) // hop)
    edges = np.clip(np.round((np.arange(count + 1) - 0.5) * hop).astype(int), 0, len(samples))
    return np.array([math.sqrt(float(np.mean(samples[a:b] ** 2))) if b > a else 0.0
                     for a, b in zip(edges[:-1], edges[1:], strict=True)])


def _box(points: np.ndarray, width: int, height: int, margin: float = 0.0) -> tuple[int, ...]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(0, int(x0 - dx)), max(0, int(y0 - dy)),
            min(width, int(math.ceil(x1 + dx))), min(height, int(math.ceil(y1 + dy))))


def _ear(p: np.ndarray, eye: tuple[int, ...]) -> float:
    p1, p2, p3, p4, p5, p6 = (p[i] for i in eye)
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5))
                 / (2 * np.linalg.norm(p1 - p4)))


def track(video: Path) -> dict:
    """Per-frame landmark measurements (NaN where not exactly one face) and flicker per pair."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise Unreadable(f"{video}: OpenCV cannot open it as a video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    faces, lip, ear, head, eye_dist, sharp, flicker = [], [], [], [], [], [], []
    previous_gray, previous_boxes = None, []
    # max_num_faces=2 so that a second face is seen (face_found counts exactly one).
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=2,
                                         refine_landmarks=True, min_detection_confidence=0.5,
                                         min_tracking_confidence=0.5) as mesh:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            height, width = frame.shape[:2]
            found = mesh.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            every = [np.array([(m.x * width, m.y * height) for m in face.landmark]) for face in found]
            boxes = [_box(p, width, height, BOX_MARGIN) for p in every]
            faces.append(len(every))
            if len(every) == 1:
                p = every[0]
                unit = float(np.linalg.norm(p[EYE_CORNERS[0]] - p[EYE_CORNERS[1]]))
                eye_dist.append(unit)
                lip.append(float(np.linalg.norm(p[LIP[0]] - p[LIP[1]])) / unit)
                ear.append((_ear(p, EYES[0]) + _ear(p, EYES[1])) / 2)
                head.append(p[list(HEAD_POINTS)])
                x0, y0, x1, y1 = _box(p, width, height)
                crop = gray[y0:y1, x0:x1]
                sharp.append(float(cv2.Laplacian(crop, cv2.CV_64F).var())
                             if min(crop.shape) >= 8 else math.nan)
            else:
                eye_dist.append(math.nan)
                lip.append(math.nan)
                ear.append(math.nan)
                head.append(None)
                sharp.append(math.nan)
            if previous_gray is not None and previous_gray.shape == gray.shape:
                outside = np.ones(gray.shape, bool)
                for x0, y0, x1, y1 in previous_boxes + boxes:
                    outside[y0:y1, x0:x1] = False
                if outside.mean() >= MIN_OUTSIDE_SHARE:
                    diff = np.abs(gray.astype(np.int16) - previous_gray.astype(np.int16))
                    flicker.append(float(diff[outside].mean()))
            previous_gray, previous_boxes = gray, boxes
    capture.release()
    if not faces:
        raise Unreadable(f"{video}: no frame could be decoded")
    return {"fps": float(fps), "size": [width, height], "faces": np.array(faces),
            "lip": np.array(lip), "ear": np.array(ear), "head": head,
            "eye_dist": np.array(eye_dist), "sharp": np.array(sharp), "flicker": flicker}


def result(value: float | None = None, why: str | None = None, settings: dict | None = None,
           extra: dict | None = None) -> dict:
    if value is not None and not math.isfinite(value):
        value, why = None, why or f"the computation gave a non-finite number ({value})"
    return {"value": None if value is None else round(float(value), 6),
            "not_computed": None if value is not None else why,
            "settings": settings or {}, "extra": extra or {}}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else math.nan


def lip_sync(lip: np.ndarray, loud: np.ndarray | None, fps: float, why_no_audio: str | None,
             rate: int | None) -> tuple[dict, dict]:
    """Best r of lip opening vs loudness over lags, and that lag (positive: mouth after sound)."""
    settings = {"lag_window_frames": [-MAX_LAG, MAX_LAG], "hop_samples": rate / fps if rate else None,
                "loudness": "RMS over one hop centred on each video frame's time",
                "lip_opening": f"|lm{LIP[0]} - lm{LIP[1]}| / |lm{EYE_CORNERS[0]} - lm{EYE_CORNERS[1]}|",
                "pairing": "lip[t] with loudness[t - lag]", "min_pairs_per_lag": MIN_PAIRS,
                "lag_refinement": "parabola through the best r and its two neighbours"}
    lag_settings = {**settings, "sign": "positive = the mouth moves after the sound (video "
                    "late); negative = before it (audio late)"}

    def neither(why: str, extra: dict | None = None) -> tuple[dict, dict]:
        return result(None, why, settings, extra), result(None, why, lag_settings, extra)

    if loud is None:
        return neither(why_no_audio or "no audio")
    n = min(len(lip), len(loud))
    extra = {"video_frames": int(len(lip)), "audio_frames": int(len(loud)), "frames_used": n}
    lip, loud = lip[:n], loud[:n]
    face = ~np.isnan(lip)
    if face.sum() < MIN_PAIRS + 2 * MAX_LAG:
        what = (f"the video is {n} frames long" if face.sum() == n else
                f"a face in {int(face.sum())} of {n} frames")
        return neither(f"{what}; the lag search needs {MIN_PAIRS + 2 * MAX_LAG} face frames "
                       f"({MIN_PAIRS} paired at every lag within ±{MAX_LAG})", extra)
    if np.nanstd(lip) < STILL_LIP_STD:
        return neither(f"the lip opening does not change (std {np.nanstd(lip):.2g} < "
                       f"{STILL_LIP_STD} eye-corner distances): nothing to correlate", extra)
    if float(np.std(loud)) == 0.0:
        return neither("the speech's loudness does not change (silent audio)", extra)
    rs = {}
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        t = np.arange(max(0, lag), min(n, n + lag))
        a, b = lip[t], loud[t - lag]
        keep = ~np.isnan(a)
        if keep.sum() < MIN_PAIRS:
            return neither(f"only {int(keep.sum())} face frames pair with audio at lag {lag}; "
                           f"needs {MIN_PAIRS} (video too short for ±{MAX_LAG} frames)", extra)
        rs[lag] = _pearson(a[keep], b[keep])
    best = max(rs, key=lambda k: -math.inf if math.isnan(rs[k]) else rs[k])
    refined = float(best)
    if -MAX_LAG < best < MAX_LAG:
        left, mid, right = rs[best - 1], rs[best], rs[best + 1]
        curve = left - 2 * mid + right
        if curve < 0:
            refined = best + 0.5 * (left - right) / curve
    extra = {**extra, "best_integer_lag": best, "r_at_lag_0": round(rs[0], 4),
             "peak_at_window_edge": abs(best) == MAX_LAG}
    curve = {"r_by_lag": {str(k): round(v, 4) for k, v in rs.items()}}  # once: it is 31 numbers
    return (result(rs[best], None, settings, extra),
            result(refined, None, lag_settings, {**extra, **curve}))


def silent_motion(lip: np.ndarray, loud: np.ndarray | None, fps: float,
                  why_no_audio: str | None) -> dict:
    min_frames = math.ceil(SILENCE_MIN_S * fps - 1e-9)
    settings = {"silence": f"runs of >= {min_frames} frames ({SILENCE_MIN_S} s) with frame RMS "
                f"< {SILENCE_REL} x the {LOUD_PERCENTILE}th percentile of frame RMS",
                "motion": "mean |lip[t] - lip[t-1]| inside a silent run, both frames with a face"}
    if loud is None:
        return result(None, why_no_audio or "no audio", settings)
    n = min(len(lip), len(loud))
    lip, loud = lip[:n], loud[:n]
    level = float(np.percentile(loud, LOUD_PERCENTILE)) if n else 0.0
    if level == 0.0:
        return result(None, "the speech is silent: no loud level to set a silence threshold by",
                      settings)
    threshold = SILENCE_REL * level
    settings["threshold_rms"] = round(threshold, 6)
    runs, start = [], None
    for i, quiet in enumerate(list(loud < threshold) + [False]):
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            if i - start >= min_frames:
                runs.append((start, i))
            start = None
    if not runs:
        return result(None, f"the speech has no silence of {SILENCE_MIN_S} s or more "
                      f"(frame RMS below {threshold:.4g})", settings)
    diffs = [abs(lip[t] - lip[t - 1]) for a, b in runs for t in range(a + 1, b)
             if not (math.isnan(lip[t]) or math.isnan(lip[t - 1]))]
    extra = {"silent_runs": len(runs), "silent_frames": sum(b - a for a, b in runs),
             "frame_pairs_used": len(diffs)}
    if len(diffs) < MIN_SILENT_DIFFS:
        return result(None, f"a face in only {len(diffs)} consecutive silent frame pairs; needs "
                      f"{MIN_SILENT_DIFFS}", settings, extra)
    return result(float(np.mean(diffs)), None, settings, extra)


def blinks(ear: np.ndarray, fps: float) -> dict:
    max_frames = int(round(MAX_BLINK_S * fps))
    settings = {"ear_landmarks": [list(e) for e in EYES], "ear": "mean of both eyes' "
                "(|p2-p6| + |p3-p5|) / (2 |p1-p4|)", "closed_below": EAR_CLOSED,
                "blink": f"a run of 1..{max_frames} closed face frames"}
    face_s = float((~np.isnan(ear)).sum()) / fps
    if face_s < MIN_BLINK_VIDEO_S:
        return result(None, f"a face in only {face_s:.1f} s of video; needs {MIN_BLINK_VIDEO_S} s",
                      settings)
    closed = ear < EAR_CLOSED  # NaN compares False: a frame without a face ends a run
    runs, length = [], 0
    for c in list(closed) + [False]:
        if c:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    counted = [r for r in runs if r <= max_frames]
    extra = {"blinks": len(counted), "long_closures": len(runs) - len(counted),
             "face_seconds": round(face_s, 2), "closed_share": round(float(closed.sum()) / (face_s * fps), 4),
             "median_ear": round(float(np.nanmedian(ear)), 4)}
    if extra["closed_share"] > 0.5:
        return result(None, f"eye aspect ratio below {EAR_CLOSED} in most face frames (eyes closed "
                      "or too narrow for this threshold): blinks cannot be told apart", settings, extra)
    return result(len(counted) / (face_s / 60), None, settings, extra)


def head_motion(head: list, eye_dist: np.ndarray) -> dict:
    settings = {"landmarks": list(HEAD_POINTS), "displacement": "mean over the landmarks of "
                "|p_t - p_t-1| / mean eye-corner distance of the two frames",
                "pairs": "consecutive frames, both with exactly one face"}
    steps = [float(np.linalg.norm(head[t] - head[t - 1], axis=1).mean())
             / ((eye_dist[t] + eye_dist[t - 1]) / 2)
             for t in range(1, len(head)) if head[t] is not None and head[t - 1] is not None]
    if len(steps) < MIN_HEAD_PAIRS:
        return result(None, f"only {len(steps)} pairs of consecutive face frames; needs "
                      f"{MIN_HEAD_PAIRS}", settings)
    return result(float(np.mean(steps)), None, settings,
                  {"pairs": len(steps), "p95": round(float(np.percentile(steps, 95)), 6)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--audio", default="", help="its speech as a WAV; '' if it has none")
    parser.add_argument("--image", default="", help="the source image (not used here)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        loud, rate, why_no_audio = None, None, None
        tracked = track(args.video)
        fps = tracked["fps"]
        if args.audio:
            samples, rate = read_wav(Path(args.audio))
            loud = frame_rms(samples, rate, fps)
        else:
            why_no_audio = "the video has no audio track"
    except Unreadable as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 3
    faces, lip = tracked["faces"], tracked["lip"]
    r, lag = lip_sync(lip, loud, fps, why_no_audio, rate)
    sharp, flicker = tracked["sharp"], tracked["flicker"]
    face_frames = int((faces == 1).sum())
    metrics = {
        "face_found": result(face_frames / len(faces), None,
                             {"model": "FaceMesh, refine_landmarks, video tracking, max 2 faces",
                              "min_detection_confidence": 0.5, "min_tracking_confidence": 0.5},
                             {"frames": int(len(faces)), "one_face": face_frames,
                              "no_face": int((faces == 0).sum()), "several": int((faces > 1).sum())}),
        "lip_loudness_r": r,
        "lip_loudness_lag": lag,
        "silent_mouth_motion": silent_motion(lip, loud, fps, why_no_audio),
        "blink_rate": blinks(tracked["ear"], fps),
        "head_motion": head_motion(tracked["head"], tracked["eye_dist"]),
        "face_sharpness_laplacian": result(
            float(np.nanmean(sharp)) if (~np.isnan(sharp)).any() else None,
            "no frame with exactly one face", {"region": "gray landmark bounding box, unwidened",
                                               "operator": "cv2.Laplacian(gray, cv2.CV_64F).var()"},
            {"frames": int((~np.isnan(sharp)).sum()), "frame_size": tracked["size"]}),
        "flicker_outside_face": result(
            float(np.mean(flicker)) if flicker else None,
            "no pair of consecutive frames with enough of the frame outside the face boxes",
            {"outside": f"pixels outside every face box of both frames, boxes widened by "
                        f"{BOX_MARGIN:.0%} each side", "min_outside_share": MIN_OUTSIDE_SHARE},
            {"pairs": len(flicker)}),
    }
    versions = {name: importlib.metadata.version(name) for name in ("mediapipe", "numpy")}
    versions["opencv"] = cv2.__version__
    record = {"implementation": "metrics/face/score.py: MediaPipe FaceMesh (legacy solution, 478 "
              "landmarks) + NumPy/OpenCV", "version": versions, "fps": fps, "metrics": metrics}
    args.out.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

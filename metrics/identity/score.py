"""Identity distance of a video's face to the source image with dlib's ResNet face descriptor.

Runs in the metric-identity env (dlib-bin; model files from face-recognition-models 0.3.0):

    score.py --video V.mkv --audio V.wav --image source.png --out identity.json

dlib's frontal (HOG) detector finds the face, its 5-point shape predictor aligns it and the
ResNet model gives a 128-d descriptor; the number is the mean Euclidean distance from each
sampled frame's descriptor to the image's (dlib: under 0.6 is the same person, 99.38% on LFW).
This is dlib's descriptor distance, not CSIM (a cosine of ArcFace-family embeddings), and
dlib's model is reported less accurate on some demographics. Exit status 0 whenever the inputs
could be read (a number that cannot be computed is written as not computed, with why); 3 when
one cannot be.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import cv2
import dlib
import numpy as np

EVERY_NTH = 10  # frames: 2.5 descriptors a second at 25 fps; each costs ~0.25 s of CPU
MIN_FACE_SHARE = 0.5  # of sampled frames, for the mean to speak for the video
SAME_PERSON = 0.6  # dlib's documented threshold
UPSAMPLE_RETRY = 1  # when no face is found at the frame's own size, look once at 2x
MODELS_PACKAGE = "face-recognition-models"
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"


class Unreadable(Exception):
    pass


def model_file(name: str) -> Path:
    """A model file of face-recognition-models, found from its installed-files record.

    Importing the package would run its __init__, which imports pkg_resources (removed in
    setuptools 82); the files are plain data, so the record is enough.
    """
    for file in importlib.metadata.files(MODELS_PACKAGE) or []:
        if file.name == name:
            return Path(file.locate())
    raise FileNotFoundError(f"{name} is not in the installed {MODELS_PACKAGE}")


class Describer:
    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(model_file(SHAPE_MODEL)))
        self.resnet = dlib.face_recognition_model_v1(str(model_file(DESCRIPTOR_MODEL)))

    def describe(self, rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The descriptor of the largest face (None if none) and how many faces were found."""
        faces = self.detector(rgb, 0)
        if not faces:
            faces = self.detector(rgb, UPSAMPLE_RETRY)
        if not faces:
            return None, 0
        largest = max(faces, key=lambda r: r.width() * r.height())
        shape = self.shape(rgb, largest)
        return np.array(self.resnet.compute_face_descriptor(rgb, shape)), len(faces)


def sampled_frames(video: Path, every: int):
    """(frame index, RGB frame) for every ``every``-th decoded frame; also the total count."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise Unreadable(f"{video}: OpenCV cannot open it as a video")
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                yield index, np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise Unreadable(f"{video}: no frame could be decoded")


def measure(video: Path, image: Path) -> dict:
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise Unreadable(f"{image}: not a readable image")
    describer = Describer()
    settings = {"detector": "dlib.get_frontal_face_detector() (HOG), upsample 0, retried at "
                f"{UPSAMPLE_RETRY} when no face", "landmarks": SHAPE_MODEL,
                "descriptor": f"{DESCRIPTOR_MODEL}, compute_face_descriptor, no jitter",
                "every_nth_frame": EVERY_NTH, "face": "the largest detected face",
                "distance": "Euclidean, 128-d", "same_person_below": SAME_PERSON,
                "min_face_share": MIN_FACE_SHARE}
    source, source_faces = describer.describe(np.ascontiguousarray(bgr[:, :, ::-1]))
    distances, no_face, several, sampled = [], 0, 0, 0
    for _, rgb in sampled_frames(video, EVERY_NTH):
        sampled += 1
        descriptor, count = describer.describe(rgb)
        several += count > 1
        if descriptor is None:
            no_face += 1
        elif source is not None:
            distances.append(float(np.linalg.norm(descriptor - source)))
    extra = {"sampled_frames": sampled, "frames_no_face": no_face,
             "frames_several_faces": int(several), "source_faces": source_faces}
    if source is None:
        return {"value": None, "not_computed": f"no face found in the source image {image.name}",
                "settings": settings, "extra": extra}
    share = (sampled - no_face) / sampled
    if share < MIN_FACE_SHARE:
        return {"value": None, "not_computed": f"a face in only {sampled - no_face} of {sampled} "
                f"sampled frames (needs {MIN_FACE_SHARE:.0%})", "settings": settings,
                "extra": extra}
    values = np.array(distances)
    extra.update({"share_under_threshold": round(float((values < SAME_PERSON).mean()), 4),
                  "std": round(float(values.std()), 6), "max": round(float(values.max()), 6),
                  "min": round(float(values.min()), 6)})
    mean = float(values.mean())
    return {"value": round(mean, 6) if math.isfinite(mean) else None,
            "not_computed": None if math.isfinite(mean) else "non-finite distance",
            "settings": settings, "extra": extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--audio", default="", help="its speech (not used here)")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        metric = measure(args.video, args.image)
    except Unreadable as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 3
    versions = {name: importlib.metadata.version(name)
                for name in ("dlib-bin", MODELS_PACKAGE, "numpy")}
    versions["dlib"], versions["opencv"] = dlib.__version__, cv2.__version__
    record = {"implementation": "metrics/identity/score.py: dlib ResNet face descriptor "
              "(frontal HOG detector, 5-point alignment)", "version": versions,
              "metrics": {"identity_dlib_distance": metric}}
    args.out.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run Audio2Head's inference.py on one image + one WAV.

Upstream wants a square face crop (it resizes whatever it gets to 256x256), reads its configs
and writes ./results/temp.wav relative to the cwd (so ./results must exist in the checkout), and
names the video <image[:-4]>_<audio[:-4]>.mp4, which assumes 3-letter extensions. The image is
centre-cropped to a square and saved as face.jpg in --work-dir, then inference.py runs from the
checkout with --save_path --work-dir.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import cv2


def square(image_path: Path, out: Path) -> None:
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"adapter: cannot read {image_path}")
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = cv2.resize(image[top:top + side, left:left + side], (256, 256),
                      interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), crop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--image", "--audio", "--work-dir", "--model-path"):
        parser.add_argument(flag, required=True, type=Path)
    args = parser.parse_args()
    repo = Path.cwd()
    (repo / "results").mkdir(exist_ok=True)  # upstream's fixed temp folder
    face = args.work_dir / "face.jpg"
    square(args.image, face)
    argv = [sys.executable, str(repo / "inference.py"), "--audio_path", str(args.audio),
            "--img_path", str(face), "--save_path", str(args.work_dir),
            "--model_path", str(args.model_path)]
    return subprocess.run(argv, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

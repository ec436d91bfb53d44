"""Run EchoMimic's infer_audio2vid.py on one image + one audio and leave the video in --work-dir.

Upstream takes its inputs only from a YAML config (test_cases) and writes to
output/<date>/<time>--seed_.../ under the repo. This writes that config into --work-dir, runs the
script with this interpreter from the repo root, then moves the videos it made into --work-dir.
Stdlib only: json.dumps strings are valid YAML double-quoted scalars. Extra args go to upstream.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

WEIGHTS = {  # the keys of configs/prompts/animation.yaml, paths relative to the repo root
    "pretrained_base_model_path": "./pretrained_weights/sd-image-variations-diffusers/",
    "pretrained_vae_path": "./pretrained_weights/sd-vae-ft-mse/",
    "audio_model_path": "./pretrained_weights/audio_processor/whisper_tiny.pt",
    "denoising_unet_path": "./pretrained_weights/denoising_unet.pth",
    "reference_unet_path": "./pretrained_weights/reference_unet.pth",
    "face_locator_path": "./pretrained_weights/face_locator.pth",
    "motion_module_path": "./pretrained_weights/motion_module.pth",
    "inference_config": "./configs/inference/inference_v2.yaml",
    "weight_dtype": "fp16",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--repo", "--image", "--audio", "--work-dir"):
        parser.add_argument(flag, required=True, type=Path)
    args, upstream_args = parser.parse_known_args()
    repo, work = args.repo.resolve(), args.work_dir.resolve()
    lines = [f"{key}: {json.dumps(value)}" for key, value in WEIGHTS.items()]
    lines += [
        "test_cases:",
        f"  {json.dumps(str(args.image.resolve()))}:",
        f"    - {json.dumps(str(args.audio.resolve()))}",
    ]
    config = work / "echomimic.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = set((repo / "output").glob("*/*/*.mp4"))
    argv = [sys.executable, "-u", str(repo / "infer_audio2vid.py"), "--config", str(config)]
    code = subprocess.run(argv + upstream_args, check=False, cwd=repo).returncode
    made = sorted(set((repo / "output").glob("*/*/*.mp4")) - before, key=os.path.getmtime)
    for video in made:  # the silent .mp4 and the final *_withaudio.mp4
        shutil.move(str(video), str(work / video.name))
    if code == 0 and not any(v.name.endswith("_withaudio.mp4") for v in made):
        print("adapter: infer_audio2vid.py wrote no *_withaudio.mp4", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

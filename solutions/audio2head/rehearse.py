"""Stand-in weights for an Audio2Head rehearsal, made by the checkout's own model classes.

Run by `nox -s setup-audio2head -- --rehearse` with the env's Python, cwd = the checkout:
``python rehearse.py --root <checkout> --seed 0``. Writes checkpoints/audio2head.pth.tar, randomly
initialised, in the format upstream loads: one ``torch.save``d dict whose keys are read as

- ``audio2pose``: ``audio2poseLSTM().state_dict()`` (modules/audio2pose.py:38-42);
- ``kp_detector``, ``generator``: ``KPDetector`` / ``OcclusionAwareGenerator`` built from
  ./config/vox-256.yaml's ``model_params`` (inference.py:139-145, 152-154);
- ``audio2kp``: ``AudioModel3D`` built from ./config/parameters.yaml (inference.py:149-155).

The file is then loaded back exactly as upstream does (``torch.load`` without map_location,
strict ``load_state_dict`` into fresh instances), because the rehearsal run itself stops at the
first ``.cuda()`` (inference.py:133), before upstream opens the checkpoint.
"""

import argparse
import sys
from pathlib import Path

DEST = "checkpoints/audio2head.pth.tar"


def build(torch, yaml):
    """Fresh upstream modules, keyed as in the checkpoint, with upstream's own configs."""
    from modules.audio2kp import AudioModel3D
    from modules.audio2pose import audio2poseLSTM
    from modules.generator import OcclusionAwareGenerator
    from modules.keypoint_detector import KPDetector

    with open("./config/vox-256.yaml") as f:
        params = yaml.safe_load(f)["model_params"]
    with open("./config/parameters.yaml") as f:
        opt = argparse.Namespace(**yaml.safe_load(f))
    return {
        "audio2pose": audio2poseLSTM(),
        "kp_detector": KPDetector(**params["kp_detector_params"], **params["common_params"]),
        "generator": OcclusionAwareGenerator(**params["generator_params"],
                                             **params["common_params"]),
        "audio2kp": AudioModel3D(opt),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the spec's dests land")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the checkout: upstream's own classes and configs

    import torch
    import yaml

    torch.manual_seed(args.seed)
    models = build(torch, yaml)
    path = args.root / DEST
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: model.state_dict() for key, model in models.items()}, path)
    print(f"stand-in {DEST}: {path.stat().st_size} bytes")

    checkpoint = torch.load(path)  # as inference.py:152 and audio2pose.py:40 read it
    for key, model in build(torch, yaml).items():
        model.load_state_dict(checkpoint[key])  # strict, as upstream
        print(f"  {key}: {sum(p.numel() for p in model.parameters())} parameters, loads strictly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

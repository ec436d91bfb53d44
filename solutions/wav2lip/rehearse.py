"""Stand-in weights for a Wav2Lip rehearsal, made by the checkout's own model classes.

Run by `nox -s setup-wav2lip -- --rehearse` with the env's Python, cwd = the checkout:
``python rehearse.py --root <checkout> --seed 0``. Writes, randomly initialised, in the formats
upstream loads:

- checkpoints/wav2lip_gan.pth: ``{"state_dict": Wav2Lip().state_dict()}`` (inference.py
  ``load_model`` reads ``checkpoint["state_dict"]`` and strips any ``module.`` prefix);
- face_detection/detection/sfd/s3fd.pth: a plain ``s3fd().state_dict()`` (sfd_detector.py).

Random weights make a random mouth, never a face detection: the rehearsal run passes the face
check's box as ``--box`` (an upstream option), so the S3FD detector is not asked.
"""

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the spec's dests land")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the checkout: upstream's own classes

    import torch
    from face_detection.detection.sfd.net_s3fd import s3fd
    from models import Wav2Lip

    torch.manual_seed(args.seed)
    targets = {
        "checkpoints/wav2lip_gan.pth": {"state_dict": Wav2Lip().state_dict()},
        "face_detection/detection/sfd/s3fd.pth": s3fd().state_dict(),
    }
    for dest, payload in targets.items():
        path = args.root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        print(f"stand-in {dest}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

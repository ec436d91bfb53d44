"""Stand-in weights for a SadTalker rehearsal, made by the checkout's own model classes.

Run by `nox -s setup-sadtalker -- --rehearse` with the env's Python, cwd = the checkout:
``python rehearse.py --root <checkout> --seed 0``. Every file the spec declares, randomly
initialised, in the format its loader reads:

- checkpoints/SadTalker_V0.0.2_{256,512}.safetensors: one flat safetensors file whose keys are
  ``<part>.<state_dict key>`` for face_3drecon (preprocess.py), audio2pose and audio2exp
  (test_audio2coeff.py), generator, kp_extractor and he_estimator (animate.py), as
  ``load_x_from_safetensor`` and ``load_cpk_facevid2vid_safetensor`` split them;
- checkpoints/mapping_{00229,00109}-model.pth.tar: ``{"mapping": …, "epoch": 0}``
  (animate.py ``load_cpk_mapping`` returns ``checkpoint["epoch"]``), with facerender.yaml's
  and facerender_still.yaml's mapping sizes;
- gfpgan/weights/alignment_WFLW_4HG.pth: ``{"state_dict": FAN(4 modules, 98 points)}``;
- gfpgan/weights/detection_Resnet50_Final.pth: facexlib's RetinaFace state dict;
- gfpgan/weights/parsing_parsenet.pth, GFPGANv1.4.pth: facexlib ParseNet, ``{"params_ema":
  GFPGANv1Clean}`` (used only with --enhancer gfpgan).

SadTalker's preprocessing keeps RetinaFace detections above 0.97 and takes the first one: a
random head finds nothing, so the stand-in detector's classification head is zeroed with a
bias that makes one anchor size of one pyramid level fire (the 128 px anchors of the stride-16
level, a face's size in a small portrait), and its box and landmark heads are zeroed so each
box is its anchor (random ones decode to boxes 10^16 px tall, whose crop is empty). Which of
those equal-scored boxes upstream takes first is up to its sort (the last anchor: the bottom
right of the photo); the rehearsal's point is the code path, not the crop.

Random landmarks then put the eyes anywhere, and the face crop comes out empty. So the last
hourglass of the stand-in landmark network is made to draw a fixed face: its CoordConv passes
only the x and y coordinate channels on, its residual blocks are identities (zero convs), and
its head turns those coordinates into one peak per landmark at the mean face layout of
SadTalker's own similarity_Lm3D_all.mat (98 points from 68, as facexlib's landmark_98_to_68
reads them back). The other three hourglasses stay random.
"""

import argparse
import sys
from pathlib import Path

FIRE_LEVEL, FIRE_ANCHOR, FIRE_LOGIT = 1, 1, 12.0  # softmax(12, 0) = 0.999994 > 0.97


def prefixed(prefix, module):
    return {f"{prefix}.{key}": value.contiguous() for key, value in module.state_dict().items()}


def mean_face_98():
    """98 WFLW points (heatmap pixels, 64 x 64) whose 68-point reading is SadTalker's mean face."""
    import numpy as np
    from scipy.io import loadmat

    lm68 = loadmat("src/config/similarity_Lm3D_all.mat")["lm"][:, :2]
    points = np.stack([0.5 + 0.4 * lm68[:, 0], 0.5 - 0.4 * lm68[:, 1]], 1) * 63  # y points up
    p98 = np.zeros((98, 2))
    for i in range(33):  # chin: even points are the 68-point chin, odd ones between them
        p98[i] = points[i // 2] if i % 2 == 0 else (points[i // 2] + points[i // 2 + 1]) / 2
    p98[33], p98[46] = points[17], points[26]
    eyebrows = {(34, 41): 18, (35, 40): 19, (36, 39): 20, (37, 38): 21, (42, 50): 22,
                (43, 49): 23, (44, 48): 24, (45, 47): 25}  # 98-point pair -> 68-point index
    for pair, j in eyebrows.items():
        p98[list(pair)] = points[j]  # eyebrows: 68 = mean of the pair
    p98[51:60] = points[27:36]
    for eye98, eye68 in (((60, 61, 63, 64, 65, 67), range(36, 42)),
                         ((68, 69, 71, 72, 73, 75), range(42, 48))):
        p98[list(eye98)] = points[list(eye68)]
        p98[eye98[1] + 1] = (p98[eye98[1]] + p98[eye98[2]]) / 2
        p98[eye98[4] + 1] = (p98[eye98[4]] + p98[eye98[5]]) / 2
    p98[76:96] = points[48:68]
    p98[96], p98[97] = points[36:42].mean(0), points[42:48].mean(0)  # pupils
    return np.rint(p98).astype(int)


def draw_mean_face(fan, targets, torch) -> None:
    """Make the FAN's last stack output heatmap k = C - |fx - fx(px_k)| - |fy - fy(py_k)|."""
    last = fan.num_modules - 1
    hourglass = fan._modules[f"m{last}"]
    with torch.no_grad():
        conv = hourglass.coordconv.conv  # inputs: 256 features, x, y, r, boundary x, boundary y
        conv.weight.zero_()
        conv.bias.zero_()
        # AddCoordsTh's "xx" channel (256) varies down the rows, its "yy" (257) along them:
        # out 0 follows the column (x), out 1 the row (y).
        conv.weight[0, 257], conv.weight[1, 256] = 1.0, 1.0
        blocks = [m for m in hourglass.modules() if type(m).__name__ == "ConvBlock"]
        blocks.append(fan._modules[f"top_m_{last}"])
        for block in blocks:
            for layer in (block.conv1, block.conv2, block.conv3):
                layer.weight.zero_()  # out = 0 + residual: an identity
        probe = torch.zeros(1, 256, 64, 64)
        coords, _ = hourglass(probe, torch.zeros(1, 99, 64, 64))
        coords = fan._modules[f"top_m_{last}"](coords)
        fx, fy = coords[0, 0, 0, :], coords[0, 1, :, 0]  # monotone in column / row
        assert bool((fx[1:] > fx[:-1]).all() and (fy[1:] > fy[:-1]).all())
        hinges = []  # (channel of coords, threshold, sign): relu(sign * (f - threshold))
        for axis, values in ((0, fx), (1, fy)):
            for pixel in sorted({int(p[axis]) for p in targets}):
                hinges += [(axis, pixel, float(values[pixel]), 1.0),
                           (axis, pixel, float(values[pixel]), -1.0)]
        head, last_conv = fan._modules[f"l{last}"], fan._modules[f"conv_last{last}"]
        last_conv.weight.zero_()
        last_conv.bias.zero_()
        head.weight.zero_()
        head.bias.fill_(10.0)
        for channel, (axis, pixel, threshold, sign) in enumerate(hinges):
            last_conv.weight[channel, axis] = sign
            last_conv.bias[channel] = -sign * threshold
            for k, point in enumerate(targets):
                if int(point[axis]) == pixel:
                    head.weight[k, channel] = -1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the spec's dests land")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the checkout: upstream's own classes

    import safetensors.torch
    import torch
    import yaml
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
    from src.audio2exp_models.networks import SimpleWrapperV2
    from src.audio2pose_models.audio2pose import Audio2Pose
    from src.face3d.models import networks
    from src.face3d.util.my_awing_arch import FAN
    from src.facerender.modules.generator import OcclusionAwareSPADEGenerator
    from src.facerender.modules.keypoint_detector import HEEstimator, KPDetector
    from src.facerender.modules.mapping import MappingNet
    from yacs.config import CfgNode

    def config(name):
        with open(f"src/config/{name}") as fh:
            return yaml.safe_load(fh)["model_params"]

    def save(dest, payload):
        path = args.root / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        if dest.endswith(".safetensors"):
            safetensors.torch.save_file(payload, str(path))
        else:
            torch.save(payload, path)
        print(f"stand-in {dest}: {path.stat().st_size} bytes")

    render = config("facerender.yaml")
    common = render["common_params"]
    with open("src/config/auido2pose.yaml") as fh:
        pose_cfg = CfgNode.load_cfg(fh)
    for number, size in enumerate((256, 512)):
        torch.manual_seed(args.seed + number)
        parts = {
            "face_3drecon": networks.define_net_recon(net_recon="resnet50", use_last_fc=False,
                                                      init_path=""),
            "audio2pose": Audio2Pose(pose_cfg, None, device="cpu"),
            "audio2exp": SimpleWrapperV2(),
            "generator": OcclusionAwareSPADEGenerator(**render["generator_params"], **common),
            "kp_extractor": KPDetector(**render["kp_detector_params"], **common),
            "he_estimator": HEEstimator(**render["he_estimator_params"], **common),
        }
        tensors = {}
        for prefix, module in parts.items():
            tensors.update(prefixed(prefix, module))
        save(f"checkpoints/SadTalker_V0.0.2_{size}.safetensors", tensors)

    for number, (mapping, yaml_name) in enumerate((("00229", "facerender.yaml"),
                                                   ("00109", "facerender_still.yaml"))):
        torch.manual_seed(args.seed + 10 + number)
        net = MappingNet(**config(yaml_name)["mapping_params"])
        save(f"checkpoints/mapping_{mapping}-model.pth.tar",
             {"mapping": net.state_dict(), "epoch": 0})

    torch.manual_seed(args.seed + 20)
    fan = FAN(num_modules=4, num_landmarks=98, device="cpu")
    draw_mean_face(fan, mean_face_98(), torch)
    save("gfpgan/weights/alignment_WFLW_4HG.pth", {"state_dict": fan.state_dict()})

    detector = RetinaFace(network_name="resnet50", half=False, device="cpu")
    with torch.no_grad():
        for head in (*detector.BboxHead, *detector.LandmarkHead):
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.zero_()
        for level, head in enumerate(detector.ClassHead):
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.zero_()
            if level == FIRE_LEVEL:  # channels: (background, face) per anchor
                head.conv1x1.bias[2 * FIRE_ANCHOR + 1] = FIRE_LOGIT
    save("gfpgan/weights/detection_Resnet50_Final.pth", detector.state_dict())

    save("gfpgan/weights/parsing_parsenet.pth",
         ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict())
    gfpgan = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2,
                           decoder_load_path=None, fix_decoder=False, num_mlp=8,
                           input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    save("gfpgan/weights/GFPGANv1.4.pth", {"params_ema": gfpgan.state_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

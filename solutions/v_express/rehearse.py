"""Stand-in weights for a V-Express rehearsal, made by the classes that read them.

Run by `nox -s setup-v_express -- --rehearse` with the env's Python, cwd = the checkout:
``python rehearse.py --root <checkout> --seed 0``. Writes every dest of the spec, randomly
initialised (``torch.manual_seed``), in the format inference.py's loaders read:

- model_ckpts/stable-diffusion-v1-5/unet/config.json: only this file, as on the Hub. SD 1.5's
  UNet config with what inference.py fixes kept (4 levels: ``from_config_2d`` hard-codes 4 block
  types; ``block_out_channels[0]`` = 320, the V-Kps guider's output added after ``conv_in``;
  ``cross_attention_dim`` = 768, the reference net's zero text states and the audio
  projection's width) and the rest smaller (channels 320/384/448/448 for 320/640/1280/1280,
  one layer per block for two), so the UNets fit a CPU;
- model_ckpts/v-express/reference_net.bin: the checkout's ``UNet2DConditionModel.from_config``
  of that config (inference.py ``load_reference_net``), a plain state dict;
- model_ckpts/v-express/denoising_unet.bin, motion_module.bin: the checkout's
  ``UNet3DConditionModel.from_config_2d`` with inference_v2.yaml's ``unet_additional_kwargs``
  (``load_denoising_unet``): the whole state dict, and its ``motion_modules`` keys alone (both
  load with strict=False). With SD 1.5's real config these come to 2.727 GB and 0.909 GB in
  fp16, and the reference net to 1.719 GB: the Hub's 2.73 GB, 909 MB and 1.72 GB files;
- model_ckpts/v-express/v_kps_guider.bin: ``VKpsGuider(320, (16, 32, 96, 256))``, real shape;
- model_ckpts/v-express/audio_projection.bin: ``AudioProjection`` with the arguments
  ``load_audio_projection`` passes (768 wide, depth 4, 5 queries of 10 frames), real shape.
  The five .bin files are fp16 like the Hub's (v_kps_guider: 2.18 MB there and here);
- model_ckpts/sd-vae-ft-mse/: diffusers ``AutoencoderKL.save_pretrained`` (config.json +
  diffusion_pytorch_model.bin): 4 levels and 4 latent channels as the real one (the pipeline's
  8x scale and the UNets' input), 32-64 channels instead of 128-512;
- model_ckpts/wav2vec2-base-960h/: transformers ``Wav2Vec2ForCTC`` (config + pytorch_model.bin)
  with the real config but 2 of its 12 layers (hidden size 768 stays: the audio projection's
  input), and ``Wav2Vec2Processor`` files (feature extractor, the 32-token CTC vocabulary);
- model_ckpts/insightface_models/models/buffalo_l/*.onnx: small ONNX graphs (the ``onnx``
  package, which insightface requires) with the inputs and outputs insightface's model_zoo
  routes on: det_10g with 9 outputs (score, box, 5 keypoints at strides 8/16/32, 2 anchors,
  dynamic input size), 1k3d68 192 px -> 3309, 2d106det 192 px -> 212, genderage 96 px -> 3,
  w600k_r50 112 px -> 512. Random detector weights find no face, and inference.py takes
  ``app.get(...)[0]``: so the detector's stride-32 score is its (tiny, random) convolution plus
  a prior that fires only at the centre cell, with a fixed face box (160 px at 256) and the five
  keypoints of a frontal face; the other four models are random convolutions.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

VEXPRESS = "model_ckpts/v-express"
BUFFALO = "model_ckpts/insightface_models/models/buffalo_l"

# SD 1.5's unet/config.json, smaller where inference.py does not fix the shape (see above).
UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.6.0",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 384, 448, 448],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
}

# facebook/wav2vec2-base-960h's character vocabulary (its tokenizer is loaded, never used).
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]

# det_10g stand-in: the face at the centre cell of the stride-32 grid, in stride units.
FACE_STRIDE = 32
FACE_HALF_SIZE = 2.5  # box: centre +- 2.5 strides (80 px)
FACE_KPS = [-0.9, -0.6, 0.9, -0.6, 0.0, 0.2, -0.7, 1.1, 0.7, 1.1]  # eyes, nose, mouth corners
FIRE_LOGIT, FALLOFF = 6.0, 12.0  # logit 6 at the centre cell, <= -6 one cell away


def save_state(path: Path, module, torch, keep=lambda key: True) -> None:
    """A plain state dict in fp16, as the Hub's .bin files are."""
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in module.state_dict().items() if keep(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    report(path)


def report(path: Path) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    print(f"stand-in {path}: {len(files)} file(s), {size} bytes", flush=True)


def make_unets(root: Path, seed: int, torch) -> None:
    from modules import UNet2DConditionModel, UNet3DConditionModel
    from omegaconf import OmegaConf

    config = root / "model_ckpts/stable-diffusion-v1-5/unet/config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(UNET_CONFIG, indent=2) + "\n")
    report(config)
    torch.manual_seed(seed)
    reference_net = UNet2DConditionModel.from_config(str(config))  # as load_reference_net
    save_state(root / VEXPRESS / "reference_net.bin", reference_net, torch)
    del reference_net
    torch.manual_seed(seed + 1)
    kwargs = OmegaConf.load("inference_v2.yaml").unet_additional_kwargs
    denoising_unet = UNet3DConditionModel.from_config_2d(str(config),
                                                         unet_additional_kwargs=kwargs)
    save_state(root / VEXPRESS / "denoising_unet.bin", denoising_unet, torch)
    save_state(root / VEXPRESS / "motion_module.bin", denoising_unet, torch,
               keep=lambda key: "motion_modules." in key)


def make_small_nets(root: Path, seed: int, torch) -> None:
    from modules import AudioProjection, VKpsGuider

    torch.manual_seed(seed + 2)
    save_state(root / VEXPRESS / "v_kps_guider.bin",
               VKpsGuider(320, block_out_channels=(16, 32, 96, 256)), torch)
    torch.manual_seed(seed + 3)
    pad = 2  # inference.py --num_pad_audio_frames default
    projection = AudioProjection(dim=768, depth=4, dim_head=64, heads=12,
                                 num_queries=2 * pad + 1, embedding_dim=768, output_dim=768,
                                 ff_mult=4, max_seq_len=2 * (2 * pad + 1))
    save_state(root / VEXPRESS / "audio_projection.bin", projection, torch)


def make_vae(root: Path, seed: int, torch) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed + 4)
    vae = AutoencoderKL(in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(32, 64, 64, 64), layers_per_block=1,
                        latent_channels=4, norm_num_groups=32, sample_size=256)
    dest = root / "model_ckpts/sd-vae-ft-mse"
    vae.save_pretrained(dest, safe_serialization=False)  # diffusion_pytorch_model.bin
    report(dest)


def make_wav2vec2(root: Path, seed: int, torch) -> None:
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    torch.manual_seed(seed + 5)
    config = Wav2Vec2Config(vocab_size=len(CTC_VOCAB), num_hidden_layers=2,
                            architectures=["Wav2Vec2ForCTC"])
    dest = root / "model_ckpts/wav2vec2-base-960h"
    Wav2Vec2ForCTC(config).save_pretrained(dest, safe_serialization=False)  # pytorch_model.bin
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        vocab.write_text(json.dumps({token: i for i, token in enumerate(CTC_VOCAB)}))
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab), word_delimiter_token="|")
        extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000,
                                             padding_value=0.0, do_normalize=True,
                                             return_attention_mask=False)
        Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(dest)
    report(dest)


# --- insightface's buffalo_l, as small ONNX graphs ------------------------------------------


class Graph:
    """Nodes and weights of one ONNX graph. Node names are ``node<i>_<op>``, never ``Sub…`` or
    ``Mul…``: insightface reads those in the first nodes as in-graph input normalisation."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.weights = onnx, [], []

    def weight(self, name, array):
        import numpy as np

        self.weights.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, output, **attrs):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output],
                                                     name=f"node{len(self.nodes)}_{op}", **attrs))
        return output

    def save(self, path: Path, inputs, outputs) -> None:
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, path.stem, inputs, outputs, self.weights)
        model = helper.make_model(graph, producer_name="thbench-rehearsal",
                                  opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8  # onnxruntime 1.16 reads IR versions up to 9
        self.onnx.checker.check_model(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.onnx.save(model, str(path))
        report(path)


def head_model(onnx, rng, path: Path, input_name, batch, size, width, bias_scale) -> None:
    """conv -> relu -> global pool -> linear: an image crop to ``width`` numbers."""
    import numpy as np

    g = Graph(onnx)
    f32 = np.float32
    x = g.node("Conv", [input_name, g.weight("conv_w", rng.normal(0, 0.1, (8, 3, 3, 3)).astype(f32)),
                        g.weight("conv_b", np.zeros(8, f32))], "conv", strides=[2, 2],
               pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    x = g.node("Relu", [x], "relu")
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flat", axis=1)
    g.node("Gemm", [x, g.weight("fc_w", rng.normal(0, 0.01, (width, 8)).astype(f32)),
                    g.weight("fc_b", rng.uniform(-bias_scale, bias_scale, width).astype(f32))],
           "fc1", transB=1)
    float_type = onnx.TensorProto.FLOAT
    g.save(path, [onnx.helper.make_tensor_value_info(input_name, float_type,
                                                     [batch, 3, size, size])],
           [onnx.helper.make_tensor_value_info("fc1", float_type, [batch, width])])


def centre_prior(g: Graph, conv: str, s: str) -> str:
    """[h, w] logits: fire - falloff * (|row - h // 2| + |col - w // 2|), h and w read from
    ``conv``'s shape at run time (the detector's input size is dynamic)."""
    import numpy as np

    shape = g.node("Shape", [conv], f"{s}_shape")
    dist = []
    for axis, index in (("row", 2), ("col", 3)):
        g.weight(f"{s}_{axis}_index", np.array(index, np.int64))
        n = g.node("Gather", [shape, f"{s}_{axis}_index"], f"{s}_{axis}_n", axis=0)
        cells = g.node("Cast", [g.node("Range", ["zero", n, "one"], f"{s}_{axis}_range")],
                       f"{s}_{axis}_cells", to=g.onnx.TensorProto.FLOAT)
        count = g.node("Cast", [n], f"{s}_{axis}_count", to=g.onnx.TensorProto.FLOAT)
        middle = g.node("Floor", [g.node("Div", [count, "two"], f"{s}_{axis}_halfway")],
                        f"{s}_{axis}_middle")
        dist.append(g.node("Abs", [g.node("Sub", [cells, middle], f"{s}_{axis}_offset")],
                           f"{s}_{axis}_dist"))
    rows = g.node("Unsqueeze", [dist[0], "axis1"], f"{s}_rows")  # [h, 1] + [w]
    total = g.node("Add", [rows, dist[1]], f"{s}_dist")
    return g.node("Sub", ["fire", g.node("Mul", ["falloff", total], f"{s}_falloff")],
                  f"{s}_prior")


def detector_model(onnx, rng, path: Path) -> None:
    """SCRFD's outputs (insightface RetinaFace class, 9 outputs): per stride, [N, 1] scores,
    [N, 4] box distances and [N, 10] keypoint offsets in stride units, N = h * w * 2 anchors."""
    import numpy as np

    g = Graph(onnx)
    f32 = np.float32
    anchors = 2
    g.weight("zero", np.array(0, np.int64))
    g.weight("one", np.array(1, np.int64))
    g.weight("two", np.array(2.0, f32))
    g.weight("axis1", np.array([1], np.int64))
    g.weight("fire", np.array(FIRE_LOGIT, f32))
    g.weight("falloff", np.array(FALLOFF, f32))
    outputs = {"score": [], "bbox": [], "kps": []}
    for stride in (8, 16, 32):
        score_bias = 0.0 if stride == FACE_STRIDE else -10.0  # the prior decides there
        heads = {"score": (1, [score_bias]), "bbox": (4, [FACE_HALF_SIZE] * 4),
                 "kps": (10, FACE_KPS)}
        for kind, (width, bias) in heads.items():
            s = f"{kind}{stride}"
            channels = anchors * width
            conv = g.node("Conv", [
                "input.1",
                g.weight(f"{s}_w", rng.normal(0, 1e-3, (channels, 3, stride, stride)).astype(f32)),
                g.weight(f"{s}_b", np.tile(np.asarray(bias, f32), anchors))],
                f"{s}_conv", strides=[stride, stride], kernel_shape=[stride, stride])
            if kind == "score":
                logits = conv
                if stride == FACE_STRIDE:
                    logits = g.node("Add", [conv, centre_prior(g, conv, s)], f"{s}_logits")
                conv = g.node("Sigmoid", [logits], f"{s}_sigmoid")
            moved = g.node("Transpose", [conv], f"{s}_nhwc", perm=[0, 2, 3, 1])
            g.weight(f"{s}_shape_out", np.array([-1, width], np.int64))
            outputs[kind].append(g.node("Reshape", [moved, f"{s}_shape_out"], s))
    float_type = onnx.TensorProto.FLOAT
    widths = {"score": 1, "bbox": 4, "kps": 10}
    g.save(path, [onnx.helper.make_tensor_value_info("input.1", float_type, [1, 3, "?", "?"])],
           [onnx.helper.make_tensor_value_info(name, float_type, [f"n{name}", widths[kind]])
            for kind in ("score", "bbox", "kps") for name in outputs[kind]])


def make_buffalo_l(root: Path, seed: int) -> None:
    import numpy as np
    import onnx

    folder = root / BUFFALO
    rng = np.random.default_rng(seed)
    detector_model(onnx, rng, folder / "det_10g.onnx")
    head_model(onnx, rng, folder / "1k3d68.onnx", "data", 1, 192, 3309, 0.5)
    head_model(onnx, rng, folder / "2d106det.onnx", "data", "None", 192, 212, 0.5)
    head_model(onnx, rng, folder / "genderage.onnx", "data", "None", 96, 3, 0.5)
    head_model(onnx, rng, folder / "w600k_r50.onnx", "input.1", "None", 112, 512, 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the spec's dests land")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the checkout: upstream's own classes

    import torch

    make_unets(args.root, args.seed, torch)
    make_small_nets(args.root, args.seed, torch)
    make_vae(args.root, args.seed, torch)
    make_wav2vec2(args.root, args.seed, torch)
    make_buffalo_l(args.root, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stand-in weights for an EchoMimic rehearsal, made by the checkout's own model classes.

Run by `nox -s setup-echomimic -- --rehearse` with the env's Python, cwd = the checkout:
``python rehearse.py --root <checkout> --seed 0``. Writes every file configs/prompts/animation.yaml
names, randomly initialised, in the formats infer_audio2vid.py reads them (real shapes, fp32):

- sd-vae-ft-mse/{config.json, diffusion_pytorch_model.safetensors}: diffusers' ``AutoencoderKL``
  (``from_pretrained``, infer_audio2vid.py:111);
- sd-image-variations-diffusers/unet/{config.json, diffusion_pytorch_model.bin}: the plain state
  dict of diffusers' ``UNet2DConditionModel`` (the class that wrote the Hub file), read by the
  checkout's UNet ``from_pretrained(subfolder="unet")`` (:116) and, ``weights_only=True``, by
  ``EchoUNet3DConditionModel.from_pretrained_2d`` (unet_3d_echo.py:628-642);
- reference_unet.pth: the checkout's ``UNet2DConditionModel`` state dict (strict load, :120);
- denoising_unet.pth / motion_module.pth: the ``EchoUNet3DConditionModel`` that
  ``from_pretrained_2d`` builds with inference_v2.yaml, split into the rest and the
  ``motion_modules.`` keys (:127-148; the motion file is read with ``weights_only=True``);
- face_locator.pth: ``FaceLocator(320, 1, (16, 32, 96, 256))`` state dict (strict, :151-154);
- audio_processor/whisper_tiny.pt: ``{"dims", "model_state_dict"}`` of the vendored whisper
  (fp16, as OpenAI's tiny.pt; whisper/__init__.py:108-114).

Both config.json files are the Hub's own, byte for byte (checked against the spec's sha256).
Each file is then loaded back as infer_audio2vid.py does (on the CPU), because the rehearsal run
stops at the VAE's ``.to("cuda")`` (:113), before upstream opens the others.
"""

import argparse
import gc
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

BASE = "pretrained_weights/sd-image-variations-diffusers"
VAE = "pretrained_weights/sd-vae-ft-mse"
REFERENCE = "pretrained_weights/reference_unet.pth"
DENOISING = "pretrained_weights/denoising_unet.pth"
MOTION = "pretrained_weights/motion_module.pth"
FACE_LOCATOR = "pretrained_weights/face_locator.pth"
WHISPER = "pretrained_weights/audio_processor/whisper_tiny.pt"
INFERENCE_CONFIG = "./configs/inference/inference_v2.yaml"

# stabilityai/sd-vae-ft-mse config.json as copied into BadToBest/EchoMimic (547 bytes).
VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "out_channels": 3, "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# lambdalabs/sd-image-variations-diffusers unet/config.json as copied there (871 bytes).
UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.9.0", "act_fn": "silu",
    "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_class_embeds": None,
    "only_cross_attention": False, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "use_linear_projection": False,
}
CONFIG_SHA256 = {  # = the spec's [[weights]] sha256 of these two files
    f"{VAE}/config.json": "92d3dfb746fca211a2c9e019e285f8597412211728dce3c5bcf4eda0f2d62e7e",
    f"{BASE}/unet/config.json": "2a50fbaa1c20bec4f6c4474e5594237640ad26ee7b10b5da1e921f303ba706a1",
}
# OpenAI whisper "tiny" (multilingual), whose encoder gives the 384-wide audio features.
WHISPER_TINY = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                    n_audio_layer=4, n_vocab=51865, n_text_ctx=448, n_text_state=384,
                    n_text_head=6, n_text_layer=4)


def write_config(root: Path, dest: str, config: dict) -> None:
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"  # diffusers' own layout
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest != CONFIG_SHA256[dest]:
        raise SystemExit(f"rehearse: {dest} is not the Hub's file (sha256 {digest})")
    (root / dest).parent.mkdir(parents=True, exist_ok=True)
    (root / dest).write_text(text, encoding="utf-8")


def save(torch, root: Path, dest: str, payload) -> None:
    path = root / dest
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    print(f"stand-in {dest}: {path.stat().st_size} bytes", flush=True)


def make(torch, root: Path) -> None:
    from diffusers import AutoencoderKL
    from diffusers import UNet2DConditionModel as DiffusersUNet
    from omegaconf import OmegaConf
    from safetensors.torch import save_file
    from src.models.face_locator import FaceLocator
    from src.models.unet_2d_condition import UNet2DConditionModel
    from src.models.unet_3d_echo import EchoUNet3DConditionModel
    from src.models.whisper.whisper.model import ModelDimensions, Whisper

    write_config(root, f"{VAE}/config.json", VAE_CONFIG)
    vae = AutoencoderKL.from_config(VAE_CONFIG)
    weights = root / VAE / "diffusion_pytorch_model.safetensors"
    save_file(vae.state_dict(), weights, metadata={"format": "pt"})  # as save_pretrained does
    print(f"stand-in {VAE}/{weights.name}: {weights.stat().st_size} bytes", flush=True)
    del vae

    write_config(root, f"{BASE}/unet/config.json", UNET_CONFIG)
    # the Hub file is diffusers' own SD UNet (its _class_name): 686 keys, 116 of them (cross-
    # attention, conv_out) absent from the checkout's reference UNet, which ignores them
    for dest, unet_class in ((f"{BASE}/unet/diffusion_pytorch_model.bin", DiffusersUNet),
                             (REFERENCE, UNet2DConditionModel)):
        unet = unet_class.from_config(UNET_CONFIG)
        save(torch, root, dest, unet.state_dict())
        del unet
        gc.collect()

    # upstream's own 3D build from the base UNet (motion path "": none yet), then split in two
    denoising = EchoUNet3DConditionModel.from_pretrained_2d(
        root / BASE, "", subfolder="unet",
        unet_additional_kwargs=OmegaConf.load(INFERENCE_CONFIG).unet_additional_kwargs)
    state = denoising.state_dict()
    save(torch, root, MOTION, {k: v for k, v in state.items() if "motion_modules." in k})
    save(torch, root, DENOISING, {k: v for k, v in state.items() if "motion_modules." not in k})
    del denoising, state
    gc.collect()

    locator = FaceLocator(320, conditioning_channels=1, block_out_channels=(16, 32, 96, 256))
    save(torch, root, FACE_LOCATOR, locator.state_dict())
    whisper = Whisper(ModelDimensions(**WHISPER_TINY))
    save(torch, root, WHISPER, {"dims": asdict(whisper.dims),
                                "model_state_dict": whisper.half().state_dict()})


def load_back(torch, root: Path) -> None:
    """Each stand-in through the calls of infer_audio2vid.py:111-157 (device cpu, fp32)."""
    from diffusers import AutoencoderKL
    from omegaconf import OmegaConf
    from src.models.face_locator import FaceLocator
    from src.models.unet_2d_condition import UNet2DConditionModel
    from src.models.unet_3d_echo import EchoUNet3DConditionModel
    from src.models.whisper.audio2feature import load_audio_model

    def loaded(name, model):
        print(f"  {name}: {sum(p.numel() for p in model.parameters())} parameters, loads",
              flush=True)

    loaded("vae", AutoencoderKL.from_pretrained(str(root / VAE)))
    reference = UNet2DConditionModel.from_pretrained(str(root / BASE), subfolder="unet")
    reference.load_state_dict(torch.load(root / REFERENCE, map_location="cpu"))  # strict
    loaded("reference_unet", reference)
    del reference
    gc.collect()
    denoising = EchoUNet3DConditionModel.from_pretrained_2d(
        str(root / BASE), str(root / MOTION), subfolder="unet",
        unet_additional_kwargs=OmegaConf.load(INFERENCE_CONFIG).unet_additional_kwargs)
    missing, unexpected = denoising.load_state_dict(
        torch.load(root / DENOISING, map_location="cpu"), strict=False)
    if set(missing) != {k for k in denoising.state_dict() if "motion_modules." in k} or unexpected:
        raise SystemExit(f"rehearse: denoising_unet.pth keys: {len(missing)} missing "
                         f"(besides motion modules), {len(unexpected)} unexpected")
    loaded("denoising_unet + motion_module", denoising)
    del denoising
    gc.collect()
    locator = FaceLocator(320, conditioning_channels=1, block_out_channels=(16, 32, 96, 256))
    locator.load_state_dict(torch.load(root / FACE_LOCATOR))  # strict
    loaded("face_locator", locator)
    loaded("whisper tiny", load_audio_model(model_path=str(root / WHISPER), device="cpu").model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the spec's dests land")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the checkout: upstream's own classes and configs

    import torch

    torch.manual_seed(args.seed)
    root = args.root.resolve()
    make(torch, root)
    gc.collect()
    print("loading each stand-in back as infer_audio2vid.py does:", flush=True)
    load_back(torch, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())

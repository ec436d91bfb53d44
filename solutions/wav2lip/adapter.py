"""Run Wav2Lip's inference.py on one image + one WAV, working around two upstream traps.

1. inference.py decides "still image" with ``args.face.split('.')[1] in ['jpg', 'png', 'jpeg']``:
   any dot earlier in the path (a folder like ``my.project``) makes it read the photo as a video.
   The image is copied to a fresh dot-free temp folder as face.png first.
2. ``Mel contains nan! Using a TTS voice?``: exact digital silence, as TTS writes between words,
   gives log(0) in the mel spectrogram. The WAV is copied with +-1 LSB of dither added.
3. Each output frame needs a 16-mel-frame window (0.2 s) of audio, so the video stops about
   0.12 s before the speech does (seen in a rehearsal: 1.120 s of video for 1.231 s of speech).
   The copy ends with 0.12 s of (dithered) silence, so the video covers the whole speech.

Everything else passes through: ``python adapter.py --face IMG --audio WAV [upstream args...]``.
Run with the model's interpreter, cwd = the checkout (upstream writes temp/ there).
"""

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from pathlib import Path

TAIL_SECONDS = 0.12  # 16 mel frames (0.2 s) less the 2 frames (0.08 s) upstream adds back


def dithered_copy(src: Path, dst: Path) -> None:
    with wave.open(str(src), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    if params.sampwidth != 2:  # the orchestrator hands over 16-bit PCM; leave others alone
        shutil.copyfile(src, dst)
        return
    samples = array("h", frames)
    samples.extend([0] * (round(TAIL_SECONDS * params.framerate) * params.nchannels))
    noise = random.Random(0)
    for i, value in enumerate(samples):
        samples[i] = max(-32768, min(32767, value + noise.choice((-1, 1))))
    with wave.open(str(dst), "wb") as out:
        out.setparams(params)
        out.writeframes(samples.tobytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", required=True, type=Path)
    parser.add_argument("--audio", required=True, type=Path)
    args, upstream = parser.parse_known_args()
    repo = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="wav2lip_") as tmp:
        folder = Path(tmp)
        if "." in str(folder):
            print(f"adapter: temp folder {folder} has a dot; set TMPDIR", file=sys.stderr)
            return 2
        face, audio = folder / "face.png", folder / "speech.wav"
        shutil.copyfile(args.face, face)  # any PNG/JPEG: cv2 reads by content, not by name
        dithered_copy(args.audio, audio)
        argv = [sys.executable, str(repo / "inference.py"), "--face", str(face),
                "--audio", str(audio), *upstream]
        return subprocess.run(argv, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

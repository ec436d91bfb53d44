"""Static-frame baseline: hold one image for the length of the speech and mux the two.

Runs inside the `still` env (stdlib + imageio-ffmpeg, whose wheel ships a static ffmpeg), so it
needs nothing from the host. The frame count is computed from the WAV's exact length, so the
video matches the speech to within one frame.
"""

import argparse
import subprocess
import sys
import wave

import imageio_ffmpeg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", required=True)
    parser.add_argument("--audio", required=True, help="a WAV file")
    parser.add_argument("--out", required=True, help="the .mp4 to write (must not exist)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--max-side", type=int, default=512, help="downscale larger images")
    args = parser.parse_args()

    with wave.open(args.audio, "rb") as wav:
        seconds = wav.getnframes() / wav.getframerate()
    frames = max(1, round(seconds * args.fps))
    side = args.max_side
    scale = (
        f"scale='min({side},iw)':'min({side},ih)':force_original_aspect_ratio=decrease,"
        "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"
    )
    argv = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-n",
        "-loop", "1", "-framerate", str(args.fps), "-i", args.image,
        "-i", args.audio,
        "-vf", scale, "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "20",
        "-c:a", "aac", "-b:a", "128k", "-t", f"{frames / args.fps:.6f}",
        "-movflags", "+faststart", args.out,
    ]
    print(f"still: {frames} frames at {args.fps} fps for {seconds:.3f}s of speech", flush=True)
    return subprocess.run(argv, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Moving-mouth baseline: open the lower face of one image in time with the speech's loudness.

No learned model: MediaPipe FaceMesh finds the lips and jaw once, on the input image; the
speech's RMS loudness per video frame says how far the mouth is open; each frame is the input
image with the lower lip and chin pushed down by a smooth displacement field (cv2.remap) and
the gap between the lips painted as a dark mouth. Everything above the upper lip is left
untouched, so identity, eyes and head pose are exactly the input's. It is a crude lower bound
on lip sync (the mouth opens when there is sound, with no notion of phonemes), one step above
`still`, which moves nothing.

Runs inside the `mouth` env (mediapipe 0.10.21, which ships the FaceMesh models in its wheel;
numpy; imageio-ffmpeg for an ffmpeg binary), so it needs nothing from the host and no network.
As in `still`, the frame count comes from the WAV's exact length, so the video matches the
speech to within one frame.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

# How far the mouth opens at full loudness, as a fraction of the mouth's width (corner to
# corner): about what a speaker's lips part on an open vowel. More starts to look like a yawn.
MAX_OPENING = 0.30
# The chin drops as far as the lower lip (the jaw carries both); the lip gap then narrows to
# the corners while the jaw's pull fades out over a wider window, stretching the cheeks.
JAW_HALF_WIDTH = 1.6  # in mouth half-widths
# Loudness reference: the 95th percentile of the per-frame RMS opens the mouth fully (louder
# frames clip), and frames below 10 % of it count as silence (closed mouth): TTS pauses and
# breath noise should not flutter the lips.
REFERENCE_PERCENTILE = 95
SILENCE_FRACTION = 0.10
SILENT_RMS = 1e-4  # below this reference (about -80 dBFS) the whole file is silence
# A source mouth already this open (gap / mouth width) shows its own teeth; we then paint none.
OPEN_SOURCE_GAP = 0.06

# FaceMesh indices (mediapipe 0.10.21 face_mesh_connections): inner lip contours from corner
# 78 to corner 308, the outer mouth corners, and the lower arc of the face oval (the jaw line).
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
CORNERS = (61, 291)
LOWER_LIP_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
JAW_LINE = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate (8/16/32-bit PCM, any channels)."""
    with wave.open(path, "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        samples = np.frombuffer(raw, dtype).astype(np.float32) / np.iinfo(dtype).max
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32)")
    return samples.reshape(-1, channels).mean(axis=1), rate


def openings(samples: np.ndarray, rate: int, fps: int, frames: int) -> np.ndarray:
    """How open the mouth is in each video frame, 0..1, from the RMS of that frame's samples."""
    edges = np.round(np.arange(frames + 1) * rate / fps).astype(int)
    rms = np.array([np.sqrt(np.mean(samples[a:b] ** 2)) if b > a else 0.0
                    for a, b in zip(edges[:-1], edges[1:], strict=True)])
    # A symmetric 3-tap filter: removes frame-to-frame jitter without shifting the envelope in
    # time (a one-sided smoother would make the mouth lag the sound).
    padded = np.pad(rms, 1, mode="edge")
    rms = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    reference = np.percentile(rms, REFERENCE_PERCENTILE) if len(rms) else 0.0
    if reference < SILENT_RMS:
        return np.zeros(frames)
    floor = SILENCE_FRACTION * reference
    return np.clip((rms - floor) / (reference - floor), 0.0, 1.0)


def load_frame(path: str, max_side: int) -> np.ndarray:
    """The image as RGB, scaled down to fit max_side, with even width and height (for yuv420p)."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path} is not an image OpenCV can read")
    height, width = bgr.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
    if size != (width, height):
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def find_landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """FaceMesh's 478 landmarks in pixels (x, y) of the largest face, or None if there is none."""
    import mediapipe as mp  # heavy: imported only once the image and audio have been read

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                         refine_landmarks=True) as mesh:
        result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        return None
    height, width = rgb.shape[:2]
    return np.array([(p.x * width, p.y * height) for p in result.multi_face_landmarks[0].landmark])


@dataclass
class MouthWarp:
    """Everything about the face that does not change between frames, in a mouth-aligned frame.

    u runs along the mouth (corner to corner), v perpendicular to it, downwards, both in pixels
    from the mouth's centre, so a tilted head opens its mouth along its own vertical.
    """

    image: np.ndarray
    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    u: np.ndarray  # per pixel
    v: np.ndarray
    parting: np.ndarray  # per pixel: v of the line where the lips part, for this pixel's u
    lip_profile: np.ndarray  # how much of the opening the lip gap gets at this u: 1 mid, 0 corners
    jaw_profile: np.ndarray  # how much the jaw moves at this u
    jaw: np.ndarray  # v of the jaw line at this u
    fade: float  # below the jaw, the motion fades out over this many pixels
    max_drop: float  # pixels the lower lip moves at opening 1
    interior: np.ndarray  # RGB of the mouth's dark interior
    tongue: np.ndarray  # RGB of the tongue hint at the bottom of the gap
    teeth: np.ndarray | None  # RGB of the teeth hint, None when the source shows its own

    @classmethod
    def build(cls, image: np.ndarray, lm: np.ndarray) -> MouthWarp:
        left, right = lm[CORNERS[0]], lm[CORNERS[1]]
        width = float(np.linalg.norm(right - left))
        axis_u = (right - left) / width
        axis_v = np.array([-axis_u[1], axis_u[0]])  # u turned 90° clockwise: down on screen
        origin = (left + right) / 2
        ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
        u = (xs - origin[0]) * axis_u[0] + (ys - origin[1]) * axis_u[1]
        v = (xs - origin[0]) * axis_v[0] + (ys - origin[1]) * axis_v[1]

        def along(indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
            rel = lm[list(indices)] - origin
            pu, pv = rel @ axis_u, rel @ axis_v
            order = np.argsort(pu)
            return pu[order], pv[order]

        # The lips part halfway between the inner contours: with a closed source mouth that is
        # the lip line; with teeth showing, the upper teeth stay and the lower ones go down.
        uu, vu = along(UPPER_INNER)
        ul, vl = along(LOWER_INNER)
        parting = (np.interp(u, uu, vu) + np.interp(u, ul, vl)) / 2
        half = width / 2
        inner_half = max(abs(uu[0]), abs(uu[-1]), 1.0)
        # cos gives a lens-shaped gap with pointed corners, like real lips, and is smooth.
        lip_profile = np.cos(np.clip(u / inner_half, -1, 1) * np.pi / 2)
        jaw_half = JAW_HALF_WIDTH * half
        jaw_profile = 0.5 * (1 + np.cos(np.clip(u / jaw_half, -1, 1) * np.pi))
        ju, jv = along(JAW_LINE)
        _, lip_bottom = along(LOWER_LIP_OUTER)
        chin_depth = float(np.interp(0.0, ju, jv) - lip_bottom.max())
        # The jaw line can come up to the mouth's level at the sides; keep the stretch zone
        # (parting to jaw) at least half a chin deep so it never folds.
        jaw = np.maximum(np.interp(u, ju, jv), parting + max(chin_depth, 4.0) / 2)
        max_drop = MAX_OPENING * width
        # The fade's steepest slope is 1.5 x drop / fade; keep it under 1 so the map stays
        # monotonic (no folds), and long enough to read as neck skin stretching, not a step.
        fade = max(2.0 * max_drop, 0.8 * chin_depth, 4.0)

        # The lower lip's own pixels: a polygon along its outer edge and back along its inner
        # edge (a convex hull would take in the teeth of a smiling source).
        lower_lip = (CORNERS[0], *LOWER_LIP_OUTER, CORNERS[1], *reversed(LOWER_INNER))
        lip_colour = _mean_colour(image, lm[list(lower_lip)])
        # From the lip colour, so the mouth suits the face's skin tone and lighting; red kept
        # higher than green and blue, as in a lit mouth cavity.
        interior = np.clip(lip_colour * np.array([0.20, 0.10, 0.10]), 6, 70)
        tongue = np.clip(lip_colour * np.array([0.62, 0.33, 0.33]), 20, 170)
        gap = float(np.linalg.norm(lm[13] - lm[14])) / width
        face_level = _mean_colour(image, cv2.convexHull(lm.astype(np.float32))[:, 0]).mean() / 180
        teeth = (None if gap > OPEN_SOURCE_GAP
                 else np.clip(np.array([222.0, 216.0, 205.0]) * min(face_level, 1.1), 60, 240))
        return cls(image, origin, axis_u, axis_v, u, v, parting, lip_profile, jaw_profile, jaw,
                   fade, max_drop, interior, tongue, teeth)

    def render(self, opening: float) -> np.ndarray:
        """The image with the mouth open by ``opening`` (0..1)."""
        if opening <= 0:
            return self.image
        drop = opening * self.max_drop
        gap = drop * self.lip_profile  # the lip gap at each u, in output pixels
        jaw_drop = drop * self.jaw_profile
        u, v, parting, jaw = self.u, self.v, self.parting, self.jaw
        lip_moved = parting + gap  # where the lower lip's top edge ends up
        jaw_moved = jaw + jaw_drop
        # Backward map: for each output pixel, the v it takes its colour from. Above the parting
        # nothing moves; between the moved lower lip and the moved jaw the source span
        # parting..jaw is laid out linearly (a shift in the middle, a stretch at the sides);
        # below the jaw the drop fades smoothly to nothing.
        stretch = (jaw - parting) / (jaw_moved - lip_moved)
        source_v = np.where(v < jaw_moved, parting + (v - lip_moved) * stretch, v)
        t = np.clip((v - jaw_moved) / self.fade, 0, 1)
        below = v - jaw_drop * (1 - t * t * (3 - 2 * t))
        source_v = np.where(v >= jaw_moved, below, source_v)
        source_v = np.where(v <= parting, v, source_v)
        map_x = self.origin[0] + u * self.axis_u[0] + source_v * self.axis_v[0]
        map_y = self.origin[1] + u * self.axis_u[1] + source_v * self.axis_v[1]
        warped = cv2.remap(self.image, map_x.astype(np.float32), map_y.astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return self._paint_mouth(warped, gap)

    def _paint_mouth(self, warped: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """Fill the lip gap with a dark mouth, anti-aliased at its edges, teeth at the top."""
        depth = self.v - self.parting  # pixels below the upper lip
        # 1 px soft edges; where the gap is under a pixel (at and beyond the corners) it fades
        # out instead of drawing a hairline along the lip line.
        inside = np.clip(np.minimum(depth, gap - depth) + 0.5, 0, 1) * np.clip(gap, 0, 1)
        rows = np.nonzero(inside.any(axis=1))[0]
        if len(rows) == 0:
            return warped
        cols = np.nonzero(inside.any(axis=0))[0]
        box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        alpha, d, g = inside[box][..., None], depth[box][..., None], gap[box][..., None]
        # Darkest in the middle of the gap, a little lighter at the lips (light falls in there),
        # and a hint of tongue (a dim lip colour) in the lower part of a wide-open mouth.
        frac = np.clip(d / np.maximum(g, 1e-3), 0, 1)
        colour = self.interior * (0.75 + 0.5 * np.abs(frac - 0.5))
        tongue = 0.5 * np.clip((frac - 0.55) / 0.3, 0, 1) * np.clip((g - 4.0) / 6.0, 0, 1)
        colour = colour * (1 - tongue) + self.tongue * tongue
        if self.teeth is not None:
            # Upper teeth: a band under the upper lip, as tall as a third of the gap at most,
            # and only where the gap is wide enough to show them (not at the corners).
            band = np.minimum(0.3 * g, 0.09 * self.max_drop / MAX_OPENING)
            teeth = np.clip(band - d + 0.5, 0, 1) * np.clip((g - 2.0) / 2.0, 0, 1)
            colour = colour * (1 - teeth) + self.teeth * teeth
        out = warped.copy()
        region = out[box].astype(np.float32)
        out[box] = np.round(region * (1 - alpha) + colour * alpha).astype(np.uint8)
        return out


def _mean_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the image inside the polygon ``points``."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    if not mask.any():
        return np.array([128.0, 100.0, 100.0])
    return image[mask.astype(bool)].astype(np.float64).mean(axis=0)


def encode_argv(out: str, audio: str, width: int, height: int, fps: int, frames: int) -> list[str]:
    """ffmpeg reading raw RGB frames on stdin and the WAV, writing H.264 yuv420p + AAC."""
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-n",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps),
        "-i", "-", "-i", audio, "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-frames:v", str(frames), "-t", f"{frames / fps:.6f}",
        "-movflags", "+faststart", out,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--audio", required=True, help="a WAV file")
    parser.add_argument("--out", required=True, help="the .mp4 to write (must not exist)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--max-side", type=int, default=512, help="downscale larger images")
    args = parser.parse_args()
    if Path(args.out).exists():
        print(f"mouth: {args.out} already exists; it is never overwritten", file=sys.stderr)
        return 2

    samples, rate = read_wav(args.audio)
    seconds = len(samples) / rate
    frames = max(1, round(seconds * args.fps))
    image = load_frame(args.image, args.max_side)
    landmarks = find_landmarks(image)
    if landmarks is None:
        print(f"mouth: no face found in {args.image} (MediaPipe FaceMesh); the mouth baseline "
              "needs one visible face", file=sys.stderr)
        return 3
    warp = MouthWarp.build(image, landmarks)
    opening = openings(samples, rate, args.fps, frames)

    height, width = image.shape[:2]
    encoder = subprocess.Popen(encode_argv(args.out, args.audio, width, height, args.fps, frames),
                               stdin=subprocess.PIPE)
    try:
        for value in opening:
            encoder.stdin.write(np.ascontiguousarray(warp.render(float(value))).tobytes())
    except BrokenPipeError:  # ffmpeg died; its own message is already on stderr
        pass
    finally:
        try:
            encoder.stdin.close()
        except BrokenPipeError:
            pass
    code = encoder.wait()
    if code != 0:
        print(f"mouth: ffmpeg exited with status {code}", file=sys.stderr)
        return code
    print(f"mouth: {frames} frames at {args.fps} fps for {seconds:.3f}s of speech; max opening "
          f"{opening.max():.2f} (1 = {MAX_OPENING:.2f} mouth widths, "
          f"{warp.max_drop:.1f} px)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

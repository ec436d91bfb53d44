"""The output check: is a generated video a playable talking video of the speech it was given?

Every check is reported, pass or fail, so one run shows everything wrong with a video. A check
that needs something an earlier one found missing is recorded as failed with "skipped: why".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from thbench import media, proc
from thbench.errors import UserError

# Names are part of run.json: keep them stable.
CHECK_NAMES = ("decodes", "video_stream", "audio_stream", "duration", "fps", "resolution",
               "not_black")
FPS_RANGE = (10.0, 120.0)
SIDE_RANGE = (64, 4096)
DURATION_SLACK = 0.040  # seconds allowed beyond one frame: audio/video edge rounding
BLACK_LUMA = 16  # a frame whose mean luma (0-255) is at most this counts as black
THUMB_SIDE = 32  # frames are scaled to THUMB_SIDE² gray pixels to measure luma cheaply


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str
    value: float | int | str | None = None  # the number the check judged, for tables and trends


@dataclass(frozen=True)
class CheckReport:
    items: tuple[CheckItem, ...]

    @property
    def passed(self) -> bool:
        return all(item.ok for item in self.items)

    def item(self, name: str) -> CheckItem:
        return next(item for item in self.items if item.name == name)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "items": [asdict(item) for item in self.items]}


def _skip(name: str, why: str) -> CheckItem:
    return CheckItem(name, False, f"skipped: {why}")


def check_video(video: Path, speech: Path) -> CheckReport:
    """Run every check on ``video`` against ``speech`` (the WAV the model was given)."""
    video = Path(video)
    if not video.is_file():
        return _all_skipped(CheckItem("decodes", False, f"no file at {video}"), "no video file")
    decodes = _check_decodes(video)
    try:
        info = media.probe(video)
    except UserError:  # ffprobe's reason is the same as the decoder's, already in `decodes`
        return _all_skipped(decodes, "ffprobe cannot read the file")

    videos, audios = media.streams_of(info, "video"), media.streams_of(info, "audio")
    items = [decodes, _check_count("video_stream", videos, exactly=True),
             _check_count("audio_stream", audios, exactly=False)]
    if len(videos) != 1:
        why = "no single video stream"
        items += [_skip(name, why) for name in ("duration", "fps", "resolution", "not_black")]
        return CheckReport(tuple(items))

    stream = videos[0]
    fps = _rate(stream.get("avg_frame_rate"))
    if not decodes.ok:
        items.append(_skip("duration", "the file does not decode cleanly"))
    elif fps <= 0:
        items.append(_skip("duration", "the frame rate is unknown"))
    else:
        items.append(_check_duration(video, speech, fps))
    items.append(_check_fps(fps))
    items.append(_check_resolution(int(stream.get("width") or 0), int(stream.get("height") or 0)))
    items.append(_check_not_black(video) if decodes.ok
                 else _skip("not_black", "the file does not decode cleanly"))
    return CheckReport(tuple(items))


def _all_skipped(decodes: CheckItem, why: str) -> CheckReport:
    return CheckReport((decodes, *(_skip(name, why) for name in CHECK_NAMES[1:])))


# --- the checks ----------------------------------------------------------------------------------

def _check_decodes(video: Path) -> CheckItem:
    error = media.decode_error(video, "-map", "0")
    return CheckItem("decodes", error is None, error or "decodes without errors")


def _check_count(name: str, streams: list[dict], *, exactly: bool) -> CheckItem:
    kind = name.removesuffix("_stream")
    codecs = ", ".join(s.get("codec_name", "?") for s in streams)
    ok = len(streams) == 1 if exactly else len(streams) >= 1
    detail = f"{len(streams)} {kind} stream{'s' * (len(streams) != 1)}"
    return CheckItem(name, ok, detail + (f" ({codecs})" if codecs else ""), len(streams))


def _check_duration(video: Path, speech: Path, fps: float) -> CheckItem:
    try:
        speech_seconds = media.wav_duration(speech)
        frames = _decoded_frames(video)
    except UserError as err:  # includes proc.CommandFailed: reported, not raised
        return CheckItem("duration", False, err.message)
    video_seconds = frames / fps
    delta = video_seconds - speech_seconds
    allowed = 1 / fps + DURATION_SLACK  # one frame either way, plus rounding at the edges
    detail = (f"video {video_seconds:.3f} s ({frames} frames at {fps:.3f} fps), "
              f"speech {speech_seconds:.3f} s: off by {delta:+.3f} s (allowed ±{allowed:.3f} s)")
    return CheckItem("duration", abs(delta) <= allowed, detail, round(delta, 3))


def _check_fps(fps: float) -> CheckItem:
    low, high = FPS_RANGE
    if fps <= 0:
        return CheckItem("fps", False, "no average frame rate in the file", 0.0)
    return CheckItem("fps", low <= fps <= high,
                     f"{fps:.3f} fps (allowed {low:g}-{high:g})", round(fps, 3))


def _check_resolution(width: int, height: int) -> CheckItem:
    low, high = SIDE_RANGE
    problems = [f"{side} {n} is {'odd' if n % 2 else 'out of range'}"
                for side, n in (("width", width), ("height", height))
                if n % 2 or not low <= n <= high]
    detail = f"{width}x{height}" + (f": {'; '.join(problems)}" if problems else "")
    return CheckItem("resolution", not problems,
                     detail + f" (each side even, {low}-{high})", f"{width}x{height}")


def _check_not_black(video: Path) -> CheckItem:
    try:
        means = _frame_lumas(video)
    except UserError as err:
        return CheckItem("not_black", False, err.message)
    if not means:
        return CheckItem("not_black", False, "no video frames decoded", 0.0)
    brightest = max(means)
    return CheckItem("not_black", brightest > BLACK_LUMA,
                     f"brightest frame mean luma {brightest:.1f} of {len(means)} frames "
                     f"(black if all <= {BLACK_LUMA})", round(brightest, 1))


# --- measuring -----------------------------------------------------------------------------------

def _rate(text: object) -> float:
    """ffprobe's "30000/1001" as a float; "0/0" (unknown) and junk as 0."""
    try:
        numerator, _, denominator = str(text).partition("/")
        return float(Fraction(int(numerator), int(denominator or 1)))
    except (ValueError, ZeroDivisionError):
        return 0.0


def _decoded_frames(video: Path) -> int:
    """Frames in the first video stream, counted by decoding it (container metadata can lie)."""
    return media.count_frames(video)


def _frame_lumas(video: Path) -> list[float]:
    """Mean luma (0-255) of each frame, from tiny gray thumbnails piped out as raw bytes."""
    size = THUMB_SIDE * THUMB_SIDE
    argv = [media.ffmpeg(), "-v", "error", "-i", media.path_arg(video), "-map", "0:v:0",
            "-vf", f"scale={THUMB_SIDE}:{THUMB_SIDE},format=gray", "-f", "rawvideo", "-"]
    raw = proc.run(argv, capture_bytes=True, timeout=media.DECODE_TIMEOUT).stdout_bytes
    return [sum(raw[i:i + size]) / size for i in range(0, len(raw) - size + 1, size)]


# --- for the CLI ---------------------------------------------------------------------------------

def render_table(report: CheckReport, note: str = "") -> Table:
    """One row per check: ✓/✗, its name and what it measured; ``note`` follows the verdict."""
    verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
    table = Table(title=f"Output check: {verdict}{note}", title_justify="left")
    table.add_column("", width=1)
    table.add_column("check")
    table.add_column("detail")
    for item in report.items:
        mark = "[green]✓[/]" if item.ok else "[red]✗[/]"
        table.add_row(mark, item.name, escape(item.detail), style=None if item.ok else "red")
    return table

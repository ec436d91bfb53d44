"""ffprobe's JSON from PyAV, for hosts with no ffprobe (rootless: bootstrap's tools folder
has ffmpeg alone). Imported by media.py only then; PyAV itself only when called."""

from __future__ import annotations

import shlex
from pathlib import Path

from thbench.errors import UserError
from thbench.media import INSTALL_TIP, _unreadable, path_arg


def av_module():
    try:
        import av  # a project dependency; only imported where no ffprobe exists
    except ImportError:
        raise UserError("ffprobe not found on PATH or in the tools folder, and PyAV (`av`) "
                        "is not installed to stand in for it", INSTALL_TIP) from None
    return av


def probe(path: Path, *, tip: str | None, expected: str | None) -> dict:
    """ffprobe's ``-show_format -show_streams`` JSON, from PyAV: same keys, same types (ffprobe
    prints rates, durations and sample rates as strings) and "0/0" for an unknown rate."""
    av = av_module()
    try:
        with av.open(path_arg(path)) as container:
            streams = [_stream(stream) for stream in container.streams]
            info = {"format": {"filename": path_arg(path), "nb_streams": len(streams),
                               "format_name": container.format.name}, "streams": streams}
            if container.duration is not None:  # in AV_TIME_BASE units (microseconds)
                info["format"]["duration"] = f"{container.duration / 1_000_000:.6f}"
            if container.bit_rate:
                info["format"]["bit_rate"] = str(container.bit_rate)
    except (av.FFmpegError, OSError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise _unreadable(path, "PyAV", why, tip, expected) from None
    return info


def _stream(stream) -> dict:
    context = stream.codec_context  # None for data streams (an mp4's timecode track)
    codec = getattr(context, "codec", None)
    entry: dict = {"index": stream.index, "codec_type": stream.type}
    if codec is not None:
        entry["codec_name"] = codec.canonical_name  # the codec's name, not its decoder's
    entry["time_base"] = _ratio(stream.time_base)
    if stream.type == "video" and context is not None:
        entry.update(width=context.width, height=context.height)
    if stream.type == "audio" and context is not None:
        entry.update(sample_rate=str(context.sample_rate), channels=context.channels)
    entry["r_frame_rate"] = _ratio(stream.base_rate if stream.type == "video" else None)
    entry["avg_frame_rate"] = _ratio(stream.average_rate if stream.type == "video" else None)
    if stream.frames:  # 0: the container does not say
        entry["nb_frames"] = str(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        entry["duration"] = f"{float(stream.duration * stream.time_base):.6f}"
    return entry


def _ratio(value: object) -> str:
    """A Fraction as ffprobe prints a rational: "30000/1001"; None as "0/0" (unknown)."""
    if value is None:
        return "0/0"
    return f"{value.numerator}/{value.denominator}"  # type: ignore[attr-defined]


def count_frames(video: Path) -> int:
    """Frames in the first video stream, counted by decoding it, as ``ffprobe -count_frames``."""
    av = av_module()
    try:
        with av.open(path_arg(video)) as container:
            if not container.streams.video:
                return 0
            return sum(1 for _ in container.decode(container.streams.video[0]))
    except (av.FFmpegError, OSError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise UserError(f"PyAV cannot count the frames of {video}: {why}",
                        f"check the file with `ffmpeg -i {shlex.quote(path_arg(video))}`") from None

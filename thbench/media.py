"""ffmpeg and ffprobe: find them, probe files, validate the user's image and audio, make speech.wav.

Stdlib only, and every call goes through ``proc.run``. Input paths are made absolute before
they reach a command line, so a name starting with ``-`` is never taken for an option and a
name like ``concat:x`` never for an ffmpeg protocol.

Where there is no root (no apt), ffmpeg comes from bootstrap's tools folder (``thbench.tools``)
and, with no ffprobe anywhere, probing is done in-process by PyAV (imported only then), which
returns ffprobe's JSON shape for the keys used here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import wave
from dataclasses import dataclass
from pathlib import Path

from thbench import image_header, proc, tools
from thbench.errors import UserError

INSTALL_TIP = ("run `python3 bootstrap/bootstrap.py` (installs Debian's ffmpeg, or without "
               "root the static ffmpeg of the imageio-ffmpeg wheel into .tools/bin)")
# Codecs ffprobe names for single-picture files; a video codec (h264, ...) is not a photo.
STILL_IMAGE_CODECS = frozenset({"png", "mjpeg", "webp", "bmp", "tiff"})
# ...and the demuxers that read them: `image2` or `<codec>_pipe`. An MJPEG .avi is a video.
STILL_IMAGE_FORMATS = ("image2", "_pipe")
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 64, 4096  # the output check's bounds: models keep the size
# ffmpeg's words (libavutil's av_image_check_size) for a picture too big to decode at all,
# past about 16000 x 16000 (``image_header.ffmpeg_decodes``); ffprobe then reports its sides as 0.
TOO_BIG_TO_DECODE = re.compile(r"Picture size (\d+)x(\d+) is invalid")
# Checked with stat() before ffprobe: probing reads a picture whole, twice over (a 1 GiB PNG
# took ffprobe 2.1 GB of RAM). The biggest still within the sides above, uncompressed 16-bit
# RGBA (4096 x 4096 x 8 bytes), is 134 MB, so 200 MB refuses no photo the models could take.
MAX_IMAGE_BYTES = 200_000_000
# No such cap for audio: probing it reads only the headers (a valid 1 GiB WAV: 54 MB, 0.1 s),
# and 600 s of 8-channel 48 kHz float32 is a valid 920 MB; its duration limit is the one.
DEFAULT_MAX_AUDIO_SECONDS = 600.0
PROBE_TIMEOUT = 60.0
DECODE_TIMEOUT = 600.0


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    codec: str


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    sample_rate: int
    channels: int
    codec: str


# --- the binaries --------------------------------------------------------------------------------

def ffmpeg() -> str:
    """The ffmpeg to run: on PATH, else bootstrap's tools folder, else imageio-ffmpeg's binary."""
    found = tools.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # optional: present in some model envs, never required
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):  # RuntimeError: the package lost its binary
        raise UserError("ffmpeg not found on PATH", INSTALL_TIP) from None


def ffprobe() -> str:
    """The ffprobe on PATH or in the tools folder (imageio-ffmpeg ships no ffprobe)."""
    found = tools.which("ffprobe")
    if not found:
        raise UserError("ffprobe not found on PATH", INSTALL_TIP)
    return found


def ffmpeg_version() -> str:
    """The version word of `ffmpeg -version`, e.g. '5.1.6-0+deb12u1'."""
    out = proc.run([ffmpeg(), "-version"], capture=True, timeout=PROBE_TIMEOUT).stdout
    first = _first_line(out)
    words = first.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else first


# --- probing and decoding ------------------------------------------------------------------------

def path_arg(path: Path) -> str:
    """``path`` as a command-line argument: absolute, so never an option or an ffmpeg protocol."""
    return os.fspath(Path(path).absolute())


def _first_line(text: str) -> str:
    """The first non-empty line, without ffmpeg's "[png @ 0x55d…] " context prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"^\[[^\]]+ @ 0x[0-9a-f]+\] ", "", lines[0]) if lines else ""


def probe(path: Path, *, tip: str | None = None, expected: str | None = None) -> dict:
    """ffprobe's JSON (``format`` and ``streams``); a file it cannot read is a UserError.

    ``expected`` ("an image", "audio") words that error as "<path> is not <expected>".
    Without an ffprobe, PyAV reads the file (media_pyav.py).
    """
    if tools.which("ffprobe") is None:
        from thbench import media_pyav  # PyAV is imported only where no ffprobe exists

        return media_pyav.probe(path, tip=tip, expected=expected)
    argv = [ffprobe(), "-v", "error", "-show_format", "-show_streams", "-of", "json",
            path_arg(path)]
    result = proc.run(argv, capture=True, check=False, timeout=PROBE_TIMEOUT)
    if result.returncode != 0:
        why = _first_line(result.stderr) or f"ffprobe exited with status {result.returncode}"
        why = why.removeprefix(f"{path_arg(path)}: ")  # ffprobe repeats the path
        raise _unreadable(path, "ffprobe", why, tip, expected)
    info = json.loads(result.stdout or "{}")
    info.setdefault("streams", [])
    info.setdefault("format", {})
    return info


def _unreadable(path: Path, reader: str, why: str, tip: str | None,
                expected: str | None) -> UserError:
    message = (f"{path} is not {expected} ({reader}: {why})" if expected
               else f"{reader} cannot read {path}: {why}")
    return UserError(message, tip or f"check the file with `ffprobe {shlex.quote(path_arg(path))}`")


def count_frames(video: Path) -> int:
    """Frames in the first video stream, counted by decoding it (container metadata can lie)."""
    if tools.which("ffprobe") is not None:
        argv = [ffprobe(), "-v", "error", "-select_streams", "v:0", "-count_frames",
                "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path_arg(video)]
        out = proc.run(argv, capture=True, timeout=DECODE_TIMEOUT).stdout.strip().rstrip(",")
        return int(out) if out.isdigit() else 0
    from thbench import media_pyav

    return media_pyav.count_frames(video)


def decode_error(path: Path, *extra: str, timeout: float = DECODE_TIMEOUT) -> str | None:
    """Decode ``path`` to nowhere; return ffmpeg's first error line, or None if it decoded cleanly.

    ``extra`` goes between the input and the null output (e.g. ``-map 0`` or ``-frames:v 1``).
    ``-xerror`` stops at the first damaged packet, and any text at ``-v error`` counts as a
    failure too: ffmpeg exits 0 on some corrupt input after only logging it.
    """
    argv = [ffmpeg(), "-v", "error", "-xerror", "-i", path_arg(path), *extra, "-f", "null", "-"]
    result = proc.run(argv, capture=True, check=False, timeout=timeout)
    if result.returncode != 0 and result.seconds >= timeout:  # killed by proc.run
        return f"decoding took longer than {timeout:.0f}s"
    if result.returncode != 0 or result.stderr.strip():
        return _first_line(result.stderr) or f"ffmpeg exited with status {result.returncode}"
    return None


def streams_of(info: dict, kind: str) -> list[dict]:
    """The streams of one codec_type ("video", "audio") in a probe() result."""
    return [s for s in info["streams"] if s.get("codec_type") == kind]


def _describe(info: dict) -> str:
    """What ffprobe found, e.g. 'avi: video/mjpeg'."""
    codecs = [f"{s.get('codec_type', '?')}/{s.get('codec_name', '?')}" for s in info["streams"]]
    return f"{info['format'].get('format_name', '?')}: {', '.join(codecs) or 'no streams'}"


def _megabytes(size: int) -> str:
    """A file size as people read one, e.g. '1074 MB' (decimal, as file managers show it)."""
    return f"{size / 1e6:.0f} MB"


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None  # ffprobe can say nan


# --- the user's inputs ---------------------------------------------------------------------------

def resolve_input(path: Path, what: str) -> Path:
    """``path`` made absolute with its links followed; a link loop is the user's ERROR, not a
    RuntimeError (Python 3.11's resolve)."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as err:
        shown = shlex.quote(str(path))
        raise UserError(f"the {what} {path} cannot be followed: {err}",
                        f"point it at the real file: `ls -l {shown}`") from None


def _require_readable_file(path: Path, what: str) -> None:
    shown = shlex.quote(path_arg(path))
    if not path.exists():
        raise UserError(f"the {what} {path} does not exist", f"check the path: `ls -l {shown}`")
    if path.is_dir():
        raise UserError(f"the {what} {path} is a directory, not a file",
                        f"give a file inside it: `ls {shown}`")
    if not path.is_file():  # a FIFO or device would block ffprobe, not fail it
        raise UserError(f"the {what} {path} is not a regular file",
                        "copy it to a regular file first")
    if not os.access(path, os.R_OK):
        raise UserError(f"the {what} {path} is not readable", f"`chmod u+r {shown}`")


def validate_image(path: Path) -> ImageInfo:
    """The user's photo: at most 200 MB, one still picture, each side in [64, 4096] pixels,
    decodable; the cheap checks first, so nothing big is read or decoded.

    The sides come first from the file's header (PNG, JPEG, BMP, WebP), as ffprobe decodes
    the picture to learn them: a 2 MB PNG can hold 2 GB of pixels. That only ever refuses;
    a picture the header passes, or one it cannot tell, is still ffprobe's to judge."""
    path = Path(path)
    _require_readable_file(path, "image")
    shown = shlex.quote(path_arg(path))
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise UserError(f"{path} is {_megabytes(size)}; an image must be at most "
                        f"{_megabytes(MAX_IMAGE_BYTES)}",
                        f"save it as a PNG or JPEG at most {MAX_IMAGE_SIDE} px a side (a photo "
                        "that size is a few MB) and pass that file")
    stated = image_header.sides(path)
    if stated:
        _require_sides(path, *stated, decodable=image_header.ffmpeg_decodes(*stated))
    convert = f"convert it to PNG: `ffmpeg -i {shown} photo.png`, then pass photo.png"
    info = probe(path, tip=f"give a PNG or JPEG photo; if it is one, {convert}",
                 expected="an image")
    videos = streams_of(info, "video")
    codec = videos[0].get("codec_name", "?") if len(videos) == 1 else ""
    container = str(info["format"].get("format_name", ""))
    if (len(info["streams"]) != 1 or codec not in STILL_IMAGE_CODECS
            or not container.endswith(STILL_IMAGE_FORMATS)):
        raise UserError(f"{path} is not an image (ffprobe sees: {_describe(info)})",
                        f"give a PNG or JPEG photo; {convert}")
    width, height = int(videos[0].get("width") or 0), int(videos[0].get("height") or 0)
    if width and height:  # sides known: judged before decoding (400 MB of pixels in 270 KB)
        _require_sides(path, width, height)
    error = decode_error(path, "-frames:v", "1", timeout=PROBE_TIMEOUT)
    too_big = TOO_BIG_TO_DECODE.search(error or "")
    if too_big:  # ffprobe said 0x0: the decoder refused the size in the header
        _require_sides(path, int(too_big[1]), int(too_big[2]), decodable=False)
    if error:
        raise UserError(f"{path} is not an image ffmpeg can decode: {error}",
                        f"re-save it from an image editor, or {convert}")
    _require_sides(path, width, height)
    return ImageInfo(width, height, codec)


def _require_sides(path: Path, width: int, height: int, *, decodable: bool = True) -> None:
    """Each side in [64, 4096] pixels, else an ERROR whose TIP resizes it (with ffmpeg, where
    ffmpeg can decode it)."""
    if MIN_IMAGE_SIDE <= min(width, height) and max(width, height) <= MAX_IMAGE_SIDE:
        return
    limit = (f"at most {MAX_IMAGE_SIDE}" if max(width, height) > MAX_IMAGE_SIDE
             else f"at least {MIN_IMAGE_SIDE}")
    how = (f": `ffmpeg -i {shlex.quote(path_arg(path))} -vf scale=512:-2 photo.png`, then pass "
           "photo.png" if decodable else
           " in an image editor (ffmpeg cannot decode a picture this big)")
    raise UserError(f"{path} is {width}x{height} pixels; each side must be between "
                    f"{MIN_IMAGE_SIDE} and {MAX_IMAGE_SIDE}",
                    f"resize it to {limit} px a side{how}")


def validate_audio(path: Path, max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> AudioInfo:
    """The user's recording: a decodable audio stream, longer than 0 s, at most ``max_seconds``."""
    path = Path(path)
    _require_readable_file(path, "audio")
    shown = shlex.quote(path_arg(path))
    convert = f"convert it: `ffmpeg -i {shown} -vn speech.wav`, then pass speech.wav"
    info = probe(path, tip=f"give a speech recording (WAV, MP3, M4A, ...); {convert}",
                 expected="audio")
    audios = streams_of(info, "audio")
    if not audios:
        raise UserError(f"{path} is not audio: it has no audio stream "
                        f"(ffprobe sees: {_describe(info)})",
                        f"give a speech recording (WAV, MP3, M4A, ...); {convert}")
    stream = audios[0]
    duration = _float(stream.get("duration")) or _float(info["format"].get("duration")) or 0.0
    if duration <= 0:
        raise UserError(f"{path} is not audio: its audio stream is empty (0 s)",
                        "record some speech, or use --text to have it spoken")
    if duration > max_seconds:
        raise UserError(f"{path} is {duration:.1f} s long; the limit is {max_seconds:g} s",
                        f"trim it: `ffmpeg -i {shown} -t {max_seconds:g} short.wav`, "
                        "then pass short.wav")
    error = decode_error(path, "-map", "0:a:0")
    if error:
        raise UserError(f"{path} is not audio ffmpeg can decode: {error}", convert)
    return AudioInfo(duration, int(stream.get("sample_rate") or 0),
                     int(stream.get("channels") or 0), stream.get("codec_name", "?"))


# --- speech.wav ----------------------------------------------------------------------------------

def to_wav(src: Path, dst: Path, *, sample_rate: int | None = None,
           log: Path | None = None) -> Path:
    """Write ``src``'s first audio stream to ``dst`` as mono 16-bit PCM WAV, never overwriting.

    The rate stays the source's unless ``sample_rate`` is given. ffmpeg writes a hidden
    partial file beside ``dst``, which is then linked into place: ``dst`` either does not
    exist or is complete, and an existing ``dst`` (even one that appeared meanwhile) is kept.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; to_wav never overwrites")
    partial = dst.with_name(f".{dst.name}.partial")
    rate = ["-ar", str(sample_rate)] if sample_rate else []
    argv = [ffmpeg(), "-v", "error", "-y", "-i", path_arg(src), "-map", "0:a:0", "-ac", "1",
            *rate, "-c:a", "pcm_s16le", "-f", "wav", path_arg(partial)]
    try:
        proc.run(argv, log=log, timeout=DECODE_TIMEOUT,
                 tip=f"check the audio with `ffprobe {shlex.quote(path_arg(src))}`")
        os.link(partial, dst)  # fails with FileExistsError rather than replace
    finally:
        partial.unlink(missing_ok=True)
    return dst


def wav_duration(path: Path) -> float:
    """Seconds of audio in a PCM WAV file, read from its header with the stdlib."""
    try:
        with wave.open(os.fspath(path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError, OSError, ZeroDivisionError) as err:
        raise UserError(f"cannot read {path} as a PCM WAV file: {err}",
                        f"convert it: `ffmpeg -i {shlex.quote(path_arg(Path(path)))} "
                        "-ac 1 -c:a pcm_s16le speech.wav`") from None


def wav_rate(path: Path) -> int:
    """The sample rate of a PCM WAV file, from its header."""
    with wave.open(os.fspath(path), "rb") as wav:
        return wav.getframerate()

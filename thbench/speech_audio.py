"""Speech pieces into one WAV, and that WAV to the level and rate a model is given.

``join`` is stdlib only (``wave``, ``array``); loudness is measured by ffmpeg's ``ebur128``
filter (ITU-R BS.1770 / EBU R128), every call through ``proc.run``. Files are written beside
their destination under a hidden name and linked into place, so a destination either does
not exist or is complete, and an existing one is never replaced.
"""

from __future__ import annotations

import array
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

from thbench import media, proc
from thbench.errors import UserError

# EBU R128's programme target. Wav2Lip learnt from LRS2, BBC programmes delivered at this
# level, and speech (peak-to-loudness ratio up to ~22 dB) reaches it with one linear gain
# without passing PEAK_DBTP; the podcast -16 LUFS would need a limiter for many voices.
TARGET_LUFS = -23.0
TOLERANCE_LU = 0.5  # EBU R128's permitted deviation for a non-live programme
PEAK_DBTP = -1.0  # EBU R128's maximum true peak: room for resampling and lossy coding
SILENT_LUFS = -70.0  # BS.1770's absolute gate: ebur128 reports this when nothing passes it
MIN_MEASURE_S = 0.4  # one gating block; a shorter file is looped to be measured at all


@dataclass(frozen=True)
class Loudness:
    lufs: float | None  # integrated loudness; None for silence
    true_peak_dbtp: float | None  # None for digital silence


# --- joining pieces ------------------------------------------------------------------------------

def _read_pcm16(path: Path) -> tuple[int, array.array]:
    """(sample rate, samples) of a mono 16-bit PCM WAV; anything else is a UserError."""
    try:
        with wave.open(os.fspath(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as err:
        raise UserError(f"cannot read {path} as a PCM WAV file: {err}",
                        "a TTS backend must write mono 16-bit PCM WAV pieces") from None
    if channels != 1 or width != 2:
        raise UserError(f"{path} is {channels}-channel {8 * width}-bit audio, not mono 16-bit PCM",
                        "a TTS backend must write mono 16-bit PCM WAV pieces")
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()  # WAV data is little-endian
    return rate, samples


def _fade_edges(samples: array.array, length: int) -> None:
    """Raised-cosine fade over ``length`` samples at both ends, in place; the ends become 0."""
    length = min(length, len(samples) // 2)
    for i in range(length):
        gain = 0.5 - 0.5 * math.cos(math.pi * i / length)
        samples[i] = round(samples[i] * gain)
        samples[-1 - i] = round(samples[-1 - i] * gain)


def _partial(dst: Path) -> Path:
    """A new hidden file beside ``dst`` (same filesystem, so it can be linked into place)."""
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent)
    os.close(fd)
    return Path(name)


def _publish(partial: Path, dst: Path) -> None:
    os.link(partial, dst)  # FileExistsError if dst appeared meanwhile: never replaced


def join(pieces: list[Path], out: Path, *, silence_s: float, fade_ms: float = 8.0) -> dict:
    """Write ``pieces`` (mono 16-bit WAVs, one rate) to ``out`` with ``silence_s`` between them.

    Each piece fades in and out over ``fade_ms`` (raised cosine), so a piece that stops
    mid-waveform does not click; the silence is digital zero, none before the first piece or
    after the last. Returns the facts: sample_rate, pieces, seconds, silence_s, fade_ms.
    """
    out = Path(out)
    if not pieces:
        raise ValueError("join needs at least one piece")
    if silence_s < 0 or fade_ms < 0:
        raise ValueError(f"silence_s and fade_ms cannot be negative: {silence_s}, {fade_ms}")
    if out.exists():
        raise FileExistsError(f"{out} exists; join never overwrites")
    rate, first = _read_pcm16(Path(pieces[0]))  # before the writer exists: it needs a rate
    gap, frames = bytes(2 * round(silence_s * rate)), 0
    partial = _partial(out)
    try:
        with wave.open(os.fspath(partial), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            for index, piece in enumerate(pieces):
                piece_rate, samples = (rate, first) if index == 0 else _read_pcm16(Path(piece))
                if piece_rate != rate:
                    raise UserError(f"{piece} is at {piece_rate} Hz but {pieces[0]} is at {rate} Hz",
                                    "a TTS backend must write all pieces at one sample rate")
                if index:
                    wav.writeframes(gap)
                    frames += len(gap) // 2
                _fade_edges(samples, round(fade_ms * rate / 1000))
                if sys.byteorder == "big":
                    samples.byteswap()
                wav.writeframes(samples.tobytes())
                frames += len(samples)
        _publish(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return {"sample_rate": rate, "pieces": len(pieces), "seconds": frames / rate,
            "silence_s": len(gap) / 2 / rate, "fade_ms": fade_ms}


# --- loudness ------------------------------------------------------------------------------------

_INTEGRATED = re.compile(r"lavfi\.r128\.I=(-?[0-9.]+|-?inf)")
_TRUE_PEAK = re.compile(r"True peak:\s+Peak:\s+(-?[0-9.]+|-?inf) dBFS")


def _seconds(path: Path) -> float | None:
    """The stream's duration: from a PCM WAV's header, else as ffprobe reads it (a float WAV,
    which the stdlib's wave cannot open)."""
    try:
        return media.wav_duration(path)
    except UserError:
        pass
    try:
        return float(media.probe(path)["format"]["duration"])
    except (UserError, KeyError, TypeError, ValueError):
        return None  # ffmpeg still measures it, just never loops it


def measure(path: Path) -> Loudness:
    """Integrated loudness (LUFS) and true peak (dBTP) of ``path``'s first audio stream."""
    path = Path(path)
    seconds = _seconds(path)
    # Integrated loudness needs one 400 ms block; a shorter sound is looped, which keeps its
    # mean-square level and hence its loudness, instead of being reported as silence.
    loop = ["-stream_loop", "-1", "-t", str(2 * MIN_MEASURE_S)] \
        if seconds is not None and 0 < seconds < MIN_MEASURE_S else []
    argv = [media.ffmpeg(), "-hide_banner", "-nostats", "-v", "info", *loop,
            "-i", media.path_arg(path), "-map", "0:a:0",
            # metadata=1 gives the integrated value to 3 decimals (the summary rounds to 0.1)
            "-af", "ebur128=peak=true:framelog=verbose:metadata=1,"
                   "ametadata=mode=print:key=lavfi.r128.I", "-f", "null", "-"]
    result = proc.run(argv, timeout=media.DECODE_TIMEOUT,
                      tip=f"check the audio with `ffprobe {shlex.quote(media.path_arg(path))}`")
    values = _INTEGRATED.findall(result.stderr)
    peak = _TRUE_PEAK.search(result.stderr)
    if not values or peak is None:
        raise RuntimeError(f"ffmpeg's ebur128 printed no loudness for {path}")
    lufs, true_peak = float(values[-1]), float(peak.group(1))
    return Loudness(None if lufs <= SILENT_LUFS + 0.05 else lufs,
                    None if math.isinf(true_peak) else true_peak)


def loudness(path: Path) -> float | None:
    """Integrated loudness of ``path`` in LUFS (EBU R128), or None when it is silent."""
    return measure(path).lufs


# --- normalising ---------------------------------------------------------------------------------

def normalise(src: Path, dst: Path, *, sample_rate: int | None,
              target_lufs: float = TARGET_LUFS, tolerance_lu: float = TOLERANCE_LU,
              peak_dbtp: float = PEAK_DBTP, log: Path | None = None) -> dict:
    """Write ``src`` to ``dst`` as mono 16-bit PCM at ``sample_rate`` (None: keep), at ``target_lufs``.

    The level changes by one linear gain: talking-head models read amplitude, so a compressor
    (or ffmpeg's ``loudnorm``, which quietly turns dynamic when a linear gain would pass its
    peak limit) would change what they see. When the gain would put the true peak above
    ``peak_dbtp``, it is lowered to meet the peak and ``peak_limited`` says so; then the
    output may be below target and ``within_tolerance`` False. The output is measured again.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; normalise never overwrites")
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        # Float in between: a quiet input raised 30 dB keeps its low bits.
        mono = work / "mono.wav"
        rate = ["-ar", str(sample_rate)] if sample_rate else []
        _ffmpeg(["-i", media.path_arg(src), "-map", "0:a:0", "-ac", "1", *rate,
                 "-c:a", "pcm_f32le", media.path_arg(mono)], src, log)
        before = measure(mono)
        if before.lufs is None or before.true_peak_dbtp is None:
            raise UserError(f"the speech is silent: {src} measures below {SILENT_LUFS} LUFS",
                            "listen to it; a TTS backend that wrote silence needs another "
                            "voice or text, a recording needs a working microphone")
        gain = target_lufs - before.lufs
        peak_limited = before.true_peak_dbtp + gain > peak_dbtp
        if peak_limited:
            gain = peak_dbtp - before.true_peak_dbtp
        levelled = work / "levelled.wav"
        _ffmpeg(["-i", media.path_arg(mono), "-af", f"volume={gain:.4f}dB",
                 "-c:a", "pcm_s16le", media.path_arg(levelled)], src, log)
        after = measure(levelled)
        if after.lufs is None:
            raise RuntimeError(f"{levelled} measured silent after a gain of {gain:.2f} dB")
        _publish(levelled, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with wave.open(os.fspath(dst), "rb") as wav:
        out_rate, seconds = wav.getframerate(), wav.getnframes() / wav.getframerate()
    return {"target_lufs": target_lufs, "tolerance_lu": tolerance_lu,
            "input_lufs": round(before.lufs, 3), "output_lufs": round(after.lufs, 3),
            "true_peak_dbtp": after.true_peak_dbtp, "gain_db": round(gain, 3),
            "within_tolerance": abs(after.lufs - target_lufs) <= tolerance_lu,
            "peak_limited": peak_limited, "sample_rate": out_rate, "seconds": seconds}


def _ffmpeg(args: list[str], src: Path, log: Path | None) -> None:
    proc.run([media.ffmpeg(), "-v", "error", "-y", *args], log=log, timeout=media.DECODE_TIMEOUT,
             tip=f"check the audio with `ffprobe {shlex.quote(media.path_arg(src))}`")

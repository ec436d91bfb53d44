"""The files of the bad-input catalogue (benchmarks/bad_inputs.py); bad_input_cases.py says
what each must end in.

Pictures and sounds come from ffmpeg, made from assets/face.png where a face must be found;
what ffmpeg cannot write (a CMYK JPEG) comes from Pillow in the face-check env, the one env
the catalogue needs anyway. Odd headers (20000x20000 pixels, 16000x16000 16-bit RGBA, an
EXIF orientation) are written here with zlib and struct, and an enormous file is sparse:
small files that claim what a real one would.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from thbench import media, proc

# A 200-character folder name: under NAME_MAX (255) but far past what people type.
LONG_NAME = "long-" + "x" * 195
PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # by channels: grey, grey + alpha, RGB, RGBA
CMYK_SCRIPT = """\
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("CMYK").save(sys.argv[2], quality=90)
"""


def ffmpeg(*args: str | Path) -> None:
    proc.run([media.ffmpeg(), "-v", "error", "-y", *map(str, args)], timeout=300)


def png_of_size(path: Path, width: int, height: int, depth: int = 8, channels: int = 1) -> Path:
    """A valid PNG of ``width`` x ``height`` black pixels, 8-bit grey unless told: a few hundred
    KB of zlib for 400 MB of pixels, the shape of a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer = zlib.compressobj(9)
    row = bytes(1 + width * channels * depth // 8)  # filter byte 0, then the row
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def with_exif_orientation(src: Path, dst: Path, orientation: int = 6) -> Path:
    """``src`` (a JPEG) with an EXIF APP1 segment saying how to turn it (6: 90° clockwise)."""
    data = src.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"{src} is not a JPEG")
    # Big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, count 1.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    dst.write_bytes(data[:2] + segment + data[2:])
    return dst


def make_all(folder: Path, face: Path, pillow_python: Path | None) -> dict[str, Path]:
    """Every input file, by name; ``pillow_python`` (a Python with PIL) makes the CMYK JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {"face": face}

    # --- images that must be refused ---
    loop_a, loop_b = folder / "loop-a.png", folder / "loop-b.png"
    loop_a.symlink_to(loop_b.name)
    loop_b.symlink_to(loop_a.name)
    f["symlink_loop"] = loop_a
    f["fifo"] = folder / "pipe.png"
    os.mkfifo(f["fifo"])
    f["directory"] = folder / "a-folder.png"
    f["directory"].mkdir()
    f["unreadable"] = folder / "unreadable.png"
    f["unreadable"].write_bytes(face.read_bytes())
    f["unreadable"].chmod(0)
    f["empty_image"] = folder / "empty.png"
    f["empty_image"].write_bytes(b"")
    whole = face.read_bytes()
    f["truncated"] = folder / "truncated.png"
    f["truncated"].write_bytes(whole[: len(whole) // 2])
    f["huge_pixels"] = png_of_size(folder / "huge-20000x20000.png", 20000, 20000)
    f["big_pixels"] = png_of_size(folder / "big-8000x8000.png", 8000, 8000)
    # 2 MB of zlib for 2 GB of pixels (5 s to make): ffprobe took 2 GB of RAM to size it
    f["huge_rgba64"] = png_of_size(folder / "huge-16000x16000-rgba64.png", 16000, 16000,
                                   depth=16, channels=4)
    f["huge_bytes"] = folder / "huge-1GiB.png"
    f["huge_bytes"].write_bytes(whole)
    os.truncate(f["huge_bytes"], 1 << 30)  # sparse: 1 GiB to a reader, no disk used
    f["text_as_image"] = folder / "notes.png"
    f["text_as_image"].write_text("this is not a picture\n")
    f["text_as_video"] = folder / "notes.mp4"
    f["text_as_video"].write_text("this is not a film\n")
    f["tiny"] = folder / "tiny-16x16.png"
    ffmpeg("-i", face, "-vf", "scale=16:16", f["tiny"])

    # --- images that must work ---
    f["png16"] = folder / "face-16bit.png"
    ffmpeg("-i", face, "-pix_fmt", "rgb48be", f["png16"])
    f["alpha"] = folder / "face-alpha.png"
    ffmpeg("-i", face, "-vf", "format=rgba,colorchannelmixer=aa=0.85", f["alpha"])
    upright = folder / "face-upright.jpg"
    ffmpeg("-i", face, "-q:v", "3", upright)
    sideways = folder / "face-sideways.jpg"  # stored turned left, EXIF says turn it back
    ffmpeg("-i", face, "-vf", "transpose=2", "-q:v", "3", sideways)
    f["exif_rotated"] = with_exif_orientation(sideways, folder / "face-exif-rotated.jpg")
    if pillow_python is not None:
        script = folder / "cmyk.py"
        script.write_text(CMYK_SCRIPT)
        f["cmyk"] = folder / "face-cmyk.jpg"
        proc.run([pillow_python, script, face, f["cmyk"]], timeout=60)
    odd = folder / "ünïcödé-фото-照片"
    odd.mkdir()
    f["non_ascii"] = odd / "lächeln-微笑.png"
    f["non_ascii"].write_bytes(whole)
    deep = folder / LONG_NAME / LONG_NAME / LONG_NAME
    deep.mkdir(parents=True)
    f["long_path"] = deep / "face.png"
    f["long_path"].write_bytes(whole)
    shell = folder / "my photos $(echo hi) & more"  # harmless if a shell ever saw it
    shell.mkdir()
    f["shell_chars"] = shell / "face 'quoted' `x`.png"
    f["shell_chars"].write_bytes(whole)

    # --- audio ---
    f["empty_audio"] = folder / "empty.wav"
    f["empty_audio"].write_bytes(b"")
    f["silent"] = folder / "silent-3s.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", f["silent"])
    # 3 h of 8 kHz 16-bit mono: 173 MB written, removed with the work folder.
    f["hours"] = folder / "silent-3h.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "10800", "-c:a", "pcm_s16le",
           f["hours"])
    f["text_as_audio"] = folder / "notes.wav"
    f["text_as_audio"].write_text("this is not a sound\n")
    tone = "sine=frequency=220:duration=2"
    f["wav_8k_mono"] = folder / "tone-8k-mono.wav"
    ffmpeg("-f", "lavfi", "-i", tone, "-ar", "8000", "-ac", "1", f["wav_8k_mono"])
    f["wav_48k_stereo"] = folder / "tone-48k-stereo.wav"
    ffmpeg("-f", "lavfi", "-i", tone, "-ar", "48000", "-ac", "2", f["wav_48k_stereo"])
    f["mp3"] = folder / "tone.mp3"
    ffmpeg("-f", "lavfi", "-i", tone, f["mp3"])
    f["m4a"] = folder / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", tone, "-c:a", "aac", f["m4a"])

    f["video"] = folder / "made-elsewhere.mp4"  # for `invoke score`: 2 s of the face and a tone
    ffmpeg("-loop", "1", "-i", face, "-f", "lavfi", "-i", tone, "-t", "2", "-r", "25",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", f["video"])

    # --- text files ---
    sentence = "This is sentence number {}, and it says nothing much. "
    f["text_3k"] = _text_file(folder / "text-3k.txt", sentence, 3000)
    f["text_20k"] = _text_file(folder / "text-20k.txt", sentence, 20000)
    f["text_latin1"] = folder / "text-latin1.txt"
    f["text_latin1"].write_bytes("Grüße aus Köln.".encode("latin-1"))
    f["text_nul"] = folder / "text-nul.txt"
    f["text_nul"].write_text("Hello\x00there.")
    f["a_file"] = folder / "a-file"
    f["a_file"].write_text("a plain file where a folder is expected\n")
    return f


def _text_file(path: Path, sentence: str, size: int) -> Path:
    text, n = "", 1
    while len(text) + len(sentence) + 4 <= size:
        text += sentence.format(n)
        n += 1
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path

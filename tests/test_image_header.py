"""thbench.image_header: the sides a picture's header states, read without decoding it."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest

from thbench import image_header, proc


def ffmpeg(*args: str | Path) -> Path:
    proc.run(["ffmpeg", "-v", "error", "-y", *args], timeout=120)
    return Path(args[-1])


def png_header(path: Path, width: int, height: int, depth: int = 8, colour: int = 0) -> Path:
    """A PNG that is only its IHDR: it claims ``width`` x ``height`` in 57 bytes (8-bit grey
    unless told; depth 16, colour 6 is 16-bit RGBA)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def segment(marker: int, data: bytes = b"") -> bytes:
    """One JPEG segment: 0xFF, the marker, a length that counts itself, the data."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data


def frame(marker: int, width: int, height: int) -> bytes:
    """A JPEG frame header (SOFn): 8-bit precision, the sides, one component."""
    return segment(marker, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")


SOI, EOI = b"\xff\xd8", b"\xff\xd9"
JFIF = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
DQT = segment(0xDB, bytes(65))
# A Huffman table (C4) and arithmetic conditioning (CC) sit among the frame markers' codes;
# read as frame headers they would say 0x2222 x 0x1111.
DHT, DAC = segment(0xC4, b"\x00\x11\x11\x22\x22" + bytes(12)), segment(0xCC, b"\x00\x11\x11\x22\x22")



# --- image headers -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "args", "end"), [
    ("face.png", (), 24),
    ("face.jpg", (), None),  # ffmpeg's JPEG is baseline (SOF0); its end is found below
    ("face.bmp", (), 26),
    ("lossy.webp", (), 30),
    ("lossless.webp", ("-lossless", "1"), 25),
])
def test_header_sides_of_files_ffmpeg_writes(tmp_path, name, args, end):
    path = ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x96", "-frames:v", "1", *args,
                  tmp_path / name)
    data = path.read_bytes()
    end = end or data.index(b"\xff\xc0") + 9  # through the frame header's sides
    assert image_header.sides(path) == (128, 96) == image_header.parse(data[:end])
    assert all(image_header.parse(data[:n]) is None for n in range(end))  # truncated: None


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCF])
def test_every_jpeg_frame_kind_gives_its_sides(marker):
    # baseline, extended, progressive, lossless, arithmetic: each after the tables cameras write
    data = SOI + JFIF + DQT + DHT + DAC + frame(marker, 4000, 3000) + DHT + segment(0xDA) + EOI
    assert image_header.parse(data) == (4000, 3000)


def test_jpeg_fill_bytes_and_markers_without_length_are_stepped_over():
    data = (SOI + b"\xff\xff\xff" + JFIF + b"\xff\x01" + b"\xff\xd0\xff\xd7" + SOI
            + b"\xff\xff" + frame(0xC2, 640, 480))
    assert image_header.parse(data) == (640, 480)


def test_a_jpeg_thumbnail_inside_exif_is_not_the_picture():
    thumbnail = SOI + DQT + frame(0xC0, 160, 120) + segment(0xDA) + EOI
    data = SOI + segment(0xE1, b"Exif\x00\x00" + thumbnail) + DQT + frame(0xC0, 4032, 3024)
    assert image_header.parse(data) == (4032, 3024)


def test_webp_extended_and_bmp_variants():
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (4999).to_bytes(3, "little") \
        + (299).to_bytes(3, "little")
    assert image_header.parse(b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x) == (5000, 300)
    os2 = b"BM" + bytes(12) + struct.pack("<IHH", 12, 5000, 300)
    top_down = b"BM" + bytes(12) + struct.pack("<Iii", 40, 5000, -300)
    assert image_header.parse(os2) == image_header.parse(top_down) == (5000, 300)


@pytest.mark.parametrize("data", [
    b"", b"this is not media\n", b"GIF89a\x40\x1f\x40\x1f",  # GIF: left to ffprobe
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IDAT", 5000, 300),  # IHDR not first
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 0, 300),  # no width
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 1 << 31, 300),  # past the spec's 2^31-1
    SOI + b"\x00" + frame(0xC0, 5000, 300),  # a stray byte where a marker should be
    SOI + JFIF + b"\xff\x00" + frame(0xC0, 5000, 300),  # 0xFF00 is no marker
    SOI + DQT + segment(0xDA) + frame(0xC0, 5000, 300),  # the scan before any frame header
    SOI + DQT + EOI + frame(0xC0, 5000, 300),  # the end before any frame header
    SOI + b"\xff\xe0\x00\x01" + frame(0xC0, 5000, 300),  # a length that cannot count itself
    SOI + frame(0xC0, 5000, 0),  # height 0: set later by a DNL segment
    SOI + b"\xff\xc0\x00\x07\x08\x01\x2c\x13\x88",  # a frame header too short for its fields
    b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF, but audio
    b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x01\x00\x00\x9d\x01\x2a\x88\x13\x2c\x01",  # inter frame
    b"BM" + bytes(12) + struct.pack("<Iii", 20, 5000, 300),  # no such BMP header size
])
def test_odd_headers_give_none(data):
    assert image_header.parse(data) is None


def test_random_bytes_after_each_signature_never_raise():
    rng = random.Random(1)
    signatures = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff", b"BM", b"RIFF", b"RIFF....WEBPVP8"]
    for _ in range(3000):
        tail = rng.randbytes(rng.randrange(40))
        found = image_header.parse(rng.choice(signatures) + tail)
        assert found is None or (len(found) == 2 and min(found) > 0)


def test_a_jpeg_whose_frame_header_is_past_the_read_limit_is_left_to_ffprobe(tmp_path):
    app = segment(0xE2, bytes(65533))  # the biggest segment there is, as a long ICC profile makes
    path = tmp_path / "late.jpg"
    path.write_bytes(SOI + app * (image_header.HEAD_BYTES // len(app) + 1) + frame(0xC0, 5000, 300))
    assert image_header.sides(path) is None
    assert image_header.sides(tmp_path / "missing.jpg") is None  # unreadable: ffprobe words it

"""A picture's sides, read from its file header alone: PNG, JPEG, BMP and WebP.

ffprobe learns an image's size by decoding it: a 2 MB PNG claiming 16000 x 16000 16-bit RGBA
pixels took it 2 GB of RAM and 5 s. The header says the same in a few bytes, so an over-size
picture can be refused before ffprobe runs. Stdlib only; odd, truncated or unknown bytes give
None (never an exception), and then ffprobe is the judge as before. GIF is left out: it is
not a photo format the models take, and ffprobe refuses it by codec.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

# Enough for any JPEG's segments before its frame header (EXIF with a thumbnail, an ICC
# profile, XMP: a few hundred KB at most); a file whose header goes on longer is left to ffprobe.
HEAD_BYTES = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG's frame headers (SOF0-SOF15) share C0-CF with three markers that are not frames.
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # less DHT, JPG, DAC
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-RST7, SOI: no length
JPEG_NO_FRAME = frozenset({0xD9, 0xDA})  # EOI, SOS: the frame header should have come by now
BMP_INT16_HEADERS = frozenset({12})  # OS/2 1.x BITMAPCOREHEADER: 16-bit sides
BMP_INT32_HEADERS = frozenset({16, 40, 52, 56, 64, 108, 124})  # the rest: signed 32-bit sides

Sides = tuple[int, int]


def sides(path: Path) -> Sides | None:
    """(width, height) as the header of the picture at ``path`` states them, or None where the
    format is not one of these or the header is malformed, truncated or unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:  # ffprobe then reads it, and words the error
        return None
    return parse(head)


def parse(head: bytes) -> Sides | None:
    """(width, height) from the first bytes of a picture file, or None (see ``sides``)."""
    for magic, reader in READERS:
        if head.startswith(magic):
            try:
                found = reader(head)
            except (IndexError, struct.error):  # truncated inside a field
                return None
            return found if found and min(found) > 0 else None  # 0: unknown or malformed
    return None


def _png(head: bytes) -> Sides | None:
    # The IHDR chunk comes first: length 13, type, width, height. Its CRC is not checked:
    # ffmpeg does not check it either, and decodes such a picture all the same.
    length, kind, width, height = struct.unpack_from(">I4sII", head, 8)
    if length != 13 or kind != b"IHDR" or max(width, height) >= 1 << 31:
        return None
    return width, height


def _jpeg(head: bytes) -> Sides | None:
    # Segments follow SOI, each a marker (0xFF, any number of 0xFF fill bytes, a code) and,
    # except the standalone ones, a 2-byte length that counts itself. Any other byte where a
    # marker should be means damage: None, rather than a guess from the bytes that follow.
    at = 2
    while True:
        if head[at] != 0xFF:
            return None
        while head[at] == 0xFF:
            at += 1
        marker, at = head[at], at + 1
        if marker in JPEG_STANDALONE:
            continue
        if marker in JPEG_NO_FRAME or marker == 0x00:
            return None
        (length,) = struct.unpack_from(">H", head, at)
        if length < 2:
            return None
        if marker in JPEG_FRAMES:  # length, precision, height, width: 0 height = set by DNL
            if length < 8:
                return None
            height, width = struct.unpack_from(">HH", head, at + 3)
            return width, height
        at += length


def _bmp(head: bytes) -> Sides | None:
    (header_size,) = struct.unpack_from("<I", head, 14)
    if header_size in BMP_INT16_HEADERS:
        return struct.unpack_from("<HH", head, 18)
    if header_size in BMP_INT32_HEADERS:
        width, height = struct.unpack_from("<ii", head, 18)
        return width, abs(height)  # a negative height: rows stored top-down
    return None


def _webp(head: bytes) -> Sides | None:
    if head[8:12] != b"WEBP":
        return None
    chunk, data = head[12:16], 20
    if chunk == b"VP8 ":  # lossy: a key frame's tag, start code, 14-bit sides and 2 scale bits
        if head[data] & 1 or head[data + 3:data + 6] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", head, data + 6)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then 14 bits each of width-1, height-1
        if head[data] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", head, data + 1)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 4 bytes of flags, then 24 bits each of canvas width-1, height-1
        fields = head[data + 4:data + 10]
        if len(fields) < 6:
            return None
        return (int.from_bytes(fields[:3], "little") + 1,
                int.from_bytes(fields[3:], "little") + 1)
    return None


READERS: tuple[tuple[bytes, Callable[[bytes], Sides | None]], ...] = (
    (PNG_SIGNATURE, _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"RIFF", _webp),
)


def ffmpeg_decodes(width: int, height: int) -> bool:
    """Whether ffmpeg's decoders take a picture this big: av_image_check_size refuses one whose
    rows of 8 bytes a pixel, padded by 128 pixels each way, come to INT_MAX bytes (16255 x 16255
    decodes, 16256 x 16256 does not)."""
    return (8 * width + 1024) * (height + 128) < 2**31 - 1

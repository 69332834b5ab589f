"""A small PNG codec in the standard library only (zlib): decode 8-bit grayscale, gray+alpha, RGB,
RGBA and palette images (non-interlaced), shrink them with a box filter, encode the result.

Anything else (16-bit samples, bit depths below 8, Adam7 interlacing) raises UnsupportedImage with
the reason, rather than producing a wrong picture.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel (as stored)


class UnsupportedImage(ValueError):
    """Not a PNG, or a kind of PNG this codec does not handle."""


class Image:
    """Pixels as rows of bytes, `channels` samples per pixel (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)."""

    def __init__(self, width: int, height: int, channels: int, rows: list[bytes]) -> None:
        self.width, self.height, self.channels, self.rows = width, height, channels, rows


def _chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise UnsupportedImage("not a PNG file (bad signature)")
    at = len(SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if len(body) != length:
            raise UnsupportedImage("truncated PNG chunk")
        yield kind, body
        at += 12 + length
        if kind == b"IEND":
            return
    raise UnsupportedImage("PNG without IEND")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    at = 0
    for _ in range(height):
        kind = raw[at]
        line = bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        if len(line) != stride:
            raise UnsupportedImage("image data shorter than the header says")
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((x + y) & 0xFF for x, y in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upper_left = previous[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, previous[i], upper_left)) & 0xFF
        elif kind != 0:
            raise UnsupportedImage(f"unknown PNG filter type {kind}")
        rows.append(bytes(line))
        previous = line
    return rows


def decode(data: bytes) -> Image:
    header = None
    palette = b""
    transparency = b""
    idat = []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            transparency = body
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise UnsupportedImage("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    if colour not in CHANNELS:
        raise UnsupportedImage(f"unknown PNG colour type {colour}")
    if depth != 8:
        raise UnsupportedImage(f"only 8-bit PNGs are supported, this one has {depth}-bit samples")
    if interlace:
        raise UnsupportedImage("interlaced (Adam7) PNGs are not supported")
    raw = zlib.decompress(b"".join(idat))
    rows = _unfilter(raw, width, height, CHANNELS[colour])
    if colour != 3:
        return Image(width, height, CHANNELS[colour], rows)
    if not palette:
        raise UnsupportedImage("palette PNG without PLTE")
    alpha = transparency + b"\xff" * (256 - len(transparency))
    lookup = [palette[i * 3:i * 3 + 3] + alpha[i:i + 1] for i in range(len(palette) // 3)]
    return Image(width, height, 4, [b"".join(lookup[i] for i in row) for row in rows])


def shrink(image: Image, max_side: int) -> Image:
    """Scale down (never up) so neither side exceeds `max_side`, averaging each output pixel's box."""
    scale = max(image.width / max_side, image.height / max_side, 1.0)
    width, height = max(1, round(image.width / scale)), max(1, round(image.height / scale))
    c = image.channels
    rows = []
    for y in range(height):
        y0 = y * image.height // height
        y1 = max(y0 + 1, (y + 1) * image.height // height)
        source = image.rows[y0:y1]
        out = bytearray()
        for x in range(width):
            x0 = x * image.width // width
            x1 = max(x0 + 1, (x + 1) * image.width // width)
            count = (x1 - x0) * len(source)
            for channel in range(c):
                total = 0
                for row in source:
                    total += sum(row[x0 * c + channel:x1 * c:c])
                out.append(total // count)
        rows.append(bytes(out))
    return Image(width, height, c, rows)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode(image: Image) -> bytes:
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[image.channels]
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in image.rows)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def size_of(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone."""
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            return struct.unpack(">II", body[:8])
    raise UnsupportedImage("PNG without IHDR")

"""The thumbnail blueprint's standard-library PNG codec: every filter type decodes, palettes expand,
shrinking keeps the aspect ratio and averages, unsupported inputs say why."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import pytest

PNG_PY = Path(__file__).resolve().parents[2] / "src" / "lamina" / "blueprints" / "thumbnail" / "png.py"
_spec = importlib.util.spec_from_file_location("thumbnail_png", PNG_PY)
png = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(png)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filtered_png(width: int, height: int, channels: int, pixel, colour: int | None = None,
                 extra: bytes = b"", depth: int = 8, interlace: int = 0) -> tuple[bytes, list[bytes]]:
    """A PNG whose rows cycle through filter types 0-4, and its unfiltered rows."""
    rows = [bytes(v for x in range(width) for v in pixel(x, y)) for y in range(height)]
    raw, previous = bytearray(), bytes(width * channels)
    for y, line in enumerate(rows):
        kind = y % 5
        out = bytearray()
        for i, value in enumerate(line):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            predictor = [0, left, up, (left + up) >> 1, _paeth(left, up, upper_left)][kind]
            out.append((value - predictor) & 0xFF)
        raw += bytes([kind]) + out
        previous = line
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels] if colour is None else colour

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (png.SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
            + extra + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))
    return data, rows


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_filter_type_decodes(channels):
    data, rows = filtered_png(23, 17, channels, lambda x, y: [(x * 11 + y * 7 + c * 50) % 256 for c in range(channels)])
    image = png.decode(data)
    assert (image.width, image.height, image.channels) == (23, 17, channels)
    assert image.rows == rows
    assert png.decode(png.encode(image)).rows == rows


def test_palette_images_expand_to_rgba():
    palette = bytes([255, 0, 0, 0, 255, 0])
    plte = struct.pack(">I", 6) + b"PLTE" + palette + struct.pack(">I", zlib.crc32(b"PLTE" + palette))
    data, _ = filtered_png(4, 2, 1, lambda x, y: [x % 2], colour=3, extra=plte)
    image = png.decode(data)
    assert image.channels == 4 and image.rows[0][:8] == bytes([255, 0, 0, 255, 0, 255, 0, 255])


def test_shrink_keeps_aspect_and_averages():
    data, _ = filtered_png(400, 200, 3, lambda x, y: [255 if x < 200 else 0, 0, 0])
    small = png.shrink(png.decode(data), 128)
    assert (small.width, small.height) == (128, 64)
    assert small.rows[0][0] == 255 and small.rows[0][-3] == 0
    assert png.size_of(png.encode(small)) == (128, 64)
    tiny, _ = filtered_png(10, 5, 1, lambda x, y: [9])
    assert (png.shrink(png.decode(tiny), 128).width, png.shrink(png.decode(tiny), 128).height) == (10, 5)


def test_unsupported_inputs_say_why():
    with pytest.raises(png.UnsupportedImage, match="signature"):
        png.decode(b"GIF89a")
    sixteen, _ = filtered_png(2, 2, 3, lambda x, y: [0, 0, 0], depth=16)
    with pytest.raises(png.UnsupportedImage, match="8-bit"):
        png.decode(sixteen)
    interlaced, _ = filtered_png(2, 2, 3, lambda x, y: [0, 0, 0], interlace=1)
    with pytest.raises(png.UnsupportedImage, match="interlaced"):
        png.decode(interlaced)

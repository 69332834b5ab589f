"""The CBOR subset (RFC 8949) that AWS's `smithy-rpc-v2-cbor` protocol uses: maps, arrays, text and byte
strings, integers, floats, booleans, null, and tag 1 (epoch-seconds timestamps). Pure.

boto3 speaks this protocol to CloudWatch; decoding what it sends and encoding what it expects is all
lamina needs, so a small codec here beats a dependency.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime, timezone
from typing import Any


class CborError(ValueError):
    pass


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt, limit in ((24, ">B", 0xFF), (25, ">H", 0xFFFF), (26, ">I", 0xFFFFFFFF), (27, ">Q", 2**64 - 1)):
        if n <= limit:
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise CborError(f"integer too large for CBOR: {n}")


def encode(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(3, len(raw)) + raw
    elif isinstance(value, (bytes, bytearray)):
        out += _head(2, len(value)) + bytes(value)
    elif isinstance(value, datetime):
        out += _head(6, 1)
        _encode(value.timestamp(), out)
    elif isinstance(value, (list, tuple)):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(key, out)
            _encode(item, out)
    else:
        raise CborError(f"cannot encode {type(value).__name__} as CBOR")


_BREAK = object()


def decode(data: bytes) -> Any:
    if not data:
        return None
    value, end = _decode(memoryview(data), 0)
    if end != len(data):
        raise CborError(f"{len(data) - end} bytes after the CBOR value")
    return value


def _length(data: memoryview, pos: int, info: int) -> tuple[int | None, int]:
    if info < 24:
        return info, pos
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info in sizes:
        size = sizes[info]
        if pos + size > len(data):
            raise CborError("truncated CBOR")
        return int.from_bytes(data[pos:pos + size], "big"), pos + size
    if info == 31:
        return None, pos  # indefinite length
    raise CborError(f"bad CBOR additional information {info}")


def _decode(data: memoryview, pos: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise CborError("truncated CBOR")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        return _simple(data, pos, info)
    n, pos = _length(data, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos  # type: ignore[operator]
    if major in (2, 3):
        if n is None:  # indefinite: chunks until break
            chunks = []
            while data[pos] != 0xFF:
                chunk, pos = _decode(data, pos)
                chunks.append(chunk)
            return ("" if major == 3 else b"").join(chunks), pos + 1
        if pos + n > len(data):
            raise CborError("truncated CBOR string")
        raw = bytes(data[pos:pos + n])
        return (raw.decode("utf-8") if major == 3 else raw), pos + n
    if major == 4:
        items = []
        while n is None or len(items) < n:
            item, pos = _decode(data, pos)
            if item is _BREAK:
                break
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[Any, Any] = {}
        while n is None or len(mapping) < n:
            key, pos = _decode(data, pos)
            if key is _BREAK:
                break
            mapping[key], pos = _decode(data, pos)
        return mapping, pos
    if major == 6:
        inner, pos = _decode(data, pos)
        if n == 1:
            return datetime.fromtimestamp(inner, tz=timezone.utc), pos
        return inner, pos
    raise CborError(f"bad CBOR major type {major}")


def _simple(data: memoryview, pos: int, info: int) -> tuple[Any, int]:
    if info == 20:
        return False, pos
    if info == 21:
        return True, pos
    if info in (22, 23):
        return None, pos
    if info == 25:
        return _half(int.from_bytes(data[pos:pos + 2], "big")), pos + 2
    if info == 26:
        return struct.unpack(">f", data[pos:pos + 4])[0], pos + 4
    if info == 27:
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 8
    if info == 31:
        return _BREAK, pos
    raise CborError(f"unsupported CBOR simple value {info}")


def _half(bits: int) -> float:
    exponent, mantissa = (bits >> 10) & 0x1F, bits & 0x3FF
    if exponent == 0:
        value = mantissa * 2.0 ** -24
    elif exponent == 31:
        value = math.inf if mantissa == 0 else math.nan
    else:
        value = (mantissa + 1024) * 2.0 ** (exponent - 25)
    return -value if bits & 0x8000 else value

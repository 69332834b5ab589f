"""The aws-chunked decoder: unsigned trailer bodies as botocore writes them, split anywhere."""

from __future__ import annotations

import base64
import io
import zlib

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from lamina.s3.chunked import ChunkedDecoder, MalformedChunks


def botocore_body(data: bytes, chunk: int = 1000) -> bytes:
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                                checksum_name="x-amz-checksum-crc32", chunk_size=chunk)
    return wrapper.read()


@pytest.mark.parametrize("step", [1, 7, 1000, 10**6])
def test_unsigned_trailer_body_decodes_in_any_split(step):
    data = bytes(range(256)) * 20
    body = botocore_body(data)
    decoder = ChunkedDecoder()
    got = b"".join(b"".join(decoder.feed(body[i:i + step])) for i in range(0, len(body), step))
    decoder.finish()
    assert got == data
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert decoder.trailers["x-amz-checksum-crc32"] == crc


def test_empty_body():
    decoder = ChunkedDecoder()
    assert decoder.feed(botocore_body(b"")) in ([], [b""])
    decoder.finish()


def test_truncated_and_garbled_bodies_are_malformed():
    body = botocore_body(b"x" * 3000)
    decoder = ChunkedDecoder()
    decoder.feed(body[:1500])
    with pytest.raises(MalformedChunks):
        decoder.finish()
    with pytest.raises(MalformedChunks):
        ChunkedDecoder().feed(b"zz\r\n")
    with pytest.raises(MalformedChunks):
        ChunkedDecoder().feed(b"3\r\nabcXY")

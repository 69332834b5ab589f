"""Bodies in and out. Request bodies to disk: read as they arrive (or from the buffered body), aws-chunked decoded when
so encoded, hashed (MD5 for the ETag; SHA-256 when the signature declared one; CRC32 when a checksum
was sent), written to a temp file off the event loop, a mebibyte at a time. Nothing here holds more
than a few MiB of a body in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import zlib
import os
from collections.abc import AsyncIterator
from typing import BinaryIO

from lamina.api import sigv4
from lamina.http.server import Request
from lamina.s3 import errors as e
from lamina.s3.chunked import ChunkedDecoder, ChunkSignatureMismatch, MalformedChunks
from lamina.s3.store import ObjectStore, TempFile, Written

FLUSH_BYTES = 1 << 20
READ_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
SIGNED_STREAMING = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")


async def _pieces(request: Request) -> AsyncIterator[bytes]:
    if request.stream is None:
        if request.body:
            yield request.body
        return
    while True:
        try:
            piece = await request.stream.read()
        except ConnectionError:
            raise e.IncompleteBody() from None
        if not piece:
            return
        yield piece


def _write(tmp: TempFile, data: bytes, crc: int | None) -> int | None:
    tmp.write(data)
    return zlib.crc32(data, crc) if crc is not None else None


async def receive(request: Request, signed: sigv4.S3Signed, store: ObjectStore) -> Written:
    """The body as a finished temp file, every check passed; raises an S3Error (the file removed)."""
    headers = request.headers
    payload = signed.payload
    encoding = (headers.get("content-encoding") or "").lower()
    decoder = None
    if payload.startswith(sigv4.STREAMING_PREFIX) or "aws-chunked" in encoding:
        if payload in SIGNED_STREAMING:
            decoder = ChunkedDecoder(
                lambda previous, sha: sigv4.chunk_signature(signed, previous, sha), signed.signature,
                (lambda previous, trailer: sigv4.trailer_signature(signed, previous, trailer))
                if payload.endswith("TRAILER") else None)
        else:
            decoder = ChunkedDecoder()
    checksum_header = headers.get("x-amz-checksum-crc32")
    wants_crc = checksum_header is not None or (headers.get("x-amz-trailer") or "").lower() == "x-amz-checksum-crc32"
    tmp = store.temp_file(want_sha256=bool(_HEX64.fullmatch(payload)))
    loop = asyncio.get_running_loop()
    crc: int | None = 0 if wants_crc else None
    pending: list[bytes] = []
    size = 0
    try:
        try:
            async for piece in _pieces(request):
                for data in (decoder.feed(piece) if decoder is not None else (piece,)):
                    pending.append(data)
                    size += len(data)
                    if size >= FLUSH_BYTES:
                        crc = await loop.run_in_executor(None, _write, tmp, b"".join(pending), crc)
                        pending.clear()
                        size = 0
            if decoder is not None:
                decoder.finish()
        except ChunkSignatureMismatch:
            raise e.SignatureDoesNotMatch() from None
        except MalformedChunks as exc:
            raise e.IncompleteBody(f"The aws-chunked body is malformed: {exc}") from None
        if pending:
            crc = await loop.run_in_executor(None, _write, tmp, b"".join(pending), crc)
        written = await loop.run_in_executor(None, tmp.finish)
    except BaseException:
        tmp.discard()
        raise
    try:
        _check(written, request, payload, decoder, crc, checksum_header)
    except e.S3Error:
        written.path.unlink(missing_ok=True)
        raise
    return written


def _check(written: Written, request: Request, payload: str, decoder: ChunkedDecoder | None, crc: int | None,
           checksum_header: str | None) -> None:
    headers = request.headers
    if decoder is not None:
        declared = headers.get("x-amz-decoded-content-length")
        if declared is not None and (not declared.isdigit() or int(declared) != written.size):
            raise e.IncompleteBody()
        if checksum_header is None:
            checksum_header = decoder.trailers.get("x-amz-checksum-crc32")
    elif request.stream is not None and request.content_length is not None and request.content_length != written.size:
        raise e.IncompleteBody()
    if written.sha256 is not None and not hmac.compare_digest(written.sha256, payload):
        raise e.XAmzContentSHA256Mismatch(ClientComputedContentSHA256=payload,
                                          S3ComputedContentSHA256=written.sha256)
    md5_header = headers.get("content-md5")
    if md5_header is not None:
        try:
            expected = base64.b64decode(md5_header, validate=True).hex()
        except (binascii.Error, ValueError):
            raise e.InvalidDigest() from None
        if expected != written.md5:
            raise e.BadDigest()
    if checksum_header is not None and crc is not None:
        if base64.b64encode(crc.to_bytes(4, "big")).decode() != checksum_header.strip():
            raise e.BadDigest("Value for x-amz-checksum-crc32 header is invalid.")


async def document(request: Request, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A small XML request body, whether the server buffered it or streams it (every PUT is streamed)."""
    if request.stream is None:
        return request.body
    pieces, size = [], 0
    while piece := await request.stream.read():
        size += len(piece)
        if size > limit:
            raise e.MalformedXML("Your request body is too large for this operation.")
        pieces.append(piece)
    return b"".join(pieces)


def read_range(path: os.PathLike[str] | str, start: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(length)


class FileChunks:
    """An open object file's bytes [start, start + length), read off the loop a MiB at a time; the
    file is closed at the end or on `aclose` (the server calls it whatever happens)."""

    def __init__(self, handle: BinaryIO, start: int, length: int) -> None:
        self._file = handle
        self._start = start
        self._left = length
        self._started = False

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0 or self._file.closed:
            self._file.close()
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        if not self._started:
            self._started = True
            await loop.run_in_executor(None, self._file.seek, self._start)
        data = await loop.run_in_executor(None, self._file.read, min(READ_BYTES, self._left))
        if not data:
            self._file.close()
            raise StopAsyncIteration
        self._left -= len(data)
        return data

    async def aclose(self) -> None:
        self._file.close()

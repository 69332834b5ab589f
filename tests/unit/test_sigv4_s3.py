"""S3's SigV4 flavour, checked against botocore's own signers (S3SigV4Auth, S3SigV4QueryAuth) and
its aws-chunked writer: raw URI, x-amz-content-sha256 payload hashes, streaming chunk signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.api import sigv4
from lamina.errors import InvalidSignature, UnrecognizedClient
from lamina.s3.chunked import ChunkedDecoder, ChunkSignatureMismatch

KEY, SECRET = "LKIATESTKEY000000001", "secret-0000000000000000000000000000000001"
CREDS = Credentials(KEY, SECRET)


def secret_for(akid: str) -> str | None:
    return SECRET if akid == KEY else None


def signed(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
           payload: str | None = None) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    signer = S3SigV4Auth(CREDS, "s3", "us-east-1")
    if payload is not None:  # what botocore sends over https (UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-...)
        signer.payload = lambda request: payload  # type: ignore[method-assign]
    signer.add_auth(request)
    return request


def verify(request: AWSRequest, now: dt.datetime | None = None) -> sigv4.S3Signed:
    parts = urlsplit(request.url)
    return sigv4.verify_s3(method=request.method, raw_path=parts.path, raw_query=parts.query,
                           headers=[("Host", parts.netloc), *request.headers.items()], secret_for=secret_for,
                           now=now or dt.datetime.now(dt.timezone.utc))


def test_botocore_s3_signature_verifies_with_a_raw_uri():
    """Keys with `..`, `//` and percent-escapes are signed as sent: not normalised, not encoded twice."""
    for path in ("/bk/a/../b", "/bk//double", "/bk/%C3%BC%20x%2B", "/bk/trailing/", "/"):
        request = signed("PUT", f"http://127.0.0.1:9001{path}", b"data")
        result = verify(request)
        assert result.payload == hashlib.sha256(b"data").hexdigest()
        assert result.principal.service == "s3" and result.principal.access_key_id == KEY


def test_unsigned_and_streaming_payload_values_are_what_was_signed():
    for payload in ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        assert verify(signed("PUT", "http://h/bk/k", payload=payload)).payload == payload


def test_tampering_fails():
    request = signed("PUT", "http://h/bk/key", b"data")
    request.url = "http://h/bk/other"
    with pytest.raises(InvalidSignature):
        verify(request)
    request = signed("GET", "http://h/bk/key")
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    with pytest.raises(InvalidSignature):
        verify(request)


def test_unknown_key():
    request = AWSRequest(method="GET", url="http://h/bk", data=b"")
    S3SigV4Auth(Credentials("NOPE", SECRET), "s3", "us-east-1").add_auth(request)
    with pytest.raises(UnrecognizedClient):
        verify(request)


def test_presigned_url_from_botocore_verifies_and_expires():
    request = AWSRequest(method="GET", url="http://h/bk/some%20key", data=b"")
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(request)
    assert verify(request).payload == "UNSIGNED-PAYLOAD"
    parts = urlsplit(request.url)
    assert sigv4.scope_service(None, parts.query) == "s3"
    with pytest.raises(InvalidSignature, match="expired"):
        verify(request, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=120))


def test_scope_service_reads_the_authorization_header():
    request = signed("GET", "http://h/bk")
    assert sigv4.scope_service(request.headers["Authorization"], "") == "s3"
    assert sigv4.scope_service(None, "") is None
    assert sigv4.scope_service("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda/aws4_request, "
                               "SignedHeaders=host, Signature=x", "") == "lambda"


def _chunked(data: bytes, seed: str, signed_request: sigv4.S3Signed, chunk: int = 64 * 1024) -> bytes:
    """The STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, as the AWS SDKs write it."""
    out = io.BytesIO()
    previous = seed
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        signature = sigv4.chunk_signature(signed_request, previous, hashlib.sha256(piece).hexdigest())
        out.write(f"{len(piece):x};chunk-signature={signature}\r\n".encode() + piece + b"\r\n")
        previous = signature
    return out.getvalue()


def test_signed_chunks_decode_and_a_changed_byte_is_caught():
    request = signed("PUT", "http://h/bk/k", payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                     headers={"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "200000"})
    result = verify(request)
    data = bytes(range(256)) * 782
    body = _chunked(data, result.signature, result)

    def decoder() -> ChunkedDecoder:
        return ChunkedDecoder(lambda prev, sha: sigv4.chunk_signature(result, prev, sha), result.signature)

    d = decoder()
    got = b"".join(b"".join(d.feed(body[i:i + 1000])) for i in range(0, len(body), 1000))
    d.finish()
    assert got == data
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 1
    with pytest.raises(ChunkSignatureMismatch):
        d = decoder()
        d.feed(bytes(tampered))


def test_signed_trailer_is_checked():
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: chunks, then a checksum trailer signed in turn."""
    request = signed("PUT", "http://h/bk/k", payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                     headers={"Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32"})
    result = verify(request)
    data = b"trailer test " * 1000
    body = _chunked(data, result.signature, result)
    last = body.rsplit(b"chunk-signature=", 1)[1][:64].decode()
    trailer = b"x-amz-checksum-crc32:AAAAAA==\n"

    def decoder() -> ChunkedDecoder:
        return ChunkedDecoder(lambda prev, sha: sigv4.chunk_signature(result, prev, sha), result.signature,
                              lambda prev, text: sigv4.trailer_signature(result, prev, text))

    good = body[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:" + \
        sigv4.trailer_signature(result, last, trailer).encode() + b"\r\n\r\n"
    d = decoder()
    assert b"".join(d.feed(good)) == data
    d.finish()
    assert d.trailers == {"x-amz-checksum-crc32": "AAAAAA=="}
    bad = good.replace(b"AAAAAA==", b"BBBBBB==")
    with pytest.raises(ChunkSignatureMismatch):
        decoder().feed(bad)

"""AWS Signature Version 4 verification: the `Authorization` header form and presigned query strings.

Pure: no I/O, no clock, no web framework. The HTTP layer passes the request exactly as it came off the
wire (raw percent-encoded path, raw query string, header pairs, body bytes) and gets back a `Principal`
or an `AuthError` (spec §10, wording §2).

The canonical request is rebuilt the way botocore builds it for non-S3 services:

* URI: the raw wire path, dot segments and empty segments removed, percent-encoded *again*
  (`arn%3Aaws` → `arn%253Aaws`); an empty path is `/`.
* query: pairs decoded, re-encoded with safe set `-_.~`, sorted by key then value; blank values kept.
  A presigned request leaves out its own `X-Amz-Signature`.
* headers: only those named in SignedHeaders, lower-cased, whitespace runs collapsed, repeats joined with `,`.
* payload: the `X-Amz-Content-Sha256` header when sent (a hex value must match the body; `UNSIGNED-PAYLOAD`
  leaves the body unauthenticated), else sha256 of the body. botocore's and the JS SDK's presigners hash
  the (empty) body for non-S3 services; S3-style presigners sign `UNSIGNED-PAYLOAD`. Presigned requests
  accept either.

S3 (`verify_s3`) differs: the URI is the raw wire path as sent (not normalised, not encoded again), and
the payload hash is always the `X-Amz-Content-Sha256` header (a hex digest, `UNSIGNED-PAYLOAD`, or a
`STREAMING-*` value for aws-chunked bodies), which the caller checks against the body as it streams
(S3 bodies are not in memory when the signature is checked); presigned S3 URLs sign `UNSIGNED-PAYLOAD`.

Deriving a signing key costs four HMACs; keys are cached per (secret, date, region, service), with the
HMAC's two padded key blocks already hashed (`_Signer`), so the invoke hot path pays two hashes and two
hash-state copies per request (OpenSSL 3's one-shot HMAC looks its digest up again at every call: 3.5 µs
against 1.1 here).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes

from lamina.errors import IncompleteSignature, InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_PRESIGN_EXPIRES_S = 604_800  # one week, as AWS allows
_TIMESTAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_PRESIGN_MARKERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")


@dataclass(frozen=True, slots=True)
class Principal:
    access_key_id: str
    region: str  # from the credential scope
    service: str  # from the credential scope
    date: str  # YYYYMMDD


@dataclass(frozen=True, slots=True)
class S3Signed:
    """An S3 request whose signature checked out: who, what payload hash it declared, and what an
    aws-chunked body needs to check its chunk signatures."""

    principal: Principal
    payload: str  # hex sha256, UNSIGNED-PAYLOAD or STREAMING-...
    signature: str  # the seed signature (chunk signatures chain from it)
    timestamp: str
    scope: str
    key: bytes


S3_PAYLOAD_SHA_MISMATCH = "The provided 'x-amz-content-sha256' header does not match what was computed."
STREAMING_PREFIX = "STREAMING-"


class _Claim(NamedTuple):  # a tuple: made on every request, a frozen dataclass costs 3× as much
    """What the client says it signed, from the Authorization header or the query string."""

    credential: str
    signed_headers: str
    signature: str
    timestamp: str | None
    expires_s: int | None  # presigned only
    presigned: bool


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime | float,
    service: str | None = None,
    max_skew_s: int = 900,
) -> Principal:
    """Check a request's SigV4 signature; return who signed it or raise an `AuthError`. `now` is a
    datetime or POSIX seconds (the cheaper on the invoke path)."""
    return _verify(method, _canonical_uri(raw_path), raw_query, headers, secret_for, now, service, max_skew_s,
                   lambda header_map, presigned: _payload_hashes(header_map, body, presigned))[0]


def verify_s3(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    secret_for: Callable[[str], str | None],
    now: datetime | float,
    max_skew_s: int = 900,
) -> S3Signed:
    """Check an S3 request's signature (service `s3`) without its body; the caller must check the body
    against `payload` (a hex digest) or decode it as aws-chunked (`STREAMING-*`)."""
    declared: list[str] = []

    def hashes(header_map: dict[str, list[str]], presigned: bool) -> tuple[str, ...]:
        value = (header_map.get("x-amz-content-sha256") or [""])[0].strip()
        if presigned:
            declared.append(UNSIGNED_PAYLOAD)
            return (UNSIGNED_PAYLOAD,)
        if not value:
            raise InvalidSignature("Missing required header for this request: x-amz-content-sha256")
        if not (value == UNSIGNED_PAYLOAD or value.startswith(STREAMING_PREFIX)
                or re.fullmatch(r"[0-9a-f]{64}", value)):
            raise InvalidSignature(f"x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 "
                                   f"hex digest, not '{value}'.")
        declared.append(value)
        return (value,)

    principal, signature, timestamp, scope, key = _verify(
        method, raw_path or "/", raw_query, headers, secret_for, now, "s3", max_skew_s, hashes)
    return S3Signed(principal, declared[0], signature, timestamp, scope, key)


def _verify(
    method: str,
    canonical_uri: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    secret_for: Callable[[str], str | None],
    now: datetime | float,
    service: str | None,
    max_skew_s: int,
    payload_hashes: Callable[[dict[str, list[str]], bool], tuple[str, ...]],
) -> tuple[Principal, str, str, str, bytes]:
    header_map: dict[str, list[str]] = {}
    for name, value in headers:
        header_map.setdefault(name.lower(), []).append(value)
    query = _parse_query(raw_query) if raw_query else []
    params = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in query} if query else {}

    authorization = header_map.get("authorization")
    presigned = bool(params) and any(p in params for p in _PRESIGN_MARKERS)
    if authorization and presigned:
        raise IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
            "or the Authorization header should be specified"
        )
    if authorization:
        if len(authorization) > 1:
            raise IncompleteSignature("Only one Authorization header may be sent.")
        claim = _from_header(authorization[0], _request_timestamp(header_map))
    elif presigned:
        claim = _from_query(params)
        query = [(k, v) for k, v in query if k != b"X-Amz-Signature"]
    else:
        raise MissingAuthenticationToken()

    access_key_id, date, _, scope_service, scope, principal = _parse_scope(claim.credential)
    signed = _signed_list(claim.signed_headers)
    timestamp = claim.timestamp or ""
    signed_s = _parse_timestamp(timestamp)
    if date != timestamp[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    if service is not None and scope_service != service:
        raise InvalidSignature(f"Credential should be scoped to correct service: '{service}'. ")
    _check_time(timestamp, signed_s, now, max_skew_s, claim.expires_s)

    secret = secret_for(access_key_id)
    if secret is None:
        raise UnrecognizedClient()

    canonical_headers = "".join([f"{name}:{_canonical_value(header_map.get(name, ()))}\n" for name in signed])
    prefix = "\n".join(
        (method.upper(), canonical_uri, _canonical_query(query) if query else "", canonical_headers,
         ";".join(signed))
    )
    signer = _signer(secret, scope)
    provided = claim.signature.encode("utf-8", "replace")
    for payload_hash in payload_hashes(header_map, claim.presigned):
        canonical = f"{prefix}\n{payload_hash}".encode("utf-8", "surrogateescape")
        string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}"
        expected = signer.hexdigest(string_to_sign.encode()).encode()
        if hmac.compare_digest(expected, provided):
            return principal, claim.signature, timestamp, scope, signer.key
    raise InvalidSignature()


def chunk_signature(signed: S3Signed, previous: str, chunk_sha256: str) -> str:
    """The signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), chained from the
    previous chunk's (the seed signature for the first)."""
    string_to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", signed.timestamp, signed.scope, previous,
                                 _EMPTY_SHA256, chunk_sha256))
    return _key_signer(signed.key).hexdigest(string_to_sign.encode())


def trailer_signature(signed: S3Signed, previous: str, trailer: bytes) -> str:
    """The signature of the trailing headers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)."""
    string_to_sign = "\n".join(("AWS4-HMAC-SHA256-TRAILER", signed.timestamp, signed.scope, previous,
                                 hashlib.sha256(trailer).hexdigest()))
    return _key_signer(signed.key).hexdigest(string_to_sign.encode())


@lru_cache(maxsize=256)  # a client signs the same headers all day
def _signed_list(signed_headers: str) -> tuple[str, ...]:
    signed = tuple(signed_headers.lower().split(";"))
    if "host" not in signed:
        raise IncompleteSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    return signed


def _canonical_value(values: Sequence[str]) -> str:
    """A signed header's canonical value: each value's whitespace runs collapsed and trimmed, repeats
    joined with `,`."""
    if len(values) == 1:
        value = values[0]
        if "  " not in value and value == value.strip() and "\t" not in value:
            return value  # the usual case: nothing to collapse
    return ",".join([" ".join(v.split()) for v in values])


@lru_cache(maxsize=256)  # what a client's Authorization header says before its signature: the same all day
def _claim_head(head: str) -> tuple[str, str] | None:
    """(Credential, SignedHeaders) of `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…`, when that is
    exactly what `head` is; None for anything else (then `_from_header` parses it all)."""
    algorithm, _, rest = head.partition(" ")
    credential, _, signed = rest.partition(", ")
    if algorithm != ALGORITHM or not credential.startswith("Credential=") or not signed.startswith(
            "SignedHeaders=") or "," in signed or "," in credential or " " in credential or " " in signed:
        return None
    credential, signed = credential[11:], signed[14:]
    return (credential, signed) if credential and signed else None


def _from_header(authorization: str, timestamp: str | None) -> _Claim:
    head, sep, signature = authorization.rpartition(", Signature=")
    if sep and timestamp is not None and signature and "," not in signature and " " not in signature:
        known = _claim_head(head)  # the form SDKs send: its head parsed once
        if known is not None:
            return _Claim(known[0], known[1], signature, timestamp, None, False)
    algorithm, _, rest = authorization.strip().partition(" ")
    fields: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields.setdefault(name, value.strip())
    if timestamp is not None and fields.get("Credential") and fields.get("Signature") and fields.get("SignedHeaders"):
        return _Claim(fields["Credential"], fields["SignedHeaders"], fields["Signature"], timestamp, None, False)
    problems = [
        f"Authorization header requires '{p}' parameter."
        for p in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(p)
    ]
    if timestamp is None:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise IncompleteSignature(" ".join(problems))
    return _Claim(fields["Credential"], fields["SignedHeaders"], fields["Signature"], timestamp, None, False)


def _from_query(params: dict[str, str]) -> _Claim:
    for p in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if not params.get(p):
            raise IncompleteSignature(
                f"AWS query-string parameters must include '{p}'. Re-examine the query-string parameters."
            )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(f"X-Amz-Algorithm only supports '{ALGORITHM}'")
    expires_s = None
    if "X-Amz-Expires" in params:
        raw = params["X-Amz-Expires"]
        if not raw.isdigit() or not 0 < int(raw) <= MAX_PRESIGN_EXPIRES_S:
            raise IncompleteSignature(
                f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_EXPIRES_S}, not '{raw}'."
            )
        expires_s = int(raw)
    return _Claim(
        credential=params["X-Amz-Credential"],
        signed_headers=params["X-Amz-SignedHeaders"],
        signature=params["X-Amz-Signature"],
        timestamp=params["X-Amz-Date"],
        expires_s=expires_s,
        presigned=True,
    )


@lru_cache(maxsize=256)  # a client signs with the same scope all day
def _parse_scope(credential: str) -> tuple[str, str, str, str, str, Principal]:
    """(access key id, date, region, service, the scope `date/region/service/aws4_request`, the
    principal) of a credential `keyid/date/region/service/aws4_request`."""
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts) or not credential.isascii():
        raise IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'"
        )
    access_key_id, date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise IncompleteSignature(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )
    principal = Principal(access_key_id=access_key_id, region=region, service=service, date=date)
    return access_key_id, date, region, service, f"{date}/{region}/{service}/aws4_request", principal


def _request_timestamp(header_map: dict[str, list[str]]) -> str | None:
    """X-Amz-Date as sent, else the Date header converted to YYYYMMDDTHHMMSSZ (what the signer used)."""
    if "x-amz-date" in header_map:
        return header_map["x-amz-date"][0].strip()
    if "date" not in header_map:
        return None
    try:
        parsed = parsedate_to_datetime(header_map["date"][0])
    except (TypeError, ValueError):
        return header_map["date"][0]  # rejected by _parse_timestamp
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


@lru_cache(maxsize=64)  # many requests share a second
def _parse_timestamp(timestamp: str) -> float:
    """POSIX seconds of a YYYYMMDDTHHMMSSZ timestamp."""
    try:
        if _TIMESTAMP.fullmatch(timestamp):
            t = timestamp  # strptime is ten times slower on this hot path
            return datetime(int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[9:11]), int(t[11:13]), int(t[13:15]),
                            tzinfo=UTC).timestamp()
    except ValueError:
        pass
    raise IncompleteSignature(
        f"Date must be in ISO-8601 'basic format'. Got '{timestamp}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def _check_time(timestamp: str, signed_s: float, now: datetime | float, max_skew_s: int,
                expires_s: int | None) -> None:
    if isinstance(now, datetime):
        now = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
    ahead_s = signed_s - now
    window_s = max_skew_s if expires_s is None else expires_s
    if -window_s <= ahead_s <= max_skew_s:  # the usual case: no datetime objects made
        return
    signed_at, now = datetime.fromtimestamp(signed_s, UTC), datetime.fromtimestamp(now, UTC)
    skew = timedelta(seconds=max_skew_s)
    if signed_at > now + skew:
        raise InvalidSignature(
            f"Signature not yet current: {timestamp} is still later than {_fmt(now + skew)} "
            f"({_fmt(now)} + {_window(max_skew_s)}.)"
        )
    if signed_at < now - timedelta(seconds=window_s):
        raise InvalidSignature(
            f"Signature expired: {timestamp} is now earlier than {_fmt(now - timedelta(seconds=window_s))} "
            f"({_fmt(now)} - {_window(window_s)}.)"
        )


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def _window(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} sec"


def _parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote_to_bytes(key), unquote_to_bytes(value)))
    return pairs


def _canonical_query(pairs: list[tuple[bytes, bytes]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


@lru_cache(maxsize=1024)  # the same function paths come back again and again
def _canonical_uri(raw_path: str) -> str:
    """botocore's normalize_url_path (RFC 3986 dot segments, no empty segments), then encoded once more."""
    if not raw_path:
        return "/"
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    path = ("/" if raw_path.startswith("/") else "") + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~")


def _payload_hashes(header_map: dict[str, list[str]], body: bytes, presigned: bool) -> tuple[str, ...]:
    body_hash = hashlib.sha256(body).hexdigest()
    declared = header_map.get("x-amz-content-sha256")
    if declared is None:
        return (body_hash, UNSIGNED_PAYLOAD) if presigned else (body_hash,)
    value = declared[0].strip()
    if value not in (UNSIGNED_PAYLOAD, body_hash):
        raise InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.")
    return (value,)


class _Signer:
    """HMAC-SHA256 under one signing key, its inner and outer padded key blocks hashed once (RFC 2104)."""

    __slots__ = ("key", "_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        self.key = key
        block = key.ljust(64, b"\0")  # a signing key is a 32-byte digest: never longer than the block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


@lru_cache(maxsize=64)  # an upload's chunks are all signed with its request's key
def _key_signer(key: bytes) -> _Signer:
    return _Signer(key)


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@lru_cache(maxsize=256)
def _signer(secret: str, scope: str) -> _Signer:
    """The signer under the key derived from `secret` for `scope` (`date/region/service/aws4_request`)."""
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return _Signer(key)


def scope_service(authorization: str | None, raw_query: str) -> str | None:
    """The service a request's credential scope names (`…/us-east-1/s3/aws4_request`), from the
    Authorization header or a presigned URL's X-Amz-Credential; None when neither says. Cheap: no
    verification, only for choosing which API answers."""
    credential = None
    if authorization:
        start = authorization.find("Credential=")
        if start >= 0:
            credential = authorization[start + 11:].split(",", 1)[0].strip()
    elif "X-Amz-Credential=" in raw_query:
        for part in raw_query.split("&"):
            if part.startswith("X-Amz-Credential="):
                credential = unquote_to_bytes(part[17:]).decode("utf-8", "replace")
                break
    elif "AWSAccessKeyId=" in raw_query and "Signature=" in raw_query:
        return "s3"  # S3's legacy (SigV2) presigned URLs: no other service lamina serves uses them
    if not credential:
        return None
    parts = credential.rsplit("/", 2)
    return parts[1] if len(parts) == 3 else None

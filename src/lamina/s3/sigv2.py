"""S3's legacy query-string signature (SigV2: `?AWSAccessKeyId=…&Expires=…&Signature=…`), which boto3
still uses for presigned URLs unless told `signature_version="s3v4"`. Pure; presigned form only.

    StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Expires \\n x-amz-* headers \\n resource
    Signature    = base64(HMAC-SHA1(secret, StringToSign))

The resource is the path as sent plus the sub-resources and response overrides in the query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

#: Query parameters that are part of the signed resource (S3's list).
SUB_RESOURCES = frozenset({
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type", "response-expires",
})


class SigV2Error(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_presigned_v2(raw_query: str) -> bool:
    return "AWSAccessKeyId=" in raw_query and "Signature=" in raw_query


def verify_presigned(method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]],
                     secret_for: Callable[[str], str | None], now: float) -> str:
    """The access key id of a valid SigV2 presigned request; raises SigV2Error otherwise."""
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    access_key, signature = params.get("AWSAccessKeyId", ""), params.get("Signature", "")
    expires = params.get("Expires", "")
    if not expires.isdigit():
        raise SigV2Error("AccessDenied", "Query-string authentication requires the Signature, Expires and "
                                         "AWSAccessKeyId parameters")
    if int(expires) < now:
        raise SigV2Error("AccessDenied", "Request has expired")
    secret = secret_for(access_key)
    if secret is None:
        raise SigV2Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    header_map: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        header_map[lowered] = f"{header_map[lowered]},{value.strip()}" if lowered in header_map else value.strip()
    amz = "".join(f"{k}:{header_map[k]}\n" for k in sorted(header_map) if k.startswith("x-amz-"))
    subs = sorted((k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True) if k in SUB_RESOURCES)
    resource = raw_path or "/"
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    string_to_sign = "\n".join((method.upper(), header_map.get("content-md5", ""), header_map.get("content-type", ""),
                                expires, amz + resource))
    expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode("utf-8", "surrogateescape"),
                                         hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise SigV2Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                  "signature you provided. Check your key and signing method.")
    return access_key

"""SigV4 verification against signatures made by botocore itself (spec §10).

Each test signs a request with botocore, then hands `verify` what a server would see on the wire: the
path and query exactly as sent, the headers (plus the Host header urllib3 adds), and the body.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import UNSIGNED_PAYLOAD, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from urllib3.response import HTTPResponse

from lamina.api import sigv4
from lamina.api.sigv4 import Principal, verify
from lamina.errors import IncompleteSignature, InvalidSignature, MissingAuthenticationToken, UnrecognizedClient

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(AKID, SECRET)
ENDPOINT = "http://127.0.0.1:9001"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"
ENCODED_ARN = "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af"


def secret_for(akid: str) -> str | None:
    return {AKID: SECRET, "AKIDOTHER": "other-secret"}.get(akid)


class Wire:
    """A request as the server receives it."""

    def __init__(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> None:
        parts = urlsplit(url)
        self.method = method
        self.raw_path = parts.path
        self.raw_query = parts.query
        self.headers = headers
        self.body = body
        if not any(name.lower() == "host" for name, _ in headers):
            # urllib3 sends Host itself, leaving out a default port, as botocore assumes when signing.
            default = {"http": 80, "https": 443}[parts.scheme]
            host = parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"
            self.headers = [("Host", host), *headers]
        self.headers = [*self.headers, ("Accept-Encoding", "identity"), ("Content-Length", str(len(body)))]

    @classmethod
    def from_prepared(cls, prepared: AWSPreparedRequest) -> Wire:
        body = prepared.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        # botocore hands some header values to urllib3 as bytes; a server decodes them back to text.
        headers = [(_text(name), _text(value)) for name, value in prepared.headers.items()]
        return cls(prepared.method, prepared.url, headers, body)

    def replace(self, **changes: object) -> Wire:
        clone = object.__new__(Wire)
        clone.__dict__.update({**self.__dict__, **changes})
        return clone

    def set_header(self, name: str, value: str) -> Wire:
        kept = [(n, v) for n, v in self.headers if n.lower() != name.lower()]
        return self.replace(headers=[*kept, (name, value)])

    def verify(self, *, now: datetime | None = None, **kwargs: object) -> Principal:
        return verify(
            method=self.method,
            raw_path=self.raw_path,
            raw_query=self.raw_query,
            headers=self.headers,
            body=self.body,
            secret_for=kwargs.pop("secret_for", secret_for),  # type: ignore[arg-type]
            now=now or datetime.now(UTC),
            **kwargs,  # type: ignore[arg-type]
        )


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def signed(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    creds: Credentials = CREDS,
    service: str = "lambda",
    region: str = "us-east-1",
) -> Wire:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(creds, service, region).add_auth(request)
    return Wire.from_prepared(request.prepare())


def presigned(url: str, *, expires: int = 60, creds: Credentials = CREDS, unsigned_payload: bool = False) -> Wire:
    signer_cls = _UnsignedPayloadQueryAuth if unsigned_payload else SigV4QueryAuth
    request = AWSRequest(method="GET", url=url)
    signer_cls(creds, "lambda", "us-east-1", expires=expires).add_auth(request)
    return Wire.from_prepared(request.prepare())


class _UnsignedPayloadQueryAuth(SigV4QueryAuth):
    """The S3 presigner convention (UNSIGNED-PAYLOAD) with the non-S3 path normalisation."""

    def payload(self, request: AWSRequest) -> str:
        return UNSIGNED_PAYLOAD


def amz_date(wire: Wire) -> datetime:
    value = next(v for n, v in wire.headers if n.lower() == "x-amz-date")
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# --- requests that verify ---------------------------------------------------------------------------


def test_simple_get() -> None:
    wire = signed("GET", f"{ENDPOINT}/2015-03-31/functions/")
    assert wire.verify(service="lambda") == Principal(AKID, "us-east-1", "lambda", amz_date(wire).strftime("%Y%m%d"))


def test_post_with_json_body() -> None:
    body = b'{"FunctionName": "f", "Runtime": "python3.12", "Handler": "app.handler"}'
    wire = signed("POST", f"{ENDPOINT}/2015-03-31/functions", body=body, headers={"Content-Type": "application/json"})
    assert wire.verify().access_key_id == AKID


def test_percent_encoded_function_arn_in_path() -> None:
    wire = signed("POST", f"{ENDPOINT}/2015-03-31/functions/{ENCODED_ARN}/invocations", body=b"{}")
    assert wire.raw_path == f"/2015-03-31/functions/{ENCODED_ARN}/invocations"
    assert wire.verify().access_key_id == AKID


def test_canonical_uri_encodes_the_wire_path_again() -> None:
    assert sigv4._canonical_uri("/functions/arn%3Aaws%3Alambda") == "/functions/arn%253Aaws%253Alambda"
    assert sigv4._canonical_uri("") == "/"
    assert sigv4._canonical_uri("/a/./b/../c//d/") == "/a/c/d/"


def test_query_params_are_decoded_and_reencoded() -> None:
    wire = signed("GET", f"{ENDPOINT}/2015-03-31/functions/f?Qualifier=%24LATEST&Marker=abc%2Fdef&MaxItems=5")
    assert wire.verify().access_key_id == AKID
    # A client that sends '$' and '/' unencoded: botocore signs such a raw query string verbatim, but the
    # canonical query is defined on the encoded form (AWS re-encodes too), so this one does not verify.
    # boto3's serializer always encodes, so real clients never hit this.
    raw = signed("GET", f"{ENDPOINT}/2015-03-31/functions/f?Qualifier=$LATEST&Marker=abc/def&MaxItems=5")
    assert raw.raw_query == "Qualifier=$LATEST&Marker=abc/def&MaxItems=5"
    with pytest.raises(InvalidSignature):
        raw.verify()
    assert sigv4._canonical_query(sigv4._parse_query(raw.raw_query)) == (
        "Marker=abc%2Fdef&MaxItems=5&Qualifier=%24LATEST"
    )


def test_repeated_and_blank_query_params() -> None:
    wire = signed("GET", f"{ENDPOINT}/p?b=2&a=&b=1&flag=&z=%E2%9C%93")
    assert wire.verify().access_key_id == AKID


def test_invoke_style_headers_and_whitespace_collapse() -> None:
    headers = {
        "X-Amz-Invocation-Type": "RequestResponse",
        "X-Amz-Log-Type": "Tail",
        "X-Amz-Client-Context": "  eyJjdXN0b20iOnt9fQ==   ",
        "X-Custom": "a   b \t c",
    }
    wire = signed("POST", f"{ENDPOINT}/2015-03-31/functions/f/invocations", body=b'{"k": 1}', headers=headers)
    assert wire.verify().access_key_id == AKID
    with pytest.raises(InvalidSignature):
        wire.set_header("X-Amz-Invocation-Type", "Event").verify()


def test_repeated_headers_are_comma_joined() -> None:
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/p")
    request.headers = HTTPHeaders()
    request.headers["X-Amz-Meta"] = "one"
    request.headers["X-Amz-Meta"] = " two  three "
    SigV4Auth(CREDS, "lambda", "us-east-1").add_auth(request)
    wire = Wire("GET", request.url, list(request.headers.items()), b"")
    assert [v for n, v in wire.headers if n == "X-Amz-Meta"] == ["one", " two  three "]
    assert wire.verify().access_key_id == AKID


def test_non_default_host_port_must_match() -> None:
    wire = signed("GET", "http://127.0.0.1:9001/2015-03-31/functions/")
    assert ("Host", "127.0.0.1:9001") in wire.headers
    assert wire.verify().access_key_id == AKID
    with pytest.raises(InvalidSignature):
        wire.set_header("Host", "127.0.0.1").verify()


def test_session_token_header() -> None:
    wire = signed("GET", f"{ENDPOINT}/p", creds=Credentials(AKID, SECRET, "session-token"))
    assert ("X-Amz-Security-Token", "session-token") in wire.headers
    assert wire.verify().access_key_id == AKID
    with pytest.raises(InvalidSignature):
        wire.set_header("X-Amz-Security-Token", "other-token").verify()


def test_any_region_is_accepted() -> None:
    assert signed("GET", f"{ENDPOINT}/p", region="eu-west-1").verify().region == "eu-west-1"


def test_date_header_instead_of_x_amz_date() -> None:
    wire = signed("GET", f"{ENDPOINT}/p", headers={"Date": "placeholder"})
    assert not any(n.lower() == "x-amz-date" for n, _ in wire.headers)
    assert wire.verify().access_key_id == AKID


def test_unsigned_payload_header_is_honoured() -> None:
    request = AWSRequest(method="POST", url=f"{ENDPOINT}/p", data=b"abc")
    request.context["payload_signing_enabled"] = False
    SigV4Auth(CREDS, "lambda", "us-east-1").add_auth(request)
    wire = Wire.from_prepared(request.prepare())
    assert wire.verify().access_key_id == AKID


def test_signing_keys_are_cached() -> None:
    wire = signed("GET", f"{ENDPOINT}/p")
    wire.verify()
    before = sigv4._signer.cache_info()
    wire.verify()
    after = sigv4._signer.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_the_cached_signer_is_hmac_sha256(size: int) -> None:
    key = os.urandom(32)
    message = os.urandom(size)
    signer = sigv4._Signer(key)
    assert signer.hexdigest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert signer.hexdigest(message) == signer.hexdigest(message)  # its pre-hashed blocks are not used up


# --- requests that do not verify --------------------------------------------------------------------


def test_wrong_secret() -> None:
    wire = signed("GET", f"{ENDPOINT}/p", creds=Credentials(AKID, "not-the-secret"))
    with pytest.raises(InvalidSignature) as info:
        wire.verify()
    assert info.value.message.startswith("The request signature we calculated does not match")
    assert info.value.http_status == 403


def test_unknown_access_key() -> None:
    wire = signed("GET", f"{ENDPOINT}/p", creds=Credentials("AKIDUNKNOWN", SECRET))
    with pytest.raises(UnrecognizedClient) as info:
        wire.verify()
    assert info.value.message == "The security token included in the request is invalid."


def test_unsigned_request() -> None:
    wire = Wire("GET", f"{ENDPOINT}/p", [("X-Amz-Date", "20240101T000000Z")], b"")
    with pytest.raises(MissingAuthenticationToken) as info:
        wire.verify()
    assert info.value.message == "Missing Authentication Token"


def test_tampered_body() -> None:
    wire = signed("POST", f"{ENDPOINT}/2015-03-31/functions/f/invocations", body=b'{"a": 1}')
    with pytest.raises(InvalidSignature):
        wire.replace(body=b'{"a": 2}').verify()


def test_declared_content_hash_must_match_the_body() -> None:
    body = b'{"a": 1}'
    headers = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    wire = signed("POST", f"{ENDPOINT}/p", body=body, headers=headers)
    assert wire.verify().access_key_id == AKID
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256"):
        wire.replace(body=b'{"a": 2}').verify()


def test_tampered_path_and_query() -> None:
    wire = signed("GET", f"{ENDPOINT}/2015-03-31/functions/f?Qualifier=1")
    with pytest.raises(InvalidSignature):
        wire.replace(raw_path="/2015-03-31/functions/g").verify()
    with pytest.raises(InvalidSignature):
        wire.replace(raw_query="Qualifier=2").verify()
    with pytest.raises(InvalidSignature):
        wire.replace(method="DELETE").verify()


def test_skewed_date_is_expired() -> None:
    wire = signed("GET", f"{ENDPOINT}/p")
    signed_at = amz_date(wire)
    now = signed_at + timedelta(minutes=20)
    with pytest.raises(InvalidSignature) as info:
        wire.verify(now=now)
    stamp = signed_at.strftime("%Y%m%dT%H%M%SZ")
    earliest = (now - timedelta(minutes=15)).strftime("%Y%m%dT%H%M%SZ")
    assert info.value.message == (
        f"Signature expired: {stamp} is now earlier than {earliest} ({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)"
    )
    assert wire.verify(now=signed_at + timedelta(minutes=14)).access_key_id == AKID


def test_date_in_the_future_is_not_yet_current() -> None:
    wire = signed("GET", f"{ENDPOINT}/p")
    with pytest.raises(InvalidSignature, match="^Signature not yet current: "):
        wire.verify(now=amz_date(wire) - timedelta(minutes=16))


def test_naive_now_is_taken_as_utc() -> None:
    wire = signed("GET", f"{ENDPOINT}/p")
    assert wire.verify(now=amz_date(wire).replace(tzinfo=None)).access_key_id == AKID


def test_wrong_service_in_scope() -> None:
    wire = signed("GET", f"{ENDPOINT}/p", service="s3")
    with pytest.raises(InvalidSignature) as info:
        wire.verify(service="lambda")
    assert info.value.message == "Credential should be scoped to correct service: 'lambda'. "
    assert wire.verify().service == "s3"  # no service pinned: any scope verifies


def test_scope_date_must_match_x_amz_date() -> None:
    wire = signed("GET", f"{ENDPOINT}/p")
    other_day = (amz_date(wire) + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(InvalidSignature, match="^Date in Credential scope does not match"):
        wire.set_header("X-Amz-Date", other_day).verify()


def test_malformed_x_amz_date() -> None:
    wire = signed("GET", f"{ENDPOINT}/p").set_header("X-Amz-Date", "2024-01-01T00:00:00Z")
    with pytest.raises(IncompleteSignature, match="ISO-8601"):
        wire.verify()


def _with_authorization(value: str) -> Wire:
    return signed("GET", f"{ENDPOINT}/p").set_header("Authorization", value)


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer abc", "Authorization header requires 'Credential' parameter. "
         "Authorization header requires 'Signature' parameter. "
         "Authorization header requires 'SignedHeaders' parameter."),
        (f"AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host",
         "Authorization header requires 'Signature' parameter."),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
         "Authorization header requires 'Credential' parameter."),
        (f"AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-east-1/lambda, SignedHeaders=host, Signature=00",
         "Credential must have exactly 5 slash-delimited elements"),
        (f"AWS4-HMAC-SHA256 Credential={AKID}/20240101/r\u00e9gion/lambda/aws4_request, SignedHeaders=host, "
         "Signature=00",
         "Credential must have exactly 5 slash-delimited elements"),
        (f"AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-east-1/lambda/aws5, SignedHeaders=host, Signature=00",
         "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5'."),
        (f"AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-east-1/lambda/aws4_request, "
         "SignedHeaders=x-amz-date, Signature=00",
         "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."),
    ],
)
def test_malformed_authorization(authorization: str, expected: str) -> None:
    with pytest.raises(IncompleteSignature) as info:
        _with_authorization(authorization).verify()
    assert info.value.message.startswith(expected)
    assert info.value.aws_code == "IncompleteSignatureException"


def test_missing_date_is_reported_with_the_authorization_problems() -> None:
    wire = Wire("GET", f"{ENDPOINT}/p", [("Authorization", "AWS4-HMAC-SHA256 Credential=x")], b"")
    with pytest.raises(IncompleteSignature) as info:
        wire.verify()
    assert info.value.message.endswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def test_authorization_fields_in_another_order_or_spacing_still_verify() -> None:
    """SDKs write `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`, which is parsed through a
    cache; any other arrangement AWS accepts takes the full parse and verifies the same."""
    wire = signed("POST", f"{ENDPOINT}/2015-03-31/functions/f/invocations", body=b"{}")
    sent = dict((n.lower(), v) for n, v in wire.headers)["authorization"]
    fields = dict(part.strip().split("=", 1) for part in sent.split(" ", 1)[1].split(","))
    for arranged in (
        sent,
        f"AWS4-HMAC-SHA256 Signature={fields['Signature']}, Credential={fields['Credential']}, "
        f"SignedHeaders={fields['SignedHeaders']}",
        f"AWS4-HMAC-SHA256 Credential={fields['Credential']},SignedHeaders={fields['SignedHeaders']},"
        f"Signature={fields['Signature']}",
        f"AWS4-HMAC-SHA256 Credential={fields['Credential']},x, SignedHeaders={fields['SignedHeaders']}, "
        f"Signature={fields['Signature']}",  # a field without "=" is skipped, as AWS does
    ):
        assert wire.set_header("Authorization", arranged).verify().access_key_id == AKID
    tampered = sent[:-1] + ("0" if sent[-1] != "0" else "1")
    with pytest.raises(InvalidSignature):
        wire.set_header("Authorization", tampered).verify()
    with pytest.raises(InvalidSignature):  # what follows the signature is not ignored
        wire.set_header("Authorization", sent + "0").verify()


@pytest.mark.parametrize(("values", "expected"), [
    (["a b"], "a b"), (["  a   b "], "a b"), (["a\tb"], "a b"), (["a", " b  c"], "a,b c"), ([""], ""),
])
def test_canonical_header_values(values: list[str], expected: str) -> None:
    assert sigv4._canonical_value(values) == expected


# --- presigned URLs ---------------------------------------------------------------------------------


def test_presigned_url() -> None:
    wire = presigned(f"{ENDPOINT}/2015-03-31/functions/{ENCODED_ARN}?Qualifier=%24LATEST")
    assert "X-Amz-Signature=" in wire.raw_query
    assert not any(n.lower() == "authorization" for n, _ in wire.headers)
    assert wire.verify(service="lambda").access_key_id == AKID
    with pytest.raises(InvalidSignature):
        wire.replace(raw_query=wire.raw_query.replace("%24LATEST", "1")).verify()


def test_presigned_url_with_unsigned_payload_and_session_token() -> None:
    wire = presigned(f"{ENDPOINT}/p?a=1", unsigned_payload=True, creds=Credentials(AKID, SECRET, "tok"))
    assert "X-Amz-Security-Token=tok" in wire.raw_query
    assert wire.verify().access_key_id == AKID


def test_presigned_url_expires() -> None:
    wire = presigned(f"{ENDPOINT}/p", expires=60)
    signed_at = datetime.strptime(
        dict(p.split("=", 1) for p in wire.raw_query.split("&"))["X-Amz-Date"], "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=UTC)
    assert wire.verify(now=signed_at + timedelta(seconds=60)).access_key_id == AKID
    with pytest.raises(InvalidSignature, match="^Signature expired: .*- 1 min\\.\\)$"):
        wire.verify(now=signed_at + timedelta(seconds=61))


def test_presigned_url_missing_signature_and_mixed_mechanisms() -> None:
    wire = presigned(f"{ENDPOINT}/p")
    stripped = "&".join(p for p in wire.raw_query.split("&") if not p.startswith("X-Amz-Signature="))
    with pytest.raises(IncompleteSignature, match="X-Amz-Signature"):
        wire.replace(raw_query=stripped).verify()
    with pytest.raises(IncompleteSignature, match="Only one auth mechanism"):
        wire.set_header("Authorization", "AWS4-HMAC-SHA256 Credential=x").verify()


# --- the real boto3 client's request-building path -----------------------------------------------------


def _captured(call: str, response_body: bytes, **kwargs: object) -> Wire:
    client = boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token="session-token",
    )
    seen: list[AWSPreparedRequest] = []

    def capture(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        seen.append(request)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(response_body))}
        raw = HTTPResponse(body=io.BytesIO(response_body), headers=headers, status=200, preload_content=False)
        return AWSResponse(request.url, 200, headers, raw)

    client.meta.events.register("before-send.lambda.*", capture)
    try:
        getattr(client, call)(**kwargs)
    finally:
        client.close()
    assert len(seen) == 1
    return Wire.from_prepared(seen[0])


def test_boto3_invoke() -> None:
    wire = _captured("invoke", b"{}", FunctionName=FUNCTION_ARN, Qualifier="$LATEST", Payload=b"{}")
    assert wire.raw_path == f"/2015-03-31/functions/{ENCODED_ARN}/invocations"
    assert wire.raw_query == "Qualifier=%24LATEST"
    principal = wire.verify(service="lambda")
    assert principal.access_key_id == AKID and principal.service == "lambda"
    with pytest.raises(InvalidSignature):
        wire.replace(body=b'{"x": 1}').verify(service="lambda")


def test_boto3_list_functions() -> None:
    wire = _captured("list_functions", b'{"Functions": []}', Marker="x", MaxItems=5)
    assert wire.raw_path == "/2015-03-31/functions"
    assert sorted(wire.raw_query.split("&")) == ["Marker=x", "MaxItems=5"]
    assert wire.verify(service="lambda").region == "us-east-1"

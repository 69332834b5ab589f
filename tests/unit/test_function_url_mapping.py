"""Function URLs: HTTP request -> payload 2.0 event, function answer -> HTTP response, CORS."""

from __future__ import annotations

import base64
import json

import pytest

from lamina.events.url import (
    HttpRequest, MalformedResponse, cors_headers, is_public, map_response, preflight, request_event,
)

URL_ID = "abcdefghijklmnopqrstuvwxyz012345"


def event_for(request: HttpRequest, **kw):
    return request_event(request, url_id=URL_ID, region="us-east-1", account_id="000000000000",
                         request_id="rid", now_s=1583348638.390, **kw)


def test_event_has_the_payload_2_0_shape():
    """Every documented member is there, with routeKey and stage $default."""
    event = event_for(HttpRequest("POST", "/my/path", "p1=v1&p1=v2&p2=v",
                                  [("Header1", "value1"), ("Header2", "value1"), ("header2", "value2"),
                                   ("Cookie", "c1=v1; c2=v2"), ("User-Agent", "agent"),
                                   ("Content-Type", "text/plain")],
                                  b"Hello from client!", "123.123.123.123"))
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/my/path"
    assert event["rawQueryString"] == "p1=v1&p1=v2&p2=v"
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"] == {"header1": "value1", "header2": "value1,value2", "user-agent": "agent",
                                "content-type": "text/plain"}
    assert event["queryStringParameters"] == {"p1": "v1,v2", "p2": "v"}
    ctx = event["requestContext"]
    assert ctx["http"] == {"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1",
                           "sourceIp": "123.123.123.123", "userAgent": "agent"}
    assert ctx["apiId"] == URL_ID and ctx["domainPrefix"] == URL_ID
    assert ctx["domainName"] == f"{URL_ID}.lambda-url.us-east-1.on.aws"
    assert ctx["routeKey"] == "$default" and ctx["stage"] == "$default" and ctx["requestId"] == "rid"
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000"
    assert ctx["timeEpoch"] == 1583348638390
    assert "authorizer" not in ctx
    assert event["body"] == "Hello from client!"
    assert event["isBase64Encoded"] is False


def test_no_query_and_no_cookies_leave_those_members_out():
    """Without a query string or cookies, queryStringParameters and cookies are absent; no body, no body member."""
    event = event_for(HttpRequest("GET", "/", "", [], b""))
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event and "cookies" not in event and "body" not in event
    assert event["isBase64Encoded"] is False


def test_binary_bodies_are_base64():
    """A binary content type (or bytes that are not UTF-8) gives a base64 body and isBase64Encoded."""
    data = bytes(range(256))
    event = event_for(HttpRequest("POST", "/", "", [("Content-Type", "application/octet-stream")], data))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data
    event = event_for(HttpRequest("POST", "/", "", [], b"\xff\xfe"))
    assert event["isBase64Encoded"] is True


def test_json_bodies_stay_text():
    """application/json bodies arrive as text."""
    event = event_for(HttpRequest("POST", "/", "", [("content-type", "application/json; charset=utf-8")], b'{"a":1}'))
    assert event["body"] == '{"a":1}' and event["isBase64Encoded"] is False


def test_iam_authorizer_appears_for_aws_iam():
    """AWS_IAM URLs carry requestContext.authorizer.iam."""
    event = event_for(HttpRequest("GET", "/", "", [], b""), iam={"accessKey": "AK"})
    assert event["requestContext"]["authorizer"] == {"iam": {"accessKey": "AK"}}
    assert event["requestContext"]["accountId"] == "000000000000"


def test_full_response_maps_status_headers_cookies_body():
    """statusCode, headers, cookies (one set-cookie each) and body come back as sent."""
    reply = map_response(json.dumps({"statusCode": 201, "headers": {"X-Thing": "1", "Content-Type": "text/html"},
                                     "cookies": ["a=b; Max-Age=10", "c=d"], "body": "<p>hi</p>"}).encode())
    assert reply.status == 201
    assert ("x-thing", "1") in reply.headers and ("content-type", "text/html") in reply.headers
    assert [v for n, v in reply.headers if n == "set-cookie"] == ["a=b; Max-Age=10", "c=d"]
    assert reply.body == b"<p>hi</p>"


def test_base64_response_body_is_decoded():
    """isBase64Encoded true: the body is sent as the decoded bytes."""
    reply = map_response(json.dumps({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(),
                                     "isBase64Encoded": True}).encode())
    assert reply.body == b"\x00\x01"


@pytest.mark.parametrize("value", ["Hello, world!", {"message": "hi"}, [1, 2], 42, None])
def test_plain_return_values_become_200_json(value):
    """Without statusCode the JSON value is the body of a 200 application/json response."""
    payload = json.dumps(value).encode()
    reply = map_response(payload)
    assert reply.status == 200
    assert reply.headers == [("content-type", "application/json")]
    assert reply.body == payload


def test_a_string_return_keeps_its_quotes():
    """A Python string return gives a quoted JSON string, 15 bytes for "Hello, world!"."""
    assert map_response(b'"Hello, world!"').body == b'"Hello, world!"'
    assert len(map_response(b'"Hello, world!"').body) == 15


@pytest.mark.parametrize("payload", [
    b"not json", b'{"statusCode": "200"}', b'{"statusCode": 99}', b'{"statusCode": 200, "body": {"a": 1}}',
    b'{"statusCode": 200, "headers": []}', b'{"statusCode": 200, "cookies": "a=b"}',
    b'{"statusCode": 200, "body": "!!", "isBase64Encoded": true}', b'{"statusCode": true}',
])
def test_malformed_responses_are_refused(payload):
    """Responses that cannot be HTTP responses raise MalformedResponse (the caller gets a 502)."""
    with pytest.raises(MalformedResponse):
        map_response(payload)


CORS = {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-a"],
        "ExposeHeaders": ["x-b"], "MaxAge": 60, "AllowCredentials": True}


def test_preflight_is_answered_from_the_cors_config():
    """An OPTIONS preflight from an allowed origin gets the configured CORS headers."""
    reply = preflight(CORS, "OPTIONS", {"origin": "https://example.com", "access-control-request-method": "POST"})
    assert reply is not None and reply.status == 200
    headers = dict(reply.headers)
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-allow-headers"] == "x-a"
    assert headers["access-control-max-age"] == "60"
    assert headers["access-control-allow-credentials"] == "true"


def test_preflight_from_another_origin_gets_no_cors_headers():
    """A preflight from an origin not in AllowOrigins is answered without CORS headers."""
    reply = preflight(CORS, "OPTIONS", {"origin": "https://evil.example", "access-control-request-method": "GET"})
    assert reply is not None and reply.headers == []


def test_options_without_cors_goes_to_the_function():
    """Without a CORS config (or without preflight headers) OPTIONS reaches the function."""
    assert preflight(None, "OPTIONS", {"origin": "x", "access-control-request-method": "GET"}) is None
    assert preflight(CORS, "OPTIONS", {}) is None


def test_wildcard_origin():
    """AllowOrigins ["*"] answers * (the origin itself when credentials are allowed)."""
    assert dict(cors_headers({"AllowOrigins": ["*"]}, "https://a.b"))["access-control-allow-origin"] == "*"
    assert dict(cors_headers({"AllowOrigins": ["*"], "AllowCredentials": True}, "https://a.b"))[
        "access-control-allow-origin"] == "https://a.b"


def test_response_cors_headers():
    """Responses to an allowed origin carry Allow-Origin, Expose-Headers and Allow-Credentials."""
    headers = dict(cors_headers(CORS, "https://example.com"))
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-expose-headers"] == "x-b"
    assert cors_headers(CORS, "https://other.example") == []
    assert cors_headers(CORS, None) == []


def test_public_only_with_invoke_function_url_to_everyone():
    """A NONE URL is public once a statement allows lambda:InvokeFunctionUrl to *."""
    grant = {"Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
             "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}}
    assert is_public([grant])
    assert not is_public([])
    assert not is_public([{**grant, "Action": "lambda:InvokeFunction"}])
    assert not is_public([{**grant, "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}])
    assert not is_public([{**grant, "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}}])

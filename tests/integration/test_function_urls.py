"""Function URLs: the config API through boto3, and real HTTP requests to the URLs lamina serves."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

ROLE = "arn:aws:iam::000000000000:role/x"
ECHO = make_zip({"app.py": """
import json
def handler(event, context):
    if event.get('rawPath') == '/raw':
        return 'Hello, world!'
    if event.get('rawPath') == '/fail':
        raise ValueError('boom')
    if event.get('rawPath') == '/bad':
        return {'statusCode': 'nope'}
    return {'statusCode': 201, 'headers': {'x-echo': 'yes'}, 'cookies': ['a=1', 'b=2; Path=/'],
            'body': json.dumps(event)}
"""})


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture
def fn(lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": ECHO})
    return fname


def public(lam, name, **kw):
    lam.add_permission(FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
                       Principal="*", FunctionUrlAuthType="NONE", **kw)


def fetch(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


# the config API -----------------------------------------------------------------------------------

def test_create_get_update_list_delete(lam, fn):
    """Every URL operation, with AWS's response members."""
    created = lam.create_function_url_config(FunctionName=fn, AuthType="NONE",
                                             Cors={"AllowOrigins": ["https://example.com"], "MaxAge": 5})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    url = created["FunctionUrl"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/_lamina/url/[a-z0-9]{32}/", url)
    assert created["FunctionArn"].endswith(":function:" + fn)
    assert created["AuthType"] == "NONE" and created["InvokeMode"] == "BUFFERED"
    assert created["Cors"] == {"AllowOrigins": ["https://example.com"], "MaxAge": 5}
    got = lam.get_function_url_config(FunctionName=fn)
    assert got["FunctionUrl"] == url and "LastModifiedTime" in got and "CreationTime" in got
    updated = lam.update_function_url_config(FunctionName=fn, AuthType="AWS_IAM")
    assert updated["AuthType"] == "AWS_IAM" and updated["FunctionUrl"] == url
    assert updated["Cors"] == {"AllowOrigins": ["https://example.com"], "MaxAge": 5}
    listed = lam.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"]
    assert [c["FunctionUrl"] for c in listed] == [url]
    assert lam.delete_function_url_config(FunctionName=fn)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"] == []
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=fn)
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)


def test_create_twice_conflicts(lam, fn):
    """A second URL for the same function is a ResourceConflictException."""
    lam.create_function_url_config(FunctionName=fn, AuthType="NONE")
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=fn, AuthType="NONE")
    code, status, message = error(exc)
    assert (code, status) == ("ResourceConflictException", 409)
    assert "FunctionUrlConfig exists for this Lambda function" in message


def test_url_on_an_alias(lam, fn):
    """A URL may belong to an alias; its FunctionArn is qualified; $LATEST and versions are refused."""
    version = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    created = lam.create_function_url_config(FunctionName=fn, Qualifier="live", AuthType="NONE")
    assert created["FunctionArn"].endswith(f":function:{fn}:live")
    for qualifier in ("$LATEST", version):
        with pytest.raises(ClientError) as exc:
            lam.create_function_url_config(FunctionName=fn, Qualifier=qualifier, AuthType="NONE")
        assert error(exc)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=fn, Qualifier="nosuch", AuthType="NONE")
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)


def test_errors(lam, fn, fname):
    """Unknown function: 404; bad AuthType and Cors: validation errors; delete of a missing URL: 404."""
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=fname + "x", AuthType="NONE")
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam._make_api_call("CreateFunctionUrlConfig", {"FunctionName": fn, "AuthType": "OPEN"})
    assert error(exc)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=fn, AuthType="NONE", Cors={"MaxAge": 100000})
    assert error(exc)[:2] == ("ValidationException", 400)
    for call in (lam.delete_function_url_config, lam.get_function_url_config):
        with pytest.raises(ClientError) as exc:
            call(FunctionName=fn)
        assert error(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.update_function_url_config(FunctionName=fn, AuthType="NONE")
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        lam.list_function_url_configs(FunctionName=fname + "x")
    assert error(exc)[:2] == ("ResourceNotFoundException", 404)


def test_deleting_the_function_deletes_its_url(lam, fn):
    """A deleted function's URL stops answering."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    public(lam, fn)
    lam.delete_function(FunctionName=fn)
    status, _, body = fetch(url)
    assert status == 404, body


# the URLs -----------------------------------------------------------------------------------------

def test_none_is_forbidden_until_public(lam, fn):
    """AuthType NONE answers 403 until AddPermission grants lambda:InvokeFunctionUrl to *."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    status, headers, body = fetch(url)
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert json.loads(body)["Message"].startswith("Forbidden")
    public(lam, fn)
    status, headers, body = fetch(url + "hello/world?p1=v1&p1=v2&p2=v", headers={"Cookie": "c1=v1; c2=v2",
                                                                                  "X-Multi": "a"})
    assert status == 201
    assert headers["x-echo"] == "yes"
    assert headers.get_all("set-cookie") == ["a=1", "b=2; Path=/"]
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/hello/world"
    assert event["rawQueryString"] == "p1=v1&p1=v2&p2=v"
    assert event["queryStringParameters"] == {"p1": "v1,v2", "p2": "v"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-multi"] == "a"
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert "authorizer" not in event["requestContext"]


def test_plain_return_errors_and_malformed_responses(lam, fn):
    """A string return is a quoted JSON body; a function error and a malformed response are 502s."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    public(lam, fn)
    status, headers, body = fetch(url + "raw")
    assert (status, body) == (200, b'"Hello, world!"')
    assert headers["content-type"] == "application/json"
    status, _, body = fetch(url + "fail")
    assert status == 502 and json.loads(body) == {"Message": "Internal Server Error"}
    status, _, body = fetch(url + "bad")
    assert status == 502 and json.loads(body) == {"Message": "Internal Server Error"}


def test_binary_body_arrives_base64(lam, fn):
    """A binary POST body reaches the function base64-encoded with isBase64Encoded true."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    public(lam, fn)
    data = bytes(range(256)) * 4
    status, _, body = fetch(url + "upload", "POST", data, {"Content-Type": "application/octet-stream"})
    assert status == 201
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == data
    status, _, body = fetch(url, "POST", b'{"a": 1}', {"Content-Type": "application/json"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is False and event["body"] == '{"a": 1}'
    # A malformed body is the function's business, as on AWS: passed through untouched, not refused.
    status, _, body = fetch(url, "POST", b'{"a": 1,,', {"Content-Type": "application/json"})
    event = json.loads(body)
    assert status == 201 and event["isBase64Encoded"] is False and event["body"] == '{"a": 1,,'
    status, _, body = fetch(url, "POST", b"caf\xe9 \xff", {"Content-Type": "text/plain; charset=utf-8"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"caf\xe9 \xff"


def test_aws_iam_needs_a_lambda_signature(lam, fn):
    """AWS_IAM URLs refuse unsigned requests and accept SigV4 for service lambda (authorizer.iam set)."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="AWS_IAM")["FunctionUrl"]
    assert fetch(url + "x")[0] == 403
    creds = Credentials(ACCESS_KEY, SECRET_KEY)
    request = AWSRequest(method="POST", url=url + "signed?q=1", data=b"hi", headers={"Content-Type": "text/plain"})
    SigV4Auth(creds, "lambda", "us-east-1").add_auth(request)
    status, _, body = fetch(request.url, "POST", b"hi", dict(request.headers))
    assert status == 201, body
    event = json.loads(body)
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == ACCESS_KEY
    assert event["body"] == "hi" and event["rawPath"] == "/signed"
    wrong = AWSRequest(method="GET", url=url, headers={})
    SigV4Auth(creds, "s3", "us-east-1").add_auth(wrong)
    assert fetch(wrong.url, "GET", None, dict(wrong.headers))[0] == 403


def test_cors_preflight_and_response_headers(lam, fn):
    """Preflights are answered from the CORS config; responses to allowed origins carry CORS headers."""
    cors = {"AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"], "AllowHeaders": ["x-a"],
            "ExposeHeaders": ["x-echo"], "MaxAge": 300}
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE", Cors=cors)["FunctionUrl"]
    public(lam, fn)
    status, headers, _ = fetch(url, "OPTIONS", None, {"Origin": "https://example.com",
                                                       "Access-Control-Request-Method": "POST"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-max-age"] == "300"
    status, headers, _ = fetch(url, "GET", None, {"Origin": "https://example.com"})
    assert status == 201
    assert headers["access-control-allow-origin"] == "https://example.com"
    assert headers["access-control-expose-headers"] == "x-echo"
    status, headers, _ = fetch(url, "GET", None, {"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in headers


def test_unknown_url_id_is_404(server):
    """A URL id lamina does not know answers 404."""
    assert fetch(f"{server.url}/_lamina/url/{'0' * 32}/")[0] == 404


def test_throttled_function_answers_429(lam, fn):
    """A function with reserved concurrency 0 is throttled: the URL answers 429."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    public(lam, fn)
    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    status, headers, body = fetch(url)
    assert status == 429
    assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert json.loads(body) == {"Message": "Rate Exceeded."}


def test_an_alias_url_invokes_the_alias(lam, fn):
    """A URL on an alias runs the alias's version and needs the permission on the alias."""
    version = lam.publish_version(FunctionName=fn)["Version"]
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
    url = lam.create_function_url_config(FunctionName=fn, Qualifier="live", AuthType="NONE")["FunctionUrl"]
    public(lam, fn)  # on the unqualified function: not enough for the alias's URL
    assert fetch(url)[0] == 403
    public(lam, fn, Qualifier="live")
    status, headers, _ = fetch(url)
    assert status == 201 and headers["x-echo"] == "yes"

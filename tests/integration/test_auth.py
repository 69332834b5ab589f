"""SigV4 on every API request: unsigned, unknown key and bad signature get 403 with AWS's codes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError


def test_unknown_access_key(server):
    client = server.client(key="LKIAUNKNOWN000000000")
    with pytest.raises(ClientError) as err:
        client.list_functions()
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret(server):
    client = server.client(secret="wrong-secret")
    with pytest.raises(ClientError) as err:
        client.list_functions()
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_request(server):
    req = urllib.request.Request(server.url + "/2015-03-31/functions/", method="GET")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 403
    assert err.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "message" in json.loads(err.value.read())


def test_arn_in_path_verifies(lam):
    """botocore double-encodes the ARN's colons in the canonical path; lamina must agree."""
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:nope")

"""Aliases through boto3: the AliasConfiguration operations, their errors, reading and invoking a
function through an alias, and weighted routing that really splits traffic."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def app(tag: str) -> bytes:
    return make_zip({"app.py": (
        "def handler(event, context):\n"
        f"    return {{'code': {tag!r}, 'arn': context.invoked_function_arn, "
        "'version': context.function_version}\n"
    )})


@pytest.fixture
def fn(lam, fname):
    """A function with versions 1 ("one") and 2 ("two"); $LATEST is "latest"."""
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": app("one")}, Publish=True)
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"), Publish=True)
    lam.update_function_code(FunctionName=fname, ZipFile=app("latest"))
    return fname


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def invoke(lam, name, **kw):
    out = lam.invoke(FunctionName=name, **kw)
    return out["ExecutedVersion"], json.loads(out["Payload"].read())


def test_create_get_update_delete(lam, fn):
    """The AliasConfiguration shape through the whole lifecycle."""
    created = lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    shape = {k: v for k, v in created.items() if k != "ResponseMetadata"}
    assert shape == {"AliasArn": f"{ARN}{fn}:live", "Name": "live", "FunctionVersion": "1", "Description": "",
                     "RevisionId": created["RevisionId"]}
    got = lam.get_alias(FunctionName=fn, Name="live")
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == shape
    updated = lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="2", Description="prod",
                               RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}},
                               RevisionId=created["RevisionId"])
    assert (updated["FunctionVersion"], updated["Description"]) == ("2", "prod")
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}
    assert updated["RevisionId"] != created["RevisionId"]
    cleared = lam.update_alias(FunctionName=fn, Name="live", RoutingConfig={})
    assert "RoutingConfig" not in cleared and cleared["Description"] == "prod"
    deleted = lam.delete_alias(FunctionName=fn, Name="live")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_alias(FunctionName=fn, Name="live")
    assert error(excinfo) == ("ResourceNotFoundException", 404, f"Cannot find alias arn: {ARN}{fn}:live")


def test_list_aliases_filters_and_pages(lam, fn):
    for name, version in (("a", "1"), ("b", "2"), ("c", "1"), ("d", "$LATEST")):
        lam.create_alias(FunctionName=fn, Name=name, FunctionVersion=version)
    assert [a["Name"] for a in lam.list_aliases(FunctionName=fn)["Aliases"]] == ["a", "b", "c", "d"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=fn, FunctionVersion="1")["Aliases"]] == ["a", "c"]
    first = lam.list_aliases(FunctionName=fn, MaxItems=3)
    assert [a["Name"] for a in first["Aliases"]] == ["a", "b", "c"]
    rest = lam.list_aliases(FunctionName=fn, MaxItems=3, Marker=first["NextMarker"])
    assert [a["Name"] for a in rest["Aliases"]] == ["d"] and "NextMarker" not in rest
    pages = lam.get_paginator("list_aliases").paginate(FunctionName=fn, PaginationConfig={"PageSize": 2})
    assert [a["AliasArn"] for p in pages for a in p["Aliases"]] == [f"{ARN}{fn}:{n}" for n in "abcd"]


def test_alias_already_exists(lam, fn):
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceConflictException) as excinfo:
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="2")
    assert error(excinfo) == ("ResourceConflictException", 409, f"Alias already exists: {ARN}{fn}:live")
    assert "message" in excinfo.value.response


@pytest.mark.parametrize("name", ["123", "has space", "x" * 129])
def test_alias_name_is_validated(lam, fn, name):
    with pytest.raises(ClientError) as excinfo:
        lam.create_alias(FunctionName=fn, Name=name, FunctionVersion="1")
    assert error(excinfo)[:2] == ("ValidationException", 400)


def test_alias_to_a_missing_version_or_function(lam, fn, fname):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="9")
    assert error(excinfo)[2] == f"Function not found: {ARN}{fn}:9"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.create_alias(FunctionName=fname + "-nope", Name="live", FunctionVersion="1")
    assert error(excinfo)[2] == f"Function not found: {ARN}{fname}-nope"


def test_update_and_delete_of_a_missing_alias(lam, fn):
    """UpdateAlias words its not-found differently from GetAlias; DeleteAlias is quiet."""
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.update_alias(FunctionName=fn, Name="ghost", FunctionVersion="1")
    assert error(excinfo) == ("ResourceNotFoundException", 404, f"Alias not found: {ARN}{fn}:ghost")
    assert lam.delete_alias(FunctionName=fn, Name="ghost")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_update_alias_checks_revision_id(lam, fn):
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.PreconditionFailedException) as excinfo:
        lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="2", RevisionId="not-the-one")
    assert error(excinfo)[:2] == ("PreconditionFailedException", 412)
    assert lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"] == "1"


@pytest.mark.parametrize("version,weights,code,message", [
    ("1", {"2": 0.1, "3": 0.1}, "InvalidParameterValueException",
     "Number of items in AdditionalVersionWeights cannot be greater than 1"),
    ("1", {"1": 0.5}, "InvalidParameterValueException",
     "Invalid function version 1. Function version 1 is already included in routing configuration."),
    ("$LATEST", {"1": 0.5}, "InvalidParameterValueException",
     "$LATEST is not supported for an alias pointing to more than 1 version"),
    ("1", {"2": 1.5}, "ValidationException", None),
    ("1", {"$LATEST": 0.5}, "ValidationException", None),
])
def test_routing_config_rules(lam, fn, version, weights, code, message):
    with pytest.raises(ClientError) as excinfo:
        lam.create_alias(FunctionName=fn, Name="canary", FunctionVersion=version,
                         RoutingConfig={"AdditionalVersionWeights": weights})
    got = error(excinfo)
    assert got[:2] == (code, 400)
    if message:
        assert got[2] == message


def test_routing_to_a_missing_version(lam, fn):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.create_alias(FunctionName=fn, Name="canary", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"5": 0.5}})
    assert error(excinfo)[2] == f"Function not found: {ARN}{fn}:5"


def test_invoke_and_read_through_an_alias(lam, fn):
    """`name:alias` and Qualifier=alias run the alias's version and report it."""
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    assert invoke(lam, f"{fn}:live") == ("1", {"code": "one", "arn": f"{ARN}{fn}:live", "version": "1"})
    assert invoke(lam, fn, Qualifier="live")[0] == "1"
    config = lam.get_function_configuration(FunctionName=fn, Qualifier="live")
    assert (config["FunctionArn"], config["Version"]) == (f"{ARN}{fn}:live", "1")
    got = lam.get_function(FunctionName=f"{ARN}{fn}:live")["Configuration"]
    assert (got["FunctionArn"], got["Version"]) == (f"{ARN}{fn}:live", "1")
    lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="2")
    assert invoke(lam, f"{fn}:live")[1]["code"] == "two"
    lam.update_alias(FunctionName=fn, Name="live", FunctionVersion="$LATEST")
    assert invoke(lam, f"{fn}:live") == ("$LATEST", {"code": "latest", "arn": f"{ARN}{fn}:live",
                                                     "version": "$LATEST"})


def test_invoke_through_a_missing_alias(lam, fn):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.invoke(FunctionName=fn, Qualifier="nope")
    assert error(excinfo)[2] == f"Function not found: {ARN}{fn}:nope"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName=fn, Qualifier="nope")


def test_extreme_weights_route_deterministically(lam, fn):
    lam.create_alias(FunctionName=fn, Name="none", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.0}})
    lam.create_alias(FunctionName=fn, Name="all", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 1.0}})
    assert {invoke(lam, f"{fn}:none")[0] for _ in range(20)} == {"1"}
    assert {invoke(lam, f"{fn}:all")[0] for _ in range(20)} == {"2"}


def test_weighted_routing_splits_traffic(lam, fn):
    """300 invokes at weight 0.3: the additional version runs about 90 times (within 4 sd), and the
    payload always comes from the version the header names."""
    lam.create_alias(FunctionName=fn, Name="canary", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}})
    counts = {"1": 0, "2": 0}
    for _ in range(300):
        version, body = invoke(lam, fn, Qualifier="canary")
        assert body["code"] == {"1": "one", "2": "two"}[version]
        counts[version] += 1
    assert 58 <= counts["2"] <= 122, counts

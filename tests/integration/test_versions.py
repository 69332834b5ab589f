"""Published versions through boto3: PublishVersion, ListVersionsByFunction, Publish on create and on
code updates, DeleteFunction with a version, and reading and invoking a version."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"


def app(tag: str) -> bytes:
    return make_zip({"app.py": (
        "import os\n"
        "def handler(event, context):\n"
        f"    return {{'code': {tag!r}, 'env': os.environ.get('WHICH'), "
        "'version': os.environ['AWS_LAMBDA_FUNCTION_VERSION'], 'arn': context.invoked_function_arn}\n"
    )})


def create(lam, name, code=None, **kw):
    args = dict(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                Code={"ZipFile": code or app("one")}, Environment={"Variables": {"WHICH": "first"}})
    args.update(kw)
    return lam.create_function(**args)


def invoke(lam, name, **kw):
    out = lam.invoke(FunctionName=name, **kw)
    return out["ExecutedVersion"], json.loads(out["Payload"].read())


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def sha_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_publish_version_is_an_immutable_snapshot(lam, fname):
    """A published version keeps the code and configuration it was published with."""
    create(lam, fname)
    published = lam.publish_version(FunctionName=fname, Description="first cut")
    assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (published["Version"], published["FunctionArn"]) == ("1", f"{ARN}{fname}:1")
    assert published["Description"] == "first cut"
    assert published["CodeSha256"] == sha_b64(app("one"))
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"))
    lam.update_function_configuration(FunctionName=fname, Environment={"Variables": {"WHICH": "second"}},
                                      Description="moved on")
    v1 = lam.get_function_configuration(FunctionName=fname, Qualifier="1")
    assert (v1["Version"], v1["FunctionArn"], v1["Description"]) == ("1", f"{ARN}{fname}:1", "first cut")
    assert v1["Environment"] == {"Variables": {"WHICH": "first"}}
    assert v1["CodeSha256"] == sha_b64(app("one"))
    assert invoke(lam, fname, Qualifier="1") == ("1", {"code": "one", "env": "first", "version": "1",
                                                       "arn": f"{ARN}{fname}:1"})
    assert invoke(lam, fname)[1]["code"] == "two"
    assert invoke(lam, f"{fname}:$LATEST")[0] == "$LATEST"


def test_get_function_with_a_version(lam, fname):
    """GetFunction and GetFunctionConfiguration by version answer with the qualified ARN."""
    create(lam, fname, Publish=True)
    got = lam.get_function(FunctionName=f"{ARN}{fname}:1")
    assert got["Configuration"]["FunctionArn"] == f"{ARN}{fname}:1"
    assert got["Configuration"]["Version"] == "1"
    assert got["Configuration"]["State"] == "Active"
    assert got["Code"]["RepositoryType"] == "S3"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_function(FunctionName=fname, Qualifier="7")
    assert error(excinfo) == ("ResourceNotFoundException", 404, f"Function not found: {ARN}{fname}:7")
    assert excinfo.value.response["Message"]  # AWS's capitalised key for this error
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=fname, Qualifier="7")


def test_versions_are_numbered_and_never_reused(lam, fname):
    """Version numbers count up per function and a deleted number is not handed out again."""
    create(lam, fname)
    assert lam.publish_version(FunctionName=fname)["Version"] == "1"
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"))
    assert lam.publish_version(FunctionName=fname)["Version"] == "2"
    lam.delete_function(FunctionName=fname, Qualifier="2")
    lam.update_function_code(FunctionName=fname, ZipFile=app("three"))
    assert lam.publish_version(FunctionName=fname)["Version"] == "3"


def test_publishing_an_unchanged_latest_returns_the_newest_version(lam, fname):
    """Publishing twice without a change in between answers with the same version."""
    create(lam, fname)
    first = lam.publish_version(FunctionName=fname)
    again = lam.publish_version(FunctionName=fname, Description="ignored")
    assert (again["Version"], again["RevisionId"]) == (first["Version"], first["RevisionId"])
    lam.update_function_configuration(FunctionName=fname, Timeout=9)
    assert lam.publish_version(FunctionName=fname)["Version"] == "2"


def test_publish_checks_code_sha256(lam, fname):
    """A CodeSha256 that is not $LATEST's is refused with AWS's message."""
    create(lam, fname)
    current = sha_b64(app("one"))
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        lam.publish_version(FunctionName=fname, CodeSha256="bm90IGl0")
    assert error(excinfo) == (
        "InvalidParameterValueException", 400,
        f"CodeSHA256 (bm90IGl0) is different from current CodeSHA256 in $LATEST ({current}). "
        "Please try again with the CodeSHA256 in $LATEST.")
    assert "message" in excinfo.value.response  # lower-case key for this error
    assert lam.publish_version(FunctionName=fname, CodeSha256=current)["Version"] == "1"


def test_publish_checks_revision_id(lam, fname):
    """A stale RevisionId is a 412 PreconditionFailedException."""
    created = create(lam, fname)
    lam.update_function_configuration(FunctionName=fname, Timeout=5)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as excinfo:
        lam.publish_version(FunctionName=fname, RevisionId=created["RevisionId"])
    assert error(excinfo) == (
        "PreconditionFailedException", 412,
        "The Revision Id provided does not match the latest Revision Id. "
        "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
    assert "message" in excinfo.value.response
    current = lam.get_function_configuration(FunctionName=fname)["RevisionId"]
    assert lam.publish_version(FunctionName=fname, RevisionId=current)["Version"] == "1"


def test_publish_gives_latest_a_new_revision(lam, fname):
    """Publishing changes $LATEST's RevisionId, as on AWS."""
    before = create(lam, fname)["RevisionId"]
    lam.publish_version(FunctionName=fname)
    assert lam.get_function_configuration(FunctionName=fname)["RevisionId"] != before


def test_publish_on_create_answers_version_1_with_an_unqualified_arn(lam, fname):
    """CreateFunction with Publish returns version 1's configuration under the unqualified ARN."""
    out = create(lam, fname, Publish=True)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (out["Version"], out["FunctionArn"]) == ("1", f"{ARN}{fname}")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=fname)["Versions"]] == ["$LATEST", "1"]


def test_publish_on_update_code_answers_the_new_version(lam, fname):
    """UpdateFunctionCode with Publish returns the new version with its qualified ARN."""
    create(lam, fname, Publish=True)
    out = lam.update_function_code(FunctionName=fname, ZipFile=app("two"), Publish=True)
    assert (out["Version"], out["FunctionArn"]) == ("2", f"{ARN}{fname}:2")
    assert out["CodeSha256"] == sha_b64(app("two"))
    assert invoke(lam, fname, Qualifier="2")[1]["code"] == "two"
    assert invoke(lam, fname, Qualifier="1")[1]["code"] == "one"


def test_update_code_dry_run_changes_nothing(lam, fname):
    """DryRun checks the package and leaves the function as it was."""
    created = create(lam, fname)
    out = lam.update_function_code(FunctionName=fname, ZipFile=app("two"), DryRun=True)
    assert out["CodeSha256"] == sha_b64(app("two"))
    after = lam.get_function_configuration(FunctionName=fname)
    assert (after["CodeSha256"], after["RevisionId"]) == (created["CodeSha256"], created["RevisionId"])


def test_list_versions_starts_with_latest_and_pages(lam, fname):
    """$LATEST comes first with its qualified ARN; Marker/MaxItems page through the rest."""
    create(lam, fname)
    for i in range(3):
        lam.update_function_configuration(FunctionName=fname, Timeout=10 + i)
        lam.publish_version(FunctionName=fname)
    first = lam.list_versions_by_function(FunctionName=fname, MaxItems=2)
    assert [v["Version"] for v in first["Versions"]] == ["$LATEST", "1"]
    assert first["Versions"][0]["FunctionArn"] == f"{ARN}{fname}:$LATEST"
    assert "State" not in first["Versions"][0] and "LastUpdateStatus" not in first["Versions"][0]
    second = lam.list_versions_by_function(FunctionName=fname, MaxItems=2, Marker=first["NextMarker"])
    assert [v["Version"] for v in second["Versions"]] == ["2", "3"]
    assert "NextMarker" not in second
    pages = lam.get_paginator("list_versions_by_function").paginate(FunctionName=fname,
                                                                    PaginationConfig={"PageSize": 1})
    assert [v["Version"] for page in pages for v in page["Versions"]] == ["$LATEST", "1", "2", "3"]
    assert [v["Timeout"] for v in second["Versions"]] == [11, 12]


def test_list_versions_of_a_missing_function(lam, fname):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.list_versions_by_function(FunctionName=fname)
    assert error(excinfo)[2] == f"Function not found: {ARN}{fname}"


def test_list_versions_max_items_is_validated(lam, fname):
    create(lam, fname)
    with pytest.raises(ClientError) as excinfo:
        lam.list_versions_by_function(FunctionName=fname, MaxItems=10001)
    assert error(excinfo)[:2] == ("ValidationException", 400)


def test_delete_a_version(lam, fname):
    """DeleteFunction with a version deletes that version only; other versions and $LATEST stay."""
    create(lam, fname, Publish=True)
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"), Publish=True)
    deleted = lam.delete_function(FunctionName=fname, Qualifier="1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=fname)["Versions"]] == ["$LATEST", "2"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fname, Qualifier="1")
    assert invoke(lam, f"{fname}:2")[1]["code"] == "two"


def test_delete_a_version_that_does_not_exist_is_quiet(lam, fname):
    """As on AWS: 204 and nothing happens."""
    create(lam, fname)
    assert lam.delete_function(FunctionName=fname, Qualifier="42")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.get_function(FunctionName=fname)["Configuration"]["Version"] == "$LATEST"


def test_delete_a_version_an_alias_uses_is_refused(lam, fname):
    create(lam, fname, Publish=True)
    lam.create_alias(FunctionName=fname, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceConflictException) as excinfo:
        lam.delete_function(FunctionName=fname, Qualifier="1")
    assert error(excinfo) == ("ResourceConflictException", 409,
                              "Unable to delete version because the following aliases reference it: [live]")


def test_deleting_the_function_deletes_its_versions(lam, fname):
    """After DeleteFunction, a function of the same name starts again at version 1."""
    create(lam, fname, Publish=True)
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"), Publish=True)
    lam.delete_function(FunctionName=fname)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fname, Qualifier="2")
    create(lam, fname, code=app("again"))
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=fname)["Versions"]] == ["$LATEST"]
    assert lam.publish_version(FunctionName=fname)["Version"] == "1"
    assert invoke(lam, fname, Qualifier="1")[1]["code"] == "again"


def test_list_functions_with_all_versions(lam, fname):
    """FunctionVersion=ALL lists every version of every function, each under its qualified ARN."""
    create(lam, fname, Publish=True)
    lam.update_function_code(FunctionName=fname, ZipFile=app("two"), Publish=True)
    pages = lam.get_paginator("list_functions").paginate(FunctionVersion="ALL", PaginationConfig={"PageSize": 2})
    mine = [f for page in pages for f in page["Functions"] if f["FunctionName"] == fname]
    assert [(f["Version"], f["FunctionArn"]) for f in mine] == [
        ("$LATEST", f"{ARN}{fname}:$LATEST"), ("1", f"{ARN}{fname}:1"), ("2", f"{ARN}{fname}:2")]
    plain = [f for page in lam.get_paginator("list_functions").paginate() for f in page["Functions"]
             if f["FunctionName"] == fname]
    assert [(f["Version"], f["FunctionArn"]) for f in plain] == [("$LATEST", f"{ARN}{fname}")]

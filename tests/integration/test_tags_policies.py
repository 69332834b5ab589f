"""Tags (TagResource / UntagResource / ListTags) and resource policies (AddPermission / RemovePermission /
GetPolicy) through boto3, with AWS's errors."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
CODE = make_zip({"app.py": "def handler(e, c):\n    return 'ok'\n"})


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture
def fn(lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": CODE}, Publish=True)
    return fname


def revision(lam, name, qualifier=None):
    kw = {"Qualifier": qualifier} if qualifier else {}
    return lam.get_function_configuration(FunctionName=name, **kw)["RevisionId"]


# tags ---------------------------------------------------------------------------------------------

def test_tag_list_and_untag(lam, fn):
    arn = ARN + fn
    assert lam.list_tags(Resource=arn)["Tags"] == {}
    before = revision(lam, fn)
    out = lam.tag_resource(Resource=arn, Tags={"team": "core", "env": "dev"})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "core", "env": "dev"}
    assert revision(lam, fn) != before  # tags are part of the function resource
    lam.tag_resource(Resource=arn, Tags={"env": "prod"})
    assert lam.get_function(FunctionName=fn)["Tags"] == {"team": "core", "env": "prod"}
    out = lam.untag_resource(Resource=arn, TagKeys=["team", "absent"])
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "prod"}


def test_tags_given_at_create_are_listed(lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": CODE}, Tags={"born": "tagged"})
    assert lam.list_tags(Resource=ARN + fname)["Tags"] == {"born": "tagged"}


@pytest.mark.parametrize("qualifier", ["1", "live", "$LATEST"])
def test_tags_on_versions_and_aliases_are_refused(lam, fn, qualifier):
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        lam.tag_resource(Resource=f"{ARN}{fn}:{qualifier}", Tags={"a": "b"})
    assert error(excinfo) == ("InvalidParameterValueException", 400,
                              "Tags on function aliases and versions are not supported. Please specify a function ARN.")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.list_tags(Resource=f"{ARN}{fn}:{qualifier}")


def test_tag_errors(lam, fn, fname):
    with pytest.raises(ClientError) as excinfo:
        lam.list_tags(Resource=fn)  # a name, not an ARN
    assert error(excinfo)[:2] == ("ValidationException", 400)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.tag_resource(Resource=f"{ARN}{fname}-gone", Tags={"a": "b"})
    assert error(excinfo)[2] == f"Function not found: {ARN}{fname}-gone"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        lam.tag_resource(Resource=ARN + fn, Tags={f"k{i}": "v" for i in range(51)})
    assert error(excinfo)[2] == "Number of tags exceeds resource tag limit."


# policies -----------------------------------------------------------------------------------------

def test_add_permission_and_get_policy(lam, fn):
    """Statement and Policy are JSON strings exactly as AWS writes them."""
    before = revision(lam, fn)
    out = lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                             Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket",
                             SourceAccount="000000000000")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["Statement"] == (
        '{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction",'
        f'"Resource":"{ARN}{fn}","Condition":{{"StringEquals":{{"AWS:SourceAccount":"000000000000"}},'
        '"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::bucket"}}}')
    lam.add_permission(FunctionName=fn, StatementId="xaccount", Action="lambda:InvokeFunction",
                       Principal="123456789012")
    policy = lam.get_policy(FunctionName=fn)
    assert policy["Policy"] == ('{"Version":"2012-10-17","Id":"default","Statement":[' + out["Statement"] +
                                ',{"Sid":"xaccount","Effect":"Allow","Principal":{"AWS":'
                                '"arn:aws:iam::123456789012:root"},"Action":"lambda:InvokeFunction",'
                                f'"Resource":"{ARN}{fn}"}}]}}')
    current = revision(lam, fn)
    assert current != before and policy["RevisionId"] == current


def test_statement_id_must_be_new(lam, fn):
    lam.add_permission(FunctionName=fn, StatementId="s1", Action="lambda:InvokeFunction", Principal="*")
    with pytest.raises(lam.exceptions.ResourceConflictException) as excinfo:
        lam.add_permission(FunctionName=fn, StatementId="s1", Action="lambda:InvokeFunction", Principal="*")
    assert error(excinfo) == ("ResourceConflictException", 409,
                              "The statement id (s1) provided already exists. Please provide a new statement id, "
                              "or remove the existing statement.")
    assert "message" in excinfo.value.response


def test_get_and_remove_without_a_policy(lam, fn):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_policy(FunctionName=fn)
    assert error(excinfo) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.remove_permission(FunctionName=fn, StatementId="s1")
    assert error(excinfo) == ("ResourceNotFoundException", 404, "No policy is associated with the given resource.")
    assert excinfo.value.response["Message"]


def test_remove_permission(lam, fn):
    lam.add_permission(FunctionName=fn, StatementId="a", Action="lambda:InvokeFunction", Principal="*")
    lam.add_permission(FunctionName=fn, StatementId="b", Action="lambda:GetFunction", Principal="*")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.remove_permission(FunctionName=fn, StatementId="c")
    assert error(excinfo)[2] == "Statement c is not found in resource policy."
    out = lam.remove_permission(FunctionName=fn, StatementId="a")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]] == ["b"]
    lam.remove_permission(FunctionName=fn, StatementId="b")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=fn)


def test_revision_id_preconditions(lam, fn):
    stale = revision(lam, fn)
    lam.add_permission(FunctionName=fn, StatementId="a", Action="lambda:InvokeFunction", Principal="*",
                       RevisionId=stale)
    with pytest.raises(lam.exceptions.PreconditionFailedException) as excinfo:
        lam.add_permission(FunctionName=fn, StatementId="b", Action="lambda:InvokeFunction", Principal="*",
                           RevisionId=stale)
    assert error(excinfo)[:2] == ("PreconditionFailedException", 412)
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.remove_permission(FunctionName=fn, StatementId="a", RevisionId=stale)
    lam.remove_permission(FunctionName=fn, StatementId="a", RevisionId=revision(lam, fn))


def test_policies_per_version_and_alias(lam, fn):
    """Each qualifier has its own policy; the statement's Resource is the qualified ARN."""
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    alias_revision = lam.get_alias(FunctionName=fn, Name="live")["RevisionId"]
    on_version = lam.add_permission(FunctionName=fn, Qualifier="1", StatementId="v", Action="lambda:InvokeFunction",
                                    Principal="*")
    assert json.loads(on_version["Statement"])["Resource"] == f"{ARN}{fn}:1"
    on_alias = lam.add_permission(FunctionName=f"{fn}:live", StatementId="a", Action="lambda:InvokeFunction",
                                  Principal="events.amazonaws.com")
    assert json.loads(on_alias["Statement"])["Resource"] == f"{ARN}{fn}:live"
    alias_policy = lam.get_policy(FunctionName=fn, Qualifier="live")
    assert [s["Sid"] for s in json.loads(alias_policy["Policy"])["Statement"]] == ["a"]
    new_alias_revision = lam.get_alias(FunctionName=fn, Name="live")["RevisionId"]
    assert alias_policy["RevisionId"] == new_alias_revision != alias_revision
    assert lam.get_policy(FunctionName=fn, Qualifier="1")["RevisionId"] == revision(lam, fn, "1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=fn)  # the unqualified function has none


def test_qualifier_errors(lam, fn):
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        lam.add_permission(FunctionName=fn, Qualifier="$LATEST", StatementId="s", Action="lambda:InvokeFunction",
                           Principal="*")
    assert error(excinfo)[2] == "We currently do not support adding policies for $LATEST."
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.add_permission(FunctionName=fn, Qualifier="ghost", StatementId="s", Action="lambda:InvokeFunction",
                           Principal="*")
    assert error(excinfo)[2] == f"Cannot find alias arn: {ARN}{fn}:ghost"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.add_permission(FunctionName=fn, Qualifier="9", StatementId="s", Action="lambda:InvokeFunction",
                           Principal="*")
    assert error(excinfo)[2] == f"Function not found: {ARN}{fn}:9"


@pytest.mark.parametrize("kw,code", [
    ({"StatementId": "bad id!"}, "ValidationException"),
    ({"Action": "invoke"}, "ValidationException"),
    ({"Principal": "somebody"}, "InvalidParameterValueException"),
    ({"SourceAccount": "123"}, "ValidationException"),
    ({"FunctionUrlAuthType": "MAYBE"}, "ValidationException"),
])
def test_add_permission_validation(lam, fn, kw, code):
    args = dict(FunctionName=fn, StatementId="s", Action="lambda:InvokeFunction", Principal="*")
    args.update(kw)
    with pytest.raises(ClientError) as excinfo:
        lam.add_permission(**args)
    assert error(excinfo)[:2] == (code, 400)


def test_function_url_statement_is_stored_whole(lam, fn):
    """What Function URLs will need: the auth type condition comes back from GetPolicy."""
    lam.add_permission(FunctionName=fn, StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*",
                       FunctionUrlAuthType="NONE")
    statement = json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"][0]
    assert statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    assert (statement["Action"], statement["Principal"]) == ("lambda:InvokeFunctionUrl", "*")


def test_policy_length_is_limited(lam, fn):
    long_arn = "arn:aws:s3:::" + "b" * 8000
    for sid in ("one", "two"):
        lam.add_permission(FunctionName=fn, StatementId=sid, Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com", SourceArn=long_arn)
    with pytest.raises(lam.exceptions.PolicyLengthExceededException) as excinfo:
        lam.add_permission(FunctionName=fn, StatementId="three", Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com", SourceArn=long_arn)
    assert error(excinfo)[1] == 400
    assert error(excinfo)[2].startswith("The final policy size (") and "(20480)" in error(excinfo)[2]


def test_policies_go_with_their_version_and_function(lam, fn):
    lam.add_permission(FunctionName=fn, Qualifier="1", StatementId="v", Action="lambda:InvokeFunction",
                       Principal="*")
    lam.delete_function(FunctionName=fn, Qualifier="1")
    lam.add_permission(FunctionName=fn, StatementId="u", Action="lambda:InvokeFunction", Principal="*")
    lam.delete_function(FunctionName=fn)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_policy(FunctionName=fn)
    assert error(excinfo)[2] == f"Function not found: {ARN}{fn}"
    lam.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": CODE}, Publish=True)
    for qualifier in ({}, {"Qualifier": "1"}):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
            lam.get_policy(FunctionName=fn, **qualifier)
        assert error(excinfo)[2] == "The resource you requested does not exist."

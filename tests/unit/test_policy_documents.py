"""Resource policy statements and documents, rendered exactly as AWS renders them."""

from __future__ import annotations

import json

import pytest

from lamina.errors import InvalidParameterValue
from lamina.model import AddLayerPermission, AddPermission, Arns, Policy
from lamina.service.layers import layer_statement
from lamina.service.policies import function_statement, principal_block

RESOURCE = "arn:aws:lambda:us-east-2:123456789012:function:my-function"


def test_statement_matches_the_aws_example_byte_for_byte():
    """botocore's AddPermission example output, with the same input."""
    command = AddPermission(statement_id="s3", action="lambda:InvokeFunction", principal="s3.amazonaws.com",
                            source_account="123456789012", source_arn="arn:aws:s3:::my-bucket-1xpuxmplzrlbh")
    assert function_statement(command, RESOURCE).text == (
        '{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction",'
        '"Resource":"arn:aws:lambda:us-east-2:123456789012:function:my-function","Condition":{"StringEquals":'
        '{"AWS:SourceAccount":"123456789012"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::my-bucket-1xpuxmplzrlbh"}}}'
    )


def test_account_principal_becomes_its_root_arn():
    command = AddPermission(statement_id="xaccount", action="lambda:InvokeFunction", principal="223456789012")
    assert function_statement(command, RESOURCE).text == (
        '{"Sid":"xaccount","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::223456789012:root"},'
        '"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-2:123456789012:function:my-function"}'
    )


@pytest.mark.parametrize("principal,block", [
    ("*", "*"),
    ("events.amazonaws.com", {"Service": "events.amazonaws.com"}),
    ("123456789012", {"AWS": "arn:aws:iam::123456789012:root"}),
    ("arn:aws:iam::123456789012:role/r", {"AWS": "arn:aws:iam::123456789012:role/r"}),
])
def test_principal_forms(principal, block):
    assert principal_block(principal) == block


def test_unknown_principal_is_refused():
    with pytest.raises(InvalidParameterValue, match="The provided principal was invalid"):
        principal_block("somebody")


def test_function_url_conditions_are_kept():
    """Function URLs will read these statements: the auth type and URL conditions are all there."""
    command = AddPermission(statement_id="url", action="lambda:InvokeFunctionUrl", principal="*",
                            function_url_auth_type="NONE", principal_org_id="o-abcdefghij",
                            event_source_token="tok", invoked_via_function_url=True)
    statement = json.loads(function_statement(command, RESOURCE).text)
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "NONE", "aws:PrincipalOrgID": "o-abcdefghij",
                         "lambda:EventSourceToken": "tok"},
        "Bool": {"lambda:InvokedViaFunctionUrl": "true"},
    }


def test_policy_document_wraps_statements_in_order():
    first = function_statement(AddPermission("a", "lambda:InvokeFunction", "*"), RESOURCE)
    second = function_statement(AddPermission("b", "lambda:GetFunction", "*"), RESOURCE)
    document = Policy((first, second)).document()
    assert document.startswith('{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"a"')
    assert [s["Sid"] for s in json.loads(document)["Statement"]] == ["a", "b"]


def test_layer_statement_matches_the_aws_example():
    arns = Arns("us-east-2", "123456789012")
    statement = layer_statement(arns, "my-layer", 1, AddLayerPermission("xaccount", "lambda:GetLayerVersion",
                                                                        "223456789012"))
    assert statement.text == (
        '{"Sid":"xaccount","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::223456789012:root"},'
        '"Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:us-east-2:123456789012:layer:my-layer:1"}'
    )


def test_layer_statement_with_an_organization():
    statement = layer_statement(Arns("us-east-1", "123456789012"), "l", 2,
                                AddLayerPermission("org", "lambda:GetLayerVersion", "*", "o-abcdefghij"))
    assert json.loads(statement.text)["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}
    assert json.loads(statement.text)["Principal"] == "*"

"""Lambda's filter-pattern syntax (esm/filters.py): each rule, nesting, payload decoding, bad patterns."""

from __future__ import annotations

import base64
import json

import pytest

from lamina.errors import InvalidParameterValue
from lamina.esm.filters import compile_filters, matches, parse_pattern


def sqs(body, **meta):
    return {"messageId": "m1", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs", **meta}


def keep(pattern: str, record: dict) -> bool:
    return matches(parse_pattern(pattern), record)


@pytest.mark.parametrize("pattern, body, expected", [
    ('{"body": {"kind": ["order"]}}', {"kind": "order"}, True),
    ('{"body": {"kind": ["order"]}}', {"kind": "Order"}, False),
    ('{"body": {"kind": ["a", "b"]}}', {"kind": "b"}, True),
    ('{"body": {"n": [5]}}', {"n": 5}, True),
    ('{"body": {"n": [5]}}', {"n": "5"}, False),
    ('{"body": {"v": [null]}}', {"v": None}, True),
    ('{"body": {"v": [null]}}', {}, False),
    ('{"body": {"v": [""]}}', {"v": ""}, True),
    ('{"body": {"v": [""]}}', {"v": "x"}, False),
    ('{"body": {"v": [{"anything-but": ["x", "y"]}]}}', {"v": "z"}, True),
    ('{"body": {"v": [{"anything-but": ["x", "y"]}]}}', {"v": "x"}, False),
    ('{"body": {"v": [{"anything-but": "x"}]}}', {}, False),
    ('{"body": {"v": [{"anything-but": {"prefix": "us-"}}]}}', {"v": "eu-1"}, True),
    ('{"body": {"v": [{"anything-but": {"prefix": "us-"}}]}}', {"v": "us-1"}, False),
    ('{"body": {"n": [{"numeric": [">", 10, "<=", 20]}]}}', {"n": 20}, True),
    ('{"body": {"n": [{"numeric": [">", 10, "<=", 20]}]}}', {"n": 10}, False),
    ('{"body": {"n": [{"numeric": ["=", 3.5]}]}}', {"n": 3.5}, True),
    ('{"body": {"n": [{"numeric": [">", 1]}]}}', {"n": "7"}, False),
    ('{"body": {"v": [{"exists": true}]}}', {"v": 0}, True),
    ('{"body": {"v": [{"exists": true}]}}', {}, False),
    ('{"body": {"v": [{"exists": false}]}}', {}, True),
    ('{"body": {"v": [{"exists": false}]}}', {"v": 1}, False),
    ('{"body": {"r": [{"prefix": "us-"}]}}', {"r": "us-east-1"}, True),
    ('{"body": {"r": [{"prefix": "us-"}]}}', {"r": "eu-west-1"}, False),
    ('{"body": {"r": [{"suffix": ".png"}]}}', {"r": "a.png"}, True),
    ('{"body": {"r": [{"equals-ignore-case": "ABC"}]}}', {"r": "abc"}, True),
    ('{"body": {"a": {"b": {"c": ["deep"]}}}}', {"a": {"b": {"c": "deep"}}}, True),
    ('{"body": {"a": {"b": ["x"]}}}', {"a": "x"}, False),
    ('{"body": {"tags": ["red"]}}', {"tags": ["blue", "red"]}, True),
    ('{"body": {"kind": ["order"], "n": [{"numeric": [">", 0]}]}}', {"kind": "order", "n": 0}, False),
])
def test_rules_on_a_json_body(pattern, body, expected):
    """Each rule, on a JSON SQS body."""
    assert keep(pattern, sqs(json.dumps(body))) is expected


def test_metadata_keys_match_directly():
    """Keys outside the payload address the record's own fields."""
    record = sqs("x")
    assert keep('{"attributes": {"ApproximateReceiveCount": ["1"]}}', record)
    assert not keep('{"attributes": {"ApproximateReceiveCount": ["2"]}}', record)
    assert keep('{"eventSource": [{"prefix": "aws:"}]}', record)


def test_plain_text_and_json_formats_must_agree():
    """A plain-text pattern matches only plain bodies; a JSON pattern only JSON-object bodies."""
    assert keep('{"body": ["hello"]}', sqs("hello"))
    assert keep('{"body": [{"prefix": "hel"}]}', sqs("hello"))
    assert not keep('{"body": ["hello"]}', sqs('{"a": 1}'))
    assert not keep('{"body": {"a": [1]}}', sqs("hello"))


def test_kinesis_data_is_base64_json():
    """Kinesis `data` is decoded from base64 before matching."""
    record = {"kinesis": {"partitionKey": "p"}, "data": base64.b64encode(b'{"temp": 31}').decode()}
    assert keep('{"data": {"temp": [{"numeric": [">", 30]}]}}', record)
    assert not keep('{"data": {"temp": [{"numeric": [">", 40]}]}}', record)


def test_dynamodb_key_is_an_object():
    record = {"eventName": "INSERT", "dynamodb": {"NewImage": {"status": {"S": "new"}}}}
    assert keep('{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["new"]}}}}', record)
    assert not keep('{"eventName": ["REMOVE"]}', record)


def test_patterns_are_or_ed():
    predicate = compile_filters(['{"body": {"k": ["a"]}}', '{"body": {"k": ["b"]}}'])
    assert predicate(sqs('{"k": "b"}')) and not predicate(sqs('{"k": "c"}'))
    assert compile_filters([]) is None


@pytest.mark.parametrize("pattern", [
    "", "not json", "[]", "{}", '{"body": "x"}', '{"body": []}', '{"body": {"a": [{"wat": 1}]}}',
    '{"a": [{"numeric": [">"]}]}', '{"a": [{"numeric": ["~", 1]}]}', '{"a": [{"numeric": [">", 1, ">", 2]}]}',
    '{"a": [{"exists": "yes"}]}', '{"a": [{"prefix": 1}]}', '{"a": [{"anything-but": []}]}',
    '{"a": [{"prefix": "x", "suffix": "y"}]}', "x" * 4097,
])
def test_invalid_patterns(pattern):
    """Anything Lambda refuses: InvalidParameterValueException "Invalid filter pattern definition."."""
    with pytest.raises(InvalidParameterValue, match="Invalid filter pattern definition."):
        compile_filters([pattern])


def test_at_most_five_filters():
    with pytest.raises(InvalidParameterValue):
        compile_filters(['{"a": ["b"]}'] * 6)

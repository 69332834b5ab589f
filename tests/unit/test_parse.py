"""Edge parsing and validation: names, ARNs, configuration members, code."""

import base64

import pytest

from lamina.api import parse
from lamina.errors import InvalidParameterValue, ValidationError


@pytest.mark.parametrize("value,name,qualifier", [
    ("f", "f", None),
    ("f:3", "f", "3"),
    ("f:$LATEST", "f", "$LATEST"),
    ("000000000000:function:f", "f", None),
    ("arn:aws:lambda:us-east-1:000000000000:function:f", "f", None),
    ("arn:aws:lambda:us-east-1:000000000000:function:f:prod", "f", "prod"),
])
def test_function_ref_forms(value, name, qualifier):
    ref = parse.function_ref(value)
    assert (ref.name, ref.qualifier) == (name, qualifier)


def test_qualifier_conflict_is_refused():
    with pytest.raises(InvalidParameterValue, match="derived qualifier"):
        parse.function_ref("f:1", "2")


def test_long_and_bad_names_are_validation_errors():
    with pytest.raises(ValidationError, match="less than or equal to 64"):
        parse.function_ref("a" * 65)
    with pytest.raises(ValidationError, match="regular expression"):
        parse.function_ref("bad name!")


def test_memory_and_timeout_bounds():
    with pytest.raises(ValidationError, match="less than or equal to 10240"):
        parse.config_changes({"MemorySize": 10241})
    with pytest.raises(ValidationError, match="less than or equal to 900"):
        parse.config_changes({"Timeout": 901})
    assert parse.config_changes({"MemorySize": 10240, "Timeout": 900}).memory_mb == 10240


def test_environment_limit_and_reserved_keys():
    with pytest.raises(InvalidParameterValue, match="exceeded the 4KB limit"):
        parse.config_changes({"Environment": {"Variables": {"BIG": "x" * 4100}}})
    with pytest.raises(InvalidParameterValue, match="reserved keys.*AWS_REGION"):
        parse.config_changes({"Environment": {"Variables": {"AWS_REGION": "x"}}})
    with pytest.raises(ValidationError):
        parse.config_changes({"Environment": {"Variables": {"1BAD": "x"}}})


def test_role_pattern():
    with pytest.raises(ValidationError):
        parse.config_changes({"Role": "not-a-role"})


def test_zip_file_requires_base64_zipfile():
    assert parse.zip_file({"ZipFile": base64.b64encode(b"PK").decode()}) == b"PK"
    with pytest.raises(InvalidParameterValue):
        parse.zip_file({"S3Bucket": "b", "S3Key": "k"})
    with pytest.raises(InvalidParameterValue, match="Could not unzip"):
        parse.zip_file({"ZipFile": "!!!"})

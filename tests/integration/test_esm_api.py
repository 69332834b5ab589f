"""The event source mapping API through boto3 against a real `lamina serve` (moto as SQS): Create/Get/List/
Update/Delete with their 202s and state transitions, the response shapes, and AWS's validation errors."""

from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import serving
from tests.integration.moto_server import ACCOUNT, moto  # noqa: F401  (the fixture)

ROLE = "arn:aws:iam::000000000000:role/x"
STREAM_ONLY = ("StartingPosition", "ParallelizationFactor", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
               "BisectBatchOnFunctionError", "TumblingWindowInSeconds", "DestinationConfig", "LastProcessingResult")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):  # noqa: F811
    with serving(tmp_path_factory, "esm-api", moto.env()) as server:
        yield server


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture
def fn(lam) -> str:
    name = f"esm-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return None\n"})})
    yield name
    lam.delete_function(FunctionName=name)


@pytest.fixture
def queue_arn(moto):  # noqa: F811
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.delete_queue(QueueUrl=url)


def error(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = err.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"].get("Message", ""))


def wait_state(lam, uuid_: str, state: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = lam.get_event_source_mapping(UUID=uuid_)
        if got["State"] == state or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_create_returns_creating_then_enabled(lam, fn, queue_arn):
    """Create answers 202 Creating with the SQS shape (no stream-only members, FunctionResponseTypes [])."""
    out = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)
    try:
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert out["State"] == "Creating"
        assert out["BatchSize"] == 10 and out["MaximumBatchingWindowInSeconds"] == 0
        assert out["FunctionResponseTypes"] == []
        assert out["StateTransitionReason"] == "USER_INITIATED"
        assert out["FunctionArn"].endswith(f":function:{fn}")
        assert out["EventSourceMappingArn"].endswith(f":event-source-mapping:{out['UUID']}")
        assert not set(STREAM_ONLY) & set(out)
        got = wait_state(lam, out["UUID"], "Enabled")
        assert got["State"] == "Enabled"
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert isinstance(got["LastModified"].timestamp(), float)
    finally:
        lam.delete_event_source_mapping(UUID=out["UUID"])


def test_update_disable_enable_delete(lam, fn, queue_arn):
    """Update answers Updating / Disabling / Enabling and settles; Delete answers Deleting, then 404."""
    made = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn, Enabled=False)
    uid = made["UUID"]
    assert wait_state(lam, uid, "Disabled")["State"] == "Disabled"
    out = lam.update_event_source_mapping(UUID=uid, Enabled=True)
    assert (out["ResponseMetadata"]["HTTPStatusCode"], out["State"]) == (202, "Enabling")
    assert wait_state(lam, uid, "Enabled")["State"] == "Enabled"
    out = lam.update_event_source_mapping(
        UUID=uid, BatchSize=50, MaximumBatchingWindowInSeconds=2, FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": '{"body": {"kind": ["a"]}}'}]}, ScalingConfig={"MaximumConcurrency": 3})
    assert out["State"] == "Updating"
    assert (out["BatchSize"], out["MaximumBatchingWindowInSeconds"]) == (50, 2)
    assert out["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert out["FilterCriteria"] == {"Filters": [{"Pattern": '{"body": {"kind": ["a"]}}'}]}
    assert out["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert wait_state(lam, uid, "Enabled")["BatchSize"] == 50
    out = lam.update_event_source_mapping(UUID=uid, Enabled=False)
    assert out["State"] == "Disabling"
    assert wait_state(lam, uid, "Disabled")["State"] == "Disabled"
    out = lam.delete_event_source_mapping(UUID=uid)
    assert (out["ResponseMetadata"]["HTTPStatusCode"], out["State"]) == (202, "Deleting")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            lam.get_event_source_mapping(UUID=uid)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        time.sleep(0.05)
    else:
        pytest.fail("mapping still there")


def test_list_filters_and_pages(lam, fn, moto):  # noqa: F811
    """List by FunctionName and EventSourceArn, paged with MaxItems/Marker in creation order."""
    sqs = moto.client("sqs")
    arns = []
    for i in range(3):
        url = sqs.create_queue(QueueName=f"list-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arns.append(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    made = [lam.create_event_source_mapping(EventSourceArn=a, FunctionName=fn)["UUID"] for a in arns]
    try:
        listed = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
        assert [m["UUID"] for m in listed] == made
        by_source = lam.list_event_source_mappings(EventSourceArn=arns[1])["EventSourceMappings"]
        assert [m["UUID"] for m in by_source] == [made[1]]
        page = lam.list_event_source_mappings(FunctionName=fn, MaxItems=2)
        assert [m["UUID"] for m in page["EventSourceMappings"]] == made[:2]
        rest = lam.list_event_source_mappings(FunctionName=fn, MaxItems=2, Marker=page["NextMarker"])
        assert [m["UUID"] for m in rest["EventSourceMappings"]] == made[2:] and "NextMarker" not in rest
        pages = lam.get_paginator("list_event_source_mappings").paginate(
            FunctionName=fn, PaginationConfig={"PageSize": 1})
        assert [m["UUID"] for p in pages for m in p["EventSourceMappings"]] == made
    finally:
        for uid in made:
            lam.delete_event_source_mapping(UUID=uid)


def test_stream_mapping_shape(lam, fn, moto):  # noqa: F811
    """A Kinesis mapping shows the stream members with AWS's defaults; a stream must exist."""
    missing = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/no-such-stream"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        lam.create_event_source_mapping(EventSourceArn=missing, FunctionName=fn, StartingPosition="LATEST")
    assert err.value.response["Error"]["Message"] == f"Stream not found: {missing}"
    kinesis = moto.client("kinesis")
    kinesis.create_stream(StreamName="shape-test", ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName="shape-test")["StreamDescriptionSummary"]["StreamARN"]
    out = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, StartingPosition="LATEST",
                                          Enabled=False)
    try:
        assert out["State"] == "Creating"
        for key, value in {"BatchSize": 100, "BisectBatchOnFunctionError": False, "DestinationConfig": {"OnFailure": {}},
                           "FunctionResponseTypes": [], "LastProcessingResult": "No records processed",
                           "MaximumBatchingWindowInSeconds": 0, "MaximumRecordAgeInSeconds": -1,
                           "MaximumRetryAttempts": -1, "ParallelizationFactor": 1, "StartingPosition": "LATEST",
                           "StateTransitionReason": "User action", "TumblingWindowInSeconds": 0}.items():
            assert out[key] == value, key
        dest = "arn:aws:sqs:us-east-1:123456789012:failures"
        out = lam.update_event_source_mapping(UUID=out["UUID"], DestinationConfig={"OnFailure": {"Destination": dest}},
                                              MaximumRetryAttempts=2, BisectBatchOnFunctionError=True)
        assert out["DestinationConfig"] == {"OnFailure": {"Destination": dest}}
        assert (out["MaximumRetryAttempts"], out["BisectBatchOnFunctionError"]) == (2, True)
    finally:
        lam.delete_event_source_mapping(UUID=out["UUID"])


def test_errors(lam, fn, queue_arn):
    """Each bad request gets AWS's error code (and, where known, its text)."""
    kinesis = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    fifo = "arn:aws:sqs:us-east-1:123456789012:q.fifo"
    cases = [
        ({"EventSourceArn": queue_arn, "FunctionName": "no-such-fn"}, "ResourceNotFoundException", 404, None),
        ({"FunctionName": fn}, "InvalidParameterValueException", 400, "Unrecognized event source."),
        ({"EventSourceArn": "arn:aws:sns:us-east-1:123456789012:t", "FunctionName": fn},
         "InvalidParameterValueException", 400, "Unrecognized event source, must be kinesis, dynamodb stream or sqs."),
        ({"EventSourceArn": queue_arn, "FunctionName": fn, "BatchSize": 11}, "InvalidParameterValueException", 400,
         "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"),
        ({"EventSourceArn": queue_arn, "FunctionName": fn, "BatchSize": 10001}, "ValidationException", 400,
         "1 validation error detected: Value '10001' at 'batchSize' failed to satisfy constraint: "
         "Member must have value less than or equal to 10000"),
        ({"EventSourceArn": fifo, "FunctionName": fn, "BatchSize": 20, "MaximumBatchingWindowInSeconds": 1},
         "InvalidParameterValueException", 400, None),
        ({"EventSourceArn": queue_arn, "FunctionName": fn, "FilterCriteria": {"Filters": [{"Pattern": "{nope"}]}},
         "InvalidParameterValueException", 400, "Invalid filter pattern definition."),
        ({"EventSourceArn": queue_arn, "FunctionName": fn,
          "FilterCriteria": {"Filters": [{"Pattern": '{"body": [{"wat": 1}]}'}]}},
         "InvalidParameterValueException", 400, "Invalid filter pattern definition."),
        ({"EventSourceArn": queue_arn, "FunctionName": fn, "ParallelizationFactor": 2},
         "InvalidParameterValueException", 400, "Unsupported ParallelizationFactor parameter for given event source "
         "mapping type."),
        ({"EventSourceArn": queue_arn, "FunctionName": fn, "ScalingConfig": {"MaximumConcurrency": 1001}},
         "ValidationException", 400, None),
        ({"EventSourceArn": kinesis, "FunctionName": fn}, "ValidationException", 400,
         "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: "
         "Member must not be null."),
        ({"EventSourceArn": kinesis, "FunctionName": fn, "StartingPosition": "LATEST", "ScalingConfig":
          {"MaximumConcurrency": 5}}, "InvalidParameterValueException", 400, None),
        ({"EventSourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024", "FunctionName": fn,
          "StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1},
         "InvalidParameterValueException", 400, None),
        ({"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:does-not-exist", "FunctionName": fn},
         "InvalidParameterValueException", 400, None),
    ]
    for params, code, status, message in cases:
        with pytest.raises(ClientError) as err:
            lam.create_event_source_mapping(**params)
        got = error(err)
        assert got[:2] == (code, status), (params, got)
        if message is not None:
            assert got[2] == message, params
    with pytest.raises(ClientError) as err:
        lam.get_event_source_mapping(UUID=str(uuid.uuid4()))
    assert error(err) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    with pytest.raises(ClientError) as err:
        lam.delete_event_source_mapping(UUID=str(uuid.uuid4()))
    assert error(err)[:2] == ("ResourceNotFoundException", 404)


def test_duplicate_mapping_conflicts(lam, fn, queue_arn):
    """A second mapping of the same queue to the same function is a ResourceConflictException."""
    first = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)["UUID"]
    try:
        with pytest.raises(ClientError) as err:
            lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)
        code, status, message = error(err)
        assert (code, status) == ("ResourceConflictException", 409)
        assert message.endswith(f"Please update or delete the existing mapping with UUID {first}")
    finally:
        lam.delete_event_source_mapping(UUID=first)

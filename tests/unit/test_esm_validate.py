"""Create/UpdateEventSourceMapping members (esm/validate.py): defaults per source, ranges, cross-field rules."""

from __future__ import annotations

import pytest

from lamina.errors import InvalidParameterValue, ValidationError
from lamina.esm import validate
from lamina.esm.model import SourceKind, State

Q = "arn:aws:sqs:us-east-1:123456789012:q"
FIFO = "arn:aws:sqs:us-east-1:123456789012:q.fifo"
K = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
D = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2024-01-01T00:00:00.000"
PG = "arn:lamina:postgres:local:000000000000:slot/s"


def create(**body):
    body.setdefault("FunctionName", "f")
    return validate.new_mapping(body, "u-1", 100.0)[0]


def test_source_kinds():
    assert validate.source_kind(Q) is SourceKind.SQS
    assert validate.source_kind(K) is SourceKind.KINESIS
    assert validate.source_kind(D) is SourceKind.DYNAMODB
    assert validate.source_kind(PG) is SourceKind.POSTGRES
    with pytest.raises(InvalidParameterValue, match=r"^Unrecognized event source\.$"):
        validate.source_kind(None)
    with pytest.raises(InvalidParameterValue, match="must be kinesis, dynamodb stream or sqs"):
        validate.source_kind("arn:aws:sns:us-east-1:123456789012:t")
    with pytest.raises(ValidationError):
        validate.source_kind("not-an-arn")


def test_sqs_defaults():
    m = create(EventSourceArn=Q)
    assert (m.kind, m.state, m.enabled, m.batch_size, m.batching_window_s) == (SourceKind.SQS, State.CREATING, True, 10, 0)
    assert m.state_reason == "USER_INITIATED" and m.function_response_types == ()


def test_stream_defaults_and_required_position():
    m = create(EventSourceArn=K, StartingPosition="TRIM_HORIZON")
    assert (m.batch_size, m.max_retry_attempts, m.max_record_age_s, m.parallelization_factor) == (100, -1, -1, 1)
    assert m.state_reason == "User action"
    with pytest.raises(ValidationError, match="Value null at 'startingPosition'"):
        create(EventSourceArn=K)
    with pytest.raises(ValidationError, match="enum value set"):
        create(EventSourceArn=K, StartingPosition="EARLIEST")


def test_function_name_qualifier():
    m = create(EventSourceArn=Q, FunctionName="arn:aws:lambda:us-east-1:123456789012:function:f:live")
    assert (m.function, m.qualifier) == ("f", "live")
    with pytest.raises(ValidationError, match="Value null at 'functionName'"):
        validate.new_mapping({"EventSourceArn": Q}, "u", 0.0)


@pytest.mark.parametrize("body, error", [
    ({"EventSourceArn": Q, "BatchSize": 0}, ValidationError),
    ({"EventSourceArn": Q, "BatchSize": 10001}, ValidationError),
    ({"EventSourceArn": Q, "BatchSize": "5"}, ValidationError),
    ({"EventSourceArn": Q, "BatchSize": 11}, InvalidParameterValue),
    ({"EventSourceArn": FIFO, "BatchSize": 11, "MaximumBatchingWindowInSeconds": 5}, InvalidParameterValue),
    ({"EventSourceArn": Q, "MaximumBatchingWindowInSeconds": 301}, ValidationError),
    ({"EventSourceArn": Q, "ScalingConfig": {"MaximumConcurrency": 1}}, ValidationError),
    ({"EventSourceArn": Q, "FunctionResponseTypes": ["Nope"]}, ValidationError),
    ({"EventSourceArn": Q, "Enabled": "yes"}, ValidationError),
    ({"EventSourceArn": Q, "BisectBatchOnFunctionError": True}, InvalidParameterValue),
    ({"EventSourceArn": Q, "DestinationConfig": {"OnFailure": {"Destination": Q}}}, InvalidParameterValue),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "ParallelizationFactor": 11}, ValidationError),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "MaximumRetryAttempts": -2}, ValidationError),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "MaximumRecordAgeInSeconds": 30}, InvalidParameterValue),
    ({"EventSourceArn": K, "StartingPosition": "AT_TIMESTAMP"}, InvalidParameterValue),
    ({"EventSourceArn": D, "StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 5}, InvalidParameterValue),
    ({"EventSourceArn": D, "StartingPosition": "LATEST", "BatchSize": 1001}, InvalidParameterValue),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "ScalingConfig": {"MaximumConcurrency": 5}},
     InvalidParameterValue),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "DestinationConfig": {"OnSuccess": {"Destination": Q}}},
     InvalidParameterValue),
    ({"EventSourceArn": K, "StartingPosition": "LATEST", "DestinationConfig": {"OnFailure": {"Destination": "x"}}},
     ValidationError),
    ({"EventSourceArn": Q, "FilterCriteria": {"Filters": [{"Pattern": "{"}]}}, InvalidParameterValue),
])
def test_bad_members(body, error):
    with pytest.raises(error):
        create(**body)


def test_sqs_large_batches_need_a_window():
    assert create(EventSourceArn=Q, BatchSize=100, MaximumBatchingWindowInSeconds=1).batch_size == 100
    with pytest.raises(InvalidParameterValue, match="greater than 0 if maximum batch size is greater than 10"):
        create(EventSourceArn=Q, BatchSize=100)


def test_empty_structures_say_nothing():
    """`{}` members (as SDKs send) are not stream-only members given to a queue."""
    m = create(EventSourceArn=Q, DestinationConfig={"OnFailure": {}}, ScalingConfig={})
    assert m.on_failure is None and m.max_concurrency is None


def test_update_states_and_merge():
    m = create(EventSourceArn=Q)
    out, ref = validate.updated(m, {"BatchSize": 5}, 200.0)
    assert (out.state, out.batch_size, out.last_modified, ref) == (State.UPDATING, 5, 200.0, None)
    out, _ = validate.updated(m, {"Enabled": False}, 200.0)
    assert (out.state, out.settled()) == (State.DISABLING, State.DISABLED)
    off = out.__class__(**{**{f: getattr(out, f) for f in out.__dataclass_fields__}, "state": State.DISABLED})
    out, _ = validate.updated(off, {"Enabled": True}, 200.0)
    assert (out.state, out.settled()) == (State.ENABLING, State.ENABLED)
    out, _ = validate.updated(m, {"FilterCriteria": {}}, 200.0)
    assert out.filters == ()
    with pytest.raises(InvalidParameterValue):
        validate.updated(m, {"BatchSize": 50}, 200.0)  # > 10 without a window, checked on the result

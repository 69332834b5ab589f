"""Asynchronous invocation through boto3 against a real `lamina serve`: the event-invoke-config API with
its errors, retries with backoff, destinations and their records, dead-letter targets, event age,
throttles. The server runs with LAMINA_ASYNC_RETRY_BASE_DELAY=0.2 (retries after ~0.2 s, then ~0.4 s)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY, serving
from tests.integration.recorder import FUNCTIONS, Recorder

ROLE = "arn:aws:iam::000000000000:role/x"
BASE_DELAY = 0.2


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with serving(tmp_path_factory, "async", {"LAMINA_ASYNC_RETRY_BASE_DELAY": str(BASE_DELAY)}) as server:
        yield server


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture
def make_fn(lam, recorder):
    """Create a function running one of the recorder's handlers; returns its name and ARN."""
    def make(handler: str, **kw) -> tuple[str, str]:
        name = f"{handler}-{uuid.uuid4().hex[:8]}"
        out = lam.create_function(FunctionName=name, Runtime="python3.11", Handler=f"app.{handler}", Role=ROLE,
                                  Code={"ZipFile": make_zip({"app.py": FUNCTIONS})},
                                  Environment={"Variables": {"CB": recorder.url}}, **kw)
        return name, out["FunctionArn"]
    return make


def code(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = err.value.response
    message = response.get("message") or response.get("Message") or response["Error"].get("Message", "")
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], message


def records_of(recorder: Recorder, request_id: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
    found = recorder.wait_for(lambda b: b.get("kind") == "record"
                              and b["event"].get("requestContext", {}).get("requestId") == request_id, count, timeout)
    return [b["event"] for b in found]


# the API ----------------------------------------------------------------------------------------

def test_put_get_update_list_delete(lam, make_fn):
    """Put replaces, Update merges, Get/List show it with an epoch LastModified, Delete removes it."""
    name, arn = make_fn("ok")
    _, dest = make_fn("record")
    raw = {}
    lam.meta.events.register("after-call.lambda.GetFunctionEventInvokeConfig",
                             lambda http_response, **kw: raw.update(body=http_response.content))
    put = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1,
                                               MaximumEventAgeInSeconds=120)
    assert put["FunctionArn"] == arn + ":$LATEST"
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (1, 120)
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert isinstance(put["LastModified"], dt.datetime)

    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert isinstance(json.loads(raw["body"])["LastModified"], float)  # an epoch number on the wire
    assert got["MaximumRetryAttempts"] == 1

    # Put replaces the whole config: what is not given is gone.
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 0 and "MaximumEventAgeInSeconds" not in got

    # Update merges.
    updated = lam.update_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=3600, DestinationConfig={"OnFailure": {"Destination": dest}})
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 3600)
    assert updated["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": dest}}
    updated = lam.update_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest}})
    assert updated["DestinationConfig"] == {"OnSuccess": {"Destination": dest}, "OnFailure": {"Destination": dest}}

    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn + ":$LATEST"]

    assert lam.delete_function_event_invoke_config(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as err:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert code(err) == ("ResourceNotFoundException", 404,
                         f"The function {arn}:$LATEST doesn't have an EventInvokeConfig")
    assert lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"] == []


def test_qualifiers_versions_and_aliases(lam, make_fn):
    """Configs are per qualifier: $LATEST, a published version, an alias (also as `name:qualifier`)."""
    name, arn = make_fn("ok")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="$LATEST", MaximumRetryAttempts=2)
    assert lam.put_function_event_invoke_config(FunctionName=name, Qualifier=version,
                                                MaximumRetryAttempts=1)["FunctionArn"] == f"{arn}:{version}"
    assert lam.put_function_event_invoke_config(FunctionName=f"{name}:live",
                                                MaximumRetryAttempts=0)["FunctionArn"] == f"{arn}:live"
    assert lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")["MaximumRetryAttempts"] == 0
    page = lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=2)
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in page["FunctionEventInvokeConfigs"]] == ["$LATEST", version]
    rest = lam.list_function_event_invoke_configs(FunctionName=name, Marker=page["NextMarker"])
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in rest["FunctionEventInvokeConfigs"]] == ["live"]
    assert "NextMarker" not in rest
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_event_invoke_config(FunctionName=name, Qualifier="nope", MaximumRetryAttempts=0)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_event_invoke_config(FunctionName=f"{name}:live", Qualifier=version, MaximumRetryAttempts=0)
    lam.delete_function(FunctionName=name)
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.ok", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": FUNCTIONS})})
    with pytest.raises(lam.exceptions.ResourceNotFoundException):  # deleting the function deleted its configs
        lam.get_function_event_invoke_config(FunctionName=name)


def test_out_of_range_values_are_validation_errors(srv, lam, make_fn):
    name, _ = make_fn("ok")
    with pytest.raises(ClientError) as err:
        lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=3)
    assert code(err) == ("ValidationException", 400, "1 validation error detected: Value '3' at 'maximumRetryAttempts' "
                         "failed to satisfy constraint: Member must have value less than or equal to 2")
    with pytest.raises(ClientError) as err:
        lam.update_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=21601)
    assert code(err)[:2] == ("ValidationException", 400)
    unchecked = boto3.client("lambda", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                             aws_secret_access_key=SECRET_KEY,
                             config=BotoConfig(parameter_validation=False, retries={"total_max_attempts": 1}))
    for member, value in (("MaximumEventAgeInSeconds", 59), ("MaximumRetryAttempts", -1)):
        with pytest.raises(ClientError) as err:
            unchecked.put_function_event_invoke_config(FunctionName=name, **{member: value})
        assert code(err)[:2] == ("ValidationException", 400)
        assert "greater than or equal to" in code(err)[2]


def test_bad_destinations(lam, make_fn):
    """Unknown function, the function itself, queues and topics, malformed ARNs: AWS's errors."""
    name, arn = make_fn("ok")
    missing = arn.rsplit(":", 1)[0] + ":no-such-function"
    cases = [
        ({"OnSuccess": {"Destination": missing}}, "InvalidParameterValueException", f"The destination ARN {missing} is invalid."),
        ({"OnFailure": {"Destination": arn}}, "InvalidParameterValueException",
         "You can't specify the function as a destination for itself."),
        ({"OnFailure": {"Destination": arn + ":$LATEST"}}, "InvalidParameterValueException",
         "You can't specify the function as a destination for itself."),
        ({"OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:t"}}, "InvalidParameterValueException",
         "lamina cannot deliver to SNS topics yet (arn:aws:sns:us-east-1:000000000000:t); "
         "a destination must be a lamina function or an SQS queue ARN for now."),
        ({"OnSuccess": {"Destination": arn.replace(":lambda:", ":iam:")}}, "InvalidParameterValueException",
         f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination="
         f"{arn.replace(':lambda:', ':iam:')}), onFailure=null) is invalid."),
        ({"OnFailure": {"Destination": "nope"}}, "ValidationException", None),
    ]
    for config, error, message in cases:
        for call in (lam.put_function_event_invoke_config,):
            with pytest.raises(ClientError) as err:
                call(FunctionName=name, DestinationConfig=config)
            got = code(err)
            assert got[:2] == (error, 400), (config, got)
            if message:
                assert got[2] == message
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        lam.put_function_event_invoke_config(FunctionName=name)
    assert code(err)[2] == "You must specify at least one of error handling or destination setting."
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_event_invoke_config(FunctionName="no-such-function", MaximumRetryAttempts=1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)  # none to update
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_function_event_invoke_configs(FunctionName="no-such-function")


# delivery ---------------------------------------------------------------------------------------

def test_event_payload_limit_is_one_megabyte(lam, make_fn):
    name, _ = make_fn("ok")
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'"' + b"x" * (1024 * 1024) + b'"')
    assert code(err)[:2] == ("RequestEntityTooLargeException", 413)


def test_fails_twice_then_succeeds(lam, make_fn, recorder):
    """Three attempts, about 1x then 2x the base delay apart, same request id; then an OnSuccess record."""
    name, arn = make_fn("flaky")
    _, dest = make_fn("record")
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest}})
    out = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": 7}))
    assert out["StatusCode"] == 202
    request_id = out["ResponseMetadata"]["RequestId"]
    attempts = recorder.wait_for(lambda b: b.get("key") == request_id, 3)
    assert len(attempts) == 3 and all(a["event"] == {"n": 7} for a in attempts)
    times = recorder.arrival_times(lambda b: b.get("key") == request_id)
    assert times[1] - times[0] >= BASE_DELAY * 0.9
    assert times[2] - times[1] >= 2 * BASE_DELAY * 0.9
    (record,) = records_of(recorder, request_id)
    assert record["requestContext"] == {"requestId": request_id, "functionArn": arn + ":$LATEST",
                                        "condition": "Success", "approximateInvokeCount": 3}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"attempts": 3}
    assert record["requestPayload"] == {"n": 7}
    time.sleep(3 * BASE_DELAY)
    assert len(recorder.where(lambda b: b.get("key") == request_id)) == 3  # no fourth attempt


def test_success_record_shape(lam, make_fn, recorder):
    name, arn = make_fn("ok")
    _, dest = make_fn("record")
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": dest}})
    request_id = lam.invoke(FunctionName=name, InvocationType="Event",
                            Payload=b'{"hello": "world"}')["ResponseMetadata"]["RequestId"]
    (record,) = records_of(recorder, request_id)
    assert list(record) == ["version", "timestamp", "requestContext", "requestPayload", "responseContext",
                            "responsePayload"]
    assert record["version"] == "1.0"
    assert dt.datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert record["requestContext"] == {"requestId": request_id, "functionArn": arn + ":$LATEST",
                                        "condition": "Success", "approximateInvokeCount": 1}
    assert record["requestPayload"] == {"hello": "world"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"echo": {"hello": "world"}}


def test_always_failing_sends_retries_exhausted(lam, make_fn, recorder):
    name, arn = make_fn("fail")
    _, dest = make_fn("record")
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": dest}})
    request_id = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"[1, 2]")["ResponseMetadata"]["RequestId"]
    (record,) = records_of(recorder, request_id)
    assert record["requestContext"] == {"requestId": request_id, "functionArn": arn + ":$LATEST",
                                        "condition": "RetriesExhausted", "approximateInvokeCount": 3}
    assert record["requestPayload"] == [1, 2]
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "always fails"
    assert len(recorder.where(lambda b: b.get("key") == request_id)) == 3


def test_maximum_retry_attempts_zero_and_an_alias(lam, make_fn, recorder):
    """An event invoked through an alias uses the alias's config; its record names the alias."""
    name, arn = make_fn("fail")
    _, dest = make_fn("record")
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="live", MaximumRetryAttempts=0,
                                         DestinationConfig={"OnFailure": {"Destination": dest}})
    request_id = lam.invoke(FunctionName=name, Qualifier="live", InvocationType="Event",
                            Payload=b"{}")["ResponseMetadata"]["RequestId"]
    (record,) = records_of(recorder, request_id)
    assert record["requestContext"]["functionArn"] == arn + ":live"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["executedVersion"] == version


def test_dead_letter_target_function_gets_the_event(lam, make_fn, recorder):
    """DeadLetterConfig naming a lamina function: it receives the original event after the last retry."""
    _, dlq = make_fn("record")
    name, _ = make_fn("fail", DeadLetterConfig={"TargetArn": dlq})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    marker = uuid.uuid4().hex
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"marker": marker}))
    found = recorder.wait_for(lambda b: b.get("kind") == "record" and b["event"] == {"marker": marker})
    assert found == [{"key": "record", "kind": "record", "event": {"marker": marker}}]


def test_event_age_exceeded(srv, lam, make_fn, recorder):
    """An event older than MaximumEventAgeInSeconds is not run: OnFailure gets EventAgeExceeded, count 0.

    The event is held by reserved concurrency 0 (every run is throttled, and throttles wait in the
    queue); it is then aged by moving its enqueue time back in the queue table, rather than waiting 60 s."""
    name, arn = make_fn("ok")
    _, dest = make_fn("record")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60,
                                         DestinationConfig={"OnFailure": {"Destination": dest}})
    request_id = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"old": true}')["ResponseMetadata"]["RequestId"]
    with sqlite3.connect(srv.data_dir / "lamina.db", timeout=30) as db:
        changed = db.execute("UPDATE async_events SET enqueued_at = enqueued_at - 61 WHERE request_id = ?",
                             (request_id,)).rowcount
    assert changed == 1
    (record,) = records_of(recorder, request_id)
    assert record["requestContext"] == {"requestId": request_id, "functionArn": arn + ":$LATEST",
                                        "condition": "EventAgeExceeded", "approximateInvokeCount": 0}
    assert record["requestPayload"] == {"old": True}
    assert "responsePayload" not in record


def test_throttled_events_wait_their_turn(lam, make_fn, recorder):
    """Reserved concurrency 1: events queue up behind each other, each runs once, no attempt is lost."""
    name, _ = make_fn("slow")
    _, dest = make_fn("record")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0,
                                         DestinationConfig={"OnSuccess": {"Destination": dest}})
    run = uuid.uuid4().hex
    ids = [lam.invoke(FunctionName=name, InvocationType="Event",
                      Payload=json.dumps({"sleep": 0.3, "i": i, "run": run}))["ResponseMetadata"]["RequestId"]
           for i in range(4)]
    records = [records_of(recorder, request_id)[0] for request_id in ids]
    assert all(r["requestContext"]["condition"] == "Success" for r in records)
    assert all(r["requestContext"]["approximateInvokeCount"] == 1 for r in records)
    ran = recorder.where(lambda b: b.get("key") == "slow" and b["event"].get("run") == run)
    assert sorted(b["event"]["i"] for b in ran) == [0, 1, 2, 3]


def test_queue_statistics_endpoint(srv, lam):
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=srv.url + "/_lamina/async")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", "us-east-1").add_auth(request)
    with urllib.request.urlopen(urllib.request.Request(request.url, headers=dict(request.headers))) as reply:
        stats = json.loads(reply.read())
    assert set(stats) >= {"accepted", "succeeded", "retried", "throttled", "failed", "in_flight", "queue"}
    assert set(stats["queue"]) == {"ready", "delayed", "leased", "dead"}

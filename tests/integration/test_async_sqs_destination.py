"""SQS queues as asynchronous-invocation destinations and dead-letter queues, end to end: a real
`lamina serve` sends to a moto queue with SendMessage (LAMINA_ASYNC_RETRY_BASE_DELAY=0.2)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import serving
from tests.integration.moto_server import moto  # noqa: F401  (the fixture)

ROLE = "arn:aws:iam::000000000000:role/x"
CODE = '''
def ok(event, context):
    return {"done": event}

def fail(event, context):
    raise ValueError("it went wrong")
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):  # noqa: F811
    with serving(tmp_path_factory, "async-sqs", {**moto.env(), "LAMINA_ASYNC_RETRY_BASE_DELAY": "0.2"}) as server:
        yield server


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture
def sqs(moto):  # noqa: F811
    return moto.client("sqs")


def make_queue(sqs) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"dest-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def make_fn(lam, handler: str, **kw) -> str:
    name = f"{handler}-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler=f"app.{handler}", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": CODE})}, **kw)
    return name


def one_message(sqs, url: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MessageAttributeNames=["All"]).get("Messages")
        if got:
            return got[0]
    raise AssertionError("no message arrived")


def test_on_success_and_on_failure_queues(lam, sqs):
    """The invocation record is the message body: Success for one function, RetriesExhausted for another."""
    ok_url, ok_arn = make_queue(sqs)
    fail_url, fail_arn = make_queue(sqs)
    good = make_fn(lam, "ok")
    bad = make_fn(lam, "fail")
    lam.put_function_event_invoke_config(FunctionName=good, DestinationConfig={"OnSuccess": {"Destination": ok_arn}})
    lam.put_function_event_invoke_config(FunctionName=bad, MaximumRetryAttempts=0,
                                         DestinationConfig={"OnFailure": {"Destination": fail_arn}})
    got = lam.get_function_event_invoke_config(FunctionName=good)
    assert got["DestinationConfig"]["OnSuccess"] == {"Destination": ok_arn}
    first = lam.invoke(FunctionName=good, InvocationType="Event", Payload=b'{"n": 1}')
    second = lam.invoke(FunctionName=bad, InvocationType="Event", Payload=b'{"n": 2}')
    record = json.loads(one_message(sqs, ok_url)["Body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["requestId"] == first["ResponseMetadata"]["RequestId"]
    assert record["requestPayload"] == {"n": 1} and record["responsePayload"] == {"done": {"n": 1}}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    record = json.loads(one_message(sqs, fail_url)["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["requestId"] == second["ResponseMetadata"]["RequestId"]
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "it went wrong"
    for name in (good, bad):
        lam.delete_function(FunctionName=name)


def test_dead_letter_queue_gets_the_event_with_attributes(lam, sqs):
    url, arn = make_queue(sqs)
    name = make_fn(lam, "fail", DeadLetterConfig={"TargetArn": arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    sent = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"original": true}')
    message = one_message(sqs, url)
    assert json.loads(message["Body"]) == {"original": True}
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": sent["ResponseMetadata"]["RequestId"]}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attributes["ErrorMessage"]["StringValue"] == "it went wrong"
    lam.delete_function(FunctionName=name)


def test_an_invalid_queue_arn_is_refused(lam):
    name = make_fn(lam, "ok")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": "arn:aws:sqs:us-east-1:123456789012:bad name"}})
    lam.delete_function(FunctionName=name)

"""SQS event source mappings end to end: a real `lamina serve` polls a moto SQS queue and invokes a real
function, which reports each batch to a loopback recorder. Delivery and deletion, the record shape, partial
batch failures, function errors ending in the queue's dead-letter queue, filters, FIFO order, disabling."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import mapped_function, serving, start_server, stop_server
from tests.integration.moto_server import moto  # noqa: F401  (the fixture)
from tests.integration.recorder import RECORD_BATCH, seen, wait_until

ROLE = "arn:aws:iam::000000000000:role/x"
HANDLER = RECORD_BATCH + '''
def handler(event, context):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    record_batch(event)
    bodies = [r["body"] for r in event["Records"]]
    if "poison" in bodies:
        raise RuntimeError("poison in the batch")
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                  if r["body"].startswith("bad")]}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):  # noqa: F811
    with serving(tmp_path_factory, "esm-sqs", moto.env()) as server:
        yield server


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture
def fn(lam, recorder) -> Iterator[str]:
    with mapped_function(lam, "sqs", HANDLER, recorder) as name:
        yield name


@pytest.fixture
def sqs(moto):  # noqa: F811
    return moto.client("sqs")


def make_queue(sqs, name: str | None = None, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name or f"q-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]




def queue_empty(sqs, url: str) -> bool:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_messages_are_delivered_in_batches_and_deleted(lam, fn, sqs, recorder):
    """25 messages arrive in batches of at most 10, in Lambda's record shape, and leave the queue."""
    url, arn = make_queue(sqs)
    for i in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}),
                         MessageAttributes={"colour": {"DataType": "String", "StringValue": "red"}})
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10)
    assert wait_until(lambda: len(seen(recorder, fn)) >= 25), seen(recorder, fn)
    assert wait_until(lambda: queue_empty(sqs, url))
    records = seen(recorder, fn)
    # Every message, none lost. SQS delivers at least once, and the stand-in (moto) can hand one message
    # to two of the poller's concurrent ReceiveMessage calls (its receive takes no lock): a repeat is
    # not a failure, a missing message is.
    assert sorted({json.loads(r["body"])["n"] for r in records}) == list(range(25))
    assert all(len(b["records"]) <= 10 for b in recorder.where(lambda b: b.get("key") == fn))
    record = records[0]
    assert list(record) == ["messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                            "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", arn, "us-east-1")
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"])
    assert record["messageAttributes"] == {"colour": {"stringValue": "red", "stringListValues": [],
                                                      "binaryListValues": [], "dataType": "String"}}


def test_partial_batch_failures_and_redrive(lam, fn, sqs, recorder):
    """ReportBatchItemFailures deletes the good messages; the listed one is received again until the queue's
    RedrivePolicy moves it to the dead-letter queue."""
    dlq_url, dlq_arn = make_queue(sqs)
    url, arn = make_queue(sqs, VisibilityTimeout="1",
                          RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body}
                                                  for i, body in enumerate(["good-1", "bad-1", "good-2"])])
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=10,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    moved: list[dict] = []

    def in_dlq() -> bool:
        moved.extend(sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", []))
        return bool(moved)

    assert wait_until(in_dlq, 30)
    assert [m["Body"] for m in moved] == ["bad-1"]
    bodies = [r["body"] for r in seen(recorder, fn)]
    assert sorted(set(bodies)) == ["bad-1", "good-1", "good-2"]
    assert bodies.count("good-1") == 1 and bodies.count("good-2") == 1 and bodies.count("bad-1") == 2
    assert wait_until(lambda: queue_empty(sqs, url))


def test_function_error_returns_the_batch_until_redrive(lam, fn, sqs, recorder):
    """A thrown error deletes nothing: the whole batch comes back after the visibility timeout."""
    dlq_url, dlq_arn = make_queue(sqs)
    url, arn = make_queue(sqs, VisibilityTimeout="1",
                          RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}))
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=1)
    moved: list[dict] = []
    assert wait_until(lambda: bool(moved.extend(sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1)
                                                .get("Messages", [])) or moved), 30)
    assert moved[0]["Body"] == "poison"
    receives = [int(r["attributes"]["ApproximateReceiveCount"]) for r in seen(recorder, fn)]
    assert receives == [1, 2]


def test_filtered_out_messages_are_deleted_unseen(lam, fn, sqs, recorder):
    url, arn = make_queue(sqs)
    for kind in ("keep", "skip", "keep", "skip"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": kind}))
    sqs.send_message(QueueUrl=url, MessageBody="plain text")
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn,
                                    FilterCriteria={"Filters": [{"Pattern": '{"body": {"kind": ["keep"]}}'}]})
    assert wait_until(lambda: queue_empty(sqs, url))
    assert wait_until(lambda: len(seen(recorder, fn)) >= 2)
    assert [json.loads(r["body"])["kind"] for r in seen(recorder, fn)] == ["keep", "keep"]


def test_fifo_groups_keep_their_order(lam, fn, sqs, recorder):
    url, arn = make_queue(sqs, f"f-{uuid.uuid4().hex[:8]}.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"{'ab'[i % 2]}{i}", MessageGroupId="ab"[i % 2])
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=2,
                                    ScalingConfig={"MaximumConcurrency": 4})
    assert wait_until(lambda: len(seen(recorder, fn)) >= 12)
    records = seen(recorder, fn)
    for group in "ab":
        order = [int(r["body"][1:]) for r in records if r["attributes"]["MessageGroupId"] == group]
        assert order == sorted(order) and len(order) == 6
    # (moto leaves out SequenceNumber; lamina passes it on when the queue sends it: tests/unit/test_esm_sqs.py)
    assert {"MessageGroupId", "MessageDeduplicationId"} <= set(records[0]["attributes"])


def test_disabled_mapping_does_not_poll(lam, fn, sqs, recorder):
    url, arn = make_queue(sqs)
    uid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, Enabled=False)["UUID"]
    sqs.send_message(QueueUrl=url, MessageBody="waiting")
    time.sleep(1.5)
    assert seen(recorder, fn) == []
    lam.update_event_source_mapping(UUID=uid, Enabled=True)
    assert wait_until(lambda: [r["body"] for r in seen(recorder, fn)] == ["waiting"])


def test_kill_9_while_processing_loses_nothing(tmp_path, moto, sqs, recorder):  # noqa: F811
    """SIGKILL while a mapping works through 300 messages; the restarted server (same data directory) runs
    the mapping again, and every message is processed at least once: in-flight batches come back after the
    visibility timeout."""
    url, arn = make_queue(sqs, VisibilityTimeout="2")
    for start in range(0, 300, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"}
                                                      for i in range(start, start + 10)])
    data = tmp_path / "data"
    first = start_server(data, tmp_path / "one.log", moto.env())
    name = f"durable-{uuid.uuid4().hex[:8]}"
    try:
        lam = first.client()
        lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE, Timeout=30,
                            Code={"ZipFile": make_zip({"app.py": HANDLER})},
                            Environment={"Variables": {"CB": recorder.url, "SLEEP": "0.05"}})
        uid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=5)["UUID"]
        assert wait_until(lambda: len(seen(recorder, name)) >= 60, 30)
    finally:
        first.process.kill()  # SIGKILL: no shutdown of any kind
        first.process.wait()
    before = {r["body"] for r in seen(recorder, name)}
    assert len(before) < 300, "everything was done before the kill; the test proves nothing"

    second = start_server(data, tmp_path / "two.log", moto.env())
    try:
        lam = second.client()
        assert lam.get_event_source_mapping(UUID=uid)["State"] == "Enabled"
        expected = {f"m{i}" for i in range(300)}
        assert wait_until(lambda: {r["body"] for r in seen(recorder, name)} >= expected, 45), \
            sorted(expected - {r["body"] for r in seen(recorder, name)})[:20]
        assert wait_until(lambda: queue_empty(sqs, url), 15)
        bodies = [r["body"] for r in seen(recorder, name)]
        lam.delete_event_source_mapping(UUID=uid)
        lam.delete_function(FunctionName=name)
    finally:
        assert stop_server(second) == 0, second.output()
    assert set(bodies) == expected  # nothing invented
    print(f"{len(before)} processed before the kill; {len(bodies) - 300} processed twice")


def test_throttled_batches_stay_in_the_queue(lam, fn, sqs, recorder):
    """With reserved concurrency 0 every invoke is throttled: nothing is deleted; lifting it delivers."""
    url, arn = make_queue(sqs, VisibilityTimeout="1")
    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)
    sqs.send_message(QueueUrl=url, MessageBody="patient")
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, BatchSize=1)
    time.sleep(2.5)
    assert seen(recorder, fn) == [] and not queue_empty(sqs, url)
    lam.delete_function_concurrency(FunctionName=fn)
    assert wait_until(lambda: [r["body"] for r in seen(recorder, fn)] == ["patient"])
    assert wait_until(lambda: queue_empty(sqs, url))


def test_the_sqs_endpoint_variable_wins_over_the_general_one(tmp_path, moto, sqs, recorder):  # noqa: F811
    """AWS_ENDPOINT_URL_SQS points lamina at the queue server even when AWS_ENDPOINT_URL points elsewhere."""
    url, arn = make_queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="via the SQS variable")
    env = {**moto.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    env.pop("AWS_ENDPOINT_URL_KINESIS")
    server = start_server(tmp_path / "data", tmp_path / "server.log", env)
    name = f"endpoint-{uuid.uuid4().hex[:8]}"
    try:
        lam = server.client()
        lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": make_zip({"app.py": HANDLER})}, Environment={"Variables": {"CB": recorder.url}})
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)
        assert wait_until(lambda: [r["body"] for r in seen(recorder, name)] == ["via the SQS variable"])
        assert wait_until(lambda: queue_empty(sqs, url))
    finally:
        assert stop_server(server) == 0, server.output()

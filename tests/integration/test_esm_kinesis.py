"""Kinesis: the source against a moto Kinesis (shards, iterators, resharding), and Kinesis event source
mappings end to end (a real `lamina serve` reads moto's stream and invokes a real function in order, with
retries, bisect and an SQS on-failure destination)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from lamina.esm.sources.kinesis import KinesisSource
from tests.integration.conftest import mapped_function, serving
from tests.integration.moto_server import ACCOUNT, REGION, moto  # noqa: F401  (the fixture)
from tests.integration.recorder import RECORD_BATCH, seen, wait_until

HANDLER = RECORD_BATCH + '''
def handler(event, context):
    record_batch(event)
    if any(base64.b64decode(r["kinesis"]["data"]) == b"poison" for r in event["Records"]):
        raise RuntimeError("poison in the batch")
    return None
'''


@pytest.fixture
def kinesis(moto, monkeypatch):  # noqa: F811
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto.client("kinesis")


def make_stream(kinesis, shards: int = 1) -> tuple[str, str]:
    name = f"s-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return name, f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def read(source: KinesisSource, shard: str, after: str | None, position: str = "TRIM_HORIZON",
         limit: int = 100, timestamp: float | None = None):
    return asyncio.run(source.read(shard, after=after, starting_position=position,
                                   starting_timestamp=timestamp, limit=limit))


def test_source_reads_a_shard_in_order_from_each_starting_position(kinesis):
    name, arn = make_stream(kinesis)
    for i in range(5):
        kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="k")
    source = KinesisSource(arn)
    try:
        [shard] = asyncio.run(source.shards())
        first = read(source, shard, None, limit=3)
        assert [base64.b64decode(r.event["kinesis"]["data"]) for r in first.records] == [b"r0", b"r1", b"r2"]
        rest = read(source, shard, first.records[-1].sequence)
        assert [base64.b64decode(r.event["kinesis"]["data"]) for r in rest.records] == [b"r3", b"r4"]
        assert not rest.closed
        again = read(source, shard, first.records[0].sequence)  # a restart after the first checkpoint
        assert len(again.records) == 4
        record = first.records[0]
        assert record.event["eventID"] == f"{shard}:{record.sequence}"
        assert record.event["eventSourceARN"] == arn and record.partition_key == "k"

        latest = KinesisSource(arn)
        assert read(latest, shard, None, "LATEST").records == []
        kinesis.put_record(StreamName=name, Data=b"new", PartitionKey="k")
        assert [base64.b64decode(r.event["kinesis"]["data"]) for r in read(latest, shard, None, "LATEST").records] \
            == [b"new"]
        future = read(KinesisSource(arn), shard, None, "AT_TIMESTAMP", timestamp=time.time() + 3600)
        assert future.records == []
    finally:
        asyncio.run(source.aclose())


def test_source_reads_children_after_their_parent(kinesis):
    """After a split the parent is read to its end before its children are read. (moto keeps routing puts
    to the closed parent, so only the parent has records here; the children must wait for it all the same.)"""
    name, arn = make_stream(kinesis)
    for i in range(3):
        kinesis.put_record(StreamName=name, Data=f"old{i}".encode(), PartitionKey="k")
    parent = kinesis.list_shards(StreamName=name)["Shards"][0]
    high = int(parent["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=name, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(high // 2))
    source = KinesisSource(arn)
    shards = asyncio.run(source.shards())
    assert shards[0] == parent["ShardId"] and len(shards) == 3
    children = shards[1:]
    assert not any(source._shards.ready(c) for c in children)
    got = read(source, parent["ShardId"], None)
    assert [base64.b64decode(r.event["kinesis"]["data"]) for r in got.records] == [b"old0", b"old1", b"old2"]
    assert not any(source._shards.ready(c) for c in children)  # its last records are not processed yet
    end = read(source, parent["ShardId"], got.records[-1].sequence)
    assert list(end.records) == [] and end.closed
    assert all(source._shards.ready(c) for c in children)
    assert all(list(read(source, c, None).records) == [] for c in children)
    asyncio.run(source.aclose())


# -- end to end through `lamina serve` ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):  # noqa: F811
    with serving(tmp_path_factory, "esm-kinesis", moto.env()) as server:
        yield server


@pytest.fixture
def fn(srv, recorder) -> Iterator[str]:
    with mapped_function(srv.client(), "kin", HANDLER, recorder) as name:
        yield name



def data(records: list[dict]) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]



def test_mapping_delivers_a_stream_in_order(srv, fn, recorder, kinesis):
    """Records put in a moto stream reach the function in order, in batches of at most BatchSize, in Lambda's
    Kinesis shape; the mapping reports OK."""
    name, arn = make_stream(kinesis)
    lam = srv.client()
    for i in range(15):
        kinesis.put_record(StreamName=name, Data=f"m{i}".encode(), PartitionKey="pk")
    created = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn, StartingPosition="TRIM_HORIZON",
                                              BatchSize=10)
    assert created["State"] == "Creating" and created["StartingPosition"] == "TRIM_HORIZON"
    assert wait_until(lambda: len(seen(recorder, fn)) >= 15), seen(recorder, fn)
    for i in range(15, 25):
        kinesis.put_record(StreamName=name, Data=f"m{i}".encode(), PartitionKey="pk")
    assert wait_until(lambda: len(seen(recorder, fn)) >= 25)
    records = seen(recorder, fn)
    assert data(records) == [f"m{i}" for i in range(25)]
    assert all(len(b["records"]) <= 10 for b in recorder.where(lambda b: b.get("key") == fn))
    record = records[0]
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"] == arn and record["awsRegion"] == REGION
    assert record["kinesis"]["partitionKey"] == "pk" and record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert record["eventID"].endswith(":" + record["kinesis"]["sequenceNumber"])
    assert wait_until(lambda: lam.get_event_source_mapping(UUID=created["UUID"])["LastProcessingResult"] == "OK")


def test_poison_record_is_bisected_out_to_the_on_failure_queue(srv, fn, recorder, kinesis, moto):  # noqa: F811
    """BisectBatchOnFunctionError + MaximumRetryAttempts=0: the poison record alone goes to the SQS on-failure
    destination (KinesisBatchInfo), every other record is processed, and the shard goes on."""
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"fail-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name, arn = make_stream(kinesis)
    values = ["a", "b", "poison", "c", "d", "e"]
    sequences = [kinesis.put_record(StreamName=name, Data=v.encode(), PartitionKey="pk")["SequenceNumber"]
                 for v in values]
    lam = srv.client()
    lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=fn, StartingPosition="TRIM_HORIZON", BatchSize=6,
        BisectBatchOnFunctionError=True, MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    messages: list[dict] = []

    def failure_arrived() -> bool:
        messages.extend(sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []))
        return bool(messages)

    assert wait_until(failure_arrived), seen(recorder, fn)
    body = json.loads(messages[0]["Body"])
    info = body["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        (sequences[2], sequences[2], 1)
    assert info["streamArn"] == arn and info["shardId"].startswith("shardId-")
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["functionArn"].endswith(f":function:{fn}")
    assert body["responseContext"]["functionError"] == "Unhandled"
    assert wait_until(lambda: {"a", "b", "c", "d", "e"} <= set(data(seen(recorder, fn))))
    batches = [data(b["records"]) for b in recorder.where(lambda b: b.get("key") == fn)]
    assert batches[0] == values  # the whole batch first, then its halves
    kinesis.put_record(StreamName=name, Data=b"after", PartitionKey="pk")
    assert wait_until(lambda: "after" in data(seen(recorder, fn)))  # the shard is not blocked

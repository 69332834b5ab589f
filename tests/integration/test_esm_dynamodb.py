"""DynamoDB Streams: the source against moto (a table with StreamSpecification), and a mapping end to end:
"updates in a DynamoDB table" reach a real function through `lamina serve` as INSERT/MODIFY/REMOVE, in order."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from lamina.esm.sources.dynamodb_streams import DynamoDBStreamsSource
from tests.conftest import make_zip
from tests.integration.conftest import serving
from tests.integration.recorder import RECORD_BATCH, wait_until
from tests.integration.moto_server import REGION, moto  # noqa: F401  (the fixture)


ROLE = "arn:aws:iam::000000000000:role/x"
HANDLER = RECORD_BATCH + '''
def handler(event, context):
    record_batch(event)
'''


@pytest.fixture
def ddb(moto, monkeypatch):  # noqa: F811
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto.client("dynamodb")


def make_table(ddb) -> tuple[str, str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    table = ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name, table["TableDescription"]["LatestStreamArn"]


def change_items(ddb, name: str) -> None:
    ddb.put_item(TableName=name, Item={"id": {"S": "a"}, "n": {"N": "1"}, "bin": {"B": b"\x01\x02"}})
    ddb.put_item(TableName=name, Item={"id": {"S": "b"}, "n": {"N": "2"}})
    ddb.update_item(TableName=name, Key={"id": {"S": "a"}}, UpdateExpression="SET n = :v",
                    ExpressionAttributeValues={":v": {"N": "10"}})
    ddb.delete_item(TableName=name, Key={"id": {"S": "b"}})


def test_source_reads_the_stream_in_order(ddb):
    name, arn = make_table(ddb)
    change_items(ddb, name)
    source = DynamoDBStreamsSource(arn)
    try:
        [shard] = asyncio.run(source.shards())
        got = asyncio.run(source.read(shard, after=None, starting_position="TRIM_HORIZON", starting_timestamp=None,
                                      limit=100))
        events = [r.event for r in got.records]
        assert [e["eventName"] for e in events] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]
        first = events[0]
        assert first["eventSource"] == "aws:dynamodb" and first["eventSourceARN"] == arn
        assert first["dynamodb"]["Keys"] == {"id": {"S": "a"}}
        assert first["dynamodb"]["NewImage"]["bin"] == {"B": "AQI="}
        assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
        assert events[2]["dynamodb"]["OldImage"]["n"] == {"N": "1"}
        assert events[2]["dynamodb"]["NewImage"]["n"] == {"N": "10"}
        assert [r.sequence for r in got.records] == [e["dynamodb"]["SequenceNumber"] for e in events]
        json.dumps(events)
        later = asyncio.run(source.read(shard, after=got.records[1].sequence, starting_position="TRIM_HORIZON",
                                        starting_timestamp=None, limit=100))
        assert [r.event["eventName"] for r in later.records] == ["MODIFY", "REMOVE"]
    finally:
        asyncio.run(source.aclose())


@pytest.fixture(scope="module")
def srv(tmp_path_factory, moto):  # noqa: F811
    with serving(tmp_path_factory, "esm-ddb", moto.env()) as server:
        yield server



def test_table_updates_reach_the_function_in_order(srv, recorder, ddb):
    """A DynamoDB stream mapping: the function sees each change once, in order, with the filter applied."""
    lam = srv.client()
    fn = f"ddb-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=fn, Runtime="python3.11", Handler="app.handler", Role=ROLE, Timeout=30,
                        Code={"ZipFile": make_zip({"app.py": HANDLER})},
                        Environment={"Variables": {"CB": recorder.url}})
    name, arn = make_table(ddb)
    change_items(ddb, name)
    mapping = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=fn, StartingPosition="TRIM_HORIZON", BatchSize=2,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"eventName": ["INSERT", "MODIFY", "REMOVE"]})}]})
    try:
        def records() -> list[dict]:
            return [r for b in recorder.where(lambda b: b.get("key") == fn) for r in b["records"]]

        assert wait_until(lambda: len(records()) >= 4), records()
        ddb.put_item(TableName=name, Item={"id": {"S": "c"}})
        assert wait_until(lambda: len(records()) >= 5)
        got = records()
        assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in got] == [
            ("INSERT", "a"), ("INSERT", "b"), ("MODIFY", "a"), ("REMOVE", "b"), ("INSERT", "c")]
        assert all(len(b["records"]) <= 2 for b in recorder.where(lambda b: b.get("key") == fn))
        assert got[0]["eventSourceARN"] == arn and got[0]["awsRegion"] == REGION
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in got]
        assert seqs == sorted(seqs)
    finally:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
        lam.delete_function(FunctionName=fn)

"""Stream sources without I/O: choosing a source by ARN, record shapes, iterators and shard order, and the
PostgreSQL change decoding (wal2json rows -> DynamoDB-shaped records, sequence numbers, positions)."""

from __future__ import annotations

import datetime
import json

import pytest

from lamina.errors import InvalidParameterValue
from lamina.esm.sources import open_source
from lamina.esm.sources.dynamodb_streams import DynamoDBStreamsSource, dynamodb_event
from lamina.esm.sources.kinesis import KinesisSource, kinesis_event
from lamina.esm.sources.pg_changes import (
    TXN_END, TableStream, attribute, int_to_lsn, lsn_to_int, parse_sequence, sequence, transactions,
)
from lamina.esm.sources.postgres import PostgresSource, parse_arn, slot_name
from lamina.esm.sources.shards import IteratorShards, ShardInfo

KINESIS_ARN = "arn:aws:kinesis:us-east-2:123456789012:stream/orders"
DDB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2015-06-27T00:48:05.899"
PG_ARN = "arn:lamina:postgres:us-east-1:000000000000:table/app/public.orders"


def test_open_source_picks_the_implementation_by_arn():
    assert isinstance(open_source(KINESIS_ARN), KinesisSource)
    assert isinstance(open_source(DDB_ARN), DynamoDBStreamsSource)
    pg = open_source(PG_ARN, mapping_uuid="6c1a-77")
    assert isinstance(pg, PostgresSource) and pg.slot == "lamina_6c1a77"
    assert pg.batch_info_key == "DDBStreamBatchInfo" and open_source(KINESIS_ARN).batch_info_key == "KinesisBatchInfo"


@pytest.mark.parametrize("arn", ["arn:aws:sqs:us-east-1:123456789012:q", "nonsense",
                                 "arn:aws:dynamodb:us-east-1:123456789012:table/T",
                                 "arn:lamina:postgres:us-east-1:0:table/app"])
def test_open_source_rejects_what_it_cannot_read(arn):
    with pytest.raises(InvalidParameterValue):
        open_source(arn)


def test_kinesis_record_shape():
    """lambda-spec §8.4: the members Lambda sends, data base64, eventID shard:sequence."""
    raw = {"SequenceNumber": "4959", "PartitionKey": "pk", "Data": b"Hello",
           "ApproximateArrivalTimestamp": datetime.datetime(2018, 12, 17, 22, 10, 50, 987000,
                                                            tzinfo=datetime.timezone.utc)}
    event = kinesis_event(raw, shard="shardId-000000000006", arn=KINESIS_ARN, region="us-east-2",
                          role_arn="arn:aws:iam::123456789012:role/r")
    assert event == {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": "4959",
                    "data": "SGVsbG8=", "approximateArrivalTimestamp": 1545084650.987},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000006:4959",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
        "awsRegion": "us-east-2", "eventSourceARN": KINESIS_ARN,
    }


def test_kinesis_filters_see_the_data_and_metadata_at_the_top():
    """FilterCriteria on a Kinesis mapping address `data` (base64 JSON) and `partitionKey` directly."""
    from lamina.esm.filters import compile_filters
    raw = {"SequenceNumber": "1", "PartitionKey": "eu", "Data": b'{"kind": "order", "total": 12}',
           "ApproximateArrivalTimestamp": 1545084650.987}
    event = kinesis_event(raw, shard="shardId-0", arn=KINESIS_ARN, region="us-east-2", role_arn="r")
    view = KinesisSource.filter_view(event)
    keep = compile_filters(['{"data": {"kind": ["order"], "total": [{"numeric": [">", 10]}]}}'])
    assert keep(view) and not keep(KinesisSource.filter_view({**event, "kinesis": {**event["kinesis"],
                                                                                   "data": "e30="}}))
    assert compile_filters(['{"partitionKey": ["eu"], "eventSource": ["aws:kinesis"]}'])(view)


def test_dynamodb_record_shape():
    """lambda-spec §8.2: boto3's datetime becomes epoch seconds, binary values base64, the ARN is added."""
    raw = {"eventID": "c4ca", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
           "awsRegion": "us-east-1",
           "dynamodb": {"ApproximateCreationDateTime": datetime.datetime(2015, 4, 9, tzinfo=datetime.timezone.utc),
                        "Keys": {"Id": {"N": "101"}},
                        "NewImage": {"Id": {"N": "101"}, "Bin": {"B": b"foobar"}, "Set": {"BS": [b"a"]}},
                        "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    event = dynamodb_event(raw, arn=DDB_ARN, region="us-east-1")
    assert event["dynamodb"]["ApproximateCreationDateTime"] == 1428537600
    assert event["dynamodb"]["NewImage"]["Bin"] == {"B": "Zm9vYmFy"}
    assert event["dynamodb"]["NewImage"]["Set"] == {"BS": ["YQ=="]}
    assert event["eventSourceARN"] == DDB_ARN and event["eventSource"] == "aws:dynamodb"
    json.dumps(event)


def test_iterators_are_reused_only_where_the_last_read_stopped():
    shards = IteratorShards()
    shards.advance("s", "10", "it-1")
    assert shards.iterator("s", "10") == "it-1"
    assert shards.iterator("s", "9") is None  # a retry or restart from elsewhere needs a fresh iterator
    shards.advance("s", "12", None)
    assert shards.iterator("s", "12") is None


def test_children_wait_until_their_parents_are_read_to_the_end():
    shards = IteratorShards()
    shards.update([ShardInfo("p", (), ending_sequence="20"), ShardInfo("c", ("p",))])
    assert shards.ready("p") and not shards.ready("c")
    assert not shards.is_closed("p", "15", False, "it")  # not at its end yet
    assert shards.is_closed("p", "20", True, None)  # last records: closed, but not finished until read empty
    assert not shards.ready("c")
    assert shards.is_closed("p", "20", False, "it")
    assert shards.ready("c")


def test_lsn_and_sequence_numbers():
    assert lsn_to_int("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert int_to_lsn(lsn_to_int("16/B374D848")) == "16/B374D848"
    a, b = sequence(9, 2), sequence(10, 1)
    assert len(a) == 28 and a < b < sequence(10, TXN_END)
    assert parse_sequence(b) == (10, 1)
    with pytest.raises(ValueError):
        parse_sequence("12")


@pytest.mark.parametrize("column,expected", [
    ({"typeoid": 23, "value": 7}, {"N": "7"}),
    ({"typeoid": 1700, "value": None}, {"NULL": True}),
    ({"typeoid": 16, "value": False}, {"BOOL": False}),
    ({"typeoid": 25, "value": "hi"}, {"S": "hi"}),
    ({"typeoid": 17, "value": "0102"}, {"B": "AQI="}),
    ({"typeoid": 3802, "value": '{"a": [1, "x", true, null, {"b": 2.50}]}'},
     {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}, {"BOOL": True}, {"NULL": True}, {"M": {"b": {"N": "2.50"}}}]}}}),
    ({"typeoid": 1184, "value": "2026-11-27 03:00:57+00"}, {"S": "2026-11-27 03:00:57+00"}),
    ({"typeoid": 701, "value": "NaN"}, {"S": "NaN"}),
])
def test_column_values_become_dynamodb_attribute_values(column, expected):
    from decimal import Decimal
    if isinstance(column["value"], int) and not isinstance(column["value"], bool):
        column = {**column, "value": Decimal(column["value"])}
    assert attribute(column) == expected


def _rows() -> list[tuple[str, str]]:
    cols = lambda i, name: [{"name": "id", "typeoid": 23, "value": i}, {"name": "name", "typeoid": 25, "value": name}]  # noqa: E731
    pk = [{"name": "id", "typeoid": 23}]
    ts = "2026-11-27 03:00:57.5+00"
    return [
        ("0/10", json.dumps({"action": "B", "timestamp": ts})),
        ("0/10", json.dumps({"action": "I", "schema": "public", "table": "t", "columns": cols(1, "a"), "pk": pk})),
        ("0/20", json.dumps({"action": "C", "timestamp": ts})),
        ("0/20", json.dumps({"action": "B", "timestamp": ts})),
        ("0/20", json.dumps({"action": "U", "columns": cols(1, "b"), "identity": cols(1, "a"), "pk": pk})),
        ("0/28", json.dumps({"action": "D", "identity": cols(2, "z"), "pk": pk})),
        ("0/30", json.dumps({"action": "C", "timestamp": ts})),
        ("0/30", json.dumps({"action": "B", "timestamp": ts})),
        ("0/40", json.dumps({"action": "C", "timestamp": ts})),  # a transaction on another table
        ("0/40", json.dumps({"action": "B", "timestamp": ts})),
        ("0/40", json.dumps({"action": "I", "columns": cols(3, "c"), "pk": pk})),  # not committed yet
    ]


def test_transactions_in_commit_order_and_the_unfinished_one_left_out():
    txns, cut_short = transactions(_rows())
    assert [(t.commit_lsn, len(t.changes)) for t in txns] == [(0x20, 1), (0x30, 2), (0x40, 0)]
    assert cut_short
    assert txns[0].committed == datetime.datetime(2026, 11, 27, 3, 0, 57, 500000,
                                                  tzinfo=datetime.timezone.utc).timestamp()


def test_records_are_dynamodb_shaped():
    txns, _ = transactions(_rows())
    stream = TableStream(PG_ARN, "us-east-1", "lamina_x")
    records, position, limited = stream.records(txns, after=None, limit=100)
    assert [r.event["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert [r.sequence for r in records] == [sequence(0x20, 1), sequence(0x30, 1), sequence(0x30, 2)]
    assert position == sequence(0x40, TXN_END) and not limited  # past the empty transaction too
    insert, modify, remove = (r.event for r in records)
    assert insert["dynamodb"]["Keys"] == {"id": {"N": "1"}}
    assert insert["dynamodb"]["NewImage"] == {"id": {"N": "1"}, "name": {"S": "a"}}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["name"] == {"S": "a"} and modify["dynamodb"]["NewImage"]["name"] == {"S": "b"}
    assert remove["dynamodb"]["Keys"] == {"id": {"N": "2"}} and "NewImage" not in remove["dynamodb"]
    assert insert["eventSource"] == "lamina:postgres" and insert["eventSourceARN"] == PG_ARN
    assert insert["dynamodb"]["SequenceNumber"] == records[0].sequence
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert records[0].partition_key == json.dumps({"id": {"N": "1"}})
    json.dumps([r.event for r in records])


def test_records_after_a_checkpoint_and_within_a_limit():
    txns, _ = transactions(_rows())
    stream = TableStream(PG_ARN, "us-east-1", "lamina_x")
    records, position, limited = stream.records(txns, after=sequence(0x30, 1), limit=100)
    assert [r.sequence for r in records] == [sequence(0x30, 2)] and position == sequence(0x40, TXN_END)
    records, position, limited = stream.records(txns, after=None, limit=2)
    assert len(records) == 2 and limited and position == records[-1].sequence
    records, position, _ = stream.records(txns, after=sequence(0x40, TXN_END), limit=100)
    assert records == [] and position is None


def test_postgres_arn_and_slot_names():
    assert parse_arn(PG_ARN) == ("us-east-1", "app", "public", "orders")
    assert parse_arn("arn:lamina:postgres:eu-west-1:1:table/db/orders") == ("eu-west-1", "db", "public", "orders")
    with pytest.raises(InvalidParameterValue):
        parse_arn("arn:lamina:postgres:us-east-1:1:table/db/bad-name")
    assert slot_name("app", "public", "orders", "6C1A-77") == "lamina_6c1a77"
    assert slot_name("app", "public", "orders", None) == "lamina_app_public_orders"
    assert len(slot_name("a" * 40, "b" * 40, "c" * 40, None)) <= 63


class _Errors:
    class ExpiredIteratorException(Exception):
        pass

    class TrimmedDataAccessException(Exception):
        pass

    class ResourceNotFoundException(Exception):
        pass


class FakeStreamsClient:
    """A DynamoDB Streams client whose shard `old` has been trimmed past `7` and whose shard `gone` expired."""
    exceptions = _Errors

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.shards = [{"ShardId": "old"}, {"ShardId": "gone"}]

    def describe_stream(self, **kw):
        return {"StreamDescription": {"Shards": self.shards}}

    def get_shard_iterator(self, **kw):
        self.calls.append(("get_shard_iterator", kw))
        if kw["ShardId"] == "gone":
            raise _Errors.ResourceNotFoundException()
        if kw.get("SequenceNumber") == "7":
            raise _Errors.TrimmedDataAccessException()
        return {"ShardIterator": f"it-{kw['ShardIteratorType']}"}

    def get_records(self, **kw):
        record = {"eventID": "e", "eventName": "INSERT", "dynamodb": {"Keys": {"id": {"S": "x"}},
                                                                     "SequenceNumber": "20", "SizeBytes": 1}}
        return {"Records": [record], "NextShardIterator": "it-next"}


class FakeClients:
    def __init__(self, client) -> None:
        self.client = client

    def get(self, service, region):
        return self.client


def _ddb_read(source, shard, after):
    import asyncio
    return asyncio.run(source.read(shard, after=after, starting_position="TRIM_HORIZON",
                                   starting_timestamp=None, limit=10))


def test_dynamodb_checkpoint_past_retention_goes_on_from_the_oldest_record():
    import asyncio
    client = FakeStreamsClient()
    source = DynamoDBStreamsSource(DDB_ARN, clients=FakeClients(client))
    asyncio.run(source.shards())
    got = _ddb_read(source, "old", "7")
    assert [r.sequence for r in got.records] == ["20"]
    assert client.calls[-1] == ("get_shard_iterator", {"StreamArn": DDB_ARN, "ShardId": "old",
                                                       "ShardIteratorType": "TRIM_HORIZON"})


def test_an_expired_shard_no_longer_listed_is_finished_and_a_listed_one_is_an_error():
    import asyncio
    client = FakeStreamsClient()
    source = DynamoDBStreamsSource(DDB_ARN, clients=FakeClients(client))
    asyncio.run(source.shards())
    with pytest.raises(_Errors.ResourceNotFoundException):
        _ddb_read(source, "gone", "3")
    client.shards = [{"ShardId": "old"}]
    asyncio.run(source.shards())
    end = _ddb_read(source, "gone", "3")
    assert list(end.records) == [] and end.closed

"""A Kinesis data stream as a stream source: ListShards, GetShardIterator, GetRecords (boto3, in a thread).

The endpoint is botocore's: AWS_ENDPOINT_URL_KINESIS, then AWS_ENDPOINT_URL, then AWS. Records are shaped
as Lambda delivers them (lambda-spec §8.4).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from typing import Any

from lamina.esm.clients import Clients, arn_account, arn_region, arn_resource
from lamina.esm.contracts import ReadResult, StreamRecord
from lamina.esm.sources.shards import IteratorShards, ShardInfo

MAX_LIMIT = 10000  # GetRecords' Limit


def _epoch(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return float(value)


def kinesis_event(raw: dict[str, Any], *, shard: str, arn: str, region: str, role_arn: str) -> dict[str, Any]:
    """One GetRecords record as an element of the function's event["Records"]."""
    seq = raw["SequenceNumber"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": raw["PartitionKey"],
            "sequenceNumber": seq,
            "data": base64.b64encode(raw["Data"]).decode(),
            "approximateArrivalTimestamp": _epoch(raw["ApproximateArrivalTimestamp"]),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn,
        "awsRegion": region,
        "eventSourceARN": arn,
    }


def filter_view(event: dict[str, Any]) -> dict[str, Any]:
    """What FilterCriteria patterns see of a Kinesis record: the `kinesis` members (`data`, `partitionKey`,
    ...) at the top, beside the record's own metadata (lambda-spec §9.2)."""
    outer = {k: v for k, v in event.items() if k != "kinesis"}
    return {**outer, **event.get("kinesis", {})}


class KinesisSource:
    batch_info_key = "KinesisBatchInfo"
    idle_poll_s = 1.0  # Lambda polls each shard about once a second
    discover_s = 10.0

    filter_view = staticmethod(filter_view)

    def __init__(self, arn: str, *, clients: Clients | None = None) -> None:
        self.arn = arn
        self.region = arn_region(arn)
        self.stream = arn_resource(arn).split("/")[1]
        #: Lambda puts the function's execution role here; lamina has none, so it names one per account.
        self.role_arn = f"arn:aws:iam::{arn_account(arn)}:role/lamina-event-source-mapping"
        self._own_clients = clients is None
        self._clients = clients or Clients()
        self._shards = IteratorShards()

    @property
    def _client(self) -> Any:
        return self._clients.get("kinesis", self.region)

    async def shards(self) -> list[str]:
        return self._shards.update(await asyncio.to_thread(self._list_shards))

    def _list_shards(self) -> list[ShardInfo]:
        out: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            page = self._client.list_shards(**kwargs)
            for shard in page.get("Shards", []):
                parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                out.append(ShardInfo(shard["ShardId"], parents, ending))
            token = page.get("NextToken")
            if not token:
                return out
            kwargs = {"NextToken": token}

    async def read(self, shard: str, *, after: str | None, starting_position: str,
                   starting_timestamp: float | None, limit: int) -> ReadResult:
        if not self._shards.ready(shard):
            return ReadResult((), None)
        return await asyncio.to_thread(self._read, shard, after, starting_position, starting_timestamp, limit)

    def _new_iterator(self, shard: str, after: str | None, position: str, timestamp: float | None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        elif position == "AT_TIMESTAMP":
            kwargs.update(ShardIteratorType="AT_TIMESTAMP",
                          Timestamp=datetime.datetime.fromtimestamp(timestamp or 0, datetime.timezone.utc))
        else:
            kwargs.update(ShardIteratorType=position)
        return str(self._client.get_shard_iterator(**kwargs)["ShardIterator"])

    def _fetch(self, shard: str, after: str | None, position: str, timestamp: float | None,
               limit: int) -> dict[str, Any]:
        iterator = self._shards.iterator(shard, after) or self._new_iterator(shard, after, position, timestamp)
        try:
            return dict(self._client.get_records(ShardIterator=iterator, Limit=max(1, min(limit, MAX_LIMIT))))
        except self._client.exceptions.ExpiredIteratorException:
            self._shards.forget(shard)
            return dict(self._client.get_records(
                ShardIterator=self._new_iterator(shard, after, position, timestamp),
                Limit=max(1, min(limit, MAX_LIMIT))))

    def _read(self, shard: str, after: str | None, position: str, timestamp: float | None,
              limit: int) -> ReadResult:
        try:
            page = self._fetch(shard, after, position, timestamp, limit)
        except self._client.exceptions.ResourceNotFoundException:
            if self._shards.gone(shard):  # expired with the stream's retention
                return ReadResult((), None, closed=True)
            raise
        records = []
        for raw in page.get("Records", []):
            event = kinesis_event(raw, shard=shard, arn=self.arn, region=self.region, role_arn=self.role_arn)
            records.append(StreamRecord(
                sequence=raw["SequenceNumber"], arrival=event["kinesis"]["approximateArrivalTimestamp"],
                event=event, partition_key=raw["PartitionKey"], size=len(json.dumps(event))))
        next_iterator = page.get("NextShardIterator")
        resume = records[-1].sequence if records else after
        self._shards.advance(shard, resume, next_iterator)
        closed = self._shards.is_closed(shard, after, bool(records), next_iterator)
        return ReadResult(records, None, closed=closed)

    async def acknowledge(self, shard: str, sequence: str) -> None:
        return None  # Kinesis keeps no consumer position; the mapping's checkpoint is the position

    async def aclose(self) -> None:
        if self._own_clients:
            self._clients.close()

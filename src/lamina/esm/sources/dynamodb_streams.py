"""A DynamoDB stream as a stream source: DescribeStream, GetShardIterator, GetRecords (boto3, in a thread).

The endpoint is botocore's: AWS_ENDPOINT_URL_DYNAMODB_STREAMS, then AWS_ENDPOINT_URL, then AWS. Records
are shaped as Lambda delivers them (lambda-spec §8.2): boto3's datetimes become epoch seconds and binary
attribute values base64 text.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
from typing import Any

from lamina.esm.clients import Clients, arn_region
from lamina.esm.contracts import ReadResult, StreamRecord
from lamina.esm.sources.shards import IteratorShards, ShardInfo

log = logging.getLogger("lamina.esm.dynamodb_streams")

MAX_LIMIT = 1000  # GetRecords' Limit


def wire_value(value: Any) -> Any:
    """A boto3 attribute value (bytes for B/BS) as JSON: binary as base64 text, maps and lists walked."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [wire_value(v) for v in value]
    return value


def dynamodb_event(raw: dict[str, Any], *, arn: str, region: str) -> dict[str, Any]:
    """One GetRecords record as an element of the function's event["Records"]."""
    body = dict(raw["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime.datetime):
        body["ApproximateCreationDateTime"] = int(created.timestamp())
    event: dict[str, Any] = {
        "eventID": raw.get("eventID"),
        "eventName": raw.get("eventName"),
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion", region),
        "dynamodb": wire_value(body),
        "eventSourceARN": arn,
    }
    if raw.get("userIdentity"):
        event["userIdentity"] = raw["userIdentity"]
    return event


class DynamoDBStreamsSource:
    batch_info_key = "DDBStreamBatchInfo"
    idle_poll_s = 1.0  # Lambda polls each shard about four times a second; once is plenty here
    discover_s = 10.0

    def __init__(self, arn: str, *, clients: Clients | None = None) -> None:
        self.arn = arn
        self.region = arn_region(arn)
        self._own_clients = clients is None
        self._clients = clients or Clients()
        self._shards = IteratorShards()

    @property
    def _client(self) -> Any:
        return self._clients.get("dynamodbstreams", self.region)

    async def shards(self) -> list[str]:
        return self._shards.update(await asyncio.to_thread(self._describe))

    def _describe(self) -> list[ShardInfo]:
        out: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = self._client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                parent = shard.get("ParentShardId")
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                out.append(ShardInfo(shard["ShardId"], (parent,) if parent else (), ending))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return out
            kwargs = {"StreamArn": self.arn, "ExclusiveStartShardId": last}

    async def read(self, shard: str, *, after: str | None, starting_position: str,
                   starting_timestamp: float | None, limit: int) -> ReadResult:
        if not self._shards.ready(shard):
            return ReadResult((), None)
        return await asyncio.to_thread(self._read, shard, after, starting_position, limit)

    def _new_iterator(self, shard: str, after: str | None, position: str) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs.update(ShardIteratorType="LATEST" if position == "LATEST" else "TRIM_HORIZON")
        return str(self._client.get_shard_iterator(**kwargs)["ShardIterator"])

    def _fetch(self, shard: str, after: str | None, position: str, limit: int) -> dict[str, Any]:
        iterator = self._shards.iterator(shard, after) or self._new_iterator(shard, after, position)
        try:
            return dict(self._client.get_records(ShardIterator=iterator, Limit=max(1, min(limit, MAX_LIMIT))))
        except self._client.exceptions.ExpiredIteratorException:
            self._shards.forget(shard)
            return dict(self._client.get_records(ShardIterator=self._new_iterator(shard, after, position),
                                                 Limit=max(1, min(limit, MAX_LIMIT))))

    def _read(self, shard: str, after: str | None, position: str, limit: int) -> ReadResult:
        try:
            page = self._fetch(shard, after, position, limit)
        except self._client.exceptions.TrimmedDataAccessException:
            # The checkpoint is older than the stream keeps (24 h): go on from the oldest record there is.
            log.warning("esm_stream_trimmed source=%s shard=%s after=%s", self.arn, shard, after)
            self._shards.forget(shard)
            page = self._fetch(shard, None, "TRIM_HORIZON", limit)
        except self._client.exceptions.ResourceNotFoundException:
            if self._shards.gone(shard):
                return ReadResult((), None, closed=True)
            raise
        records = []
        for raw in page.get("Records", []):
            event = dynamodb_event(raw, arn=self.arn, region=self.region)
            keys = event["dynamodb"].get("Keys") or {}
            records.append(StreamRecord(
                sequence=event["dynamodb"]["SequenceNumber"],
                arrival=float(event["dynamodb"].get("ApproximateCreationDateTime") or 0),
                event=event, partition_key=json.dumps(keys, sort_keys=True), size=len(json.dumps(event))))
        next_iterator = page.get("NextShardIterator")
        resume = records[-1].sequence if records else after
        self._shards.advance(shard, resume, next_iterator)
        closed = self._shards.is_closed(shard, after, bool(records), next_iterator)
        return ReadResult(records, None, closed=closed)

    async def acknowledge(self, shard: str, sequence: str) -> None:
        return None  # DynamoDB Streams keep no consumer position; the mapping's checkpoint is the position

    async def aclose(self) -> None:
        if self._own_clients:
            self._clients.close()

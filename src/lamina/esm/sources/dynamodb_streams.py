"""A DynamoDB stream as a stream source: DescribeStream, GetShardIterator, GetRecords (boto3, in a thread).

The endpoint is botocore's: AWS_ENDPOINT_URL_DYNAMODB_STREAMS, then AWS_ENDPOINT_URL, then AWS. Records
are shaped as Lambda delivers them (lambda-spec §8.2): boto3's datetimes become epoch seconds and binary
attribute values base64 text.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
from typing import Any

from lamina.esm.contracts import StreamRecord
from lamina.esm.sources.shards import IteratorStreamSource, ShardInfo

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


class DynamoDBStreamsSource(IteratorStreamSource):
    service = "dynamodbstreams"
    max_limit = MAX_LIMIT
    batch_info_key = "DDBStreamBatchInfo"
    idle_poll_s = 1.0  # Lambda polls each shard about four times a second; once is plenty here
    discover_s = 10.0

    def _list_shards(self) -> list[ShardInfo]:
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

    def _iterator_request(self, shard: str, after: str | None, position: str,
                          timestamp: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs.update(ShardIteratorType="LATEST" if position == "LATEST" else "TRIM_HORIZON")
        return kwargs

    def _page(self, shard: str, after: str | None, position: str, timestamp: float | None,
              limit: int) -> dict[str, Any]:
        try:
            return self._fetch(shard, after, position, timestamp, limit)
        except self._client.exceptions.TrimmedDataAccessException:
            # The checkpoint is older than the stream keeps (24 h): go on from the oldest record there is.
            log.warning("esm_stream_trimmed source=%s shard=%s after=%s", self.arn, shard, after)
            self._shards.forget(shard)
            return self._fetch(shard, None, "TRIM_HORIZON", None, limit)

    def _record(self, raw: dict[str, Any], shard: str) -> StreamRecord:
        event = dynamodb_event(raw, arn=self.arn, region=self.region)
        keys = event["dynamodb"].get("Keys") or {}
        return StreamRecord(
            sequence=event["dynamodb"]["SequenceNumber"],
            arrival=float(event["dynamodb"].get("ApproximateCreationDateTime") or 0),
            event=event, partition_key=json.dumps(keys, sort_keys=True), size=len(json.dumps(event)))

"""A Kinesis data stream as a stream source: ListShards, GetShardIterator, GetRecords (boto3, in a thread).

The endpoint is botocore's: AWS_ENDPOINT_URL_KINESIS, then AWS_ENDPOINT_URL, then AWS. Records are shaped
as Lambda delivers them (lambda-spec §8.4).
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from lamina.esm.clients import Clients, arn_account, arn_resource
from lamina.esm.contracts import StreamRecord
from lamina.esm.sources.shards import IteratorStreamSource, ShardInfo

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


class KinesisSource(IteratorStreamSource):
    service = "kinesis"
    max_limit = MAX_LIMIT
    batch_info_key = "KinesisBatchInfo"
    idle_poll_s = 1.0  # Lambda polls each shard about once a second
    discover_s = 10.0

    filter_view = staticmethod(filter_view)

    def __init__(self, arn: str, *, clients: Clients | None = None) -> None:
        super().__init__(arn, clients=clients)
        self.stream = arn_resource(arn).split("/")[1]
        #: Lambda puts the function's execution role here; lamina has none, so it names one per account.
        self.role_arn = f"arn:aws:iam::{arn_account(arn)}:role/lamina-event-source-mapping"

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

    def _iterator_request(self, shard: str, after: str | None, position: str,
                          timestamp: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        elif position == "AT_TIMESTAMP":
            kwargs.update(ShardIteratorType="AT_TIMESTAMP",
                          Timestamp=datetime.datetime.fromtimestamp(timestamp or 0, datetime.timezone.utc))
        else:
            kwargs.update(ShardIteratorType=position)
        return kwargs

    def _record(self, raw: dict[str, Any], shard: str) -> StreamRecord:
        event = kinesis_event(raw, shard=shard, arn=self.arn, region=self.region, role_arn=self.role_arn)
        return StreamRecord(sequence=raw["SequenceNumber"], arrival=event["kinesis"]["approximateArrivalTimestamp"],
                            event=event, partition_key=raw["PartitionKey"], size=len(json.dumps(event)))

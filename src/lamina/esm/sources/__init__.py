"""Stream sources by ARN: Kinesis streams, DynamoDB streams, and lamina's PostgreSQL table changes.

`open_source(arn)` picks the implementation from the ARN's service:
  arn:aws:kinesis:<region>:<account>:stream/<name>                 -> kinesis.KinesisSource
  arn:aws:dynamodb:<region>:<account>:table/<t>/stream/<label>     -> dynamodb_streams.DynamoDBStreamsSource
  arn:lamina:postgres:<region>:<account>:table/<db>/<schema>.<tbl> -> postgres.PostgresSource
"""

from __future__ import annotations

from lamina.errors import InvalidParameterValue
from lamina.esm.contracts import StreamSource


def open_source(arn: str, *, mapping_uuid: str | None = None) -> StreamSource:
    """The source behind `arn`; InvalidParameterValue for an ARN no source here can serve.

    `mapping_uuid` names the PostgreSQL replication slot (one slot per mapping); without it the slot is
    named after the table. AWS sources ignore it. Opening does no I/O: an unreachable source shows up in
    the first read.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6:
        raise InvalidParameterValue(f"Unrecognized event source: {arn}")
    _, partition, service, _region, _account, resource = parts
    if service == "kinesis" and resource.startswith("stream/"):
        from lamina.esm.sources.kinesis import KinesisSource
        return KinesisSource(arn)
    if service == "dynamodb" and "/stream/" in resource:
        from lamina.esm.sources.dynamodb_streams import DynamoDBStreamsSource
        return DynamoDBStreamsSource(arn)
    if partition == "lamina" and service == "postgres" and resource.startswith("table/"):
        from lamina.esm.sources.postgres import PostgresSource
        return PostgresSource(arn, mapping_uuid=mapping_uuid)
    raise InvalidParameterValue(f"Unrecognized event source: {arn}")

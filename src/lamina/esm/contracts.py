"""The seams between the event-source-mapping parts, so each side can be built and tested alone.

A stream source (Kinesis, DynamoDB Streams, PostgreSQL logical decoding) is a set of shards, each an
ordered sequence of records with string sequence numbers. The shard poller (stream.py) owns batching,
ordering, retries, bisecting and checkpoints; the source only lists shards and reads records. The mapping
manager (manager.py) owns storage, the API's view of a mapping, and the callables the pollers use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class StreamRecord:
    sequence: str  # the source's sequence number for this record (checkpoint value)
    arrival: float  # epoch seconds the record entered the source (for MaximumRecordAgeInSeconds)
    event: dict[str, Any]  # the record exactly as it appears in the function's event["Records"]
    partition_key: str | None = None  # groups records for ParallelizationFactor > 1
    size: int = 0  # bytes of the serialised record (batches stop at 6 MB)


@dataclasses.dataclass(frozen=True, slots=True)
class ReadResult:
    records: Sequence[StreamRecord]
    position: str | None  # an opaque resume position after these records (None: nothing new to resume from)
    closed: bool = False  # the shard has ended (split/merged) and every record has been read


class StreamSource(Protocol):
    """One stream: its shards and their records. Implementations: sources/*.py.

    Optional members the shard poller uses when a source has them: `idle_poll_s` (seconds between reads
    of an idle shard; default 1), `discover_s` (seconds between shard listings; default 10),
    `filter_view(event) -> dict` (what FilterCriteria patterns see of a record) and `bind_mapping(uuid)`
    (called once with the mapping's UUID before any read, e.g. to name a replication slot)."""

    arn: str
    batch_info_key: str  # "KinesisBatchInfo" or "DDBStreamBatchInfo" in on-failure records

    async def shards(self) -> Sequence[str]: ...

    async def read(self, shard: str, *, after: str | None, starting_position: str,
                   starting_timestamp: float | None, limit: int) -> ReadResult:
        """Records of `shard` after checkpoint `after` (a sequence number or position this source gave);
        with `after` None, start at `starting_position` (TRIM_HORIZON | LATEST | AT_TIMESTAMP)."""
        ...

    async def acknowledge(self, shard: str, sequence: str) -> None:
        """Told after a checkpoint is stored (PostgreSQL advances its slot here; AWS streams do nothing)."""
        ...

    async def aclose(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class InvokeOutcome:
    status: int  # the Invoke API's status: 200 ok, 429 throttled, 5xx service trouble
    function_error: str | None  # "Unhandled" / "Handled" when the function failed
    payload: bytes  # the function's response (for ReportBatchItemFailures)
    executed_version: str = "$LATEST"
    request_id: str = ""


#: Invoke the mapping's function synchronously with one batch event (the JSON bytes of {"Records": [...]}).
Invoke = Callable[[bytes], Awaitable[InvokeOutcome]]
#: Send an on-failure record (a JSON-able dict) to the mapping's DestinationConfig.OnFailure destination.
SendFailure = Callable[[dict[str, Any]], Awaitable[None]]
#: Durable checkpoints: load(shard) -> last stored sequence/position or None; save(shard, value).
LoadCheckpoint = Callable[[str], Awaitable[str | None]]
SaveCheckpoint = Callable[[str, str], Awaitable[None]]
#: A compiled FilterCriteria: True keeps the record (given the record's event dict).
RecordFilter = Callable[[dict[str, Any]], bool]

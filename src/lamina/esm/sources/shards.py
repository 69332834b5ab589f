"""What Kinesis and DynamoDB Streams share: shard iterators kept between reads, children after parents, and
the reading itself (`IteratorStreamSource`).

Both services read a shard through an iterator (GetShardIterator, then GetRecords returning the next one).
`IteratorShards` keeps the latest iterator of each shard together with the sequence number it resumes
after, so the poller's `read(after=...)` reuses it when it continues where the last read stopped and asks
for a fresh AFTER_SEQUENCE_NUMBER iterator otherwise (a restart, a retry). A shard created by a split or
merge is not read until its parents have been read to their end (`ready`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from lamina.esm.clients import Clients, arn_region
from lamina.esm.contracts import ReadResult, StreamRecord


@dataclasses.dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...] = ()
    ending_sequence: str | None = None  # set once the shard is closed (split, merged, or the stream disabled)


def at_or_after(sequence: str | None, ending: str) -> bool:
    """`sequence` has reached a closed shard's last sequence number (numbers compared as integers)."""
    if sequence is None:
        return False
    try:
        return int(sequence) >= int(ending)
    except ValueError:
        return sequence >= ending


class IteratorShards:
    def __init__(self) -> None:
        self.known: dict[str, ShardInfo] = {}
        self.listed: set[str] = set()  # the shards the last listing named
        self.finished: set[str] = set()
        self._iterators: dict[str, tuple[str | None, str]] = {}  # shard -> (after, iterator)

    def update(self, shards: list[ShardInfo]) -> list[str]:
        """Record the listed shards; the ids in the order the service listed them (parents first)."""
        for info in shards:
            self.known[info.shard_id] = info
        self.listed = {info.shard_id for info in shards}
        return [info.shard_id for info in shards]

    def ready(self, shard: str) -> bool:
        """True when every listed parent of `shard` has been read to its end."""
        info = self.known.get(shard)
        if info is None:
            return True
        return all(p in self.finished or p not in self.known for p in info.parents)

    def iterator(self, shard: str, after: str | None) -> str | None:
        kept = self._iterators.get(shard)
        return kept[1] if kept is not None and kept[0] == after else None

    def advance(self, shard: str, after: str | None, next_iterator: str | None) -> None:
        if next_iterator is None:
            self._iterators.pop(shard, None)
        else:
            self._iterators[shard] = (after, next_iterator)

    def forget(self, shard: str) -> None:
        self._iterators.pop(shard, None)

    def gone(self, shard: str) -> bool:
        """A shard the service no longer knows (past the stream's retention): finished, if it is no longer
        listed; False while it is (then the error is real and the read is retried)."""
        if self.known and shard not in self.listed:
            self.finished.add(shard)
            self._iterators.pop(shard, None)
            return True
        return False

    def is_closed(self, shard: str, after: str | None, got_records: bool, next_iterator: str | None) -> bool:
        """The shard is closed and read to its end (then its children may start)."""
        info = self.known.get(shard)
        closed = next_iterator is None or (
            not got_records and info is not None and info.ending_sequence is not None
            and (after is None or at_or_after(after, info.ending_sequence)))
        if closed and not got_records:
            self.finished.add(shard)
        return closed


class IteratorStreamSource:
    """A stream source read through shard iterators (Kinesis, DynamoDB Streams): shards found by listing
    (`_list_shards`), records through GetRecords with the iterator renewed when it expires, each raw record
    made a StreamRecord by `_record`. Neither service keeps a consumer position: the mapping's checkpoint
    is the position. boto3 calls run in a thread."""

    service: str  #: botocore's client name
    max_limit: int  #: GetRecords' Limit

    def __init__(self, arn: str, *, clients: Clients | None = None) -> None:
        self.arn = arn
        self.region = arn_region(arn)
        self._own_clients = clients is None
        self._clients = clients or Clients()
        self._shards = IteratorShards()

    @property
    def _client(self) -> Any:
        return self._clients.get(self.service, self.region)

    async def shards(self) -> list[str]:
        return self._shards.update(await asyncio.to_thread(self._list_shards))

    def _list_shards(self) -> list[ShardInfo]:
        raise NotImplementedError

    def _iterator_request(self, shard: str, after: str | None, position: str,
                          timestamp: float | None) -> dict[str, Any]:
        """GetShardIterator's arguments: after `after`, else from the mapping's starting position."""
        raise NotImplementedError

    def _record(self, raw: dict[str, Any], shard: str) -> StreamRecord:
        raise NotImplementedError

    async def read(self, shard: str, *, after: str | None, starting_position: str,
                   starting_timestamp: float | None, limit: int) -> ReadResult:
        if not self._shards.ready(shard):
            return ReadResult((), None)
        return await asyncio.to_thread(self._read, shard, after, starting_position, starting_timestamp, limit)

    def _new_iterator(self, shard: str, after: str | None, position: str, timestamp: float | None) -> str:
        request = self._iterator_request(shard, after, position, timestamp)
        return str(self._client.get_shard_iterator(**request)["ShardIterator"])

    def _fetch(self, shard: str, after: str | None, position: str, timestamp: float | None,
               limit: int) -> dict[str, Any]:
        iterator = self._shards.iterator(shard, after) or self._new_iterator(shard, after, position, timestamp)
        limit = max(1, min(limit, self.max_limit))
        try:
            return dict(self._client.get_records(ShardIterator=iterator, Limit=limit))
        except self._client.exceptions.ExpiredIteratorException:
            self._shards.forget(shard)
            fresh = self._new_iterator(shard, after, position, timestamp)
            return dict(self._client.get_records(ShardIterator=fresh, Limit=limit))

    def _page(self, shard: str, after: str | None, position: str, timestamp: float | None,
              limit: int) -> dict[str, Any]:
        return self._fetch(shard, after, position, timestamp, limit)

    def _read(self, shard: str, after: str | None, position: str, timestamp: float | None,
              limit: int) -> ReadResult:
        try:
            page = self._page(shard, after, position, timestamp, limit)
        except self._client.exceptions.ResourceNotFoundException:
            if self._shards.gone(shard):  # expired with the stream's retention
                return ReadResult((), None, closed=True)
            raise
        records = [self._record(raw, shard) for raw in page.get("Records", [])]
        next_iterator = page.get("NextShardIterator")
        resume = records[-1].sequence if records else after
        self._shards.advance(shard, resume, next_iterator)
        closed = self._shards.is_closed(shard, after, bool(records), next_iterator)
        return ReadResult(records, None, closed=closed)

    async def acknowledge(self, shard: str, sequence: str) -> None:
        return None  # the service keeps no consumer position; the mapping's checkpoint is the position

    async def aclose(self) -> None:
        if self._own_clients:
            self._clients.close()

"""What Kinesis and DynamoDB Streams share: shard iterators kept between reads, and children after parents.

Both services read a shard through an iterator (GetShardIterator, then GetRecords returning the next one).
`IteratorShards` keeps the latest iterator of each shard together with the sequence number it resumes
after, so the poller's `read(after=...)` reuses it when it continues where the last read stopped and asks
for a fresh AFTER_SEQUENCE_NUMBER iterator otherwise (a restart, a retry). A shard created by a split or
merge is not read until its parents have been read to their end (`ready`).
"""

from __future__ import annotations

import dataclasses


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

"""The shard poller: ordered batches per shard, checkpoint after success, retries, bisect, record age.

Theory of operation. `StreamPoller.run` lists the source's shards now and then and runs one task per shard.
A shard task works in rounds: it reads up to BatchSize × ParallelizationFactor records (waiting up to
MaximumBatchingWindowInSeconds for more), drops the ones the filter rejects, splits the rest into
ParallelizationFactor partition-key groups (order kept inside each group) and runs the groups at once, each
one batch at a time. The checkpoint moves to the end of the longest finished prefix of the round (a record
is finished when the function took it, when it was filtered out, or when it was discarded with an
on-failure record), so a restart repeats at most the batches in flight. The next round starts only when
the whole round is finished: a failing batch blocks its shard, as on Lambda, until it succeeds or a limit
(MaximumRetryAttempts, MaximumRecordAgeInSeconds) discards it.

What to do after an invocation is decided by the pure `decide` (no I/O, unit-tested alone); the poller
only carries the decision out.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import json
import logging
import uuid as uuidlib
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lamina.clock import Clock
from lamina.esm.contracts import (
    Invoke, InvokeOutcome, LoadCheckpoint, ReadResult, RecordFilter, SaveCheckpoint, SendFailure,
    StreamRecord, StreamSource,
)

log = logging.getLogger("lamina.esm.stream")

#: A batch's event stops growing at Lambda's 6 MB invocation payload (less the {"Records":[…]} wrapper).
MAX_BATCH_BYTES = 6 * 1024 * 1024 - 1024
#: Default idle poll interval (Lambda polls each shard about once a second); a source may set `idle_poll_s`.
IDLE_POLL_S = 1.0
#: How often the shard list is read again (new shards after a split or merge); a source may set `discover_s`.
DISCOVER_S = 10.0

Sleep = Callable[[float], Awaitable[None]]


# ---------------------------------------------------------------------------------------------------------
# Pure decisions


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    bisect: bool = False
    max_retries: int = -1  # -1: retry until the records expire
    max_age_s: int = -1  # -1: records never age out
    report_item_failures: bool = False
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, times: int) -> float:
        """Backoff before the `times`-th retry in a row."""
        return min(self.base_delay_s * 2 ** min(max(times - 1, 0), 30), self.max_delay_s)

    def exhausted(self, failures: int) -> bool:
        return self.max_retries >= 0 and failures > self.max_retries


@dataclasses.dataclass(frozen=True, slots=True)
class Pending:
    """A batch waiting to be (re)invoked."""
    records: tuple[StreamRecord, ...]
    failures: int = 0  # function errors so far (count toward MaximumRetryAttempts; bisecting does not)
    invokes: int = 0  # invocations so far (the on-failure record's approximateInvokeCount)
    stalls: int = 0  # throttles / service errors in a row (backoff only, never counted)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What follows one invocation: `completed` leading records are finished; then either the rest is
    retried as `retry` (in order) or discarded (`discard`, with an on-failure record for `condition`)."""
    completed: int = 0
    retry: tuple[Pending, ...] = ()
    discard: tuple[StreamRecord, ...] = ()
    condition: str = ""
    delay_s: float = 0.0
    result: str = "OK"  # the mapping's LastProcessingResult


def first_failed_item(payload: bytes, sequences: Sequence[str]) -> int | None:
    """The index of the lowest record a ReportBatchItemFailures response names; None when the batch succeeded.

    An empty or null list, or a response without one, is a success; a response that is not JSON, or an
    item without a known identifier, fails the whole batch (index 0), as Lambda does."""
    try:
        body = json.loads(payload) if payload.strip() else None
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return None
    items = body.get("batchItemFailures")
    if not items:
        return None
    if not isinstance(items, list):
        return 0
    index = {seq: i for i, seq in enumerate(sequences)}
    lowest = len(sequences)
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in index:
            return 0
        lowest = min(lowest, index[ident])
    return lowest


def problem(status: int) -> str:
    if status == 429:
        return "PROBLEM: Function call throttled"
    if status == 404:
        return "PROBLEM: Function does not exist"
    return "PROBLEM: Lambda internal error. Please contact Lambda customer support."


def decide(batch: Pending, outcome: InvokeOutcome, policy: RetryPolicy) -> Decision:
    """Retry, bisect, partly complete or discard `batch` after `outcome`."""
    invokes = batch.invokes + 1
    if outcome.status != 200:
        stalls = batch.stalls + 1
        again = dataclasses.replace(batch, invokes=invokes, stalls=stalls)
        return Decision(retry=(again,), delay_s=policy.delay(stalls), result=problem(outcome.status))
    done = 0
    if outcome.function_error is None:
        if not policy.report_item_failures:
            return Decision(completed=len(batch.records))
        first = first_failed_item(outcome.payload, [r.sequence for r in batch.records])
        if first is None:
            return Decision(completed=len(batch.records))
        done = first
        result = "OK"
    else:
        result = "PROBLEM: Function call failed"
    rest = batch.records[done:]
    if outcome.function_error is not None and policy.bisect and len(rest) > 1:
        mid = len(rest) // 2
        halves = (Pending(rest[:mid], batch.failures, invokes), Pending(rest[mid:], batch.failures, invokes))
        return Decision(retry=halves, result=result)
    failures = batch.failures + 1
    if policy.exhausted(failures):
        return Decision(completed=done, discard=rest, condition="RetryAttemptsExhausted", result=result)
    return Decision(completed=done, retry=(Pending(rest, failures, invokes),), delay_s=policy.delay(failures),
                    result=result)


def split_aged(batch: Pending, now: float, max_age_s: int) -> tuple[tuple[StreamRecord, ...], Pending]:
    """The leading records older than MaximumRecordAgeInSeconds, and the batch without them."""
    if max_age_s < 0:
        return (), batch
    n = 0
    while n < len(batch.records) and now - batch.records[n].arrival > max_age_s:
        n += 1
    if n == 0:
        return (), batch
    return batch.records[:n], dataclasses.replace(batch, records=batch.records[n:])


def batches(records: Sequence[StreamRecord], batch_size: int,
            max_bytes: int = MAX_BATCH_BYTES) -> list[tuple[StreamRecord, ...]]:
    """Consecutive batches of at most `batch_size` records and `max_bytes` (a bigger record goes alone)."""
    out: list[tuple[StreamRecord, ...]] = []
    cur: list[StreamRecord] = []
    size = 0
    for rec in records:
        if cur and (len(cur) >= batch_size or size + rec.size > max_bytes):
            out.append(tuple(cur))
            cur, size = [], 0
        cur.append(rec)
        size += rec.size
    if cur:
        out.append(tuple(cur))
    return out


def groups(records: Sequence[StreamRecord], factor: int) -> list[list[StreamRecord]]:
    """ParallelizationFactor groups by partition-key hash, each keeping the shard's order."""
    if factor <= 1:
        return [list(records)] if records else []
    out: dict[int, list[StreamRecord]] = {}
    for rec in records:
        key = zlib.crc32((rec.partition_key or "").encode()) % factor
        out.setdefault(key, []).append(rec)
    return list(out.values())


def _iso(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_record(*, source_arn: str, batch_info_key: str, function_arn: str, shard: str,
                   records: Sequence[StreamRecord], condition: str, invokes: int,
                   outcome: InvokeOutcome | None, now: float, request_id: str) -> dict[str, Any]:
    """The on-failure destination's record for discarded `records` (lambda-spec §9.3); records not included."""
    response: dict[str, Any] = {}
    if outcome is not None:
        response = {"statusCode": outcome.status, "executedVersion": outcome.executed_version,
                    "functionError": outcome.function_error}
    return {
        "requestContext": {"requestId": request_id, "functionArn": function_arn, "condition": condition,
                           "approximateInvokeCount": invokes},
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(now),
        batch_info_key: {
            "shardId": shard,
            "startSequenceNumber": records[0].sequence,
            "endSequenceNumber": records[-1].sequence,
            "approximateArrivalOfFirstRecord": _iso(records[0].arrival),
            "approximateArrivalOfLastRecord": _iso(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": source_arn,
        },
    }


# ---------------------------------------------------------------------------------------------------------
# Plumbing


def _same(event: dict[str, Any]) -> dict[str, Any]:
    return event


class _Round:
    """One round's records and how far the finished prefix reaches (the checkpoint may move that far)."""

    def __init__(self, records: Sequence[StreamRecord]) -> None:
        self.records = list(records)
        self._index = {r.sequence: i for i, r in enumerate(self.records)}
        self._done = [False] * len(self.records)
        self.prefix = 0

    def finish(self, records: Sequence[StreamRecord]) -> bool:
        """Mark `records` finished; True when the finished prefix grew."""
        for rec in records:
            self._done[self._index[rec.sequence]] = True
        before = self.prefix
        while self.prefix < len(self._done) and self._done[self.prefix]:
            self.prefix += 1
        return self.prefix > before


class _Shard:
    def __init__(self, shard: str, checkpoint: str | None) -> None:
        self.id = shard
        self.saved = checkpoint
        self.lock = asyncio.Lock()


class StreamPoller:
    """Reads every shard of `source` in order and invokes the function with batches (see module docstring)."""

    def __init__(self, *, uuid: str, source: StreamSource, invoke: Invoke, send_failure: SendFailure | None,
                 load_checkpoint: LoadCheckpoint, save_checkpoint: SaveCheckpoint,
                 record_filter: RecordFilter | None, batch_size: int, batching_window_s: float,
                 starting_position: str, starting_timestamp: float | None, parallelization_factor: int,
                 bisect_on_error: bool, maximum_retry_attempts: int, maximum_record_age_s: int,
                 report_batch_item_failures: bool, function_arn: str, clock: Clock,
                 on_result: Callable[[str], None] | None = None, sleep: Sleep | None = None) -> None:
        self.uuid = uuid
        self._source = source
        self._invoke = invoke
        self._send_failure = send_failure
        self._load = load_checkpoint
        self._save = save_checkpoint
        self._filter = record_filter
        self._batch_size = max(1, batch_size)
        self._window_s = max(0.0, batching_window_s)
        self._starting_position = starting_position
        self._starting_timestamp = starting_timestamp
        self._factor = max(1, parallelization_factor)
        self._policy = RetryPolicy(bisect=bisect_on_error, max_retries=maximum_retry_attempts,
                                   max_age_s=maximum_record_age_s, report_item_failures=report_batch_item_failures)
        self._function_arn = function_arn
        self._clock = clock
        self._on_result = on_result
        self._sleep: Sleep = sleep or asyncio.sleep
        self._idle_s = float(getattr(source, "idle_poll_s", IDLE_POLL_S))
        self._discover_s = float(getattr(source, "discover_s", DISCOVER_S))
        self._last_result: str | None = None
        # Optional source hook: what filter patterns see of a record (Kinesis lifts its `kinesis` members).
        self._filter_view: Callable[[dict[str, Any]], dict[str, Any]] = getattr(source, "filter_view", _same)
        # Optional source hook: a source keeping per-mapping state at the far end (PostgreSQL's replication
        # slot) learns whose it is.
        bind = getattr(source, "bind_mapping", None)
        if bind is not None:
            bind(uuid)

    async def run(self) -> None:
        """Poll until cancelled. Each shard runs in its own task; a shard ends when it is closed and read."""
        started: set[str] = set()
        async with asyncio.TaskGroup() as tasks:
            stalls = 0
            while True:
                try:
                    shards = await self._source.shards()
                    stalls = 0
                except Exception as exc:  # noqa: BLE001 - an unreachable source is reported and retried
                    stalls += 1
                    self._source_problem("list_shards", exc)
                    await self._sleep(self._policy.delay(stalls))
                    continue
                for shard in shards:
                    if shard not in started:
                        started.add(shard)
                        tasks.create_task(self._run_shard(shard), name=f"esm-{self.uuid}-{shard}")
                await self._sleep(self._discover_s)

    async def aclose(self) -> None:
        """Release the source (the caller cancels `run` first). Checkpoints already stored stay."""
        await self._source.aclose()

    # -- one shard --------------------------------------------------------------------------------------

    async def _run_shard(self, shard_id: str) -> None:
        shard = _Shard(shard_id, await self._load(shard_id))
        after = shard.saved
        while True:
            records, position, closed = await self._gather(shard_id, after)
            if not records:
                if closed:
                    log.info("esm_shard_finished mapping=%s shard=%s", self.uuid, shard_id)
                    return
                if position is not None and position != after:
                    await self._checkpoint(shard, position)
                    after = position
                    continue
                await self._sleep(self._idle_s)
                continue
            await self._run_round(shard, records)
            final = position if position is not None else records[-1].sequence
            if final != shard.saved:
                await self._checkpoint(shard, final)
            after = final

    async def _gather(self, shard: str, after: str | None) -> tuple[list[StreamRecord], str | None, bool]:
        """Read up to BatchSize × ParallelizationFactor records, waiting up to the batching window for more."""
        limit = self._batch_size * self._factor
        max_bytes = MAX_BATCH_BYTES * self._factor
        deadline = self._clock.monotonic() + self._window_s
        records: list[StreamRecord] = []
        size = 0
        position: str | None = None
        while True:
            result = await self._read(shard, after, limit - len(records))
            records.extend(result.records)
            size += sum(r.size for r in result.records)
            if result.position is not None:
                position = result.position
            elif result.records:
                position = None
            if result.records or result.position is not None:
                after = result.position if result.position is not None else result.records[-1].sequence
            remaining = deadline - self._clock.monotonic()
            if result.closed or len(records) >= limit or size >= max_bytes or remaining <= 0 or not records:
                return records, position, result.closed
            if not result.records:
                await self._sleep(min(self._idle_s, remaining))

    async def _read(self, shard: str, after: str | None, limit: int) -> ReadResult:
        stalls = 0
        while True:
            try:
                return await self._source.read(
                    shard, after=after, starting_position=self._starting_position,
                    starting_timestamp=self._starting_timestamp, limit=limit)
            except Exception as exc:  # noqa: BLE001 - an unreachable source is reported and retried
                stalls += 1
                self._source_problem("read", exc)
                await self._sleep(self._policy.delay(stalls))

    async def _run_round(self, shard: _Shard, records: list[StreamRecord]) -> None:
        current = _Round(records)
        kept, skipped = records, []
        if self._filter is not None:
            flags = [self._filter(self._filter_view(r.event)) for r in records]
            kept = [r for r, keep in zip(records, flags) if keep]
            skipped = [r for r, keep in zip(records, flags) if not keep]
        if skipped:
            await self._finished(shard, current, skipped)
        await asyncio.gather(*(self._run_group(shard, current, group) for group in groups(kept, self._factor)))

    async def _run_group(self, shard: _Shard, current: _Round, records: list[StreamRecord]) -> None:
        queue = collections.deque(Pending(b) for b in batches(records, self._batch_size))
        while queue:
            batch = queue.popleft()
            aged, batch = split_aged(batch, self._clock.time(), self._policy.max_age_s)
            if aged:
                await self._discard(shard.id, aged, "RecordAgeExceeded", batch.invokes, None)
                await self._finished(shard, current, aged)
            if not batch.records:
                continue
            outcome = await self._call(batch.records)
            decision = decide(batch, outcome, self._policy)
            self._report(decision.result)
            if decision.completed:
                await self._finished(shard, current, batch.records[:decision.completed])
            if decision.discard:
                await self._discard(shard.id, decision.discard, decision.condition, batch.invokes + 1, outcome)
                await self._finished(shard, current, decision.discard)
            queue.extendleft(reversed(decision.retry))
            if decision.delay_s > 0:
                await self._sleep(decision.delay_s)

    async def _call(self, records: Sequence[StreamRecord]) -> InvokeOutcome:
        event = json.dumps({"Records": [r.event for r in records]}, separators=(",", ":")).encode()
        try:
            return await self._invoke(event)
        except Exception as exc:  # noqa: BLE001 - lamina's own failure: retried like a 5xx, never counted
            log.warning("esm_invoke_error mapping=%s error=%r", self.uuid, exc)
            return InvokeOutcome(status=500, function_error=None, payload=b"")

    async def _discard(self, shard: str, records: Sequence[StreamRecord], condition: str, invokes: int,
                       outcome: InvokeOutcome | None) -> None:
        """Log the discarded records and send their on-failure record (when the mapping has a destination)."""
        record = failure_record(
            source_arn=self._source.arn, batch_info_key=self._source.batch_info_key,
            function_arn=self._function_arn, shard=shard, records=records, condition=condition,
            invokes=invokes, outcome=outcome, now=self._clock.time(),
            request_id=(outcome.request_id if outcome and outcome.request_id else str(uuidlib.uuid4())))
        log.info("esm_batch_discarded mapping=%s shard=%s condition=%s records=%d first=%s",
                 self.uuid, shard, condition, len(records), records[0].sequence)
        if self._send_failure is not None:
            await self._send_failure(record)

    async def _finished(self, shard: _Shard, current: _Round, records: Sequence[StreamRecord]) -> None:
        """Mark records finished; move the checkpoint inside the round (its end is stored by `_run_shard`)."""
        if current.finish(records):
            # Read the prefix under the lock: concurrent groups then store checkpoints in increasing order.
            await self._checkpoint(shard, lambda: (current.records[current.prefix - 1].sequence
                                                   if current.prefix < len(current.records) else None))

    async def _checkpoint(self, shard: _Shard, value: str | Callable[[], str | None]) -> None:
        async with shard.lock:
            target = value() if callable(value) else value
            if target is None or target == shard.saved:
                return
            await self._save(shard.id, target)
            shard.saved = target
            await self._source.acknowledge(shard.id, target)

    def _report(self, result: str) -> None:
        if result != self._last_result:
            self._last_result = result
            if self._on_result is not None:
                self._on_result(result)

    def _source_problem(self, what: str, exc: Exception) -> None:
        log.warning("esm_source_error mapping=%s source=%s op=%s error=%r", self.uuid, self._source.arn, what, exc)
        self._report("PROBLEM: Connection error. Your event source is not reachable.")

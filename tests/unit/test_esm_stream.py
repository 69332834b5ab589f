"""The shard poller: pure decisions, and the poller driven with a fake source, fake function and fake clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from lamina.clock import FakeClock
from lamina.esm.contracts import InvokeOutcome, ReadResult, StreamRecord
from lamina.esm.stream import (
    Pending, RetryPolicy, StreamPoller, batches, decide, failure_record, first_failed_item, groups, split_aged,
)

OK = InvokeOutcome(200, None, b"null")
FAILED = InvokeOutcome(200, "Unhandled", b'{"errorMessage":"boom"}')
THROTTLED = InvokeOutcome(429, None, b"")


def rec(seq: int, *, key: str = "k", arrival: float = 1_700_000_000.0, size: int = 10) -> StreamRecord:
    s = f"{seq:05d}"
    return StreamRecord(sequence=s, arrival=arrival, event={"seq": s, "key": key}, partition_key=key, size=size)


# -- pure ------------------------------------------------------------------------------------------------

def test_first_failed_item_reads_batch_item_failures():
    """The lowest named identifier wins; empty/null lists are success; unknown identifiers fail the batch."""
    seqs = ["a", "b", "c"]
    assert first_failed_item(b'{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"b"}]}', seqs) == 1
    assert first_failed_item(b'{"batchItemFailures":[]}', seqs) is None
    assert first_failed_item(b'{"batchItemFailures":null}', seqs) is None
    assert first_failed_item(b"null", seqs) is None
    assert first_failed_item(b"", seqs) is None
    assert first_failed_item(b'{"batchItemFailures":[{"itemIdentifier":"zz"}]}', seqs) == 0
    assert first_failed_item(b'{"batchItemFailures":[{"itemIdentifier":""}]}', seqs) == 0
    assert first_failed_item(b"not json", seqs) == 0


def test_decide_success_completes_the_batch():
    batch = Pending((rec(1), rec(2)))
    assert decide(batch, OK, RetryPolicy()).completed == 2


def test_decide_function_error_retries_then_discards():
    """MaximumRetryAttempts=1: one retry, then the batch is discarded with RetryAttemptsExhausted."""
    policy = RetryPolicy(max_retries=1)
    first = decide(Pending((rec(1), rec(2))), FAILED, policy)
    assert first.completed == 0 and first.retry[0].failures == 1 and first.retry[0].invokes == 1
    assert first.delay_s > 0 and first.result == "PROBLEM: Function call failed"
    second = decide(first.retry[0], FAILED, policy)
    assert second.retry == () and [r.sequence for r in second.discard] == ["00001", "00002"]
    assert second.condition == "RetryAttemptsExhausted"


def test_decide_infinite_retries_never_discard():
    batch = Pending((rec(1),), failures=10_000)
    assert decide(batch, FAILED, RetryPolicy(max_retries=-1)).retry


def test_decide_bisect_splits_without_counting_a_retry():
    policy = RetryPolicy(bisect=True, max_retries=0)
    d = decide(Pending(tuple(rec(i) for i in range(1, 6))), FAILED, policy)
    assert [len(p.records) for p in d.retry] == [2, 3]
    assert all(p.failures == 0 for p in d.retry)
    single = decide(Pending((rec(3),)), FAILED, policy)
    assert single.discard and single.condition == "RetryAttemptsExhausted"


def test_decide_throttles_and_service_errors_are_not_counted():
    policy = RetryPolicy(max_retries=0)
    batch = Pending((rec(1),))
    for outcome in (THROTTLED, InvokeOutcome(503, None, b"")):
        d = decide(batch, outcome, policy)
        assert d.retry and d.retry[0].failures == 0 and d.retry[0].stalls == 1 and d.delay_s > 0
        assert d.result.startswith("PROBLEM:")


def test_decide_partial_failure_completes_the_prefix_and_retries_the_rest():
    policy = RetryPolicy(report_item_failures=True, max_retries=3)
    payload = json.dumps({"batchItemFailures": [{"itemIdentifier": "00003"}]}).encode()
    d = decide(Pending((rec(1), rec(2), rec(3), rec(4))), InvokeOutcome(200, None, payload), policy)
    assert d.completed == 2
    assert [r.sequence for r in d.retry[0].records] == ["00003", "00004"] and d.retry[0].failures == 1


def test_partial_failure_ignored_without_report_batch_item_failures():
    payload = json.dumps({"batchItemFailures": [{"itemIdentifier": "00001"}]}).encode()
    assert decide(Pending((rec(1),)), InvokeOutcome(200, None, payload), RetryPolicy()).completed == 1


def test_split_aged_takes_the_old_prefix():
    now = 1_700_000_100.0
    batch = Pending((rec(1, arrival=now - 90), rec(2, arrival=now - 61), rec(3, arrival=now - 5)))
    aged, rest = split_aged(batch, now, 60)
    assert [r.sequence for r in aged] == ["00001", "00002"] and [r.sequence for r in rest.records] == ["00003"]
    assert split_aged(batch, now, -1) == ((), batch)


def test_batches_respect_count_and_bytes():
    records = [rec(i, size=400) for i in range(7)]
    assert [len(b) for b in batches(records, 3)] == [3, 3, 1]
    assert [len(b) for b in batches(records, 100, max_bytes=1000)] == [2, 2, 2, 1]
    assert [len(b) for b in batches([rec(1, size=5000), rec(2)], 10, max_bytes=1000)] == [1, 1]


def test_groups_keep_order_per_partition_key():
    records = [rec(i, key=f"k{i % 3}") for i in range(12)]
    out = groups(records, 3)
    for group in out:
        by_key: dict[str, list[str]] = {}
        for r in group:
            by_key.setdefault(r.partition_key, []).append(r.sequence)
        for seqs in by_key.values():
            assert seqs == sorted(seqs)
    assert sum(len(g) for g in out) == 12
    assert groups(records, 1) == [records]


def test_failure_record_shape():
    """lambda-spec §9.3: requestContext, responseContext, version, timestamp, <BatchInfo>; no records."""
    body = failure_record(source_arn="arn:aws:kinesis:us-east-1:1:stream/s", batch_info_key="KinesisBatchInfo",
                          function_arn="arn:aws:lambda:us-east-1:1:function:f", shard="shardId-000000000000",
                          records=[rec(1, arrival=1_657_720_081.0), rec(2, arrival=1_657_720_082.5)],
                          condition="RetryAttemptsExhausted", invokes=3, outcome=FAILED, now=1_657_720_090.0,
                          request_id="r-1")
    assert body == {
        "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:1:function:f",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2022-07-13T13:48:10.000Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": "00001",
                             "endSequenceNumber": "00002",
                             "approximateArrivalOfFirstRecord": "2022-07-13T13:48:01.000Z",
                             "approximateArrivalOfLastRecord": "2022-07-13T13:48:02.500Z",
                             "batchSize": 2, "streamArn": "arn:aws:kinesis:us-east-1:1:stream/s"},
    }


# -- the poller with fakes ---------------------------------------------------------------------------------

class FakeSource:
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/fake"
    batch_info_key = "KinesisBatchInfo"
    idle_poll_s = 1.0
    discover_s = 5.0

    def __init__(self, shards: dict[str, list[StreamRecord]], closed: set[str] = frozenset()) -> None:
        self.data = shards
        self.closed = set(closed)
        self.acks: list[tuple[str, str]] = []
        self.reads: list[tuple[str, str | None]] = []
        self.closed_source = False

    async def shards(self):
        return list(self.data)

    async def read(self, shard, *, after, starting_position, starting_timestamp, limit):
        self.reads.append((shard, after))
        records = self.data[shard]
        start = 0 if after is None else next(i + 1 for i, r in enumerate(records) if r.sequence == after)
        chunk = records[start:start + limit]
        done = shard in self.closed and start + len(chunk) == len(records)
        return ReadResult(chunk, None, closed=done and not chunk)

    async def acknowledge(self, shard, sequence):
        self.acks.append((shard, sequence))

    async def aclose(self):
        self.closed_source = True


class Harness:
    """A poller wired to a fake source, a scripted function and in-memory checkpoints; sleeps move the clock."""

    def __init__(self, source: FakeSource, respond: Callable[[list[dict]], InvokeOutcome] = lambda b: OK,
                 **options) -> None:
        self.source = source
        self.clock = FakeClock()
        self.calls: list[list[str]] = []
        self.failures: list[dict] = []
        self.saved: list[tuple[str, str]] = []
        self.checkpoints: dict[str, str] = dict(options.pop("checkpoints", {}))
        self.results: list[str] = []
        self.respond = respond
        self.in_flight = 0
        self.max_in_flight = 0
        settings = dict(batch_size=3, batching_window_s=0, starting_position="TRIM_HORIZON",
                        starting_timestamp=None, parallelization_factor=1, bisect_on_error=False,
                        maximum_retry_attempts=-1, maximum_record_age_s=-1, report_batch_item_failures=False,
                        record_filter=None)
        settings.update(options)
        self.poller = StreamPoller(
            uuid="u-1", source=source, invoke=self.invoke, send_failure=self.send_failure,
            load_checkpoint=self.load, save_checkpoint=self.save, function_arn="arn:aws:lambda:us-east-1:1:function:f",
            clock=self.clock, on_result=self.results.append, sleep=self.sleep, **settings)

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def invoke(self, event: bytes) -> InvokeOutcome:
        records = json.loads(event)["Records"]
        self.calls.append([r["seq"] for r in records])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return self.respond(records)

    async def send_failure(self, body: dict) -> None:
        self.failures.append(body)

    async def load(self, shard: str) -> str | None:
        return self.checkpoints.get(shard)

    async def save(self, shard: str, value: str) -> None:
        self.saved.append((shard, value))
        self.checkpoints[shard] = value

    def run_until(self, done: Callable[[], bool], budget: int = 20000) -> None:
        async def main() -> None:
            task = asyncio.create_task(self.poller.run())
            for _ in range(budget):
                if done():
                    break
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await self.poller.aclose()
            assert done(), "condition not reached"
        asyncio.run(main())


def test_batches_in_order_and_checkpoint_after_each_success():
    """Records go out in order, BatchSize at a time; each success stores the batch's last sequence, then acks."""
    source = FakeSource({"s0": [rec(i) for i in range(1, 11)]})
    h = Harness(source)
    h.run_until(lambda: h.checkpoints.get("s0") == "00010")
    assert h.calls == [["00001", "00002", "00003"], ["00004", "00005", "00006"], ["00007", "00008", "00009"],
                       ["00010"]]
    assert [v for _, v in h.saved] == ["00003", "00006", "00009", "00010"]
    assert source.acks == h.saved
    assert h.results == ["OK"] and source.closed_source


def test_resumes_after_the_stored_checkpoint():
    source = FakeSource({"s0": [rec(i) for i in range(1, 6)]})
    h = Harness(source, checkpoints={"s0": "00003"})
    h.run_until(lambda: h.checkpoints["s0"] == "00005")
    assert h.calls == [["00004", "00005"]]


def test_no_checkpoint_before_success_and_the_batch_is_retried_in_place():
    """A failing batch blocks the shard: retried whole, nothing later runs, nothing is checkpointed meanwhile."""
    attempts = {"n": 0}

    def respond(records):
        if records[0]["seq"] == "00001":
            attempts["n"] += 1
            return FAILED if attempts["n"] <= 3 else OK
        return OK

    source = FakeSource({"s0": [rec(i) for i in range(1, 6)]})
    h = Harness(source, respond)
    h.run_until(lambda: h.checkpoints.get("s0") == "00005")
    assert h.calls[:4] == [["00001", "00002", "00003"]] * 4
    assert h.calls[4:] == [["00004", "00005"]]
    assert [v for _, v in h.saved] == ["00003", "00005"]
    assert h.failures == []
    assert h.results == ["PROBLEM: Function call failed", "OK"]


def test_retries_exhausted_sends_an_on_failure_record_and_moves_on():
    """MaximumRetryAttempts=2: three invokes of the poison batch, an on-failure record, then the shard goes on."""
    def respond(records):
        return FAILED if records[0]["seq"] == "00001" else OK

    source = FakeSource({"s0": [rec(i) for i in range(1, 6)]})
    h = Harness(source, respond, maximum_retry_attempts=2)
    h.run_until(lambda: h.checkpoints.get("s0") == "00005")
    assert h.calls == [["00001", "00002", "00003"]] * 3 + [["00004", "00005"]]
    [failure] = h.failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        ("s0", "00001", "00003", 3)
    assert info["streamArn"] == source.arn


def test_bisect_isolates_the_poison_record():
    """BisectBatchOnFunctionError halves failing batches until the poison record stands alone and is discarded."""
    def respond(records):
        return FAILED if any(r["seq"] == "00003" for r in records) else OK

    source = FakeSource({"s0": [rec(i) for i in range(1, 5)]})
    h = Harness(source, respond, batch_size=4, bisect_on_error=True, maximum_retry_attempts=0)
    h.run_until(lambda: h.checkpoints.get("s0") == "00004")
    assert h.calls == [["00001", "00002", "00003", "00004"], ["00001", "00002"], ["00003", "00004"], ["00003"],
                       ["00004"]]
    [failure] = h.failures
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == "00003"
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    assert ("s0", "00002") in h.saved  # checkpoint moved past the first half before the poison one


def test_record_age_discards_old_records_without_invoking():
    now = FakeClock().time()
    source = FakeSource({"s0": [rec(1, arrival=now - 500), rec(2, arrival=now - 100), rec(3, arrival=now)]})
    h = Harness(source, maximum_record_age_s=60)
    h.run_until(lambda: h.checkpoints.get("s0") == "00003")
    assert h.calls == [["00003"]]
    [failure] = h.failures
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["KinesisBatchInfo"]["batchSize"] == 2


def test_records_age_out_while_retrying():
    """With infinite retries, MaximumRecordAgeInSeconds still ends a poison batch."""
    source = FakeSource({"s0": [rec(1, arrival=FakeClock().time()), rec(2, arrival=FakeClock().time() + 1000)]})
    h = Harness(source, lambda records: FAILED if records[0]["seq"] == "00001" else OK, batch_size=1,
                maximum_record_age_s=60)
    h.run_until(lambda: h.checkpoints.get("s0") == "00002")
    assert h.failures[0]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert h.calls[-1] == ["00002"] and len(h.calls) > 2


def test_partial_batch_failure_checkpoints_before_the_lowest_failed_item():
    seen: set[str] = set()

    def respond(records):
        first = records[0]["seq"]
        if first == "00001" and first not in seen:
            seen.add(first)
            return InvokeOutcome(200, None, b'{"batchItemFailures":[{"itemIdentifier":"00004"},'
                                            b'{"itemIdentifier":"00003"}]}')
        return OK

    source = FakeSource({"s0": [rec(i) for i in range(1, 6)]})
    h = Harness(source, respond, batch_size=5, report_batch_item_failures=True)
    h.run_until(lambda: h.checkpoints.get("s0") == "00005")
    assert h.calls == [["00001", "00002", "00003", "00004", "00005"], ["00003", "00004", "00005"]]
    assert [v for _, v in h.saved] == ["00002", "00005"]


def test_throttles_are_retried_and_not_counted():
    count = {"n": 0}

    def respond(records):
        count["n"] += 1
        return THROTTLED if count["n"] <= 4 else OK

    source = FakeSource({"s0": [rec(1)]})
    h = Harness(source, respond, maximum_retry_attempts=0)
    h.run_until(lambda: h.checkpoints.get("s0") == "00001")
    assert len(h.calls) == 5 and h.failures == []
    assert h.results == ["PROBLEM: Function call throttled", "OK"]


def test_filtered_out_records_are_skipped_but_checkpointed():
    source = FakeSource({"s0": [rec(i) for i in range(1, 7)]})
    h = Harness(source, record_filter=lambda event: int(event["seq"]) % 2 == 0)
    h.run_until(lambda: h.checkpoints.get("s0") == "00006")
    assert h.calls == [["00002"], ["00004", "00006"]]


def test_nothing_matches_the_filter_still_moves_the_checkpoint():
    source = FakeSource({"s0": [rec(i) for i in range(1, 4)]})
    h = Harness(source, record_filter=lambda event: False)
    h.run_until(lambda: h.checkpoints.get("s0") == "00003")
    assert h.calls == []


def test_parallelization_factor_runs_key_groups_at_once_in_order_per_key():
    records = [rec(i, key=f"key-{i % 4}") for i in range(1, 41)]
    source = FakeSource({"s0": records})
    h = Harness(source, batch_size=2, parallelization_factor=4)
    h.run_until(lambda: h.checkpoints.get("s0") == "00040")
    assert h.max_in_flight > 1
    seen: dict[str, list[str]] = {}
    for call in h.calls:
        for seq in call:
            seen.setdefault(f"key-{int(seq) % 4}", []).append(seq)
    for seqs in seen.values():
        assert seqs == sorted(seqs)
    assert sorted(s for call in h.calls for s in call) == [r.sequence for r in records]
    assert [v for _, v in h.saved] == sorted(v for _, v in h.saved)  # checkpoints never go back


def test_one_batch_in_flight_per_shard_and_shards_in_parallel():
    source = FakeSource({"s0": [rec(i) for i in range(1, 10)], "s1": [rec(i) for i in range(101, 110)]})
    h = Harness(source)
    h.run_until(lambda: h.checkpoints.get("s0") == "00009" and h.checkpoints.get("s1") == "00109")
    assert h.max_in_flight == 2
    s0 = [c for c in h.calls if c[0] < "00100"]
    assert s0 == [["00001", "00002", "00003"], ["00004", "00005", "00006"], ["00007", "00008", "00009"]]


def test_new_shards_are_discovered_and_closed_shards_end():
    source = FakeSource({"s0": [rec(1)]}, closed={"s0"})
    h = Harness(source)

    def added() -> bool:
        if h.checkpoints.get("s0") == "00001" and "s1" not in source.data:
            source.data["s1"] = [rec(7)]
        return h.checkpoints.get("s1") == "00007"

    h.run_until(added)
    reads_after_close = [r for r in source.reads if r[0] == "s0"]
    assert reads_after_close[-1] == ("s0", "00001")
    assert sum(1 for r in source.reads if r == ("s0", "00001")) == 1  # finished: not read again


def test_batching_window_waits_for_more_records():
    source = FakeSource({"s0": [rec(1)]})
    h = Harness(source, batch_size=10, batching_window_s=5)

    class Growing(FakeSource):
        pass

    async def read(shard, *, after, starting_position, starting_timestamp, limit):
        result = await FakeSource.read(source, shard, after=after, starting_position=starting_position,
                                       starting_timestamp=starting_timestamp, limit=limit)
        if len(source.data["s0"]) < 4:
            source.data["s0"].append(rec(len(source.data["s0"]) + 1))
        return result

    source.read = read  # type: ignore[method-assign]
    h.run_until(lambda: h.checkpoints.get("s0") == "00004" or len(h.calls) > 1)
    assert h.calls[0] == ["00001", "00002", "00003", "00004"]


def test_source_errors_are_reported_and_retried():
    source = FakeSource({"s0": [rec(1)]})
    failures = {"n": 0}
    real_read = source.read

    async def flaky(shard, **kw):
        if failures["n"] < 2:
            failures["n"] += 1
            raise ConnectionError("down")
        return await real_read(shard, **kw)

    source.read = flaky  # type: ignore[method-assign]
    h = Harness(source)
    h.run_until(lambda: h.checkpoints.get("s0") == "00001")
    assert h.results[0] == "PROBLEM: Connection error. Your event source is not reachable."
    assert h.results[-1] == "OK"

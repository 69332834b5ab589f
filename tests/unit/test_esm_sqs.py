"""The SQS poller (esm/sqs.py) against an in-memory queue: record shape, batching, deletes, partial batch
failures, filters, FIFO groups, concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from lamina.clock import SystemClock
from lamina.esm.contracts import InvokeOutcome
from lamina.esm.filters import compile_filters
from lamina.esm.sqs import SqsPoller, succeeded, to_record

ARN = "arn:aws:sqs:eu-west-1:123456789012:q"


class FakeQueue:
    """Messages are handed out once and stay out (in flight) until deleted or released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: list[dict[str, Any]] = []
        self.in_flight: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.receives = 0
        self._n = 0

    def send(self, body: str, group: str | None = None) -> str:
        with self.lock:
            self._n += 1
            mid = f"m{self._n}"
            attrs = {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000", "SenderId": "AID",
                     "ApproximateFirstReceiveTimestamp": "1700000000001"}
            if group is not None:
                attrs |= {"MessageGroupId": group, "SequenceNumber": str(self._n), "MessageDeduplicationId": mid}
            self.ready.append({"MessageId": mid, "ReceiptHandle": f"rh-{mid}", "Body": body, "MD5OfBody": "md5",
                               "Attributes": attrs})
            return mid

    def receive(self, max_messages: int, wait_s: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + min(wait_s, 0.2)
        while True:
            with self.lock:
                self.receives += 1
                if self.ready:
                    out, self.ready = self.ready[:max_messages], self.ready[max_messages:]
                    for m in out:
                        self.in_flight[m["MessageId"]] = m
                    return out
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.005)

    def delete(self, receipts: Sequence[tuple[str, str]]) -> list[str]:
        with self.lock:
            for mid, _ in receipts:
                self.in_flight.pop(mid, None)
                self.deleted.append(mid)
        return []

    def release(self, receipts: Sequence[tuple[str, str]]) -> None:
        with self.lock:
            for mid, _ in receipts:
                self.ready.insert(0, self.in_flight.pop(mid))
                self.released.append(mid)


class Function:
    def __init__(self, answer=None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.answer = answer or (lambda records: InvokeOutcome(200, None, b"null"))
        self.running = 0
        self.most = 0

    async def __call__(self, payload: bytes) -> InvokeOutcome:
        records = json.loads(payload)["Records"]
        self.batches.append(records)
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.02)
        self.running -= 1
        return self.answer(records)


def poller(queue: FakeQueue, fn: Function, **kw: Any) -> SqsPoller:
    args: dict[str, Any] = dict(uuid="u", queue_arn=ARN, open_queue=lambda: queue, invoke=fn, record_filter=None,
                                batch_size=10, batching_window_s=0, max_concurrency=None,
                                report_batch_item_failures=False, clock=SystemClock(), long_poll_s=1, backoff_s=0.05)
    args.update(kw)
    return SqsPoller(**args)


async def run_until(p: SqsPoller, done, timeout: float = 5.0) -> None:
    task = asyncio.ensure_future(p.run())
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await p.aclose()


def test_record_shape():
    """A received message becomes Lambda's SQS record, message attributes in camelCase."""
    message = {"MessageId": "id1", "ReceiptHandle": "rh", "Body": "hi", "MD5OfBody": "abc",
               "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SenderId": "S",
                              "ApproximateFirstReceiveTimestamp": "2"},
               "MD5OfMessageAttributes": "def",
               "MessageAttributes": {"a": {"StringValue": "v", "DataType": "String"},
                                     "b": {"BinaryValue": b"\x01", "DataType": "Binary"}}}
    assert to_record(message, ARN, "eu-west-1") == {
        "messageId": "id1", "receiptHandle": "rh", "body": "hi",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SenderId": "S",
                       "ApproximateFirstReceiveTimestamp": "2"},
        "messageAttributes": {
            "a": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "b": {"binaryValue": base64.b64encode(b"\x01").decode(), "stringListValues": [], "binaryListValues": [],
                  "dataType": "Binary"}},
        "md5OfBody": "abc", "md5OfMessageAttributes": "def",
        "eventSource": "aws:sqs", "eventSourceARN": ARN, "awsRegion": "eu-west-1"}


R = [{"messageId": "a"}, {"messageId": "b"}, {"messageId": "c"}]


@pytest.mark.parametrize("outcome, report, expected", [
    (InvokeOutcome(200, None, b'{"x": 1}'), False, ["a", "b", "c"]),
    (InvokeOutcome(200, "Unhandled", b"{}"), False, []),
    (InvokeOutcome(429, None, b""), False, []),
    (InvokeOutcome(500, None, b""), True, []),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"itemIdentifier": "b"}]}'), True, ["a", "c"]),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"itemIdentifier": "b"}]}'), False, ["a", "b", "c"]),
    (InvokeOutcome(200, None, b'{"batchItemFailures": []}'), True, ["a", "b", "c"]),
    (InvokeOutcome(200, None, b'{"batchItemFailures": null}'), True, ["a", "b", "c"]),
    (InvokeOutcome(200, None, b"null"), True, ["a", "b", "c"]),
    (InvokeOutcome(200, None, b""), True, ["a", "b", "c"]),
    (InvokeOutcome(200, None, b"not json"), True, []),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"itemIdentifier": ""}]}'), True, []),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"itemIdentifier": null}]}'), True, []),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}'), True, []),
    (InvokeOutcome(200, None, b'{"batchItemFailures": [{"id": "a"}]}'), True, []),
])
def test_what_a_batch_deletes(outcome, report, expected):
    """Success deletes all; errors nothing; ReportBatchItemFailures all but the listed (bad lists: nothing)."""
    assert succeeded(R, outcome, report) == expected


def test_batches_are_invoked_and_deleted():
    queue, fn = FakeQueue(), Function()
    ids = [queue.send(f"m{i}") for i in range(25)]
    p = poller(queue, fn, max_concurrency=2)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 25))
    assert sorted(queue.deleted) == sorted(ids)
    assert all(len(b) <= 10 for b in fn.batches)
    assert sum(len(b) for b in fn.batches) == 25
    assert fn.batches[0][0]["eventSource"] == "aws:sqs"
    assert p.statistics().deleted == 25


def test_function_error_leaves_the_batch():
    queue, fn = FakeQueue(), Function(lambda records: InvokeOutcome(200, "Unhandled", b"{}"))
    queue.send("x")
    p = poller(queue, fn)
    asyncio.run(run_until(p, lambda: len(fn.batches) >= 1))
    assert queue.deleted == [] and list(queue.in_flight) == ["m1"]


def test_partial_batch_failure_deletes_the_rest():
    def answer(records):
        return InvokeOutcome(200, None, json.dumps({"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}).encode())
    queue, fn = FakeQueue(), Function(answer)
    for i in range(3):
        queue.send(str(i))
    p = poller(queue, fn, report_batch_item_failures=True, max_concurrency=2)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 2))
    assert sorted(queue.deleted) == ["m2", "m3"] and list(queue.in_flight) == ["m1"]


def test_filtered_messages_are_deleted_without_invoking():
    queue, fn = FakeQueue(), Function()
    queue.send('{"kind": "skip"}')
    queue.send('{"kind": "keep"}')
    p = poller(queue, fn, record_filter=compile_filters(['{"body": {"kind": ["keep"]}}']), max_concurrency=2)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 2))
    assert [r["body"] for b in fn.batches for r in b] == ['{"kind": "keep"}']
    assert p.statistics().filtered == 1


def test_batching_window_gathers_a_bigger_batch():
    """With a window, the poller keeps receiving until BatchSize (or the window ends)."""
    queue, fn = FakeQueue(), Function()
    for i in range(30):
        queue.send(str(i))
    p = poller(queue, fn, batch_size=30, batching_window_s=2, max_concurrency=1)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 30))
    assert [len(b) for b in fn.batches] == [30]


def test_window_ends_a_partial_batch():
    queue, fn = FakeQueue(), Function()
    for i in range(3):
        queue.send(str(i))
    p = poller(queue, fn, batch_size=100, batching_window_s=1, max_concurrency=1)
    started = time.monotonic()
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 3))
    assert [len(b) for b in fn.batches] == [3]
    assert 0.9 <= time.monotonic() - started < 3.5


def test_max_concurrency_caps_batches_in_flight():
    queue, fn = FakeQueue(), Function()
    for i in range(60):
        queue.send(str(i))
    p = poller(queue, fn, batch_size=1, max_concurrency=3)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 60))
    assert fn.most <= 3 and fn.most >= 2


def test_fifo_one_batch_in_flight_per_group():
    """Two workers never run batches of the same MessageGroupId at once."""
    queue = FakeQueue()
    active: set[str] = set()
    overlap = []

    class Grouped(Function):
        async def __call__(self, payload: bytes) -> InvokeOutcome:
            records = json.loads(payload)["Records"]
            groups = {r["attributes"]["MessageGroupId"] for r in records}
            overlap.append(bool(groups & active))
            active.update(groups)
            self.batches.append(records)
            await asyncio.sleep(0.02)
            active.difference_update(groups)
            return InvokeOutcome(200, None, b"null")

    fn = Grouped()
    for i in range(20):
        queue.send(str(i), group="g1" if i % 2 else "g2")
    p = SqsPoller(uuid="u", queue_arn=ARN + ".fifo", open_queue=lambda: queue, invoke=fn, record_filter=None,
                  batch_size=1, batching_window_s=0, max_concurrency=4, report_batch_item_failures=False,
                  clock=SystemClock(), long_poll_s=1)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 20))
    assert not any(overlap)
    order = [r["body"] for b in fn.batches for r in b if r["attributes"]["MessageGroupId"] == "g1"]
    assert order == sorted(order, key=int)


def test_a_receive_that_returns_after_stop_hands_messages_back():
    """Stopping while a long poll waits: messages it then gets are released at once, not held invisible."""
    queue, fn = FakeQueue(), Function()
    p = poller(queue, fn)

    async def scenario():
        task = asyncio.ensure_future(p.run())
        await asyncio.sleep(0.05)  # the workers are now inside receive()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await p.aclose()
        queue.send("late")
        await asyncio.sleep(0.4)

    asyncio.run(scenario())
    assert fn.batches == [] and set(queue.released) == {"m1"} and [m["MessageId"] for m in queue.ready] == ["m1"]


def test_receive_failures_back_off_and_recover():
    """A failing ReceiveMessage is retried after doubling delays; the poller carries on when it recovers."""
    queue, fn = FakeQueue(), Function()
    real_receive = queue.receive
    failures = [3]

    def flaky(max_messages: int, wait_s: int):
        if failures[0] > 0:
            failures[0] -= 1
            raise ConnectionError("queue unreachable")
        return real_receive(max_messages, wait_s)

    queue.receive = flaky  # type: ignore[method-assign]
    queue.send("after the outage")
    p = poller(queue, fn, max_concurrency=1, backoff_s=0.01)
    asyncio.run(run_until(p, lambda: queue.deleted == ["m1"]))
    assert [r["body"] for b in fn.batches for r in b] == ["after the outage"]


def test_a_batch_over_the_invoke_limit_is_invoked_in_parts():
    """Gathered messages whose event would pass 6 MB go to the function in consecutive parts."""
    queue, fn = FakeQueue(), Function()
    for i in range(10):
        queue.send(str(i) * 900_000)  # 10 x 0.9 MB: about 9 MB in one event
    p = poller(queue, fn, max_concurrency=1)
    asyncio.run(run_until(p, lambda: len(queue.deleted) == 10))
    sizes = [len(json.dumps({"Records": b})) for b in fn.batches]
    assert len(fn.batches) == 2 and max(sizes) <= 6_291_456
    assert [r["body"][0] for b in fn.batches for r in b] == [str(i) for i in range(10)]


def test_drain_lets_the_batch_in_flight_finish_and_takes_no_more():
    queue = FakeQueue()

    class Slow(Function):
        async def __call__(self, payload: bytes) -> InvokeOutcome:
            self.batches.append(json.loads(payload)["Records"])
            self.running += 1
            await asyncio.sleep(0.3)
            self.running -= 1
            return InvokeOutcome(200, None, b"null")

    fn = Slow()
    queue.send("first")
    p = poller(queue, fn, max_concurrency=2, batch_size=1)

    async def scenario() -> None:
        task = asyncio.ensure_future(p.run())
        while fn.running == 0:
            await asyncio.sleep(0.01)
        queue.send("second")
        await p.drain(2.0)
        assert fn.running == 0 and queue.deleted == ["m1"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await p.aclose()
        await asyncio.sleep(0.3)  # a receive still waiting in its thread hands back what it gets

    asyncio.run(scenario())
    assert [r["body"] for b in fn.batches for r in b] == ["first"]
    assert [m["MessageId"] for m in queue.ready] == ["m2"] and queue.in_flight == {}

"""The SQS poller of an event source mapping: receive, batch, invoke, delete (lambda-spec §8.3, §9.3).

Theory of operation. `concurrency` workers (ScalingConfig.MaximumConcurrency, else DEFAULT_CONCURRENCY)
each loop: gather one batch (long-poll ReceiveMessage in the poller's own threads until BatchSize messages,
the batching window, or about 3 MB), drop what FilterCriteria rejects (deleted, as Lambda does), invoke the
function once with the rest, and delete what succeeded. Nothing is kept locally: a message that is not
deleted becomes visible again after the queue's visibility timeout, so a crash or a failed batch repeats it
(at-least-once) and SQS's own redrive policy moves it to the queue's dead-letter queue after
maxReceiveCount receives.

    success                         -> delete the batch
    ReportBatchItemFailures listed  -> delete all but the listed messages
    function error, bad response    -> delete nothing (the batch returns after the visibility timeout)
    throttled / service trouble     -> delete nothing; the worker backs off before its next receive

FIFO queues: SQS hands out a message group only while none of its messages is in flight; the poller also
keeps one batch in flight per MessageGroupId across its workers. A receive still blocked in its thread
when the poller stops hands its messages back (visibility 0) as soon as it returns.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lamina import cpus
from lamina.clock import Clock
from lamina.esm.contracts import Invoke, InvokeOutcome, RecordFilter

log = logging.getLogger("lamina.esm")

DEFAULT_CONCURRENCY = 5
LONG_POLL_S = 5  # one ReceiveMessage waits at most this long (keeps stopping prompt)
SOFT_PAYLOAD_LIMIT = 3 * 1024 * 1024  # stop gathering here: the next receive could pass Lambda's 6 MB
RECEIVE_MAX = 10
INVOKE_LIMIT = 6_291_456  # Lambda's synchronous payload limit: a bigger gathered batch is invoked in parts
RECEIVE_BACKOFF_MAX_S = 30.0  # a queue that keeps failing (deleted, unreachable) is retried this often
SYSTEM_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                     "SequenceNumber", "MessageGroupId", "MessageDeduplicationId", "AWSTraceHeader",
                     "DeadLetterQueueSourceArn")


# the queue seam -----------------------------------------------------------------------------------

class Queue(Protocol):
    """Blocking SQS calls on one queue (the poller runs them in its threads)."""

    def receive(self, max_messages: int, wait_s: int) -> list[dict[str, Any]]:
        """ReceiveMessage with every system and message attribute; [] when none arrived in `wait_s`."""
        ...

    def delete(self, receipts: Sequence[tuple[str, str]]) -> list[str]:
        """DeleteMessageBatch of (message id, receipt handle); returns the ids that failed."""
        ...

    def release(self, receipts: Sequence[tuple[str, str]]) -> None:
        """Make messages visible again at once (ChangeMessageVisibilityBatch to 0)."""
        ...


class BotoQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

    def receive(self, max_messages: int, wait_s: int) -> list[dict[str, Any]]:
        reply = self._client.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        return list(reply.get("Messages") or [])

    def delete(self, receipts: Sequence[tuple[str, str]]) -> list[str]:
        failed: list[str] = []
        for start in range(0, len(receipts), 10):
            chunk = receipts[start:start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)]
            reply = self._client.delete_message_batch(QueueUrl=self._url, Entries=entries)
            failed += [chunk[int(f["Id"])][0] for f in reply.get("Failed") or []]
        return failed

    def release(self, receipts: Sequence[tuple[str, str]]) -> None:
        for start in range(0, len(receipts), 10):
            chunk = receipts[start:start + 10]
            self._client.change_message_visibility_batch(QueueUrl=self._url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, (_, handle) in enumerate(chunk)])


# pure: records and outcomes -----------------------------------------------------------------------

def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, (bytes, bytearray)) else raw
    out["stringListValues"] = list(value.get("StringListValues") or [])
    out["binaryListValues"] = [base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else v
                               for v in value.get("BinaryListValues") or []]
    out["dataType"] = value.get("DataType", "String")
    return out


def to_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ReceiveMessage message as Lambda's SQS event record."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in SYSTEM_ATTRIBUTES if k in attributes},
        "messageAttributes": {k: _message_attribute(v) for k, v in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def succeeded(records: Sequence[dict[str, Any]], outcome: InvokeOutcome, report_failures: bool) -> list[str]:
    """The message ids a finished invocation lets the poller delete (lambda-spec §8.3)."""
    ids = [r["messageId"] for r in records]
    if outcome.status != 200 or outcome.function_error is not None:
        return []
    if not report_failures:
        return ids
    text = outcome.payload.strip()
    if not text or text == b"null":
        return ids
    try:
        response = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(response, dict):
        return ids
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return ids
    if not isinstance(failures, list):
        return []
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return []  # an empty, null or unknown identifier fails the whole batch
        failed.add(identifier)
    return [i for i in ids if i not in failed]


def split_for_invoke(records: list[dict[str, Any]], limit: int = INVOKE_LIMIT) -> list[list[dict[str, Any]]]:
    """Consecutive runs of records whose `{"Records": [...]}` event stays within `limit` bytes (a single
    record larger than that still goes alone: the invoke then fails, as Lambda's would)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = len(b'{"Records": []}')
    for record in records:
        cost = len(json.dumps(record).encode()) + 2
        if chunks[-1] and size + cost > limit:
            chunks.append([])
            size = len(b'{"Records": []}')
        chunks[-1].append(record)
        size += cost
    return chunks if chunks[0] else []


# the poller ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class SqsStatistics:
    received: int
    filtered: int
    invocations: int
    deleted: int
    failed_batches: int
    in_flight: int


class SqsPoller:
    def __init__(self, *, uuid: str, queue_arn: str, open_queue: Callable[[], Queue], invoke: Invoke,
                 record_filter: RecordFilter | None, batch_size: int, batching_window_s: float,
                 max_concurrency: int | None, report_batch_item_failures: bool, clock: Clock,
                 fifo: bool | None = None, long_poll_s: int = LONG_POLL_S, backoff_s: float = 1.0) -> None:
        self.uuid = uuid
        self._arn = queue_arn
        self._region = queue_arn.split(":")[3]
        self._open_queue = open_queue  # blocking (resolves the queue URL): run in a thread
        self._queue: Queue | None = None
        self._invoke = invoke
        self._filter = record_filter
        self._batch_size = batch_size
        self._window_s = batching_window_s
        self._concurrency = max_concurrency or DEFAULT_CONCURRENCY
        self._report = report_batch_item_failures
        self._clock = clock
        self._fifo = queue_arn.endswith(".fifo") if fifo is None else fifo
        self._long_poll_s = long_poll_s
        self._backoff_s = backoff_s
        self._stop = threading.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._concurrency + 2, thread_name_prefix=f"lamina-sqs-{uuid[:8]}",
            initializer=cpus.release_thread)
        self._groups: set[str] = set()
        self._groups_free = asyncio.Condition()
        self._counts = dict.fromkeys(("received", "filtered", "invocations", "deleted", "failed_batches"), 0)
        self._in_flight = 0
        self._receive_failures = 0  # consecutive, across workers (they share the queue's fate)

    def statistics(self) -> SqsStatistics:
        return SqsStatistics(**self._counts, in_flight=self._in_flight)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        """Poll until cancelled."""
        if self._queue is None:
            self._queue = await self._call(self._open_queue)
        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(self._worker())

    async def drain(self, grace_s: float) -> None:
        """Stop taking messages and wait up to `grace_s` for the batches in flight to finish (the caller
        then cancels `run`). Receives still waiting hand their messages back when they return."""
        self._stop.set()
        deadline = self._clock.monotonic() + grace_s
        while self._in_flight and self._clock.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # one worker ----------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while not self._stop.is_set():
            messages = await self._gather()
            if messages and self._stop.is_set():  # gathered while draining: hand them back unprocessed
                await self._call(self._queue.release, [(m["MessageId"], m["ReceiptHandle"]) for m in messages])
                return
            if messages:
                outcome = await self._process(messages)
                if outcome is not None and outcome.status != 200:
                    await asyncio.sleep(self._backoff_s)  # throttled or the platform failed: ease off

    def _receive_blocking(self, max_messages: int, wait_s: int) -> list[dict[str, Any]]:
        assert self._queue is not None
        messages = self._queue.receive(max_messages, wait_s)
        if self._stop.is_set() and messages:  # the poller stopped while this receive waited
            self._queue.release([(m["MessageId"], m["ReceiptHandle"]) for m in messages])
            return []
        return messages

    async def _gather(self) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages, within the batching window (counted from the first
        message), below the payload limit; at least one message unless the receive failed."""
        batch: list[dict[str, Any]] = []
        size = 0
        first_at: float | None = None
        while len(batch) < self._batch_size and size < SOFT_PAYLOAD_LIMIT and not self._stop.is_set():
            if first_at is None:
                wait = self._long_poll_s
            else:
                left = first_at + self._window_s - self._clock.monotonic()
                if left <= 0:
                    break
                wait = min(self._long_poll_s, max(0, int(left + 0.999)))
            try:
                got = await self._call(self._receive_blocking, min(RECEIVE_MAX, self._batch_size - len(batch)), wait)
            except Exception as exc:  # botocore/network trouble: keep what we have, try again later
                self._receive_failures += 1
                delay = min(self._backoff_s * 2 ** (self._receive_failures - 1), RECEIVE_BACKOFF_MAX_S)
                log.warning("sqs_receive_failed mapping=%s queue=%s failures=%d retry_in=%.1fs error=%r",
                            self.uuid, self._arn, self._receive_failures, delay, exc)
                if batch:
                    break
                await asyncio.sleep(delay)
                continue
            self._receive_failures = 0
            if got and first_at is None:
                first_at = self._clock.monotonic()
            batch += got
            size += sum(len(m.get("Body", "")) for m in got)
            if batch and self._window_s <= 0:
                break
        self._counts["received"] += len(batch)
        return batch

    async def _process(self, messages: list[dict[str, Any]]) -> InvokeOutcome | None:
        records = [to_record(m, self._arn, self._region) for m in messages]
        keep, dropped = records, []
        if self._filter is not None:
            verdicts = [self._filter(r) for r in records]
            keep = [r for r, ok in zip(records, verdicts) if ok]
            dropped = [r for r, ok in zip(records, verdicts) if not ok]
        if dropped:
            self._counts["filtered"] += len(dropped)
            await self._delete(dropped)
        if not keep:
            return None
        groups = {r["attributes"].get("MessageGroupId", "") for r in keep} if self._fifo else set()
        await self._hold(groups)
        self._in_flight += 1
        try:
            outcome = None
            for part in split_for_invoke(keep):
                self._counts["invocations"] += 1
                outcome = await self._invoke(json.dumps({"Records": part}).encode())
                done = set(succeeded(part, outcome, self._report))
                if len(done) < len(part):
                    self._counts["failed_batches"] += 1
                if done:
                    await self._delete([r for r in part if r["messageId"] in done])
                if self._fifo and len(done) < len(part):
                    break  # FIFO: what follows a failure in its group waits for the failed ones to come back
            return outcome
        finally:
            self._in_flight -= 1
            await self._let_go(groups)

    async def _hold(self, groups: set[str]) -> None:
        if not groups:
            return
        async with self._groups_free:
            await self._groups_free.wait_for(lambda: not (groups & self._groups))
            self._groups |= groups

    async def _let_go(self, groups: set[str]) -> None:
        if not groups:
            return
        async with self._groups_free:
            self._groups -= groups
            self._groups_free.notify_all()

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        assert self._queue is not None
        receipts = [(r["messageId"], r["receiptHandle"]) for r in records]
        try:
            failed = await self._call(self._queue.delete, receipts)
        except Exception as exc:  # the messages come back after their visibility timeout: at-least-once
            log.warning("sqs_delete_failed mapping=%s count=%d error=%r", self.uuid, len(receipts), exc)
            return
        self._counts["deleted"] += len(receipts) - len(failed)
        if failed:
            log.warning("sqs_delete_failed mapping=%s ids=%s", self.uuid, failed)

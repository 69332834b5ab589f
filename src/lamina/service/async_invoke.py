"""Asynchronous invocation: events from the durable queue (store/queue.py) run through the invoke path,
with Lambda's retries, event age, destinations and dead-letter targets.

Theory of operation. `submit` writes an event and returns once it is committed (the 202 waits for it).
One dispatcher task leases up to `workers` events at a time and starts one delivery task per event; it
renews the leases of running deliveries every `lease_s / 3`, so only a crashed server's leases expire
(and those events run again: at-least-once). A delivery checks the event's age, runs it, and ends its
lease with one decision, taken by the pure functions below:

    success                      -> ack, with an OnSuccess record queued in the same commit
    function error, retries left -> retry_later(now + retry_delay(attempt))   (~1x base, then ~2x base)
    function error, none left    -> RetriesExhausted: OnFailure record / dead-letter target, then dead
    too old (before a run, or a retry would pass MaximumEventAgeInSeconds) -> EventAgeExceeded, same
    throttled, platform failure  -> retry_later(now + throttle_delay(n)); not an attempt

Destination records and dead-letter messages are themselves asynchronous invocations of the target
function, queued atomically with the end of the source event's lease, so a crash never loses or doubles
them beyond the at-least-once of any event. All queue calls run on one thread, many to a commit.

Shutdown (`aclose`): stop leasing, let running deliveries finish for up to `grace_s`, cancel the rest and
hand their leases back, so a restart runs them at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import enum
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from lamina import cpus
from lamina.clock import Clock
from lamina.esm.destinations import dead_letter_attributes, is_queue_arn
from lamina.errors import ApiError, ResourceNotFound, SandboxError, TooManyRequests
from lamina.model import LATEST, Invocation
from lamina.scheduler.environment import Outcome
from lamina.service.event_configs import function_target
from lamina.service.functions import Deployed, FunctionService
from lamina.service.invoke import new_request_id, new_trace_id
from lamina.store.event_configs import EventConfigStore, EventInvokeConfig
from lamina.store.queue import EventQueue, NewEvent, QueuedEvent, QueueStatistics

log = logging.getLogger("lamina.async")

T = TypeVar("T")
Runner = Callable[[Deployed, Invocation], Awaitable[Outcome]]
QueueSend = Callable[[str, str, "dict[str, Any] | None"], Awaitable[bool]]

LEASE_BATCH = 64
MAX_THROTTLE_DELAY_S = 300.0  # at the default base delay (60 s); scaled with it
DEAD_RETENTION_S = 14 * 86400


# pure decisions -----------------------------------------------------------------------------------

class Condition(enum.StrEnum):
    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """MaximumRetryAttempts and MaximumEventAgeInSeconds in force for an event."""

    retry_attempts: int = 2
    event_age_s: int = 21600

    @classmethod
    def of(cls, config: EventInvokeConfig | None) -> Policy:
        return cls() if config is None else cls(config.retry_attempts, config.event_age_s)


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    at: float
    attempts: int
    throttles: int


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    condition: Condition
    invoke_count: int


def retry_delay(attempts: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `attempts` (>= 1) runs ended in a function error: `base_s`,
    then twice that (Lambda: about 1 minute, then about 2). With `rng`, +-10 % jitter."""
    delay = base_s * 2.0 ** (attempts - 1)
    return delay * (0.9 + 0.2 * rng.random()) if rng is not None else delay


def throttle_delay(throttles: int, base_s: float) -> float:
    """Seconds before the next try after `throttles` (>= 1) consecutive throttles or platform failures:
    Lambda's 1 s doubling up to 5 minutes at the default base of 60 s, scaled with the base."""
    return min(2.0 ** (throttles - 1), MAX_THROTTLE_DELAY_S) * base_s / 60.0


def expired(enqueued_at: float, policy: Policy, now: float) -> bool:
    return now - enqueued_at > policy.event_age_s


def after_function_error(event: QueuedEvent, policy: Policy, now: float, base_s: float,
                         rng: random.Random | None = None) -> Retry | Finish:
    attempts = event.attempts + 1
    if attempts > policy.retry_attempts:
        return Finish(Condition.RETRIES_EXHAUSTED, attempts)
    at = now + retry_delay(attempts, base_s, rng)
    if expired(event.enqueued_at, policy, at):  # the retry would come too late: give up now
        return Finish(Condition.EVENT_AGE_EXCEEDED, attempts)
    return Retry(at, attempts, event.throttles)


def after_throttle(event: QueuedEvent, policy: Policy, now: float, base_s: float) -> Retry:
    """Back to the queue, not counted as an attempt; never later than just past the event's age limit
    (where the next lease finds it expired)."""
    throttles = event.throttles + 1
    deadline = event.enqueued_at + policy.event_age_s + 0.001
    return Retry(min(now + throttle_delay(throttles, base_s), max(deadline, now)), event.attempts, throttles)


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """What one run returned: the payload, the function error (None on success), the version that ran."""

    payload: bytes
    error_type: str | None
    executed_version: str


def iso_timestamp(epoch_s: float) -> str:
    """`2019-11-14T18:16:05.568Z`, as invocation records carry it."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def invocation_record(*, request_id: str, function_arn: str, condition: Condition, invoke_count: int,
                      request_payload: bytes, response: Response | None, timestamp: float) -> dict[str, Any]:
    """Lambda's destination invocation record. `response` is None when the event never ran (it
    expired in the queue): the record then has no responseContext / responsePayload."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_timestamp(timestamp),
        "requestContext": {"requestId": request_id, "functionArn": function_arn, "condition": str(condition),
                           "approximateInvokeCount": invoke_count},
        "requestPayload": _json_or_text(request_payload),
    }
    if response is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": response.executed_version}
        if response.error_type is not None:
            context["functionError"] = "Unhandled"
        record["responseContext"] = context
        record["responsePayload"] = _json_or_text(response.payload)
    return record


# the queue thread ---------------------------------------------------------------------------------

class Committer:
    """Runs queue calls on one thread; calls made while a commit is under way share the next one
    (group commit), so many concurrent 202s cost one fsync."""

    def __init__(self, queue: EventQueue) -> None:
        self._queue = queue
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lamina-queue",
                                                             initializer=cpus.release_thread)
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def call(self, fn: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await loop.run_in_executor(self._executor, self._apply, [fn for fn, _ in batch])
            except Exception as exc:  # the commit failed: none of the batch happened
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), (ok, value) in zip(batch, results):
                if not future.done():
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    def _apply(self, fns: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        out: list[tuple[bool, Any]] = []
        with self._queue.batch():
            for fn in fns:
                try:
                    out.append((True, fn()))
                except Exception as exc:  # handed to that call's caller; the others still commit
                    out.append((False, exc))
        return out

    def close(self) -> None:
        """After the last call: stop the thread (calls still pending finish first)."""
        self._executor.shutdown(wait=True)


# the delivery service -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class AsyncStatistics:
    accepted: int
    succeeded: int
    retried: int
    throttled: int
    failed: int  # RetriesExhausted or EventAgeExceeded
    dropped: int  # the function is gone
    in_flight: int
    queue: QueueStatistics


class AsyncInvoker:
    def __init__(self, queue: EventQueue, functions: FunctionService, run: Runner, configs: EventConfigStore,
                 clock: Clock, *, account: str, base_delay_s: float = 60.0, workers: int = 32,
                 lease_s: float = 10.0, grace_s: float = 10.0, rng: random.Random | None = None) -> None:
        self._queue = queue
        self._committer = Committer(queue)
        self._functions = functions
        self._run = run
        self._configs = configs
        self._clock = clock
        self._account = account
        self._base_s = base_delay_s
        self._workers = workers
        self._lease_s = lease_s
        self._grace_s = grace_s
        self._rng = rng if rng is not None else random.Random()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._leases: dict[int, QueuedEvent] = {}  # the current lease of each event being delivered
        self._wake = asyncio.Event()
        self._stopping = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._counts = dict.fromkeys(("accepted", "succeeded", "retried", "throttled", "failed", "dropped"), 0)
        #: Sends a message to an SQS queue ARN (esm/destinations.py QueueSender.send; set by the composition
        #: root): destinations and dead-letter queues that are queues. Returns False when it finally failed.
        self.send_to_queue: QueueSend | None = None

    # accepting -----------------------------------------------------------------------------------

    async def submit(self, event: NewEvent) -> None:
        """Queue one event; returns once it is committed to disk."""
        await self._committer.call(lambda: self._queue.enqueue([event]))
        self._counts["accepted"] += 1
        self._wake.set()

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start delivering (with no workers, events are only accepted: another node delivers them)."""
        if self._workers > 0:
            self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def aclose(self) -> None:
        """Stop leasing; give running deliveries `grace_s` to finish; hand the rest back to the queue.
        Events are still accepted afterwards (until `close`), so a 202 is never refused while the HTTP
        server drains."""
        self._stopping = True
        self._wake.set()
        if self._dispatcher is not None:
            await self._dispatcher
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=self._grace_s)
        unfinished = list(self._leases.values())
        for task in list(self._running.values()):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        if unfinished:
            now = self._clock.time()
            released = await self._committer.call(lambda: self._queue.release(unfinished, now))
            log.info("async_shutdown_released events=%d", released)

    def close(self) -> None:
        """After aclose and after the last submit."""
        self._committer.close()

    async def statistics(self) -> AsyncStatistics:
        now = self._clock.time()
        queue = await self._committer.call(lambda: self._queue.statistics(now))
        return AsyncStatistics(**self._counts, in_flight=len(self._running), queue=queue)

    # dispatching ---------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        renewed_at = purged_at = self._clock.monotonic()
        backlog = False  # the last lease was full: more events are waiting
        while not self._stopping:
            self._wake.clear()
            free = self._workers - len(self._running)
            wanted = min(free, LEASE_BATCH)
            if backlog and wanted < max(1, self._workers // 4):
                wanted = 0  # with a backlog, lease in batches rather than one event per finished one
            leased: list[QueuedEvent] = []
            if wanted > 0:
                now = self._clock.time()
                leased = await self._committer.call(lambda: self._queue.lease(wanted, now, now + self._lease_s))
                for event in leased:
                    self._leases[event.id] = event  # a re-lease of one still running here replaces its token
                    if event.id not in self._running:
                        self._running[event.id] = asyncio.ensure_future(self._deliver(event.id))
            if self._clock.monotonic() - renewed_at >= self._lease_s / 3:
                await self._renew()
                renewed_at = self._clock.monotonic()
            if self._clock.monotonic() - purged_at >= 3600:
                before = self._clock.time() - DEAD_RETENTION_S
                await self._committer.call(lambda: self._queue.purge_dead(before))
                purged_at = self._clock.monotonic()
            if wanted > 0:
                backlog = len(leased) == wanted
                if backlog:
                    continue  # lease again while free workers remain
            timeout = self._lease_s / 3
            if wanted > 0:
                due = await self._committer.call(self._queue.next_available)
                if due is not None:
                    timeout = min(timeout, max(0.0, due - self._clock.time()) + 0.001)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _renew(self) -> None:
        current = list(self._leases.values())
        if current:
            until = self._clock.time() + self._lease_s
            await self._committer.call(lambda: self._queue.renew(current, until))

    # delivering ----------------------------------------------------------------------------------

    async def _deliver(self, event_id: int) -> None:
        """Supervises one delivery. If it fails in lamina itself, the event is not lost: its lease is
        no longer renewed, expires, and the event is delivered again."""
        try:
            await self.deliver(self._leases[event_id])
        except Exception:
            log.exception("async_delivery_failed event_id=%d; it runs again when its lease expires", event_id)
        finally:
            self._running.pop(event_id, None)
            self._leases.pop(event_id, None)
            self._wake.set()

    def _lease(self, event: QueuedEvent) -> QueuedEvent:
        """The event's current lease (the dispatcher may have re-leased it while it ran)."""
        return self._leases.get(event.id, event)

    async def deliver(self, event: QueuedEvent) -> None:
        """One delivery of a leased event; the one place that decides what happens to it next. A failure of
        the platform itself (not the function) is retried like a throttle, so no event is lost to it."""
        policy = Policy.of(self._configs.get(event.function, event.qualifier))
        now = self._clock.time()
        if expired(event.enqueued_at, policy, now):
            await self._finish(event, Finish(Condition.EVENT_AGE_EXCEEDED, event.attempts), self._last_response(event))
            return
        try:
            deployed = self._functions.deployed(event.function, event.qualifier)
        except ResourceNotFound as exc:
            log.info("async_event_dropped function=%s request_id=%s reason=%s", event.function, event.request_id, exc)
            self._counts["dropped"] += 1
            await self._committer.call(lambda: self._queue.dead(self._lease(event), "function gone", now))
            return
        except (ApiError, OSError) as exc:  # e.g. its runtime is missing on this host: may be fixed later
            log.warning("async_platform_error function=%s request_id=%s error=%r", event.function, event.request_id, exc)
            await self._retry(event, after_throttle(event, policy, now, self._base_s))
            return
        invocation = Invocation(request_id=event.request_id, payload=event.payload, invoked_arn=event.invoked_arn,
                                trace_id=event.trace_id)
        try:
            outcome = await self._run(deployed, invocation)
        except TooManyRequests:
            self._counts["throttled"] += 1
            await self._retry(event, after_throttle(event, policy, self._clock.time(), self._base_s))
            return
        except (SandboxError, ApiError, OSError) as exc:
            log.warning("async_platform_error function=%s request_id=%s error=%r", event.function, event.request_id, exc)
            await self._retry(event, after_throttle(event, policy, self._clock.time(), self._base_s))
            return
        response = Response(outcome.payload, outcome.error_type, deployed.config.version)
        if outcome.error_type is None:
            await self._finish(event, Finish(Condition.SUCCESS, event.attempts + 1), response)
            return
        step = after_function_error(event, policy, self._clock.time(), self._base_s, self._rng)
        if isinstance(step, Finish):
            await self._finish(event, step, response)
            return
        self._counts["retried"] += 1
        await self._retry(event, step, response)

    def _last_response(self, event: QueuedEvent) -> Response | None:
        if event.last_response is None:
            return None
        return Response(event.last_response, event.last_error or "Unhandled", event.last_version or LATEST)

    async def _retry(self, event: QueuedEvent, step: Retry, response: Response | None = None) -> None:
        def apply() -> bool:
            return self._queue.retry_later(
                self._lease(event), step.at, attempts=step.attempts, throttles=step.throttles,
                last_response=response.payload if response else None,
                last_error=response.error_type if response else None,
                last_version=response.executed_version if response else None)
        await self._committer.call(apply)
        self._wake.set()

    async def _finish(self, event: QueuedEvent, finish: Finish, response: Response | None) -> None:
        now = self._clock.time()
        config = self._configs.get(event.function, event.qualifier)
        region = event.invoked_arn.split(":")[3]
        record = invocation_record(
            request_id=event.request_id, function_arn=self._functions.arn(event.function, event.qualifier, region),
            condition=finish.condition, invoke_count=finish.invoke_count, request_payload=event.payload,
            response=response, timestamp=now)
        follow_ups: list[NewEvent] = []
        if finish.condition is Condition.SUCCESS:
            if config is not None and config.on_success:
                follow_ups += self._to_function(config.on_success, json.dumps(record).encode(), region, now)
                await self._to_queue(config.on_success, json.dumps(record))
            self._counts["succeeded"] += 1
            await self._committer.call(lambda: self._queue.ack(self._lease(event), follow_ups))
            return
        self._counts["failed"] += 1
        if config is not None and config.on_failure:
            follow_ups += self._to_function(config.on_failure, json.dumps(record).encode(), region, now)
            await self._to_queue(config.on_failure, json.dumps(record))
        reason = str(finish.condition)
        dlq = self._dead_letter_target(event, response)
        if dlq:
            sent = self._to_function(dlq, event.payload, region, now)
            if not sent and self.send_to_queue is not None and is_queue_arn(dlq):
                error = response.payload.decode("utf-8", "replace") if response is not None else str(finish.condition)
                if not await self._to_queue(dlq, event.payload.decode("utf-8", "replace"),
                                            dead_letter_attributes(event.request_id, 200, error)):
                    reason += f"; the dead-letter message to {dlq} could not be sent"
            elif not sent:
                reason += f"; dead-letter target {dlq} is not a lamina function (lamina delivers only to functions, so far)"
                log.warning("async_dead_letter_unsupported function=%s target=%s", event.function, dlq)
            follow_ups += sent
        log.info("async_event_failed function=%s request_id=%s condition=%s attempts=%d", event.function,
                 event.request_id, finish.condition, finish.invoke_count)
        await self._committer.call(lambda: self._queue.dead(self._lease(event), reason, now, follow_ups))

    async def _to_queue(self, arn: str, body: str, attributes: dict[str, Any] | None = None) -> bool:
        """SendMessage to the queue `arn` names (False if it names none, or the send finally failed). Sent
        before the event's lease ends: a crash in between repeats the message, never loses it."""
        if self.send_to_queue is None or not is_queue_arn(arn):
            return False
        return await self.send_to_queue(arn, body, attributes)

    def _dead_letter_target(self, event: QueuedEvent, response: Response | None) -> str | None:
        version = response.executed_version if response is not None else event.qualifier
        try:
            return self._functions.get(event.function, version).dead_letter_target_arn
        except ApiError:
            return None

    def _to_function(self, arn: str, payload: bytes, region: str, now: float) -> Sequence[NewEvent]:
        """An asynchronous invocation of the function `arn` names (nothing if it names none of ours)."""
        target = function_target(arn)
        if target is None or target.account != self._account:
            return ()
        qualifier = target.qualifier or LATEST
        return (NewEvent(request_id=new_request_id(), function=target.name, qualifier=qualifier,
                         invoked_arn=self._functions.arn(target.name, target.qualifier, region),
                         trace_id=new_trace_id(), payload=payload, enqueued_at=now),)

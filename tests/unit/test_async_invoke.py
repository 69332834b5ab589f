"""Asynchronous invocation without sockets: backoff, decisions, invocation records, config merge and
parsing, and the delivery logic driven by a FakeClock over a real queue file and a scripted runner."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from lamina.api.event_invoke import event_invoke_changes, render
from lamina.clock import FakeClock
from lamina.config import load
from lamina.errors import ResourceNotFound, ThrottleReason, TooManyRequests, ValidationError
from lamina.scheduler.environment import Outcome
from lamina.service.async_invoke import (
    AsyncInvoker, Condition, Finish, Policy, Response, Retry, after_function_error, after_throttle, invocation_record,
    iso_timestamp, retry_delay, throttle_delay,
)
from lamina.service.event_configs import EventInvokeChanges, function_target, merged, replaced
from lamina.store.event_configs import EventConfigStore, EventInvokeConfig
from lamina.store.queue import NewEvent, QueuedEvent, SqliteQueue

ACCOUNT = "000000000000"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"


class Middle:
    """An rng whose jitter factor is exactly 1."""

    def random(self) -> float:
        return 0.5


def queued(attempts: int = 0, throttles: int = 0, enqueued_at: float = 1000.0) -> QueuedEvent:
    return QueuedEvent(1, "r", "f", "$LATEST", ARN + "f", "t", b"{}", enqueued_at, 1, attempts, throttles)


# backoff -----------------------------------------------------------------------------------------

def test_retry_delay_is_base_then_twice_base():
    """Lambda: about one minute before the second attempt, two before the third."""
    assert [retry_delay(n, 60.0) for n in (1, 2)] == [60.0, 120.0]
    assert [retry_delay(n, 0.2) for n in (1, 2)] == [0.2, 0.4]


def test_retry_delay_jitter_stays_within_ten_percent():
    import random
    rng = random.Random(7)
    delays = [retry_delay(1, 60.0, rng) for _ in range(200)]
    assert 54.0 <= min(delays) < max(delays) <= 66.0


def test_throttle_delay_doubles_from_one_second_to_five_minutes():
    assert [throttle_delay(n, 60.0) for n in (1, 2, 3, 9, 10, 50)] == [1, 2, 4, 256, 300, 300]
    assert throttle_delay(1, 0.6) == pytest.approx(0.01)


# decisions ---------------------------------------------------------------------------------------

def test_function_errors_are_retried_then_exhausted():
    policy = Policy(retry_attempts=2, event_age_s=21600)
    assert after_function_error(queued(0), policy, 1000.0, 60.0) == Retry(1060.0, 1, 0)
    assert after_function_error(queued(1), policy, 1060.0, 60.0) == Retry(1180.0, 2, 0)
    assert after_function_error(queued(2), policy, 1180.0, 60.0) == Finish(Condition.RETRIES_EXHAUSTED, 3)
    assert after_function_error(queued(0), Policy(0, 21600), 1000.0, 60.0) == Finish(Condition.RETRIES_EXHAUSTED, 1)


def test_a_retry_past_the_event_age_ends_the_event_now():
    policy = Policy(retry_attempts=2, event_age_s=100)
    assert after_function_error(queued(0), policy, 1050.0, 60.0) == Finish(Condition.EVENT_AGE_EXCEEDED, 1)


def test_throttles_do_not_count_as_attempts_and_stop_at_the_age_limit():
    policy = Policy(retry_attempts=2, event_age_s=60)
    assert after_throttle(queued(1, 0), policy, 1000.0, 60.0) == Retry(1001.0, 1, 1)
    assert after_throttle(queued(1, 3), policy, 1000.0, 60.0) == Retry(1008.0, 1, 4)
    late = after_throttle(queued(0, 9), policy, 1050.0, 60.0)  # 256 s would pass the 60 s age
    assert late.at == pytest.approx(1060.001)


# invocation records ------------------------------------------------------------------------------

def test_success_record_shape():
    record = invocation_record(
        request_id="r1", function_arn=ARN + "f:$LATEST", condition=Condition.SUCCESS, invoke_count=1,
        request_payload=b'{"a": 1}', response=Response(b'{"ok": true}', None, "$LATEST"), timestamp=1573755365.5681)
    assert record == {
        "version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {"requestId": "r1", "functionArn": ARN + "f:$LATEST", "condition": "Success",
                           "approximateInvokeCount": 1},
        "requestPayload": {"a": 1},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"ok": True},
    }
    assert list(record) == ["version", "timestamp", "requestContext", "requestPayload", "responseContext",
                            "responsePayload"]


def test_failure_record_carries_the_function_error():
    record = invocation_record(
        request_id="r1", function_arn=ARN + "f:3", condition=Condition.RETRIES_EXHAUSTED, invoke_count=3,
        request_payload=b"{}", response=Response(b'{"errorType": "E"}', "Unhandled", "3"), timestamp=0)
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "3", "functionError": "Unhandled"}
    assert record["responsePayload"] == {"errorType": "E"}


def test_an_event_that_never_ran_has_no_response_in_its_record():
    record = invocation_record(request_id="r", function_arn=ARN + "f:$LATEST", condition=Condition.EVENT_AGE_EXCEEDED,
                               invoke_count=0, request_payload=b"[1]", response=None, timestamp=0)
    assert "responseContext" not in record and "responsePayload" not in record
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"


# configs: merge, parsing, rendering ---------------------------------------------------------------

def test_put_replaces_and_update_merges():
    current = EventInvokeConfig("f", "$LATEST", 2, 60, ARN + "a", ARN + "b", 1.0)
    changes = EventInvokeChanges(max_retry_attempts=0)
    assert replaced("f", "$LATEST", changes, 5.0) == EventInvokeConfig("f", "$LATEST", 0, None, None, None, 5.0)
    assert merged(current, changes, 5.0) == EventInvokeConfig("f", "$LATEST", 0, 60, ARN + "a", ARN + "b", 5.0)
    clear_success = EventInvokeChanges(on_success=None, destinations_given=frozenset({"on_success"}))
    assert merged(current, clear_success, 6.0).on_success is None
    assert merged(current, clear_success, 6.0).on_failure == ARN + "b"


def test_defaults_apply_when_not_set():
    config = EventInvokeConfig("f", "$LATEST")
    assert (config.retry_attempts, config.event_age_s) == (2, 21600)
    assert Policy.of(None) == Policy(2, 21600)


def test_parsing_checks_ranges_with_validation_errors():
    with pytest.raises(ValidationError, match="'maximumRetryAttempts' failed to satisfy constraint: Member must "
                                              "have value less than or equal to 2"):
        event_invoke_changes({"MaximumRetryAttempts": 3})
    with pytest.raises(ValidationError, match="greater than or equal to 60"):
        event_invoke_changes({"MaximumEventAgeInSeconds": 59})
    with pytest.raises(ValidationError, match="less than or equal to 21600"):
        event_invoke_changes({"MaximumEventAgeInSeconds": 21601})
    with pytest.raises(ValidationError, match="destinationConfig.onFailure.destination"):
        event_invoke_changes({"DestinationConfig": {"OnFailure": {"Destination": "not-an-arn"}}})


def test_parsing_records_which_destinations_were_given():
    changes = event_invoke_changes({"DestinationConfig": {"OnSuccess": {}, "OnFailure": {"Destination": ARN + "x"}}})
    assert changes.destinations_given == {"on_success", "on_failure"}
    assert (changes.on_success, changes.on_failure) == (None, ARN + "x")
    assert event_invoke_changes({"DestinationConfig": {}}).empty


def test_render_uses_an_epoch_number_and_omits_what_is_not_set():
    out = render(EventInvokeConfig("f", "$LATEST", None, 120, None, ARN + "x", 1569284520.3334), ARN + "f:$LATEST")
    assert out == {"LastModified": 1569284520.333, "FunctionArn": ARN + "f:$LATEST", "MaximumEventAgeInSeconds": 120,
                   "DestinationConfig": {"OnSuccess": {}, "OnFailure": {"Destination": ARN + "x"}}}


def test_function_targets():
    target = function_target(ARN + "g:live")
    assert (target.name, target.qualifier, target.account) == ("g", "live", ACCOUNT)
    assert function_target(ARN + "g").qualifier is None
    assert function_target("arn:aws:sqs:us-east-1:000000000000:q") is None


def test_the_retry_base_delay_setting_has_its_documented_name():
    assert load({}).async_retry_base_delay_s == 60.0
    assert load({"LAMINA_ASYNC_RETRY_BASE_DELAY": "0.2"}).async_retry_base_delay_s == 0.2
    with pytest.raises(ValueError, match="LAMINA_ASYNC_RETRY_BASE_DELAY"):
        load({"LAMINA_ASYNC_RETRY_BASE_DELAY": "soon"})


# the delivery logic, on a fake clock --------------------------------------------------------------

class FakeFunctions:
    """The parts of FunctionService the delivery path uses."""

    def __init__(self, dead_letter: str | None = None) -> None:
        self.present = {"f", "dest", "dlq"}
        self.dead_letter = dead_letter

    def arn(self, name: str, qualifier: str | None = None, region: str | None = None) -> str:
        return ARN.replace("us-east-1", region or "us-east-1") + name + (f":{qualifier}" if qualifier else "")

    def get(self, name: str, qualifier: str | None = None) -> SimpleNamespace:
        if name not in self.present:
            raise ResourceNotFound.function(self.arn(name))
        return SimpleNamespace(version=qualifier or "$LATEST", dead_letter_target_arn=self.dead_letter)

    def deployed(self, name: str, qualifier: str | None) -> SimpleNamespace:
        return SimpleNamespace(config=self.get(name, qualifier))


class Script:
    """A runner answering from a list: an Outcome, or an exception to raise."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, deployed: object, invocation) -> Outcome:
        self.calls.append(invocation.request_id)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]


FAIL = Outcome(b'{"errorType": "ValueError", "errorMessage": "no"}', error_type="ValueError", status="error")
OK = Outcome(b'{"fine": true}')


@pytest.fixture
def world(tmp_path):
    clock = FakeClock()
    queue = SqliteQueue(tmp_path / "lamina.db")
    configs = EventConfigStore(tmp_path / "lamina.db")
    yield SimpleNamespace(clock=clock, queue=queue, configs=configs)
    queue.close()
    configs.close()


def make(world, runner, functions=None, **kw) -> AsyncInvoker:
    return AsyncInvoker(world.queue, functions or FakeFunctions(), runner, world.configs, world.clock,
                        account=ACCOUNT, base_delay_s=60.0, rng=Middle(), **kw)  # type: ignore[arg-type]


def event(clock: FakeClock, payload: bytes = b'{"n": 1}') -> NewEvent:
    return NewEvent("req-1", "f", "$LATEST", ARN + "f", "trace", payload, clock.time())


def lease_one(world) -> QueuedEvent | None:
    got = world.queue.lease(1, world.clock.time(), world.clock.time() + 10)
    return got[0] if got else None


def test_fails_twice_then_succeeds_and_sends_a_success_record(world):
    world.configs.put(EventInvokeConfig("f", "$LATEST", on_success=ARN + "dest"))
    runner = Script(FAIL, FAIL, OK)
    invoker = make(world, runner)

    async def scenario() -> None:
        await invoker.submit(event(world.clock))
        await invoker.deliver(lease_one(world))
        assert lease_one(world) is None  # waits a minute
        world.clock.advance(60)
        first_retry = lease_one(world)
        assert (first_retry.attempts, first_retry.last_error) == (1, "ValueError")
        await invoker.deliver(first_retry)
        world.clock.advance(119)
        assert lease_one(world) is None  # then two minutes
        world.clock.advance(1)
        await invoker.deliver(lease_one(world))
        record_event = lease_one(world)
        assert record_event.function == "dest"
        record = json.loads(record_event.payload)
        assert record["requestContext"] == {"requestId": "req-1", "functionArn": ARN + "f:$LATEST",
                                            "condition": "Success", "approximateInvokeCount": 3}
        assert record["responsePayload"] == {"fine": True}
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    assert runner.calls == ["req-1"] * 3


def test_retries_exhausted_goes_to_on_failure_and_the_dead_letter_function(world):
    world.configs.put(EventInvokeConfig("f", "$LATEST", max_retry_attempts=0, on_failure=ARN + "dest"))
    invoker = make(world, Script(FAIL), FakeFunctions(dead_letter=ARN + "dlq"))

    async def scenario() -> None:
        await invoker.submit(event(world.clock, b'{"original": true}'))
        await invoker.deliver(lease_one(world))
        follow = world.queue.lease(5, world.clock.time(), world.clock.time() + 10)
        by_function = {e.function: e for e in follow}
        assert set(by_function) == {"dest", "dlq"}
        assert json.loads(by_function["dest"].payload)["requestContext"]["condition"] == "RetriesExhausted"
        assert by_function["dlq"].payload == b'{"original": true}'  # a DLQ gets the event itself
        assert world.queue.statistics(world.clock.time()).dead == 1
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())


def test_an_unsupported_dead_letter_target_is_said_and_the_event_kept_dead(world):
    invoker = make(world, Script(FAIL), FakeFunctions(dead_letter="arn:aws:sqs:us-east-1:000000000000:q"))
    world.configs.put(EventInvokeConfig("f", "$LATEST", max_retry_attempts=0))

    async def scenario() -> None:
        await invoker.submit(event(world.clock))
        await invoker.deliver(lease_one(world))
        assert lease_one(world) is None
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    reason = world.queue._db.execute("SELECT reason FROM async_dead").fetchone()[0]
    assert "not a lamina function" in reason


def test_an_expired_event_is_not_run(world):
    world.configs.put(EventInvokeConfig("f", "$LATEST", max_event_age_s=60, on_failure=ARN + "dest"))
    runner = Script()
    invoker = make(world, runner)

    async def scenario() -> None:
        await invoker.submit(event(world.clock))
        world.clock.advance(61)
        await invoker.deliver(lease_one(world))
        record = json.loads(lease_one(world).payload)
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 0
        assert "responsePayload" not in record
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    assert runner.calls == []


def test_throttled_events_wait_without_using_attempts(world):
    runner = Script(TooManyRequests(ThrottleReason.RESERVED), TooManyRequests(ThrottleReason.RESERVED), OK)
    invoker = make(world, runner)

    async def scenario() -> None:
        await invoker.submit(event(world.clock))
        await invoker.deliver(lease_one(world))
        world.clock.advance(1)
        again = lease_one(world)
        assert (again.attempts, again.throttles) == (0, 1)
        await invoker.deliver(again)
        world.clock.advance(1.5)
        assert lease_one(world) is None  # 2 s after the second throttle
        world.clock.advance(0.5)
        await invoker.deliver(lease_one(world))
        assert lease_one(world) is None  # delivered
        stats = await invoker.statistics()
        assert (stats.throttled, stats.succeeded, stats.retried) == (2, 1, 0)
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())


def test_events_of_a_deleted_function_are_dropped(world):
    functions = FakeFunctions()
    functions.present.discard("f")
    runner = Script()
    invoker = make(world, runner, functions)

    async def scenario() -> None:
        await invoker.submit(event(world.clock))
        await invoker.deliver(lease_one(world))
        assert lease_one(world) is None
        assert (await invoker.statistics()).dropped == 1
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    assert runner.calls == []


def test_shutdown_waits_for_the_grace_period_then_hands_leases_back(world):
    started = []

    async def forever(deployed: object, invocation) -> Outcome:
        started.append(invocation.request_id)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    invoker = make(world, forever, grace_s=0.2)

    async def scenario() -> None:
        invoker.start()
        await invoker.submit(event(world.clock))
        for _ in range(200):
            if started:
                break
            await asyncio.sleep(0.01)
        assert started == ["req-1"]
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    back = lease_one(world)  # available at once (not after the lease would have expired)
    assert back is not None and back.deliveries == 2 and back.attempts == 0


def test_the_dispatcher_delivers_what_is_submitted(world):
    runner = Script(*[OK] * 20)
    invoker = make(world, runner)

    async def scenario() -> None:
        invoker.start()
        await asyncio.gather(*(invoker.submit(NewEvent(f"r{i}", "f", "$LATEST", ARN + "f", "t", b"{}",
                                                       world.clock.time())) for i in range(20)))
        for _ in range(300):
            if len(runner.calls) == 20 and not (await invoker.statistics()).in_flight:
                break
            await asyncio.sleep(0.01)
        await invoker.aclose()
        invoker.close()

    asyncio.run(scenario())
    assert sorted(runner.calls) == sorted(f"r{i}" for i in range(20))
    assert lease_one(world) is None

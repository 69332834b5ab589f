"""The dispatch window (scheduler/window.py): its pure bookkeeping, and the scheduler holding warm
hand-offs back while it is full."""

import asyncio
import types

import pytest

from lamina.clock import FakeClock
from lamina.config import load
from lamina.scheduler.environment import Outcome
from lamina.scheduler.scheduler import Pool, Scheduler
from lamina.scheduler.window import PERIOD, DispatchWindow, Pace, width_for


def test_a_full_window_frees_a_place_when_an_invocation_ends_or_ages():
    w = DispatchWindow(2, fresh_s=0.01)
    a, b = w.enter(1.0), w.enter(1.004)
    assert a is not None and b is not None
    assert w.enter(1.005) is None and w.next_expiry() == pytest.approx(1.01)
    w.leave(b)
    c = w.enter(1.006)
    assert c is not None and w.enter(1.007) is None
    assert w.enter(1.0101) is not None  # a has run 10 ms: it no longer counts
    w.leave(a)  # ending after it aged frees nothing twice
    assert w.counted == 2 and w.enter(1.0102) is None
    assert w.next_expiry() == pytest.approx(1.016)  # c's


def test_finished_entries_do_not_pile_up():
    w = DispatchWindow(4)
    for i in range(1000):
        w.leave(w.enter(float(i)))
    assert w.counted == 0 and not w._entries and w.next_expiry() is None


def test_a_function_waits_for_the_window_only_while_its_fastest_invocations_are_short():
    pace = Pace()
    assert pace.quick  # unmeasured
    pace.add(1000.0)  # sleeps a second
    assert not pace.quick
    for _ in range(PERIOD):
        pace.add(20.0)
    assert not pace.quick
    pace.add(0.3)  # one fast invocation among slow ones: its fastest is short
    assert pace.quick
    for _ in range(2 * PERIOD):
        pace.add(5.0)
    assert not pace.quick
    for _ in range(PERIOD):
        pace.add(0.2 if _ % 10 == 0 else 6.0)  # under load most wait several ms; the fastest says 0.2
    assert pace.quick


def test_the_setting():
    assert width_for("auto", 2) == 12 and width_for("off", 2) == 0 and width_for("5", 2) == 5
    assert load({"LAMINA_DISPATCH_WINDOW": "7"}).dispatch_window == "7"
    with pytest.raises(ValueError, match="dispatch_window"):
        load({"LAMINA_DISPATCH_WINDOW": "-3"})


class FakeEnvironment:
    """Answers when told to; goes back to its pool's idle list as a real one does."""

    def __init__(self, name: str, pool: Pool, duration_ms: float = 0.2) -> None:
        self.name, self.pool, self.duration_ms = name, pool, duration_ms
        self.gate: asyncio.Future[None] | None = None
        self.served: list[str] = []

    async def invoke(self, invocation) -> Outcome:
        self.served.append(invocation.request_id)
        self.gate = asyncio.get_running_loop().create_future()
        await self.gate
        self.pool.idle.append(self)
        return Outcome(b"{}", "application/json", None, "success", duration_ms=self.duration_ms)


def setup(width: int, duration_ms: float = 0.2, envs: int = 3):
    clock = FakeClock()
    s = Scheduler(None, clock, None, None, uid_base=0, init_timeout_s=10,  # type: ignore[arg-type]
                  concurrency_limit=10, keepalive_s=600, dispatch_window=width)
    config = types.SimpleNamespace(name="f", version="$LATEST", revision_id="r1")
    recipe = types.SimpleNamespace(config=config)
    pool = s._pool_for(config)  # type: ignore[arg-type]
    made = [FakeEnvironment(f"e{i}", pool, duration_ms) for i in range(envs)]
    pool.idle = list(made)
    return s, recipe, pool, made


def invocation(rid: str):
    return types.SimpleNamespace(request_id=rid)


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def finish(env: FakeEnvironment) -> None:
    assert env.gate is not None
    env.gate.set_result(None)


def test_a_request_beyond_the_window_waits_and_takes_the_environment_the_first_left():
    async def run():
        s, recipe, pool, envs = setup(width=1)
        first = asyncio.ensure_future(s.invoke(recipe, invocation("r1")))
        await settle()
        second = asyncio.ensure_future(s.invoke(recipe, invocation("r2")))
        await settle()
        assert len(pool.idle) == 2  # two environments idle, yet r2 waits: the window is full
        assert s.in_flight == 2 and s.concurrency() == {"f": 2}  # admitted: it counts as in flight
        finish(envs[2])  # r1 took the most recently idle one
        await first
        await settle()
        assert [e.served for e in envs] == [[], [], ["r1", "r2"]]  # the same environment, still hot
        finish(envs[2])
        await second
        assert s.in_flight == 0 and s._window.counted == 0 and not s._window_waiters

    asyncio.run(run())


def test_waiters_go_in_order_and_one_that_gives_up_leaves_no_trace():
    async def run():
        s, recipe, pool, envs = setup(width=1)
        tasks = [asyncio.ensure_future(s.invoke(recipe, invocation(f"r{i}"))) for i in range(4)]
        await settle()
        tasks[1].cancel()  # the client went away while waiting
        await settle()
        assert len(s._window_waiters) == 2
        for _ in range(3):
            finish(next(e for e in envs if e.gate is not None and not e.gate.done()))
            await settle()
        await asyncio.gather(tasks[0], tasks[2], tasks[3])
        assert envs[2].served == ["r0", "r2", "r3"]
        assert s.in_flight == 0 and s._window.counted == 0

    asyncio.run(run())


def test_slow_functions_and_a_window_of_zero_never_wait():
    async def run():
        for width, duration_ms in ((1, 30.0), (0, 0.2)):
            s, recipe, pool, envs = setup(width, duration_ms)
            if width:
                for _ in range(PERIOD):
                    pool.pace.add(duration_ms)
            tasks = [asyncio.ensure_future(s.invoke(recipe, invocation(f"r{i}"))) for i in range(3)]
            await settle()
            assert all(e.served for e in envs)  # scaled out at once
            for e in envs:
                finish(e)
            await asyncio.gather(*tasks)

    asyncio.run(run())


def test_a_waiter_goes_when_the_invocation_ahead_has_run_fresh_s():
    async def run():
        s, recipe, pool, envs = setup(width=1)
        s._window.fresh_s = 0.02
        first = asyncio.ensure_future(s.invoke(recipe, invocation("r1")))
        await settle()
        second = asyncio.ensure_future(s.invoke(recipe, invocation("r2")))
        await settle()
        assert not envs[1].served
        s._clock.advance(0.02)  # r1 sleeps on; its place frees by age (the timer runs on the loop's time)
        await asyncio.sleep(0.05)
        assert envs[1].served == ["r2"]
        finish(envs[2])
        finish(envs[1])
        await asyncio.gather(first, second)
        assert s._window.counted == 0

    asyncio.run(run())

"""The scheduler's keep-alive wiring: unload-and-pre-warm for functions whose gaps are all long."""

import asyncio

from lamina.clock import FakeClock
from lamina.scheduler.keepalive import IdleHistogram
from lamina.scheduler.scheduler import Activity, Pool, Scheduler


class FakeEnv:
    def __init__(self) -> None:
        self.killed = False
        self.idle_since = 0.0

    def kill(self) -> None:
        self.killed = True


def scheduler() -> Scheduler:
    return Scheduler(None, FakeClock(), None, None, uid_base=0, init_timeout_s=10,  # type: ignore[arg-type]
                     concurrency_limit=10, keepalive_s=600, keepalive_policy="histogram")


def history(gap_s: float) -> Activity:
    activity = Activity(IdleHistogram(), last_end=1000.0)
    for _ in range(20):
        activity.idle.add(gap_s)
    return activity


def test_an_environment_of_a_function_with_long_gaps_is_let_go_and_prewarmed_later():
    async def run():
        s = scheduler()
        s._activity["f"] = history(900)
        pool = Pool(("f", "$LATEST", "r1"), recipe=object())  # type: ignore[arg-type]
        env = FakeEnv()
        s._became_idle(pool, env)  # type: ignore[arg-type]
        assert env.killed and not pool.idle
        timer = s._prewarm_timers[pool.key]
        assert 760 < timer.when() - asyncio.get_running_loop().time() <= 765
        timer.cancel()

    asyncio.run(run())


def test_an_environment_of_a_busy_function_is_kept():
    async def run():
        s = scheduler()
        s._activity["f"] = history(5)
        pool = Pool(("f", "$LATEST", "r1"), recipe=object())  # type: ignore[arg-type]
        env = FakeEnv()
        s._became_idle(pool, env)  # type: ignore[arg-type]
        assert not env.killed and pool.idle == [env] and not s._prewarm_timers

    asyncio.run(run())


def test_a_prewarmed_environment_counts_its_keepalive_from_the_last_call():
    async def run():
        s = scheduler()
        s._activity["f"] = history(900)
        pool = Pool(("f", "$LATEST", "r1"), recipe=object())  # type: ignore[arg-type]
        env = FakeEnv()
        s._prewarmed.add(env)  # type: ignore[arg-type]
        s._became_idle(pool, env)  # type: ignore[arg-type]
        assert pool.idle == [env] and env.idle_since == 1000.0 and not env.killed

    asyncio.run(run())

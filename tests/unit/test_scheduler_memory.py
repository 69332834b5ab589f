"""The scheduler's memory bookkeeping: the sum of its environments' charges, kept as they change."""

import asyncio
from pathlib import Path

from lamina.clock import FakeClock
from lamina.sandbox.base import SandboxSpec
from lamina.scheduler.environment import Environment
from lamina.scheduler.scheduler import Pool, Scheduler


class FakeDriver:
    peak_mb = 0

    def peak_memory_mb(self, spec: SandboxSpec) -> int:
        return self.peak_mb


def scheduler() -> Scheduler:
    return Scheduler(None, FakeClock(), None, None, uid_base=0, init_timeout_s=10,  # type: ignore[arg-type]
                     concurrency_limit=10, keepalive_s=600, keepalive_policy="histogram")


def brute_force(s: Scheduler) -> int:
    return sum(e.memory_charge_mb for e in s._env_pool)


def test_the_sum_follows_environments_that_come_go_and_measure_their_peaks():
    async def run():
        s, driver, clock = scheduler(), FakeDriver(), FakeClock()
        spec = SandboxSpec("e", 1, Path("/nonexistent"), None, {}, 512, 128)  # type: ignore[arg-type]
        envs = [Environment(f"e{i}", None, spec, driver, clock, None, lambda e: None)  # type: ignore[arg-type]
                for i in range(3)]
        pool = Pool(("f", "$LATEST", "r1"))
        for env in envs:
            s._enlist(env, pool)
        assert s.memory_used_mb() == brute_force(s) == 3 * 16  # nothing measured yet: the floor
        driver.peak_mb = 100
        envs[0]._max_memory_mb()
        assert s.memory_used_mb() == brute_force(s) == 100 + 2 * 16
        clock.advance(0.05)
        driver.peak_mb = 300
        envs[0]._max_memory_mb()  # read too recently: the last reading stands
        assert s.memory_used_mb() == brute_force(s) == 100 + 2 * 16
        clock.advance(1)
        envs[0]._max_memory_mb()
        envs[1]._max_memory_mb()
        assert s.memory_used_mb() == brute_force(s) == 300 + 300 + 16
        s._delist(envs[0])
        s._delist(envs[0])  # twice: counted off once
        assert s.memory_used_mb() == brute_force(s) == 300 + 16
        clock.advance(1)
        driver.peak_mb = 900
        envs[0]._max_memory_mb()  # no longer the scheduler's: its growth is not counted
        assert s.memory_used_mb() == brute_force(s) == 300 + 16

    asyncio.run(run())


class RecordingDriver(FakeDriver):
    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, spec: SandboxSpec) -> None:
        self.prepared.append(spec.env_id)

    def cleanup(self, spec: SandboxSpec) -> None:
        pass


def test_a_standby_evicted_before_its_slot_is_made_never_starts(tmp_path):
    from lamina.runtimes.registry import Runtime
    from lamina.sandbox.slots import Slots

    async def run():
        driver = RecordingDriver()
        s = Scheduler(driver, FakeClock(), None, None, uid_base=0, init_timeout_s=10,  # type: ignore[arg-type]
                      concurrency_limit=10, keepalive_s=600, slots=Slots(tmp_path / "slots"), standby_per_runtime=1,
                      memory_budget_mb=1)
        runtime = Runtime("python3.12", "python")
        s._refill_standby(runtime)
        (standby,) = s._standby[runtime.id]
        assert not s._make_memory_room(64)  # over the 1 MB budget: the standby is evicted at once
        await asyncio.gather(*s._tasks)
        assert driver.prepared == [] and not standby.spec.code_dir.exists()

    asyncio.run(run())

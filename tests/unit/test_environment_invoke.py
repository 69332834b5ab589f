"""An environment's invocation outlives a caller that stops waiting: its result still closes the books
(log lines), and a function that hangs still times out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lamina.clock import FakeClock
from lamina.model import FunctionConfig, Invocation
from lamina.runtime_api.state import EnvState
from lamina.sandbox.base import SandboxSpec
from lamina.scheduler.environment import Environment

CONFIG = FunctionConfig(name="f", runtime="python3.11", handler="app.handler", role="r", code_sha256="00",
                        code_size=1, revision_id="r0", last_modified=0.0, timeout_s=1)


class Driver:
    def peak_memory_mb(self, spec: SandboxSpec) -> int:
        return 40


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, function: str, stream: str, text: str) -> None:
        self.lines.append(text)


def idle_environment() -> tuple[Environment, list[Invocation], Sink, list[str]]:
    """An environment whose runtime is parked in /next (what it was handed is recorded)."""
    sink, killed = Sink(), []
    spec = SandboxSpec("e", 1, Path("/nonexistent"), None, {}, 512, 128)  # type: ignore[arg-type]
    env = Environment("e", CONFIG, spec, Driver(), FakeClock(), sink, lambda e: None)  # type: ignore[arg-type]
    env.state = EnvState.IDLE
    env._ready.set_result(None)  # its init is over
    delivered: list[Invocation] = []
    env._next_waiter = lambda invocation: delivered.append(invocation) or True
    env.kill = lambda: killed.append("killed")  # type: ignore[method-assign]  # no process here
    return env, delivered, sink, killed


def invocation(rid: str = "r1") -> Invocation:
    return Invocation(request_id=rid, payload=b"{}", invoked_arn="arn", trace_id="t")


async def _cancelled_caller(env: Environment) -> None:
    task = asyncio.get_running_loop().create_task(env.invoke(invocation()))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert task.cancelled()


def test_a_result_after_the_caller_left_still_writes_the_invocation_s_log_lines():
    async def run():
        env, delivered, sink, killed = idle_environment()
        await _cancelled_caller(env)
        assert delivered == [invocation()] and env._deadline is not None and not env._deadline.cancelled()
        env.respond("r1", b"{}", "application/json")
        assert "END RequestId: r1" in sink.lines[-1] and "REPORT RequestId: r1" in sink.lines[-1]
        assert env._deadline is None and not killed  # ended: no timeout left to fire
        assert env.park(lambda invocation: True) is None and env.state is EnvState.IDLE

    asyncio.run(run())


def test_a_function_that_hangs_after_its_caller_left_still_times_out():
    async def run():
        env, delivered, sink, killed = idle_environment()
        await _cancelled_caller(env)
        await asyncio.sleep(1.1)  # the function's timeout (1 s), on the loop's own timer
        assert killed == ["killed"]
        assert "Task timed out after 1.00 seconds" in sink.lines[-1] and "Status: timeout" in sink.lines[-1]
        env.respond("r1", b"late", "application/json")  # after the timeout: ignored
        assert len(sink.lines) == 1

    asyncio.run(run())


def test_a_waiting_caller_gets_the_result_and_the_deadline_goes():
    async def run():
        env, delivered, sink, killed = idle_environment()
        task = asyncio.get_running_loop().create_task(env.invoke(invocation()))
        await asyncio.sleep(0)
        env.respond("r1", b'{"ok": 1}', "application/json")
        outcome = await task
        assert (outcome.payload, outcome.status) == (b'{"ok": 1}', "success")
        assert env._deadline is None and not killed

    asyncio.run(run())

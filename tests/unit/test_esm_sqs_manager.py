"""The mapping manager (esm/manager.py) with fake functions and pollers: settling states (also after a
crash), starting and stopping pollers, restarting a failed one, invoke outcomes, the stream poller's seams."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from lamina.clock import FakeClock
from lamina.errors import ResourceNotFound, SandboxError, ThrottleReason, TooManyRequests
from lamina.esm import manager as manager_module
from lamina.esm.manager import EsmManager
from lamina.esm.model import Mapping, SourceKind, State
from lamina.scheduler.environment import Outcome
from lamina.store.esm import EsmStore

Q = "arn:aws:sqs:us-east-1:123456789012:q"
K = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


@dataclasses.dataclass
class Config:
    version: str = "$LATEST"


@dataclasses.dataclass
class Deployed:
    config: Config


class Functions:
    def __init__(self) -> None:
        self.names = {"f"}

    def get(self, name: str, qualifier: str | None = None) -> Config:
        if name not in self.names:
            raise ResourceNotFound.function(self.arn(name, qualifier))
        return Config()

    def deployed(self, name: str, qualifier: str | None) -> Deployed:
        self.get(name, qualifier)
        return Deployed(Config())

    def arn(self, name: str, qualifier: str | None = None, region: str | None = None) -> str:
        return f"arn:aws:lambda:{region or 'us-east-1'}:123456789012:function:{name}" + (f":{qualifier}" if qualifier else "")


class Clients:
    def queue_url(self, arn: str) -> str:
        return "http://queue"

    def close(self) -> None:
        pass


class FakePoller:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.runs = 0
        self.closed = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError("source trouble")
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed += 1


@pytest.fixture
def store(tmp_path):
    s = EsmStore(tmp_path / "lamina.db")
    yield s
    s.close()


def make(store: EsmStore, run: Any = None, poller: FakePoller | None = None) -> tuple[EsmManager, list[str]]:
    async def default_run(deployed, invocation):
        return Outcome(payload=b"null")
    m = EsmManager(store, Functions(), run or default_run, FakeClock(), region="us-east-1",  # type: ignore[arg-type]
                   account="123456789012", clients=Clients())  # type: ignore[arg-type]
    started: list[str] = []

    async def fake_poller(mapping: Mapping) -> FakePoller:
        started.append(mapping.uuid)
        return poller or FakePoller()
    m._poller = fake_poller  # type: ignore[method-assign]
    return m, started


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def mapping(uuid: str, state: State, enabled: bool = True, arn: str = Q) -> Mapping:
    return Mapping(uuid=uuid, function="f", qualifier=None, source_arn=arn, kind=SourceKind.SQS, enabled=enabled,
                   state=state, state_reason="USER_INITIATED", batch_size=10, batching_window_s=0, last_modified=1.0)


def test_create_update_delete_settle_and_drive_the_poller(store):
    async def scenario() -> None:
        m, started = make(store)
        await m.start()
        made = await m.create({"FunctionName": "f", "EventSourceArn": Q})
        assert made.state is State.CREATING
        await settle()
        assert m.get(made.uuid).state is State.ENABLED and m.running() == [made.uuid] and started == [made.uuid]
        assert (await m.update(made.uuid, {"Enabled": False})).state is State.DISABLING
        await settle()
        assert m.get(made.uuid).state is State.DISABLED and m.running() == []
        assert (await m.update(made.uuid, {"Enabled": True})).state is State.ENABLING
        await settle()
        assert m.get(made.uuid).state is State.ENABLED and m.running() == [made.uuid]
        assert (await m.delete(made.uuid)).state is State.DELETING
        await settle()
        assert m.running() == [] and store.get(made.uuid) is None
        await m.aclose()
    asyncio.run(scenario())


def test_start_settles_what_a_crash_left_behind(store):
    """Transitional states written before a crash end where they were going; Deleting ones are removed."""
    store.put(mapping("a", State.CREATING))
    store.put(mapping("b", State.DISABLING, enabled=False))
    store.put(mapping("c", State.DELETING))
    store.put(mapping("d", State.UPDATING, enabled=False))
    store.put(mapping("e", State.ENABLED))
    store.save_checkpoint("c", "shard-1", "42")

    async def scenario() -> None:
        m, started = make(store)
        await m.start()
        await settle()
        assert sorted(started) == ["a", "e"] and sorted(m.running()) == ["a", "e"]
        await m.aclose()
    asyncio.run(scenario())
    assert [(x.uuid, x.state) for x in store.all()] == [("a", State.ENABLED), ("b", State.DISABLED),
                                                          ("d", State.DISABLED), ("e", State.ENABLED)]
    assert store.checkpoint("c", "shard-1") is None


def test_a_failing_poller_is_restarted(store):
    store.put(mapping("a", State.ENABLED))
    poller = FakePoller(failures=1)

    async def scenario() -> None:
        m, _ = make(store, poller=poller)
        await m.start()
        for _ in range(200):
            if poller.runs >= 2:
                break
            await asyncio.sleep(0.01)
        await m.aclose()
    asyncio.run(scenario())
    assert poller.runs == 2 and poller.closed == 2


def test_function_and_duplicate_checks(store):
    async def scenario() -> None:
        m, _ = make(store)
        await m.start()
        with pytest.raises(ResourceNotFound):
            await m.create({"FunctionName": "nope", "EventSourceArn": Q})
        first = await m.create({"FunctionName": "f", "EventSourceArn": Q})
        with pytest.raises(Exception, match=f"existing mapping with UUID {first.uuid}"):
            await m.create({"FunctionName": "f", "EventSourceArn": Q})
        await m.create({"FunctionName": "f:live", "EventSourceArn": Q})  # another qualifier: another function ARN
        await m.aclose()
    asyncio.run(scenario())


@pytest.mark.parametrize("result, expected", [
    (Outcome(payload=b'{"ok": 1}'), (200, None, b'{"ok": 1}')),
    (Outcome(payload=b'{"errorMessage": "x"}', error_type="Unhandled", status="error"), (200, "Unhandled", b'{"errorMessage": "x"}')),
    (TooManyRequests(ThrottleReason.ACCOUNT), (429, None, b"")),
    (SandboxError("no sandbox"), (500, None, b"")),
])
def test_invoke_outcomes(store, result, expected):
    seen = []

    async def run(deployed, invocation):
        seen.append(invocation)
        if isinstance(result, Exception):
            raise result
        return result
    m, _ = make(store, run=run)
    outcome = asyncio.run(m._invoker(mapping("a", State.ENABLED))(b'{"Records": []}'))
    assert (outcome.status, outcome.function_error, outcome.payload) == expected
    assert seen[0].payload == b'{"Records": []}' and seen[0].invoked_arn.endswith(":function:f")
    assert outcome.request_id == seen[0].request_id


def test_a_missing_function_is_a_404_outcome(store):
    m, _ = make(store)
    gone = dataclasses.replace(mapping("a", State.ENABLED), function="gone")
    assert asyncio.run(m._invoker(gone)(b"{}")).status == 404


def test_stream_pollers_get_the_stores_checkpoints(store, monkeypatch):
    """The stream poller is built with checkpoints kept in the store and the mapping's settings."""
    import lamina.esm.sources
    import lamina.esm.stream
    built: dict[str, Any] = {}
    monkeypatch.setattr(lamina.esm.sources, "open_source", lambda arn, mapping_uuid=None: ("source", arn, mapping_uuid))
    monkeypatch.setattr(lamina.esm.stream, "StreamPoller", lambda **kw: built.update(kw) or FakePoller())
    m = EsmManager(store, Functions(), None, FakeClock(), region="us-east-1", account="123456789012",  # type: ignore[arg-type]
                   clients=Clients())  # type: ignore[arg-type]
    stream = dataclasses.replace(mapping("k", State.ENABLED, arn=K), kind=SourceKind.KINESIS,
                                 starting_position="TRIM_HORIZON", on_failure=Q, max_retry_attempts=3)
    store.put(stream)

    async def scenario() -> None:
        await manager_module.EsmManager._poller(m, stream)
        await built["save_checkpoint"]("shard-0", "99")
        assert await built["load_checkpoint"]("shard-0") == "99"
        assert await built["load_checkpoint"]("shard-1") is None
        built["on_result"]("OK")
    asyncio.run(scenario())
    assert built["source"] == ("source", K, "k")
    assert (built["starting_position"], built["maximum_retry_attempts"], built["batch_size"]) == ("TRIM_HORIZON", 3, 10)
    assert built["send_failure"] is not None and built["function_arn"].endswith(":function:f")
    assert store.get("k").last_processing_result == "OK"

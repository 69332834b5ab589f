"""lamina's end of the Runtime API in frames (runtime_api/frames.py), driven byte by byte."""

from __future__ import annotations

import asyncio
import json

import pytest

from lamina.model import Invocation
from lamina.runtime_api.frames import HEAD, FrameChannel, frame
from lamina.runtime_api.state import EnvEvent, EnvState, InvalidStateTransition
from lamina.scheduler.environment import MAX_RESPONSE_BYTES


class FakeEnvironment:
    def __init__(self) -> None:
        self.current = "r1"
        self.calls: list[tuple] = []
        self.parked = None
        self.assignment: asyncio.Future[dict[str, str]] | None = None
        self.refuse_next = False

    def park(self, deliver):
        if self.refuse_next:
            raise InvalidStateTransition(EnvState.INIT, EnvEvent.NEXT)
        self.parked = deliver
        return None

    def check_request(self, request_id: str) -> bool:
        return request_id == self.current

    def deadline_ms(self) -> int:
        return 1234

    def respond(self, request_id, body, content_type):
        self.calls.append(("respond", request_id, body, content_type))

    def fail(self, request_id, body, error_type):
        self.calls.append(("fail", request_id, body, error_type))

    def too_large(self):
        self.calls.append(("too_large",))

    def init_failed(self, body, error_type):
        self.calls.append(("init_failed", body, error_type))

    async def standby(self):
        assert self.assignment is not None
        return await self.assignment


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def frames_in(data: bytes) -> list[tuple]:
    out = []
    while data:
        kind, la, lb, lc = HEAD.unpack_from(data)
        at = HEAD.size
        out.append((kind, data[at:at + la], data[at + la:at + la + lb], data[at + la + lb:at + la + lb + lc]))
        data = data[at + la + lb + lc:]
    return out


def channel() -> tuple[FrameChannel, FakeEnvironment, FakeTransport, set]:
    env, transport, channels = FakeEnvironment(), FakeTransport(), set()
    ch = FrameChannel(env, channels)  # type: ignore[arg-type]
    ch.connection_made(transport)  # type: ignore[arg-type]
    return ch, env, transport, channels


def invocation(request_id: str = "r2", context: str | None = None) -> Invocation:
    return Invocation(request_id=request_id, payload=b'{"a": 1}', invoked_arn="arn:aws:lambda:us-east-1:1:function:f",
                      trace_id="Root=1-2-3", client_context=context)


def test_a_result_and_next_in_one_read_then_the_event_when_it_comes():
    ch, env, transport, channels = channel()
    assert channels == {ch}
    data = frame(b"R", b"r1", b"application/json", b'"ok"') + frame(b"N")
    for i in range(len(data)):  # one byte at a time: frames cut anywhere
        ch.data_received(data[i:i + 1])
    assert env.calls == [("respond", "r1", b'"ok"', "application/json")]
    assert transport.written == b""  # a result is not acknowledged
    assert env.parked(invocation("r2", '{"c": 1}')) is True
    [(kind, a, b, body)] = frames_in(transport.written)
    assert (kind, b, body) == (b"V", b"", b'{"a": 1}')
    assert a.decode().split("\0") == ["r2", "1234", "arn:aws:lambda:us-east-1:1:function:f", "Root=1-2-3", '{"c": 1}', ""]
    ch.connection_lost(None)
    assert channels == set()
    assert env.parked(invocation("r3")) is False  # gone: the invocation is handed out again


def test_errors_and_refusals_get_the_http_apis_answers():
    ch, env, transport, _ = channel()
    ch.data_received(frame(b"E", b"r1", b"", b'{"errorType": "X"}') + frame(b"R", b"nope", b"", b"{}"))
    assert env.calls == [("fail", "r1", b'{"errorType": "X"}', None)]
    [(kind, a, _, body)] = frames_in(transport.written)
    assert (kind, a) == (b"x", b"400") and json.loads(body)["errorType"] == "InvalidRequestID"
    transport.written = b""
    env.refuse_next = True
    ch.data_received(frame(b"N"))
    [(kind, a, _, body)] = frames_in(transport.written)
    assert (kind, a) == (b"X", b"403") and json.loads(body)["errorType"] == "InvalidStateTransition"
    ch.data_received(frame(b"I", b"", b"Runtime.ImportModuleError", b"{}"))
    assert env.calls[-1] == ("init_failed", b"{}", "Runtime.ImportModuleError")


def test_a_result_over_the_limit_is_refused_unread():
    ch, env, transport, _ = channel()
    size = MAX_RESPONSE_BYTES + 10
    head = HEAD.pack(b"R", 2, 0, size) + b"r1"
    ch.data_received(head + b"x" * 1000)
    assert env.calls == [("too_large",)]
    [(kind, a, _, body)] = frames_in(transport.written)
    assert (kind, a) == (b"x", b"413") and json.loads(body)["errorType"] == "RequestEntityTooLarge"
    left = size - 1000
    while left > 65536:
        ch.data_received(b"x" * 65536)
        left -= 65536
    ch.data_received(b"x" * left + frame(b"N"))
    assert len(ch._buf) == 0 and env.parked is not None  # the body was skipped, the next frame read
    assert not transport.closed


def test_a_big_result_in_many_reads_waits_whole_in_the_buffer_then_arrives_once():
    ch, env, transport, _ = channel()
    body = bytes(range(256)) * 4096  # 1 MiB
    data = frame(b"R", b"r1", b"application/json", body) + frame(b"N")
    buffered = []
    for at in range(0, len(data), 65536):
        ch.data_received(data[at:at + 65536])
        buffered.append(len(ch._buf))
    assert buffered[:-1] == [65536 * (i + 1) for i in range(len(buffered) - 1)]  # kept as it came, unparsed
    assert env.calls == [("respond", "r1", body, "application/json")] and env.parked is not None
    assert len(ch._buf) == 0


@pytest.mark.parametrize("data", [
    frame(b"Q"),  # no such operation
    HEAD.pack(b"N", 0, 0, MAX_RESPONSE_BYTES + 1),  # a /next with a body this big is no /next
    HEAD.pack(b"R", 1 << 20, 0, 0),  # a request id of a megabyte
])
def test_a_malformed_frame_closes_the_channel(data):
    ch, env, transport, _ = channel()
    ch.data_received(data)
    assert transport.closed and env.calls == []


def test_standby_waits_for_the_assignment():
    async def run() -> None:
        ch, env, transport, _ = channel()
        env.assignment = asyncio.get_running_loop().create_future()
        ch.data_received(frame(b"S"))
        await asyncio.sleep(0)
        assert transport.written == b""
        env.assignment.set_result({"A": "1", "B": "2"})
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert frames_in(transport.written) == [(b"A", b"", b"", b"A=1\0B=2\0")]

        ch2, env2, transport2, _ = channel()
        env2.assignment = asyncio.get_running_loop().create_future()
        ch2.data_received(frame(b"S"))
        await asyncio.sleep(0)
        ch2.connection_lost(None)  # the runtime went away while it waited
        await asyncio.sleep(0)
        assert ch2._standby is not None and ch2._standby.cancelled()

    asyncio.run(run())

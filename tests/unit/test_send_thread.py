"""The send thread (http/sendthread.c) and the rule that keeps a socket's writes in order (http/sender.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import sysconfig
import time
from pathlib import Path

import pytest

from lamina.http import sender
from lamina.http.sender import DIRECT_MAX, DirectWriter
from lamina.http.server import HttpServer, Response

HEADERS = Path(sysconfig.get_paths()["include"]) / "Python.h"
pytestmark = pytest.mark.skipif(not sender.LIBRARY.is_file() and not HEADERS.is_file(),
                                reason="no Python headers here, so `make install` cannot build the send thread")


@pytest.fixture(scope="module")
def module():
    assert sender.enable(True), f"{sender.LIBRARY} missing: `make install` builds it"
    yield sender._state["module"]
    sender.enable(False)  # other tests' transports write for themselves


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def read_all(sock: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    parts, have = [], 0
    while have < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def test_writes_arrive_whole_and_in_order(module) -> None:
    a, b = socket.socketpair()
    fd = os.dup(a.fileno())
    try:
        chunks = [f"{i:06d}".encode() * (1 + i % 50) for i in range(2000)]
        for chunk in chunks:
            assert module.submit(fd, chunk)
        expected = b"".join(chunks)
        assert read_all(b, len(expected)) == expected
        wait_until(lambda: module.pending(fd) == 0)
    finally:
        module.close(fd)
        a.close()
        b.close()


def test_a_full_socket_keeps_its_writes_queued_in_order_and_others_go_on(module) -> None:
    slow_a, slow_b = socket.socketpair()
    fast_a, fast_b = socket.socketpair()
    slow_a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    slow, fast = os.dup(slow_a.fileno()), os.dup(fast_a.fileno())
    try:
        payload = [bytes([i % 251]) * 100_000 for i in range(40)]  # 4 MB: far more than the socket holds
        for part in payload:
            module.submit(slow, part)
        module.submit(fast, b"not held up")
        assert read_all(fast_b, 11) == b"not held up"  # the other socket's write went out meanwhile
        assert module.pending(slow) > 0
        expected = b"".join(payload)
        assert read_all(slow_b, len(expected)) == expected
        wait_until(lambda: module.pending(slow) == 0)
    finally:
        module.close(slow)
        module.close(fast)
        for s in (slow_a, slow_b, fast_a, fast_b):
            s.close()


def test_close_waits_for_what_was_queued_then_the_peer_sees_the_end(module) -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fd = os.dup(a.fileno())
    a.close()  # the transport's own descriptor goes first, as when a connection closes after its answer
    data = os.urandom(1 << 20)
    module.submit(fd, data)
    module.close(fd)
    try:
        got = read_all(b, len(data) + 1)
        assert got == data  # all of it, then the end of the stream
        wait_until(lambda: module.pending(fd) == 0)
    finally:
        b.close()


def test_a_peer_that_went_away_drops_its_writes(module) -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fd = os.dup(a.fileno())
    b.close()
    try:
        for _ in range(20):
            module.submit(fd, b"x" * 50_000)
        wait_until(lambda: module.pending(fd) == 0)  # written off, not stuck
    finally:
        module.close(fd)
        a.close()
    # the thread still serves other sockets
    c, d = socket.socketpair()
    fd2 = os.dup(c.fileno())
    try:
        module.submit(fd2, b"still here")
        assert read_all(d, 10) == b"still here"
    finally:
        module.close(fd2)
        c.close()
        d.close()


def test_out_of_range_descriptors_are_refused(module) -> None:
    with pytest.raises(ValueError):
        module.submit(-1, b"x")
    with pytest.raises(ValueError):
        module.submit(module.limit(), b"x")


# The ordering rule, with a stand-in thread and transport ------------------------------------------


class FakeModule:
    def __init__(self) -> None:
        self.queued: dict[int, int] = {}
        self.log: list[tuple[str, bytes]] = []

    def submit(self, fd: int, data: bytes) -> bool:
        self.queued[fd] = self.queued.get(fd, 0) + 1
        self.log.append(("thread", data))
        return True

    def pending(self, fd: int) -> int:
        return self.queued.get(fd, 0)

    def close(self, fd: int) -> None:
        self.log.append(("close", b""))


class FakeTransport:
    def __init__(self, log: list[tuple[str, bytes]]) -> None:
        self.buffered = 0
        self.log = log

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.log.append(("transport", data))


def test_a_write_never_passes_unsent_bytes_held_by_the_other_way() -> None:
    module = FakeModule()
    transport = FakeTransport(module.log)
    writer = DirectWriter(module, 7, transport)  # type: ignore[arg-type]
    big = b"x" * (DIRECT_MAX + 1)
    writer.write(b"small")  # nothing unsent anywhere: the thread
    writer.write(big)  # the thread holds some: behind it, big as it is
    module.queued[7] = 0  # the thread has written them
    writer.write(big)  # too big for a copy, and the transport can take it in order: the transport
    transport.buffered = len(big) // 2  # which has not sent all of it yet
    writer.write(b"after")  # behind it
    writer.close()
    writer.write(b"late")  # after close: dropped (the connection is gone)
    assert module.log == [("thread", b"small"), ("thread", big), ("transport", big), ("transport", b"after"),
                          ("close", b"")]


# The HTTP server over real sockets, its writes through the thread -------------------------------------


def test_the_http_server_answers_in_order_through_the_thread(module) -> None:
    big = b"B" * (DIRECT_MAX * 3)

    async def chunks():
        for i in range(50):
            yield f"<{i}>".encode() * 1000

    async def handler(request):  # type: ignore[no-untyped-def]
        if request.path == "/big":
            return Response(big)
        if request.path == "/stream":
            return Response(stream=chunks(), length=sum(len(f"<{i}>") * 1000 for i in range(50)))
        return Response(text=request.path)

    def get(path: str, close: bool = False) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()

    async def main() -> bytes:
        server = HttpServer(handler, max_body=1 << 20)
        listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = next(iter(server.connections))
        assert isinstance(conn._writer, DirectWriter)  # the thread writes this connection's answers
        writer.write(get("/a") + get("/big") + get("/b") + get("/stream") + get("/c", close=True))
        got = await asyncio.wait_for(reader.read(), 10)  # to the end: the server closed after /c
        writer.close()
        listener.close()
        return got

    got = asyncio.run(main())
    bodies = []
    rest = got
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies.append(rest[:length])
        rest = rest[length:]
    assert bodies == [b"/a", big, b"/b", b"".join(f"<{i}>".encode() * 1000 for i in range(50)), b"/c"]

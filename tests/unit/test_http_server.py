"""The HTTP server's connection: one serving task per connection, requests answered in order (pipelined
ones in one write), the task ended or a handler cancelled when the client goes away."""

from __future__ import annotations

import asyncio

from lamina.http.server import HttpServer, Response


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _connect(handler, **kwargs):  # type: ignore[no-untyped-def]
    server = HttpServer(handler, max_body=1 << 20, **kwargs)
    conn = server()
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return server, conn, transport


def test_requests_on_one_connection_share_one_task_and_are_answered_in_order():
    async def main() -> None:
        seen: list[str] = []
        tasks: set[asyncio.Task[object] | None] = set()

        async def handler(request):  # type: ignore[no-untyped-def]
            seen.append(request.path)
            tasks.add(asyncio.current_task())
            return Response(text=request.path)

        _, conn, transport = _connect(handler)
        conn.data_received(_get("/a"))
        await _settle()
        conn.data_received(_get("/b") + _get("/c"))  # pipelined: answered together
        await _settle()
        conn.data_received(_get("/d"))
        await _settle()
        assert seen == ["/a", "/b", "/c", "/d"]
        assert len(tasks) == 1
        assert len(transport.writes) == 3
        assert transport.writes[1].count(b"HTTP/1.1 200") == 2
        assert transport.writes[1].index(b"/b") < transport.writes[1].index(b"/c")
        task = next(iter(tasks))
        assert task is not None and not task.done()  # waiting for the next request
        conn.connection_lost(None)
        await _settle()
        assert task.done() and not task.cancelled()

    asyncio.run(main())


def test_a_client_that_leaves_cancels_the_handler_only_when_asked():
    async def main() -> None:
        for cancel in (True, False):
            release = asyncio.Event()
            finished: list[bool] = []

            async def handler(request):  # type: ignore[no-untyped-def]
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    finished.append(False)
                    raise
                finished.append(True)
                return Response(text="late")

            _, conn, transport = _connect(handler, cancel_on_disconnect=cancel)
            conn.data_received(_get("/slow"))
            await _settle()
            transport.closed = True
            conn.connection_lost(None)
            await _settle()
            release.set()
            await _settle()
            assert finished == [not cancel]
            assert transport.writes == []  # nothing written to a closed connection

    asyncio.run(main())


def test_connection_close_ends_the_connection_after_the_answer():
    async def main() -> None:
        async def handler(request):  # type: ignore[no-untyped-def]
            return Response(text="bye")

        _, conn, transport = _connect(handler)
        conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await _settle()
        assert transport.closed and b"Connection: close" in transport.writes[0]

    asyncio.run(main())

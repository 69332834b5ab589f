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


def _post(path: str, body: bytes = b"{}") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def echo_path(request):  # type: ignore[no-untyped-def]
    return Response(text="handler " + request.path)


class Parker:
    """answer_now for tests: POST answered at once, GET /park held until `release`, the rest declined."""

    def __init__(self) -> None:
        self.parked: list[object] = []
        self.delivered: list[bool] = []

    def __call__(self, request, reply) -> bool:  # type: ignore[no-untyped-def]
        if request.method == "POST":
            reply(Response(text="posted " + request.path, status=202))
            return True
        if request.path == "/park":
            self.parked.append(reply)
            return True
        return False

    def release(self, text: str) -> None:
        self.delivered.append(self.parked.pop(0)(Response(text=text)))  # type: ignore[operator]


def test_answer_now_answers_without_a_task_and_holds_a_result_for_the_parked_request_after_it():
    async def main() -> None:
        parker = Parker()
        _, conn, transport = _connect(echo_path, answer_now=parker)
        conn.data_received(_post("/r1"))  # alone: answered as it is read
        assert transport.writes == [transport.writes[0]] and b"posted /r1" in transport.writes[0]
        conn.data_received(_post("/r2") + _get("/park"))  # a result and the next long poll, pipelined
        await _settle()
        assert len(transport.writes) == 1  # the 202 waits for the parked answer: one write, one wake-up
        parker.release("event")
        assert len(transport.writes) == 2 and parker.delivered == [True]
        both = transport.writes[1]
        assert both.index(b"posted /r2") < both.index(b"event")
        assert conn._task is None  # no task was ever made

    asyncio.run(main())


def test_requests_behind_a_parked_one_wait_for_its_answer():
    async def main() -> None:
        parker = Parker()
        _, conn, transport = _connect(echo_path, answer_now=parker)
        conn.data_received(_get("/park"))
        conn.data_received(_get("/other") + _post("/r3"))  # pipelined behind the parked request
        await _settle()
        assert transport.writes == []
        parker.release("event")
        await _settle()
        text = b"".join(transport.writes)
        # in order; /r3 came while requests waited, so the task answered it too, not answer_now
        assert text.index(b"event") < text.index(b"handler /other") < text.index(b"handler /r3")

    asyncio.run(main())


def test_a_parked_request_whose_client_left_is_not_delivered():
    async def main() -> None:
        parker = Parker()
        _, conn, transport = _connect(echo_path, answer_now=parker, cancel_on_disconnect=True)
        conn.data_received(_get("/park"))
        conn.connection_lost(None)
        parker.release("event")
        assert parker.delivered == [False] and transport.writes == []

    asyncio.run(main())


def test_an_error_in_answer_now_is_a_500_and_the_connection_serves_on(caplog):
    async def main() -> None:
        def answer_now(request, reply):  # type: ignore[no-untyped-def]
            if request.path == "/bad":
                raise ValueError("bug")
            return False

        _, conn, transport = _connect(echo_path, answer_now=answer_now)
        conn.data_received(_get("/bad"))
        conn.data_received(_get("/next"))
        await _settle()
        text = b"".join(transport.writes)
        assert text.startswith(b"HTTP/1.1 500") and b"handler /next" in text and not transport.closed

    asyncio.run(main())
    assert "unhandled error on GET /bad" in caplog.text

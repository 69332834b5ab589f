"""A small HTTP/1.1 server for lamina's APIs: an asyncio Protocol around the httptools parser.

Why not a framework: every invoke crosses this code three times (the caller's request, the runtime's
parked `GET /next` answered, the runtime's `POST /response`), so it does only what those need —
parse with httptools (C), run one handler per request in order per connection, answer in a single
write (no Nagle stalls), keep-alive by default. A handler gets a `Request` and returns a `Response`.

When a client disconnects, the handler still running for it is cancelled if the server was built with
`cancel_on_disconnect` (the Runtime API: a runtime parked in `/next` that goes away must not be handed
an event), and left to finish otherwise (the Lambda API: an invocation runs to its end, as on Lambda).

Answering without a task (the Runtime API): a server built with `answer_now(request, reply)` offers it
each request that arrives while its connection is idle; it returns True when it took the request and
calls `reply(response)` once, at once or later (a parked `GET /next`: when the event comes, from the
invoking task itself), and False to leave the request to `handler`. That saves, per invoke, the two
wake-ups of the runtime connection's task and the loop iteration between an event and its write.
`reply` returns False when the connection is gone. Answers keep the requests' order: what arrives while
a reply is owed waits for it, and replies made inside one read go out in one write. An exception in
`answer_now` is logged and answered 500, like one in a handler.

Streaming (object uploads and downloads): a server built with `stream_if(method, url, headers)` hands
the requests it picks to their handler as soon as the headers are in, with `request.stream` (a
`BodyStream`, read chunk by chunk, the socket paused while 1 MiB waits unread) instead of `body`; their
size is not limited by `max_body`. A `Response` with `stream` (an async iterator of chunks) is written
as the iterator yields, waiting while the socket's write buffer is full. Every other request keeps the
one-buffer path unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httptools

from lamina.http.sender import writer_for

log = logging.getLogger("lamina.http")

Handler = Callable[["Request"], Awaitable["Response"]]
#: reply(response) -> delivered (False: the connection is gone)
Reply = Callable[["Response"], bool]
#: (request, reply) -> taken (then reply is called exactly once, now or later)
AnswerNow = Callable[["Request", Reply], bool]
#: (method, raw url, header pairs) -> stream this request's body?
StreamPredicate = Callable[[str, str, list[tuple[str, str]]], bool]
STREAM_HIGH_WATER = 1 << 20

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}


class Headers:
    """Request headers: case-insensitive lookup, original order and case kept for `items()`."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._map: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            self._map[key] = f"{self._map[key]},{value}" if key in self._map else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def items(self) -> list[tuple[str, str]]:
        return self._items


class BodyStream:
    """A request body as it arrives: `await read()` gives the next chunk, b"" at the end; raises
    ConnectionError when the client went away first. Reading resumes the paused socket."""

    __slots__ = ("_transport", "_chunks", "_buffered", "_eof", "_error", "_waiter", "_paused", "received")

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self._transport = transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.received = 0

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > STREAM_HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, exc: Exception) -> None:
        if not self._eof:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            if self._error is not None:
                raise self._error
            self._resume()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered < STREAM_HIGH_WATER // 2:
            self._resume()
        return data

    def _resume(self) -> None:
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()


class Request:
    __slots__ = ("method", "raw_path", "path", "query_string", "headers", "body", "match_info",
                 "transport", "stream", "_query", "_store")

    def __init__(self, method: str, raw_path: str, headers: Headers, body: bytes,
                 transport: asyncio.Transport | None) -> None:
        self.method = method
        self.raw_path = raw_path
        path, _, self.query_string = raw_path.partition("?")
        self.path = _unquote(path)
        self.headers = headers
        self.body = body
        self.match_info: dict[str, str] = {}
        self.transport = transport
        #: The body as it arrives, for requests the server streams (then `body` is b"").
        self.stream: BodyStream | None = None
        self._query: dict[str, str] | None = None
        self._store: dict[str, Any] = {}

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (first value of each)."""
        if self._query is None:
            self._query = {}
            if not self.query_string:
                return self._query
            for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                self._query.setdefault(key, value)
        return self._query

    async def read(self) -> bytes:
        return self.body

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        return int(raw) if raw and raw.isdigit() else None

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)


def _unquote(path: str) -> str:
    if "%" not in path:
        return path
    from urllib.parse import unquote

    return unquote(path)


class Response:
    __slots__ = ("status", "body", "headers", "content_type", "stream", "length")

    def __init__(self, body: bytes | str = b"", *, status: int = 200, headers: dict[str, str] | None = None,
                 content_type: str | None = None, text: str | None = None,
                 stream: AsyncIterator[bytes] | None = None, length: int | None = None) -> None:
        if text is not None:
            body = text
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = headers or {}
        self.content_type = content_type
        #: Body chunks written as they come (then `length`, the Content-Length, is required).
        self.stream = stream
        #: Content-Length when it is not len(body): a streamed body, or a HEAD answer.
        self.length = length

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        parts = [_STATUS_LINES.get(self.status) or f"HTTP/1.1 {self.status} Unknown\r\n"]
        if self.content_type is not None:
            parts.append(f"Content-Type: {self.content_type}\r\n")
        for name, value in self.headers.items():
            parts.append(f"{name}: {value}\r\n")
        if self.status != 204 and self.status >= 200:
            parts.append(f"Content-Length: {len(self.body) if self.length is None else self.length}\r\n")
        if not keep_alive:
            parts.append("Connection: close\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("latin-1")
        if head_only or self.status == 204:
            return head
        return head + self.body if len(self.body) < 262144 else head


class HttpServer:
    """A protocol factory: `loop.create_server(server, ...)` (one HttpServer may serve many listeners)."""

    def __init__(self, handler: Handler, *, max_body: int, cancel_on_disconnect: bool = False,
                 stream_if: StreamPredicate | None = None, answer_now: AnswerNow | None = None) -> None:
        self.handler = handler
        self.max_body = max_body
        self.cancel_on_disconnect = cancel_on_disconnect
        self.stream_if = stream_if
        self.answer_now = answer_now
        self.connections: set[_Connection] = set()

    def __call__(self) -> _Connection:
        return _Connection(self)

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.close()


class _Connection(asyncio.Protocol):
    __slots__ = ("_server", "_transport", "_parser", "_url", "_headers", "_body", "_body_size", "_queue",
                 "_task", "_idle", "_too_large", "_closed", "_deferred", "_stream", "_writable", "_request_headers",
                 "_parsing", "_owed", "_loop", "_writer")

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._queue: collections.deque[tuple[Request, bool]] = collections.deque()
        #: The connection's one serving task, made with its first request; between requests it waits on
        #: `_idle` (a future is cheaper than a task per request).
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._request_headers: Headers | None = None
        self._too_large = False
        self._closed = False
        self._deferred: list[bytes] = []
        self._stream: BodyStream | None = None  # the body being streamed to a handler
        self._writable: asyncio.Future[None] | None = None  # set while the write buffer is full
        self._parsing = False  # inside feed_data: replies wait to go out with the read's other answers
        self._owed = False  # a request taken by answer_now is not answered yet

    # asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        #: Looked up once: on Python 3.11 every get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()
        #: Writes through the send thread, or the transport's own (see http/sender.py).
        self._writer = writer_for(transport)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._parsing = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            problem: str | None = "upgrades are not supported"
        except httptools.HttpParserError:
            problem = "malformed HTTP request"
        else:
            problem = None
        finally:
            self._parsing = False
        if problem is not None:
            self._reply_and_close(Response(text=problem, status=400))
        elif self._deferred and self._is_idle():
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._writer.close()
        if self._stream is not None:
            self._stream.fail(ConnectionError("the client closed the connection before the body ended"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionError("the client closed the connection"))
            self._writable.exception()  # retrieved: nobody may be waiting
        if self._task is not None and not self._task.done():
            if self._idle is not None and not self._idle.done():
                self._idle.set_result(None)  # between requests: the serving task ends
            elif self._server.cancel_on_disconnect:
                self._task.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # httptools callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._request_headers = headers = Headers(self._headers)
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and self._transport is not None:
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._server.max_body:
            self._too_large = True
        stream_if = self._server.stream_if
        if stream_if is not None and stream_if(self._parser.get_method().decode(), self._url.decode("latin-1"),
                                                self._headers):
            request = Request(self._parser.get_method().decode(), self._url.decode("latin-1"),
                              headers, b"", self._transport)
            self._stream = request.stream = BodyStream(self._transport)
            self._too_large = False
            self._enqueue(request, self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.feed(body)
            return
        self._body_size += len(body)
        if self._body_size > self._server.max_body:
            self._too_large = True
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._stream is not None:
            self._stream.feed_eof()
            self._stream = None
            return
        method = self._parser.get_method().decode()
        keep_alive = self._parser.should_keep_alive()
        headers = self._request_headers
        request = Request(method, self._url.decode("latin-1"), Headers(self._headers) if headers is None else headers,
                          b"".join(self._body), self._transport)
        self._request_headers = None
        if self._too_large:
            request.body = b""
            request["too_large"] = True
        self._enqueue(request, keep_alive)

    def _enqueue(self, request: Request, keep_alive: bool) -> None:
        answer_now = self._server.answer_now
        if answer_now is not None and request.stream is None and self._is_idle():
            self._owed = True
            reply = self._replier(request, keep_alive)
            try:
                if answer_now(request, reply):
                    return
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                if self._owed:
                    reply(Response(text="internal error", status=500))
                return
            self._owed = False
        self._queue.append((request, keep_alive))
        if not self._owed:  # else the reply wakes the task: its answer must go out first
            self._wake()

    def _is_idle(self) -> bool:
        """No request is being handled, queued or owed an answer."""
        return not self._owed and not self._queue and (
            self._task is None or (self._idle is not None and not self._idle.done()))

    def _wake(self) -> None:
        if self._task is None:
            self._task = self._loop.create_task(self._serve())
        elif self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _replier(self, request: Request, keep_alive: bool) -> Reply:
        head_only = request.method == "HEAD"
        answered = False

        def reply(response: Response) -> bool:
            nonlocal answered
            if answered:
                raise RuntimeError(f"{request.method} {request.path} was answered twice")
            answered = True
            self._owed = False
            if self._closed:
                return False
            if self._parsing and keep_alive:
                self._deferred.append(self._encode(response, keep_alive, head_only))  # data_received writes
            else:
                self._write(response, keep_alive, head_only)
            if not keep_alive:
                self.close()
            elif self._queue:
                self._wake()
            return True

        return reply

    # handling ------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while not self._closed:
                if not self._queue:
                    self._idle = self._loop.create_future()
                    await self._idle
                    self._idle = None
                    continue
                request, keep_alive = self._queue.popleft()
                try:
                    response = await self._server.handler(request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unhandled error on %s %s", request.method, request.path)
                    response = Response(text="internal error", status=500)
                if request.stream is not None and not request.stream.at_eof:
                    keep_alive = False  # the unread rest of the body would be taken for the next request
                if response.stream is not None:
                    if not await self._write_stream(response, keep_alive, request.method == "HEAD"):
                        return
                    continue
                if keep_alive and self._queue:
                    # A pipelined request follows (lamina's runtime clients send their result and the
                    # next /next together): answer both in one write, saving a syscall and a wake-up.
                    self._deferred.append(self._encode(response, keep_alive, request.method == "HEAD"))
                    continue
                self._write(response, keep_alive, request.method == "HEAD")
                if not keep_alive:
                    self.close()
                    return
        except asyncio.CancelledError:
            pass
        finally:
            self._task = self._idle = None

    @staticmethod
    def _encode(response: Response, keep_alive: bool, head_only: bool) -> bytes:
        data = response.encode(keep_alive, head_only)
        if len(response.body) >= 262144 and not head_only and response.status != 204:
            data += response.body
        return data

    def _flush(self) -> None:
        data = b"".join(self._deferred)
        self._deferred.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._writer.write(data)

    def _write(self, response: Response, keep_alive: bool, head_only: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = response.encode(keep_alive, head_only)
        if self._deferred:
            self._deferred.append(data)
            data = b"".join(self._deferred)
            self._deferred.clear()
        write = self._writer.write
        write(data)
        if len(response.body) >= 262144 and not head_only and response.status != 204:
            write(response.body)

    async def _write_stream(self, response: Response, keep_alive: bool, head_only: bool) -> bool:
        """Write a streamed response; False when the connection is gone or closes after it."""
        assert response.stream is not None
        chunks = response.stream
        try:
            self._write(Response(status=response.status, headers=response.headers,
                                 content_type=response.content_type, length=response.length), keep_alive, True)
            # The body goes by the transport, under its flow control: after what the send thread holds.
            await self._writer.settle()
            if not head_only:
                async for chunk in chunks:
                    transport = self._transport
                    if self._closed or transport is None or transport.is_closing():
                        return False
                    transport.write(chunk)
                    if self._writable is not None:
                        await self._writable
        except ConnectionError:
            return False
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if not keep_alive:
            self.close()
            return False
        return True

    def _reply_and_close(self, response: Response) -> None:
        self._write(response, False, False)
        self.close()

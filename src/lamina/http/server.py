"""A small HTTP/1.1 server for lamina's APIs: an asyncio Protocol around the httptools parser.

Why not a framework: every invoke crosses this code three times (the caller's request, the runtime's
parked `GET /next` answered, the runtime's `POST /response`), so it does only what those need —
parse with httptools (C), run one handler per request in order per connection, answer in a single
write (no Nagle stalls), keep-alive by default. A handler gets a `Request` and returns a `Response`.

When a client disconnects, the handler still running for it is cancelled if the server was built with
`cancel_on_disconnect` (the Runtime API: a runtime parked in `/next` that goes away must not be handed
an event), and left to finish otherwise (the Lambda API: an invocation runs to its end, as on Lambda).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httptools

log = logging.getLogger("lamina.http")

Handler = Callable[["Request"], Awaitable["Response"]]

_REASONS = {s.value: s.phrase for s in HTTPStatus}


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


class Request:
    __slots__ = ("method", "raw_path", "path", "query_string", "headers", "body", "match_info",
                 "transport", "_query", "_store")

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
        self._query: dict[str, str] | None = None
        self._store: dict[str, Any] = {}

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (first value of each)."""
        if self._query is None:
            self._query = {}
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
    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(self, body: bytes | str = b"", *, status: int = 200, headers: dict[str, str] | None = None,
                 content_type: str | None = None, text: str | None = None) -> None:
        if text is not None:
            body = text
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = headers or {}
        self.content_type = content_type

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        parts = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}\r\n"]
        if self.content_type is not None:
            parts.append(f"Content-Type: {self.content_type}\r\n")
        for name, value in self.headers.items():
            parts.append(f"{name}: {value}\r\n")
        if self.status != 204 and self.status >= 200:
            parts.append(f"Content-Length: {len(self.body)}\r\n")
        if not keep_alive:
            parts.append("Connection: close\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("latin-1")
        if head_only or self.status == 204:
            return head
        return head + self.body if len(self.body) < 262144 else head


class HttpServer:
    """A protocol factory: `loop.create_server(server, ...)` (one HttpServer may serve many listeners)."""

    def __init__(self, handler: Handler, *, max_body: int, cancel_on_disconnect: bool = False) -> None:
        self.handler = handler
        self.max_body = max_body
        self.cancel_on_disconnect = cancel_on_disconnect
        self.connections: set[_Connection] = set()

    def __call__(self) -> _Connection:
        return _Connection(self)

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.close()


class _Connection(asyncio.Protocol):
    __slots__ = ("_server", "_transport", "_parser", "_url", "_headers", "_body", "_body_size", "_queue",
                 "_task", "_too_large", "_closed", "_deferred")

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._queue: collections.deque[tuple[Request, bool]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._too_large = False
        self._closed = False
        self._deferred: list[bytes] = []

    # asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(Response(text="upgrades are not supported", status=400))
        except httptools.HttpParserError:
            self._reply_and_close(Response(text="malformed HTTP request", status=400))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        if self._task is not None and self._server.cancel_on_disconnect and not self._task.done():
            self._task.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

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
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == "expect" and value.lower() == "100-continue" and self._transport is not None:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            elif lowered == "content-length" and value.isdigit() and int(value) > self._server.max_body:
                self._too_large = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._server.max_body:
            self._too_large = True
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        keep_alive = self._parser.should_keep_alive()
        request = Request(method, self._url.decode("latin-1"), Headers(self._headers),
                          b"".join(self._body), self._transport)
        if self._too_large:
            request.body = b""
            request["too_large"] = True
        self._queue.append((request, keep_alive))
        if self._task is None:
            self._task = asyncio.ensure_future(self._serve())

    # handling ------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while self._queue and not self._closed:
                request, keep_alive = self._queue.popleft()
                try:
                    response = await self._server.handler(request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unhandled error on %s %s", request.method, request.path)
                    response = Response(text="internal error", status=500)
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
            self._task = None

    @staticmethod
    def _encode(response: Response, keep_alive: bool, head_only: bool) -> bytes:
        data = response.encode(keep_alive, head_only)
        if len(response.body) >= 262144 and not head_only and response.status != 204:
            data += response.body
        return data

    def _write(self, response: Response, keep_alive: bool, head_only: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = response.encode(keep_alive, head_only)
        if self._deferred:
            self._deferred.append(data)
            data = b"".join(self._deferred)
            self._deferred.clear()
        transport.write(data)
        if len(response.body) >= 262144 and not head_only and response.status != 204:
            transport.write(response.body)

    def _reply_and_close(self, response: Response) -> None:
        self._write(response, False, False)
        self.close()

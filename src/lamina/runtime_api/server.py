"""The Runtime API (2018-06-01) each execution environment talks to.

One lamina HTTP server, one loopback listener per environment (official runtime clients only
know `host:port`, so the port is what tells environments apart). Each handler validates, feeds one
event to the environment, and renders; the wire shape of errors is made in `_error` only. What a result
and an event mean is in runtime_api/operations.py, shared with the frames lamina's own Python and Node.js
clients speak on their inherited socket (runtime_api/frames.py).

The two requests every invocation makes, `POST .../response` (or `/error`) and `GET /next`, are
answered without a task (`_answer_now`): the result is settled as it is read, and a parked `/next` is
answered by the invoking task itself, in the same step that hands the environment its event.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket

from lamina.http.server import HttpServer, Reply, Request, Response
from lamina.runtime_api.frames import FrameChannel
from lamina.runtime_api.operations import accept_result, event_fields
from lamina.runtime_api.state import InvalidStateTransition
from lamina.model import Invocation
from lamina.scheduler.environment import MAX_RESPONSE_BYTES, Environment

PREFIX = "/2018-06-01/runtime"
NEXT = f"{PREFIX}/invocation/next"
STANDBY = "/2018-06-01/lamina/standby"  # lamina's own: where a pre-started runtime waits for a function
_INVOCATION = re.compile(rf"^{PREFIX}/invocation/([^/]+)/(response|error)$")
_OK = json.dumps({"status": "OK"}).encode()
_EVENT_HEADERS = ("Lambda-Runtime-Aws-Request-Id", "Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn",
                  "Lambda-Runtime-Trace-Id")


def _error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(body, status=status, content_type="application/json")


def _accepted() -> Response:
    return Response(_OK, status=202, content_type="application/json")


class _Listener:
    def __init__(self, server: asyncio.AbstractServer, port: int, http: HttpServer, owner: RuntimeApiServer,
                 environment: Environment) -> None:
        self._server = server
        self.port = port
        self._http = http
        self._owner = owner
        self._environment = environment
        self._channels: set[FrameChannel] = set()

    async def attach(self, sock: socket.socket, frames: bool = False) -> None:
        """Serve one more connection, already made: the environment's end of a socket pair; `frames`: its
        runtime speaks the Runtime API in frames (runtime_api/frames.py) rather than HTTP."""
        loop = asyncio.get_running_loop()
        if frames:
            await loop.connect_accepted_socket(
                lambda: FrameChannel(self._environment, self._channels), sock)
        else:
            await loop.connect_accepted_socket(self._http, sock)

    def close(self) -> None:
        self._owner._servers.discard(self._http)
        self._server.close()
        for connection in [*self._http.connections, *self._channels]:
            connection.close()


class RuntimeApiServer:
    """One small HTTP server per environment (its listener may live in the environment's own network
    namespace, where every environment uses 127.0.0.1:9001, so the port cannot tell them apart)."""

    def __init__(self) -> None:
        self._servers: set[HttpServer] = set()

    async def open(self, environment: Environment, sock: socket.socket | None = None) -> _Listener:
        """A listener that serves this environment only: `sock` if given, else a fresh loopback port."""
        loop = asyncio.get_running_loop()
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        http = HttpServer(functools.partial(self._dispatch, environment), max_body=MAX_RESPONSE_BYTES + 1024,
                          cancel_on_disconnect=True, answer_now=functools.partial(self._answer_now, environment))
        self._servers.add(http)
        server = await loop.create_server(http, sock=sock, backlog=16)
        return _Listener(server, port, http, self, environment)

    async def aclose(self) -> None:
        for http in list(self._servers):
            await http.shutdown()

    def _answer_now(self, environment: Environment, request: Request, reply: Reply) -> bool:
        """`GET /next` and the invocation results, answered without a task; anything else: False."""
        method = request.method
        try:
            if method == "GET" and request.path == NEXT:
                def deliver(invocation: Invocation | None) -> bool:
                    return invocation is not None and reply(self._event(environment, invocation))

                ready = environment.park(deliver)
                if ready is not None:
                    reply(self._event(environment, ready))
                return True
            match = _INVOCATION.match(request.path) if method == "POST" else None
            if match is None:
                return False
            reply(self._result(request, environment, match[1], match[2]))
        except InvalidStateTransition as exc:
            reply(_error(403, "InvalidStateTransition", str(exc)))
        return True

    async def _dispatch(self, environment: Environment, request: Request) -> Response:
        path = request.path
        try:
            if path == NEXT and request.method == "GET":
                return self._event(environment, await environment.next())
            if path == STANDBY and request.method == "GET":
                assignment = await environment.standby()
                if request.query.get("format") == "env":  # lamina-standby (sandbox/standby.c): NAME=VALUE\0 each
                    return Response(b"".join(f"{name}={value}\0".encode() for name, value in assignment.items()),
                                    content_type="application/octet-stream")
                return Response(json.dumps({"environment": assignment}).encode(), content_type="application/json")
            if request.method == "POST":
                if path == f"{PREFIX}/init/error":
                    return await self._init_error(request, environment)
                match = _INVOCATION.match(path)
                if match:
                    return self._result(request, environment, match[1], match[2])
        except InvalidStateTransition as exc:
            return _error(403, "InvalidStateTransition", str(exc))
        return _error(404, "NotFound", f"no route for {request.method} {path}")

    @staticmethod
    def _event(environment: Environment, invocation: Invocation) -> Response:
        fields = event_fields(environment, invocation)
        headers = dict(zip(_EVENT_HEADERS, fields[:4]))
        if fields[4]:
            headers["Lambda-Runtime-Client-Context"] = fields[4]
        if fields[5]:
            headers["Lambda-Runtime-Cognito-Identity"] = fields[5]
        return Response(invocation.payload, headers=headers, content_type="application/json")

    @staticmethod
    def _result(request: Request, environment: Environment, request_id: str, kind: str) -> Response:
        detail = request.headers.get("Content-Type" if kind == "response" else "Lambda-Runtime-Function-Error-Type")
        too_large = bool(request.get("too_large")) or (request.content_length or 0) > MAX_RESPONSE_BYTES
        refused = accept_result(environment, request_id, kind, request.body, detail, too_large)
        return _accepted() if refused is None else _error(*refused)

    async def _init_error(self, request: Request, environment: Environment) -> Response:
        body = request.body
        environment.init_failed(body, request.headers.get("Lambda-Runtime-Function-Error-Type"))
        return _accepted()

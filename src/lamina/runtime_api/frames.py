"""The Runtime API in frames: what lamina's own runtime clients speak on the socket they inherit.

Official runtime clients speak HTTP to `AWS_LAMBDA_RUNTIME_API`, and lamina answers them there
(runtime_api/server.py). lamina's own Python and Node.js clients are also handed one end of a Unix socket
pair (`_LAMINA_RUNTIME_FD`); on it, the same requests travel as frames instead of HTTP messages, because
every invocation crosses it twice and an HTTP message costs lamina's event loop a dozen parser callbacks
and header objects each way. The operations and their meaning are the Runtime API's, one for one:

    frame   = kind (1 byte) | len(a) | len(b) | len(body) (3 × uint32, little-endian) | a | b | body

  runtime -> lamina                                     lamina -> runtime
    N  GET /invocation/next                               V  the next event: a = request id, deadline ms,
    R  POST /invocation/{a}/response, b = content type       invoked ARN, trace id, client context, cognito
    E  POST /invocation/{a}/error, b = error type            identity, NUL-separated; body = payload
    I  POST /init/error, b = error type                   A  the assignment (standby): body = NAME=VALUE\\0…
    S  GET /lamina/standby                                X  N or S refused: a = status, body = JSON error
                                                          x  R, E or I refused: a = status, body = JSON error

A result is not acknowledged (HTTP's 202): its client sends `/next` with it and waits for the event.
Whatever the runtime did wrong gets the HTTP API's error, in an `X` or `x` frame. A frame that is not
one of these closes the channel (as a malformed HTTP request closes its connection). The clients' half:
`RuntimeClient` in runtimes/python/bootstrap.py, `ChannelClient` in runtimes/node/bootstrap.mjs.
"""

from __future__ import annotations

import asyncio
import json
import struct

from lamina.http.sender import DirectWriter, TransportWriter, writer_for
from lamina.model import Invocation
from lamina.runtime_api.operations import accept_result, event_fields
from lamina.runtime_api.state import InvalidStateTransition
from lamina.scheduler.environment import MAX_RESPONSE_BYTES, Environment

HEAD = struct.Struct("<cIII")
#: The largest request id, content type or error type a runtime may send (a and b of a frame).
MAX_FIELD = 4096


def frame(kind: bytes, a: bytes = b"", b: bytes = b"", body: bytes = b"") -> bytes:
    return HEAD.pack(kind, len(a), len(b), len(body)) + a + b + body


def error_frame(kind: bytes, status: int, error_type: str, message: str) -> bytes:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return frame(kind, str(status).encode(), b"", body)


def event_frame(fields: tuple[str, ...], payload: bytes) -> bytes:
    return frame(b"V", "\0".join(fields).encode(), b"", payload)


class FrameChannel(asyncio.Protocol):
    """One environment's runtime on lamina's end of its socket pair (`channels`: the listener's set of
    them, which this one is in while connected)."""

    def __init__(self, environment: Environment, channels: set[FrameChannel]) -> None:
        self._env = environment
        self._channels = channels
        self._transport: asyncio.Transport | None = None
        self._writer: DirectWriter | TransportWriter | None = None
        self._buf = bytearray()
        self._skip = 0  # body bytes of an oversized result still to be thrown away
        self._closed = False
        self._standby: asyncio.Task[None] | None = None

    # asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._writer = writer_for(transport)  # through the send thread, or the transport's own
        self._channels.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._channels.discard(self)
        if self._writer is not None:
            self._writer.close()
        if self._standby is not None:
            self._standby.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf = self._buf
        if buf:  # more of a frame: parsed once it is whole, from one bytes object (its slices are the fields)
            buf += data
            if len(buf) < HEAD.size:
                return
            _, la, lb, lc = HEAD.unpack_from(buf)
            if la <= MAX_FIELD and lb <= MAX_FIELD and len(buf) < (
                    HEAD.size + la + lb + (lc if lc <= MAX_RESPONSE_BYTES else 0)):
                return  # not whole yet (a big result arrives in many reads: no copy per read)
            data = bytes(buf)
            buf.clear()
        at, size = 0, len(data)
        while size - at >= HEAD.size and not self._closed:
            kind, la, lb, lc = HEAD.unpack_from(data, at)
            if la > MAX_FIELD or lb > MAX_FIELD:
                self._malformed()
                return
            start = at + HEAD.size
            if lc > MAX_RESPONSE_BYTES:  # a result over the limit is refused unread; nothing else may be that big
                if kind not in (b"R", b"E", b"I"):
                    self._malformed()
                    return
                if size - start < la + lb:
                    break
                fields = data[start:start + la], data[start + la:start + la + lb]
                have = size - start - la - lb
                self._skip = max(0, lc - have)
                at = start + la + lb + min(lc, have)
                self._handle(kind, *fields, b"", too_large=True)
                continue
            end = start + la + lb + lc
            if end > size:
                break
            self._handle(kind, data[start:start + la], data[start + la:start + la + lb], data[start + la + lb:end])
            at = end
        if at < size and not self._closed:
            buf += data[at:] if at else data

    # the operations ---------------------------------------------------------------------------------

    def _handle(self, kind: bytes, a: bytes, b: bytes, body: bytes, too_large: bool = False) -> None:
        env = self._env
        try:
            if kind == b"N":
                ready = env.park(self._deliver)
                if ready is not None:
                    self._deliver(ready)
            elif kind == b"R" or kind == b"E":
                refused = accept_result(env, a.decode("utf-8", "replace"),
                                              "response" if kind == b"R" else "error", body,
                                              b.decode("latin-1") or None, too_large)
                if refused is not None:
                    self._write(error_frame(b"x", *refused))
            elif kind == b"I":
                env.init_failed(body, b.decode("latin-1") or None)
            elif kind == b"S":
                self._standby = asyncio.get_running_loop().create_task(self._assignment())
            else:
                self._malformed()
        except InvalidStateTransition as exc:
            self._write(error_frame(b"X" if kind in (b"N", b"S") else b"x", 403, "InvalidStateTransition", str(exc)))

    def _deliver(self, invocation: Invocation | None) -> bool:
        """The parked `/next`'s answer: False when there is none to give or the runtime is gone."""
        if invocation is None or self._closed:
            return False
        self._write(event_frame(event_fields(self._env, invocation), invocation.payload))
        return True

    async def _assignment(self) -> None:
        try:
            assignment = await self._env.standby()
        except InvalidStateTransition as exc:
            self._write(error_frame(b"X", 403, "InvalidStateTransition", str(exc)))
            return
        self._write(frame(b"A", body=b"".join(f"{name}={value}\0".encode() for name, value in assignment.items())))

    def _write(self, data: bytes) -> None:
        if self._writer is not None and not self._closed:
            self._writer.write(data)

    def _malformed(self) -> None:
        self._closed = True
        self.close()

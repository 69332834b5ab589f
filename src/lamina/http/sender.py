"""Socket writes off the event loop: `writer_for(transport)` gives a connection its writer — a
`DirectWriter` (one socket's writes through lamina's send thread) or the transport's own `write`.

Under load the event loop is lamina's bound, and a fifth of its time went into send(): on loopback TCP
the sender's call also runs the receiver's half of the stack and wakes the receiver. The send thread
(sendthread.c, built by `make install` into build/lamina_sendthread.so) makes those calls on another CPU
without the GIL. Optional: without the library, or with LAMINA_SEND_THREAD=0, the transports write.

A socket's bytes must leave in the order they were written, whichever way they go. The rule that keeps
them in order: a write goes to the thread while the transport holds nothing unsent, or while the thread
still holds some of the socket's earlier writes; otherwise to the transport. So at no time do both hold
unsent bytes of one socket. The thread writes to a duplicate of the socket's descriptor, so a socket closed
by its transport stays open (and its number taken) until the thread has written what it was given.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import logging
import os
from pathlib import Path
from types import ModuleType

log = logging.getLogger("lamina.http")

LIBRARY = Path(__file__).resolve().parents[3] / "build" / "lamina_sendthread.so"
#: Writes larger than this go to the transport when it can take them in order (its flow control then
#: applies); the thread copies what it is given.
DIRECT_MAX = 256 * 1024

_state: dict[str, ModuleType | None] = {}


def enable(on: bool, path: Path = LIBRARY) -> bool:
    """Load and start the send thread (`on`), or leave writes to the transports. True when it runs."""
    if not on:
        _state["module"] = None
        return False
    module = _state.get("module")
    if module is not None:
        return True
    module = _load(path)
    _state["module"] = module
    return module is not None


def _load(path: Path) -> ModuleType | None:
    if not path.is_file():
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader("lamina_sendthread", str(path))
        spec = importlib.util.spec_from_file_location("lamina_sendthread", path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        if module.start():
            return module
        log.warning("the send thread could not be started; transports write")
    except (ImportError, OSError) as exc:
        log.warning("the send thread is not available (%s); transports write", exc)
    return None


class TransportWriter:
    """The transport writes (no send thread, or no socket to hand it): `write` is the transport's own."""

    __slots__ = ("write",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self.write = transport.write

    async def settle(self) -> None:
        return None

    def close(self) -> None:
        return None


def writer_for(transport: asyncio.BaseTransport) -> DirectWriter | TransportWriter:
    """The writer of a connection's bytes: through the send thread when it runs, else the transport's."""
    return DirectWriter.attach(transport) or TransportWriter(transport)  # type: ignore[arg-type]


class DirectWriter:
    """One socket's writes through the send thread, in order with its transport's own."""

    __slots__ = ("_fd", "_transport", "_submit", "_pending", "_close")

    def __init__(self, module: ModuleType, fd: int, transport: asyncio.Transport) -> None:
        self._fd = fd
        self._transport = transport
        self._submit = module.submit
        self._pending = module.pending
        self._close = module.close

    @classmethod
    def attach(cls, transport: asyncio.BaseTransport) -> DirectWriter | None:
        """A writer for `transport`'s socket, or None (no send thread, no socket): write to the transport."""
        module = _state.get("module")
        if module is None:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None
        try:
            fd = os.dup(sock.fileno())  # not inheritable
        except OSError:
            return None
        if fd >= module.limit() // 2:  # descriptors are scarce: the upper half is left to new connections
            os.close(fd)
            return None
        return cls(module, fd, transport)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        if self._fd < 0:  # closed: the connection is gone
            return
        transport = self._transport
        if (len(data) <= DIRECT_MAX and not transport.get_write_buffer_size()) or self._pending(self._fd):
            self._submit(self._fd, data)
        else:
            transport.write(data)

    async def settle(self) -> None:
        """Wait until the thread has written everything of this socket's it was given."""
        while self._pending(self._fd):
            await asyncio.sleep(0.001)

    def close(self) -> None:
        """Let the descriptor go once the thread has written what it holds (the transport has closed its own)."""
        if self._fd >= 0:
            self._close(self._fd)
            self._fd = -1

"""One execution environment: a sandboxed runtime process, its Runtime API endpoint, its logs.

The environment serves one function version, one invocation at a time. The platform side calls
`invoke()`; the Runtime API side calls `next()`, `respond()`, `fail()` and `init_failed()`. The
pure state table lives in runtime_api/state.py; this module only feeds it events and carries out the
I/O around them (process, pipe, timers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fcntl
import json
import math
import os
import signal
import socket
import termios
from collections.abc import Awaitable, Callable
from typing import Protocol

from lamina.clock import Clock
from lamina.errors import FunctionErrorType
from lamina.model import FunctionConfig, Invocation
from lamina.runtime_api.state import EnvEvent, EnvState, InvalidStateTransition, transition
from lamina.sandbox.base import SandboxDriver, SandboxProcess, SandboxSpec

LOG_TAIL_BYTES = 4096
MAX_RESPONSE_BYTES = 6_291_556
MEMORY_READ_EVERY_S = 0.1
_NOTHING = bytes(4)  # FIONREAD's count (an int) of an empty pipe
#: Names the inherited Runtime API socket's descriptor for runtimes that take one (Runtime.takes_channel).
CHANNEL_ENV = "_LAMINA_RUNTIME_FD"


@dataclasses.dataclass(slots=True)
class Outcome:
    """How one invocation ended, from the platform's point of view."""

    payload: bytes
    content_type: str = "application/json"
    error_type: str | None = None  # the REPORT line's / caller's function error, None on success
    status: str = "success"  # success | error | timeout | crash | init-error
    log: str = ""  # the invocation's log text, START to REPORT
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: int = 0

    @property
    def log_tail(self) -> bytes:
        """The last 4 KB of the log (X-Amz-Log-Result), made only when a caller asks for it."""
        return self.log.encode()[-LOG_TAIL_BYTES:]


#: deliver(invocation) -> it reached the runtime; deliver(None): no invocation will come.
Deliver = Callable[[Invocation | None], bool]


class LogSink(Protocol):
    def write(self, function: str, stream: str, text: str) -> None: ...


class Endpoint(Protocol):
    port: int

    async def attach(self, sock: socket.socket, frames: bool = False) -> None: ...

    def close(self) -> None: ...


def platform_error(error_type: str, request_id: str, text: str) -> bytes:
    message = f"RequestId: {request_id} Error: {text}"
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _iso_now(clock: Clock) -> str:
    t = dt.datetime.fromtimestamp(clock.time(), tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Environment:
    def __init__(
        self,
        env_id: str,
        config: FunctionConfig | None,
        spec: SandboxSpec,
        driver: SandboxDriver,
        clock: Clock,
        sink: LogSink,
        on_change: Callable[[Environment], None],
    ) -> None:
        self.id = env_id
        self.spec = spec
        self.state = EnvState.INIT if config is not None else EnvState.STANDBY
        self.port = 0
        self.init_ms: float | None = None  # reported once, on the first invocation, then None again
        #: The init phase has ended (first /next, an init error, or the init timeout); an exit before
        #: that is an init failure, an exit after it is not.
        self.init_over = False
        self.idle_since = clock.monotonic()
        self.config: FunctionConfig = config  # type: ignore[assignment]  # None only while in STANDBY
        self.log_stream = ""
        #: Started ahead for provisioned concurrency: its init is not reported on an invocation.
        self.provisioned = False
        #: Told how much memory_charge_mb changed, whenever it does (the scheduler keeps the sum).
        self.on_charge: Callable[[int], None] | None = None
        self._assignment: asyncio.Future[dict[str, str]] | None = (
            asyncio.get_running_loop().create_future() if config is None else None
        )
        self._driver = driver
        self._clock = clock
        self._sink = sink
        self._on_change = on_change
        self._process: SandboxProcess | None = None
        self._endpoint: Endpoint | None = None
        self._pipe_r = -1
        self._exit_fd = -1
        self._status_fd = -1
        self._memory_read_at = -1e9
        self._memory_mb = 0
        self._started = 0.0
        #: Where the parked runtime's `GET /next` takes its event: deliver(invocation) -> delivered;
        #: deliver(None) when none will come (the runtime is gone).
        self._next_waiter: Deliver | None = None
        self._current: Invocation | None = None
        self._current_written = False
        #: The current invocation's outcome, until it ends (None: none running, or it has ended).
        self._outcome: asyncio.Future[Outcome] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._invoke_started = 0.0
        self._deadline_ms = 0
        self._output = bytearray()
        self._init_output = bytearray()  # what the runtime printed before its first /next
        self._init_error: tuple[bytes, str] | None = None
        #: The loop it lives on, looked up once: on Python 3.11 every get_running_loop() is a getpid()
        #: system call, two of them per invocation on the hot path.
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self.exit_status: int | None = None
        if config is not None:
            self._bind(config)

    def _bind(self, config: FunctionConfig) -> None:
        self.config = config
        self.log_stream = (
            dt.datetime.fromtimestamp(self._clock.time(), tz=dt.timezone.utc).strftime("%Y/%m/%d/")
            + f"[{config.version}]{self.id}"
        )

    # lifecycle -------------------------------------------------------------------------------

    async def start(self, open_endpoint: Callable[..., Awaitable[Endpoint]]) -> None:
        """Prepare the sandbox, open its Runtime API endpoint, spawn the runtime."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._driver.prepare, self.spec)
        except BaseException:
            await loop.run_in_executor(None, self._driver.cleanup, self.spec)
            raise
        # With a private network the listener was made inside the environment's own namespace.
        self._endpoint = await open_endpoint(self, self._driver.runtime_socket(self.spec))
        self.port = self._endpoint.port
        env = dict(self.spec.env)
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{self.port}"
        channel = None
        if self.spec.runtime.takes_channel:  # the same Runtime API over a socket the runtime inherits
            ours, channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            await self._endpoint.attach(ours, frames=self.spec.runtime.speaks_frames)
            env[CHANNEL_ENV] = str(channel.fileno())
        if self._assignment is not None:
            env["LAMINA_STANDBY"] = "1"
        else:
            env["AWS_LAMBDA_LOG_STREAM_NAME"] = self.log_stream
            self._write_init_start(env)
        spec = dataclasses.replace(self.spec, env=env)
        self.spec = spec
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._pipe_r = read_fd
        if not self._started:  # an environment assigned before it started counts its start-up as init
            self._started = self._clock.monotonic()
        try:
            self._process = self._driver.spawn(spec, write_fd, channel.fileno() if channel is not None else None)
        finally:
            os.close(write_fd)
            if channel is not None:
                channel.close()
        loop.add_reader(read_fd, self._on_output)
        self._exit_fd = self._process.exit_fd
        loop.add_reader(self._exit_fd, self._on_process_event)

    def _on_process_event(self) -> None:
        assert self._process is not None
        if self._process.ended():
            self._on_exit()

    def _write_init_start(self, env: dict[str, str]) -> None:
        self._write_platform(
            f"INIT_START Runtime Version: {self.config.runtime}.v1\t"
            f"Runtime Version ARN: arn:aws:lambda:{env.get('AWS_REGION', 'us-east-1')}::runtime:"
            f"{'0' * 64}\n"
        )

    def assign(self, config: FunctionConfig, env: dict[str, str]) -> None:
        """Give a STANDBY environment its function: its runtime now loads the handler (init phase)."""
        self.state = transition(self.state, EnvEvent.ASSIGN)
        self._bind(config)
        self._driver.resize(self.spec, config.memory_mb)
        env = dict(env, AWS_LAMBDA_LOG_STREAM_NAME=self.log_stream)
        self._write_init_start(env)
        self._started = self._clock.monotonic()
        assert self._assignment is not None
        self._assignment.set_result(env)

    async def standby(self) -> dict[str, str]:
        """`GET /lamina/standby`: park a pre-started runtime until it is assigned a function."""
        if self._assignment is None:
            raise InvalidStateTransition(self.state, EnvEvent.ASSIGN)
        return await asyncio.shield(self._assignment)

    async def wait_ready(self) -> None:
        """Wait for the end of the init phase (the runtime's first /next), or its failure."""
        await self._ready

    def kill(self) -> None:
        """Stop the process tree now (idempotent)."""
        if self._process is not None:
            self._process.kill()

    @property
    def memory_charge_mb(self) -> int:
        """What this environment holds of the host's memory budget: its last measured peak."""
        return max(self._memory_mb, 16)

    @property
    def alive(self) -> bool:
        return self.state not in (EnvState.DEAD, EnvState.INIT_FAILED)

    # platform side -----------------------------------------------------------------------------

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one invocation in this (IDLE) environment, within the function's timeout."""
        loop = self._loop
        self.state = transition(self.state, EnvEvent.DELIVER)
        self._current = invocation
        self._current_written = False
        self._outcome = loop.create_future()
        self._output.clear()
        self._invoke_started = self._clock.monotonic()
        self._deadline_ms = int((self._clock.time() + self.config.timeout_s) * 1000)
        waiter, self._next_waiter = self._next_waiter, None
        if waiter is not None:
            self._current_written = waiter(invocation)  # written now, from this task: no hop through the loop
        outcome = self._outcome
        self._deadline = loop.call_later(self.config.timeout_s, self._expire, invocation)
        # A caller that stops waiting (its task cancelled) leaves the invocation to end on its own: its
        # result still closes the books (log lines, REPORT), and a function that hangs still times out.
        return await outcome

    def _expire(self, invocation: Invocation) -> None:
        if self._outcome is not None and self._current is invocation:
            self._end(self._timed_out(invocation))

    def _end(self, result: Outcome) -> None:
        """The current invocation is over: its deadline goes, its caller (if still waiting) is told."""
        outcome, self._outcome = self._outcome, None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if outcome is not None and not outcome.done():
            outcome.set_result(result)

    def _timed_out(self, invocation: Invocation) -> Outcome:
        self.kill()
        text = f"Task timed out after {self.config.timeout_s:.2f} seconds"
        self._output += f"{_iso_now(self._clock)} {invocation.request_id} {text}\n".encode()
        return self._finish(
            platform_error(FunctionErrorType.TIMEOUT, invocation.request_id, text),
            "application/json", FunctionErrorType.TIMEOUT, "timeout",
        )

    def _finish(self, payload: bytes, content_type: str, error_type: str | None, status: str) -> Outcome:
        """Close the books on the current invocation: platform log lines, tail, duration."""
        invocation = self._current
        assert invocation is not None
        self._take_pending_output()
        duration = (self._clock.monotonic() - self._invoke_started) * 1000
        rid = invocation.request_id
        memory = self._max_memory_mb()
        report = (
            f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(duration))} ms\t"
            f"Memory Size: {self.config.memory_mb} MB\tMax Memory Used: {memory} MB\t"
        )
        init_ms, self.init_ms = self.init_ms, None
        if self.provisioned:
            init_ms = None  # initialised ahead of any invocation: no invocation paid for it
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if status != "success":
            report += f"Status: {'timeout' if status == 'timeout' else 'error'}\t"
            if status != "timeout" and error_type:
                report += f"Error Type: {error_type}\t"
        text = (
            f"START RequestId: {rid} Version: {self.config.version}\n"
            + self._output.decode("utf-8", "replace")
            + f"END RequestId: {rid}\n{report}\n"
        )
        self._output.clear()
        self._sink.write(self.config.name, self.log_stream, text)
        self._current = None
        return Outcome(payload, content_type, error_type, status, text, duration, init_ms, memory)

    def _settle(self, payload: bytes, content_type: str, error_type: str | None, status: str) -> None:
        if self._outcome is not None:  # else it has ended already (a result after its timeout: ignored)
            self._end(self._finish(payload, content_type, error_type, status))

    # runtime side ------------------------------------------------------------------------------

    async def next(self) -> Invocation:
        """`GET /next`: wait until there is an invocation for this runtime."""
        waiter: asyncio.Future[Invocation] = self._loop.create_future()

        def deliver(invocation: Invocation | None) -> bool:
            if waiter.done():
                return False
            if invocation is None:
                waiter.cancel()
            else:
                waiter.set_result(invocation)
            return True

        ready = self.park(deliver)
        if ready is not None:
            return ready
        try:
            return await waiter
        except asyncio.CancelledError:
            if self._next_waiter is deliver:
                self._next_waiter = None
            elif waiter.done() and not waiter.cancelled():
                self._current_written = False  # delivered to a dead connection: hand it out again
            raise

    def park(self, deliver: Deliver) -> Invocation | None:
        """`GET /next` without waiting: the invocation to answer with now, or None after leaving `deliver`
        to be called with the next one (it returns False if that did not reach the runtime)."""
        if self.state is EnvState.INVOKING and self._current is not None and not self._current_written:
            self._current_written = True  # a runtime that lost its connection asks again
            return self._current
        self.state = transition(self.state, EnvEvent.NEXT)
        self._next_waiter = deliver
        if self.init_ms is None and not self._ready.done():
            self.init_over = True
            self.init_ms = (self._clock.monotonic() - self._started) * 1000
            # A cgroup write (~0.1-0.5 ms, more in a burst): the first invocation may start a moment
            # before the quota applies, which no function can tell from its CPU share.
            asyncio.get_running_loop().run_in_executor(None, self._driver.limit_cpu, self.spec,
                                                       self.config.memory_mb)
            self._ready.set_result(None)
        self.idle_since = self._clock.monotonic()
        self._on_change(self)
        return None

    def check_request(self, request_id: str) -> bool:
        return self._current is not None and self._current.request_id == request_id and (
            self.state is EnvState.INVOKING
        )

    def deadline_ms(self) -> int:
        """Epoch milliseconds at which the current invocation times out."""
        return self._deadline_ms

    def respond(self, request_id: str, body: bytes, content_type: str) -> None:
        """`POST /response` (the caller validated the request id)."""
        if len(body) > MAX_RESPONSE_BYTES:
            self.too_large()
            return
        self.state = transition(self.state, EnvEvent.RESPONSE)
        self._settle(body, content_type or "application/json", None, "success")

    def too_large(self) -> None:
        """The runtime's response is over the limit: the caller gets Function.ResponseSizeTooLarge."""
        self.state = transition(self.state, EnvEvent.RESPONSE)
        text = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
        payload = json.dumps({"errorMessage": text, "errorType": FunctionErrorType.RESPONSE_TOO_LARGE})
        self._settle(payload.encode(), "application/json", FunctionErrorType.RESPONSE_TOO_LARGE, "error")

    def fail(self, request_id: str, body: bytes, error_type: str | None) -> None:
        """`POST /error`: the function failed; the body goes to the caller verbatim."""
        self.state = transition(self.state, EnvEvent.ERROR)
        kind = error_type or _error_type_of(body) or "Runtime.Unknown"
        self._settle(body, "application/json", kind, "error")

    def init_failed(self, body: bytes, error_type: str | None) -> None:
        """`POST /init/error`: keep the error for the invocation that waits on this init."""
        self.state = transition(self.state, EnvEvent.INIT_ERROR)
        kind = error_type or _error_type_of(body) or "Runtime.Unknown"
        self._init_error = (body, kind)
        self.init_over = True
        self.init_ms = (self._clock.monotonic() - self._started) * 1000
        self._write_platform(
            f"INIT_REPORT Init Duration: {self.init_ms:.2f} ms\tPhase: init\tStatus: error\t"
            f"Error Type: {kind}\n"
        )
        if not self._ready.done():
            self._ready.set_result(None)
        self._on_change(self)

    def report_init_failure(self, invocation: Invocation, payload: bytes, error_type: str) -> Outcome:
        """The invocation that waited on a failed init gets the error, with the init output as its log."""
        self._current = invocation
        self._invoke_started = self._clock.monotonic()
        self._output[:] = self._init_output
        return self._finish(payload, "application/json", error_type, "init-error")

    def init_error(self) -> tuple[bytes, str] | None:
        return self._init_error

    # I/O callbacks -----------------------------------------------------------------------------

    def _drain(self) -> bool:
        """Read everything the runtime has written so far; False at end of file."""
        while self._pipe_r >= 0:
            try:
                chunk = os.read(self._pipe_r, 65536)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self._close_pipe()
                return False
            if self._current is not None:
                self._output += chunk
            elif self.state is EnvState.STANDBY:
                self._init_output += chunk[:65536]
            else:
                self._sink.write(self.config.name, self.log_stream, chunk.decode("utf-8", "replace"))
                if self.state in (EnvState.INIT, EnvState.INIT_FAILED) and len(self._init_output) < 65536:
                    self._init_output += chunk
        return False

    def _take_pending_output(self) -> None:
        """Output the runtime wrote before its result and the loop has not read yet. Usually there is
        none, which FIONREAD tells without a failed read (and its exception) per invocation; the end
        of the pipe is left to `_on_output`, which the loop calls for it."""
        if self._pipe_r >= 0:
            try:
                pending = fcntl.ioctl(self._pipe_r, termios.FIONREAD, _NOTHING)
            except OSError:
                pending = b"?"
            if pending != _NOTHING:
                self._drain()

    def _on_output(self) -> None:
        self._drain()

    def _close_pipe(self) -> None:
        if self._pipe_r >= 0:
            asyncio.get_running_loop().remove_reader(self._pipe_r)
            os.close(self._pipe_r)
            self._pipe_r = -1

    def _on_exit(self) -> None:
        proc = self._process
        assert proc is not None
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1
        if self._exit_fd >= 0:  # before wait(), which closes it
            asyncio.get_running_loop().remove_reader(self._exit_fd)
            self._exit_fd = -1
        status = proc.wait()
        self.exit_status = status
        self._drain()
        self._close_pipe()
        previous = self.state
        self.state = transition(self.state, EnvEvent.EXIT)
        if self._current is not None and previous is EnvState.INVOKING:
            rid = self._current.request_id
            # Out of memory is read from the cgroup's OOM-kill count, not guessed from the signal.
            oom = self._driver.oom_kills(self.spec) > 0
            text = "Runtime exited with error: signal: killed" if oom else exit_text(status)
            kind = FunctionErrorType.OUT_OF_MEMORY if oom else FunctionErrorType.EXIT
            self._output += f"RequestId: {rid} Error: {text}\n{kind}\n".encode()
            self._settle(platform_error(FunctionErrorType.EXIT, rid, text), "application/json", kind, "crash")
        if not self._ready.done():
            self._ready.set_result(None)
        waiter, self._next_waiter = self._next_waiter, None
        if waiter is not None:
            waiter(None)
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        asyncio.get_running_loop().run_in_executor(None, self._driver.cleanup, self.spec)
        self._on_change(self)

    def _write_platform(self, line: str) -> None:
        self._sink.write(self.config.name, self.log_stream, line)

    def _max_memory_mb(self) -> int:
        """Peak resident memory of the runtime process (VmHWM), in MB; the status file stays open.

        A high-water mark only grows, so a reading younger than MEMORY_READ_EVERY_S is reused: back
        to back invocations do not pay a /proc read each.
        """
        now = self._clock.monotonic()
        if now - self._memory_read_at < MEMORY_READ_EVERY_S:
            return self._memory_mb
        self._memory_read_at = now
        charge = self.memory_charge_mb
        self._memory_mb = self._read_memory_mb()
        if self.on_charge is not None and self.memory_charge_mb != charge:
            self.on_charge(self.memory_charge_mb - charge)
        return self._memory_mb

    def _read_memory_mb(self) -> int:
        peak = self._driver.peak_memory_mb(self.spec)  # the whole environment's peak, from its cgroup
        if peak is not None:
            return peak
        if self._status_fd < 0:
            pid = self._process.runtime_pid() if self._process is not None else None
            if pid is None:
                return 0
            try:
                self._status_fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
            except OSError:
                return 0
        try:
            text = os.pread(self._status_fd, 4096, 0)
        except OSError:
            return 0
        at = text.find(b"VmHWM:")
        if at < 0:
            return 0
        return max(1, math.ceil(int(text[at + 6:text.index(b"kB", at)]) / 1024))


def exit_text(status: int) -> str:
    if status < 0:
        return f"Runtime exited with error: signal: {_signal_name(-status)}"
    if status > 128 and status - 128 in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGTERM):
        return f"Runtime exited with error: signal: {_signal_name(status - 128)}"
    if status == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {status}"


def _signal_name(num: int) -> str:
    names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
             signal.SIGTERM: "terminated"}
    return names.get(num, f"signal {num}")


def _error_type_of(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    kind = value.get("errorType") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None

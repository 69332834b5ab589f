"""Python environments forked from a per-version zygote instead of exec'd (runtimes/python/zygote.py).

The zygote makes the whole sandbox itself: namespaces, the file-system view (rootfs.py's plan, the
same tree bubblewrap builds), the cgroup join and the uid drop, then runs the runtime client it has
already imported. lamina sees each environment as a `ForkedSandbox`: a status pipe that closes when the
environment has ended (with its exit status in it), and the environment's cgroup to kill it by.

One zygote per Python runtime id and CPU (its lanes, taking requests in turn: a zygote makes one
environment at a time), started in the background on first use (that first environment is exec'd under
bubblewrap as before). A zygote that dies is started again on the next use, and each one
retires after MAX_FORKS runtimes: forks share the zygote's string-hash seed (PYTHONHASHSEED
randomisation), so the budget bounds how many environments share one.
"""

from __future__ import annotations

import array
import json
import logging
import os
import socket
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from lamina import cpus
from lamina.runtimes.registry import Runtime
from lamina.sandbox.base import Layout

log = logging.getLogger("lamina.sandbox")

ZYGOTE_PY = Path(__file__).resolve().parents[1] / "runtimes" / "python" / "zygote.py"
#: How a zygote is started: its module imported (a script is compiled from source each time; a module is
#: read from __pycache__, which `compile_client` fills), its path the first argument, as in a script's argv.
LAUNCH = "import sys; sys.path[0] = sys.argv.pop(1).rpartition('/')[0]; import zygote; zygote.main()"
#: pid 1 of each forked environment once its runtime runs (init.c, built by `make install`); without it
#: the zygote's own Python copy stays on as the init.
INIT_BIN = Path(__file__).resolve().parents[3] / "build" / "lamina-init"
#: The init's sandbox made by C code sharing the zygote's memory (spawn.c, built by `make install`).
SPAWN_LIB = INIT_BIN.parent / "liblamina-spawn.so"


def init_binary() -> str:
    """The init binary to hand zygotes ("": none). LAMINA_INIT_BINARY names another one, or, empty, none."""
    path = os.environ.get("LAMINA_INIT_BINARY", str(INIT_BIN))
    return path if path and os.access(path, os.X_OK) else ""


def spawn_library() -> str:
    """liblamina-spawn.so to hand zygotes ("": none, the init is Python). LAMINA_SPAWN_LIBRARY names another
    one, or, empty, none."""
    path = os.environ.get("LAMINA_SPAWN_LIBRARY", str(SPAWN_LIB))
    return path if path and os.path.isfile(path) else ""


MAX_FORKS = 64
#: A zygote makes one environment at a time (its init's set-up runs while it waits, CLONE_VFORK): with one
#: per runtime, a burst found the host 10–22% idle while environments queued at the one zygote, and ran
#: 5.3–5.7 s; with one per CPU, 2–10% idle and 4.8–5.2 s (docs/benchmarks.md, seventeenth session).
MAX_LANES = 4
SUCCESSOR_AT = 16  # forks left when the next zygote starts
#: How long a request may wait for room in a zygote's socket before the zygote is taken for stuck (one
#: takes a request in a millisecond or two; one still starting, in a few dozen; a host so loaded that it
#: needs more is better served by exec'd environments meanwhile).
SEND_TIMEOUT_S = 10.0


_compiled: set[str] = set()
_compiled_lock = threading.Lock()


def compile_client(runtime: Runtime) -> None:
    """zygote.py and bootstrap.py as this interpreter's bytecode (`__pycache__` beside them), once per
    lamina: a zygote imports both as it starts, every MAX_FORKS environments, and compiling them took
    ~20 of its ~45 ms of CPU. Where the directory is not writable, they are compiled as before."""
    interpreter = str(runtime.interpreter)
    with _compiled_lock:
        if interpreter in _compiled:
            return
        _compiled.add(interpreter)
    sources = [str(ZYGOTE_PY), str(ZYGOTE_PY.with_name("bootstrap.py"))]
    try:
        subprocess.run([interpreter, "-S", "-c", "import py_compile, sys\nfor f in sys.argv[1:]: "
                        "py_compile.compile(f, doraise=False, quiet=2)", *sources],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("zygote_not_compiled runtime=%s error=%s", runtime.id, exc)


class ForkedSandbox:
    """A SandboxProcess a zygote made: its status pipe, and its cgroup to kill it by."""

    def __init__(self, exit_fd: int, kill: Callable[[], None]) -> None:
        #: "+" once the zygote has made the environment, then init's "<status>\n"; EOF once it has ended.
        self.exit_fd = exit_fd
        self.returncode: int | None = None
        self._kill = kill
        self._status = b""

    def ended(self) -> bool:
        while self.returncode is None:
            try:
                chunk = os.read(self.exit_fd, 64)
            except BlockingIOError:
                return False
            if chunk:
                self._status += chunk
                continue
            made, status = self._status.startswith(b"+"), self._status.lstrip(b"+")
            try:
                self.returncode = int(status.split(b"\n", 1)[0])
            except ValueError:
                if made:  # init was killed before it could say (lamina killed it, or the memory limit)
                    self.returncode = -signal.SIGKILL
                else:  # the zygote went away with the request unserved
                    log.warning("zygote_lost_request")
                    self.returncode = 126
        return True

    def wait(self) -> int:
        if self.returncode is None:
            os.set_blocking(self.exit_fd, True)
            self.ended()
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """Kill every process of the environment (its cgroup); the status pipe then closes."""
        if self.returncode is None:
            self._kill()

    def runtime_pid(self) -> int | None:
        return None  # always in a cgroup, which says how much memory it used


def default_lanes() -> int:
    """Zygotes per runtime: one per CPU of this process, up to MAX_LANES."""
    return max(1, min(MAX_LANES, len(cpus.process_cpus())))


class Zygote:
    def __init__(self, runtime: Runtime, lifeline: int, layout: Layout) -> None:
        self.runtime = runtime
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.settimeout(SEND_TIMEOUT_S)
        self._sock = ours
        self._lock = threading.Lock()
        self.forks = 0
        self._pending = 0  # hand-overs given this zygote and not finished yet
        self._retired = False
        self._template_sent = False  # the zygote keeps the plan of its template from its first request
        self._stuck = False  # killed for not reading its requests (it may linger in the kernel a while)
        try:
            with cpus.unpinned():  # its environments inherit its CPUs
                self._proc = subprocess.Popen(
                    [str(runtime.interpreter), "-S", "-B", "-c", LAUNCH, str(ZYGOTE_PY), str(theirs.fileno()), str(lifeline),
                     layout.runtime_dir, layout.lang_dir or "", str(runtime.lang_root or ""), init_binary(),
                     spawn_library()],
                    pass_fds=(theirs.fileno(), lifeline), stdin=subprocess.DEVNULL, close_fds=True,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True)
        finally:
            theirs.close()

    @property
    def alive(self) -> bool:
        return not self._stuck and self._proc.poll() is None

    def acquire(self) -> None:
        with self._lock:
            self.forks += 1
            self._pending += 1

    def release(self) -> None:
        """One hand-over done. The last one of a retired zygote closes it — from a thread of its own: this
        runs on the event loop (`fork`), and closing waits for the zygote's exit (tens of ms on a busy host;
        it blocked the loop ~200 ms in a burst)."""
        with self._lock:
            self._pending -= 1
            done = self._retired and self._pending == 0
        if done:
            threading.Thread(target=self.close, daemon=True).start()

    def retire(self) -> None:
        """No new hand-overs; stop once the pending ones are done."""
        with self._lock:
            self._retired = True
            done = self._pending == 0
        if done:
            self.close()

    def fork(self, request: dict[str, object], template: list[object], output_fd: int, channel_fd: int | None,
             kill: Callable[[], None]) -> ForkedSandbox:
        """Have the zygote make one environment; raises OSError when the zygote cannot be reached.
        `template`, the plan every environment of the runtime shares, goes with the first request only.

        This runs on the event loop: a zygote takes a request within milliseconds, but one whose socket is
        full (ten requests, net.unix.max_dgram_qlen) for SEND_TIMEOUT_S is stuck (an init of its waiting
        in the kernel, say) and is killed — its environments live on — so that the next request starts
        another."""
        exit_r, exit_w = os.pipe()
        os.set_blocking(exit_r, False)
        try:
            with self._lock:
                data = json.dumps(request if self._template_sent else dict(request, template=template)).encode()
                fds = array.array("i", [output_fd, exit_w] + ([] if channel_fd is None else [channel_fd]))
                try:
                    self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                except TimeoutError:
                    log.warning("zygote_stuck runtime=%s pid=%d: killed", self.runtime.id, self._proc.pid)
                    self._stuck = True
                    self._proc.kill()
                    raise
                self._template_sent = True
        except BaseException:
            os.close(exit_r)
            raise
        finally:
            os.close(exit_w)
            self.release()
        return ForkedSandbox(exit_r, kill)

    def close(self) -> None:
        self._sock.close()  # the zygote stops at EOF; the runtimes it forked live on
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Zygotes:
    """`lanes` zygotes per Python runtime id, taking requests in turn."""

    def __init__(self, root_dir: Path, layout: Layout, lanes: int = 0) -> None:
        self.layout = layout
        #: An empty directory each environment's root is built on (in its own mount namespace only).
        self.root_dir = root_dir
        root_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lanes = lanes or default_lanes()
        self._next = 0
        self._zygotes: dict[tuple[str, int], Zygote] = {}
        self._starting: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._closed = False
        #: Held open for as long as lamina lives: each environment's init exits when this closes.
        self._lifeline_r, self._lifeline_w = os.pipe()

    def get(self, runtime: Runtime) -> Zygote | None:
        """One of the runtime's zygotes that is up, the lanes in turn; else None (and they are being started)."""
        found: Zygote | None = None
        retired: list[Zygote] = []
        start: list[tuple[str, int]] = []
        with self._lock:
            for i in range(self._lanes):
                lane = (self._next + i) % self._lanes
                key = (runtime.id, lane)
                zygote = self._zygotes.get(key)
                if zygote is not None and zygote.alive and zygote.forks < MAX_FORKS:
                    if found is None:
                        found, self._next = zygote, lane + 1
                        zygote.acquire()  # fork() releases it
                        if zygote.forks >= MAX_FORKS - SUCCESSOR_AT and not self._closed and key not in self._starting:
                            self._starting.add(key)  # its successor, ready before it retires
                            start.append(key)
                    continue
                if zygote is not None:
                    retired.append(self._zygotes.pop(key))
                if not self._closed and key not in self._starting:
                    self._starting.add(key)
                    start.append(key)
        for old in retired:
            threading.Thread(target=old.retire, daemon=True).start()
        for key in start:
            threading.Thread(target=self._start, args=(runtime, key), daemon=True).start()
        return found

    def _start(self, runtime: Runtime, key: tuple[str, int]) -> None:
        compile_client(runtime)
        try:
            zygote = Zygote(runtime, self._lifeline_r, self.layout)
        except OSError as exc:
            log.warning("zygote_not_started runtime=%s error=%s", runtime.id, exc)
            zygote = None
        with self._lock:
            self._starting.discard(key)
            old = self._zygotes.pop(key, None)
            if zygote is not None:
                if self._closed:
                    zygote.close()
                else:
                    self._zygotes[key] = zygote
        if old is not None:
            old.retire()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.retire()

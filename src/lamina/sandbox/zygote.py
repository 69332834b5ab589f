"""Python environments forked from a per-version zygote instead of exec'd (runtimes/python/zygote.py).

The sandbox is made exactly as before (bubblewrap, cgroup, /tmp volume, uid) but runs a *holder* — a
shell that says it is ready, then waits for the runtime's exit status and exits with it — in place of
the interpreter. Once the holder is up, the zygote forks a runtime into the holder's namespaces and
cgroups (see the runtime side for how it drops privileges). What lamina watches is unchanged: the
process it spawned ends when the runtime ends, with the runtime's status.

One zygote per Python runtime id, started in the background on first use (that first environment is
exec'd as before). A zygote that dies is started again on the next use, and each one retires after
MAX_FORKS runtimes: forks share the zygote's string-hash seed (PYTHONHASHSEED randomisation), so the
budget bounds how many environments share one.
"""

from __future__ import annotations

import array
import json
import logging
import os
import select
import socket
import subprocess
import threading
from pathlib import Path

from lamina.runtimes.registry import Runtime

log = logging.getLogger("lamina.sandbox")

ZYGOTE_PY = Path(__file__).resolve().parents[1] / "runtimes" / "python" / "zygote.py"
#: The holder, its stdin a socket to lamina: says it is up, then exits as the runtime did (the status the
#: zygote writes back on that socket; a negative one is the signal that ended the runtime).
HOLDER = 'echo r >&0; read s; case "$s" in -*) kill -${s#-} $$ ;; esac; exit "${s:-125}"'
READY_TIMEOUT_S = 10.0
MAX_FORKS = 64


class Zygote:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._lock = threading.Lock()
        self.forks = 0
        self._pending = 0  # hand-overs given this zygote and not finished yet
        self._retired = False
        try:
            self._proc = subprocess.Popen(
                [str(runtime.interpreter), "-S", "-B", str(ZYGOTE_PY), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True)
        finally:
            theirs.close()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def acquire(self) -> None:
        with self._lock:
            self.forks += 1
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending -= 1
            done = self._retired and self._pending == 0
        if done:
            self.close()

    def retire(self) -> None:
        """No new hand-overs; stop once the pending ones are done."""
        with self._lock:
            self._retired = True
            done = self._pending == 0
        if done:
            self.close()

    def fork_into(self, request: dict[str, object], fds: list[int]) -> None:
        data = json.dumps(request).encode()
        with self._lock:
            self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])

    def close(self) -> None:
        self._sock.close()  # the zygote stops at EOF; the runtimes it forked live on
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Zygotes:
    """One zygote per Python runtime id."""

    def __init__(self) -> None:
        self._zygotes: dict[str, Zygote] = {}
        self._starting: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def get(self, runtime: Runtime) -> Zygote | None:
        """The runtime's zygote when it is up; else None (and it is being started)."""
        retired = None
        with self._lock:
            zygote = self._zygotes.get(runtime.id)
            if zygote is not None and zygote.alive and zygote.forks < MAX_FORKS:
                zygote.acquire()  # hand_over releases it
                return zygote
            if zygote is not None:
                retired = self._zygotes.pop(runtime.id)
            start = not self._closed and runtime.id not in self._starting
            if start:
                self._starting.add(runtime.id)
        if retired is not None:
            threading.Thread(target=retired.retire, daemon=True).start()
        if start:
            threading.Thread(target=self._start, args=(runtime,), daemon=True).start()
        return None

    def _start(self, runtime: Runtime) -> None:
        try:
            zygote = Zygote(runtime)
        except OSError as exc:
            log.warning("zygote_not_started runtime=%s error=%s", runtime.id, exc)
            zygote = None
        with self._lock:
            self._starting.discard(runtime.id)
            old = self._zygotes.pop(runtime.id, None)
            if zygote is not None:
                if self._closed:
                    zygote.close()
                else:
                    self._zygotes[runtime.id] = zygote
        if old is not None:
            old.retire()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.retire()


def holder_pid(outer_pid: int, depth: int) -> int:
    """The holder: `depth` generations below the process lamina spawned (bwrap, bwrap's pid 1, holder)."""
    pid = outer_pid
    for _ in range(depth):
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        if not children:
            raise OSError(f"process {pid} has no child yet")
        pid = int(children[0])
    return pid


def hand_over(zygote: Zygote, proc: subprocess.Popen[bytes], depth: int, holder_fd: int, output_fd: int,
              request: dict[str, object]) -> None:
    """Thread body: wait for the holder, then have the zygote fork the runtime into its sandbox. On any
    failure the sandbox is killed, so the environment fails to start (and says why in its log)."""
    try:
        poller = select.poll()  # not select(): a busy server has fds above 1024
        poller.register(holder_fd, select.POLLIN)
        if not poller.poll(READY_TIMEOUT_S * 1000) or not os.read(holder_fd, 8):
            raise OSError("the sandbox's holder never became ready")
        request["holder"] = holder_pid(proc.pid, depth)
        zygote.fork_into(request, [output_fd, holder_fd])
    except Exception as exc:
        if proc.poll() is not None:  # the sandbox was stopped first (lamina stopping, or a standby dropped)
            return
        log.warning("zygote_hand_over_failed pid=%s error=%s", proc.pid, exc)
        try:
            os.write(output_fd, f"lamina: could not start the runtime from its zygote: {exc}\n".encode())
            os.killpg(proc.pid, 9)
        except OSError:
            pass
    finally:
        zygote.release()
        for fd in (holder_fd, output_fd):
            os.close(fd)

"""lamina-init (src/lamina/sandbox/init.c), on its own: the process that forked the runtime execs it in its
place; it reports the runtime's exit status (negative for a signal) on the status pipe and exits, and it
exits when the lifeline closes. Built by `make install`."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from lamina.sandbox.zygote import INIT_BIN

pytestmark = pytest.mark.skipif(not os.access(INIT_BIN, os.X_OK), reason="build/lamina-init is built by make install")

# The parent forks a "runtime" that runs `body`, then execs lamina-init with that child's pid, as the
# zygote's clone does. argv: INIT STATUS_FD LIFELINE_FD.
PARENT = """
import os, sys, time
init, status_fd, lifeline_fd, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if len(sys.argv) > 5 and os.fork() == 0:  # another child of the init-to-be (an orphan, in a namespace)
    os.close(status_fd); os.close(lifeline_fd)
    os._exit(7)
pid = os.fork()
if pid == 0:
    os.close(status_fd); os.close(lifeline_fd)  # as the runtime does
    exec(body)
    os._exit(0)
os.execv(init, ["lamina-init", str(status_fd), str(lifeline_fd), str(pid)])
"""


def _run(body: str, *extra: str) -> tuple[subprocess.Popen, int, int]:
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(INIT_BIN), str(status_w), str(lifeline_r), body,
                             *extra], pass_fds=(status_w, lifeline_r))
    os.close(status_w)
    os.close(lifeline_r)
    return proc, status_r, lifeline_w


def _status(status_r: int, timeout: float = 10) -> bytes:
    ready, _, _ = select.select([status_r], [], [], timeout)
    assert ready, "no status within the timeout"
    data = b""
    while chunk := os.read(status_r, 64):
        data += chunk
    return data


@pytest.mark.parametrize("body, expected", [
    ("time.sleep(0.2); os._exit(3)", b"3\n"),
    ("os._exit(0)", b"0\n"),  # possibly over before lamina-init runs: its first reap finds it
    ("import signal; os.kill(os.getpid(), signal.SIGKILL)", b"-9\n"),
    ("import signal; time.sleep(0.1); os.kill(os.getpid(), signal.SIGSEGV)", b"-11\n"),
])
def test_reports_how_the_runtime_ended_and_exits(body, expected):
    proc, status_r, lifeline_w = _run(body)
    try:
        assert _status(status_r) == expected
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(status_r)
        os.close(lifeline_w)


def test_reaps_other_children_and_waits_for_the_runtime():
    """Children besides the runtime (the orphans a pid namespace hands its init) are reaped silently."""
    proc, status_r, lifeline_w = _run("time.sleep(0.3); os._exit(5)", "with-another-child")
    try:
        assert _status(status_r) == b"5\n"
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(status_r)
        os.close(lifeline_w)


def test_exits_when_lamina_goes_away():
    proc, status_r, lifeline_w = _run("time.sleep(2)")
    try:
        time.sleep(0.3)
        assert proc.poll() is None
        os.close(lifeline_w)  # lamina died
        assert proc.wait(timeout=10) == 0
        assert os.read(status_r, 64) == b""  # no status: the runtime did not end
    finally:
        os.close(status_r)


@pytest.mark.parametrize("argv", [[], ["1", "2"], ["x", "2", "3"], ["1", "2", "0"], ["1", "2", "-4"]])
def test_bad_arguments(argv):
    assert subprocess.run([str(INIT_BIN), *argv]).returncode == 125

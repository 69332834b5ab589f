"""cgroups against the real kernel: limits hold, readings are right, nothing is left behind.

Runs as root on a host with cgroup v1 or v2 (memory, cpu, pids); skips otherwise. Each test gets its
own parent cgroup `lamina-test-<uuid>` and removes it, and everything under it, at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from lamina.sandbox.cgroups import Cgroup, CgroupManager, Limits, detect

PY = sys.executable


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")
    parent = f"lamina-test-{uuid.uuid4().hex[:12]}"
    found, reason = detect(parent=parent)
    if found is None:
        pytest.skip(f"no usable cgroup hierarchy: {reason}")
    try:
        yield found
    finally:
        found.destroy()
        assert not [p for p in found.parents.values() if p.exists()], "test cgroups left behind"


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; any still running at the end are killed and reaped."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def run(manager: CgroupManager, cg: Cgroup, argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(manager.wrap_argv(cg, argv), capture_output=True, text=True, timeout=timeout)


def test_wrapped_process_is_in_its_cgroup_from_the_start(manager):
    cg = manager.create("env-path", Limits.for_memory(128))
    out = run(manager, cg, ["cat", "/proc/self/cgroup"])
    assert out.returncode == 0, out.stderr
    expected = f"/{manager.parents['memory'].name}/env-path"
    paths = {}
    for line in out.stdout.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            paths[controller] = path
    if manager.version == 2:
        assert paths["unified"] == expected
    else:
        assert {paths[c] for c in ("memory", "cpu", "pids")} == {expected}
    # the target is exec'd in place of the shell: same pid, which is the one the cgroup lists
    out = run(manager, cg, ["/bin/sh", "-c", "echo $$; cat /proc/$$/cgroup >/dev/null"])
    assert out.stdout.strip().isdigit()
    assert cg.pids() == set()  # gone once it exited


def test_argv_reaches_the_target_verbatim(manager):
    cg = manager.create("env-argv", Limits.for_memory(128))
    nasty = ["a b", "$HOME", "`id`", "$(echo pwned)", "'", '"', "--", "", "*"]
    out = run(manager, cg, ["printf", "[%s]", *nasty])
    assert out.stdout == "".join(f"[{a}]" for a in nasty)


def test_memory_limit_oom_kills_and_is_counted(manager):
    cg = manager.create("env-oom", Limits(memory_mb=64, vcpus=1.0))  # a full core: Lambda's 0.036 is slow
    assert cg.oom_kills() == 0
    out = run(manager, cg, [PY, "-S", "-c", "x = b'\\x01' * (200 * 1024 * 1024); print('survived')"])
    assert out.returncode == -9 and "survived" not in out.stdout
    assert cg.oom_kills() >= 1
    peak = cg.peak_memory_bytes()
    assert 0.75 * (64 << 20) <= peak <= (64 << 20) * 1.02, peak


def test_within_the_limit_the_process_survives_and_peak_is_seen(manager):
    cg = manager.create("env-fits", Limits(memory_mb=128, vcpus=1.0))
    out = run(manager, cg, [PY, "-S", "-c", "x = b'\\x01' * (30 * 1024 * 1024); print(len(x))"])
    assert out.returncode == 0 and out.stdout.strip() == str(30 << 20), out.stderr
    assert cg.oom_kills() == 0
    assert (30 << 20) <= cg.peak_memory_bytes() < (128 << 20)


FORKER = """
import os, signal
kids = []
try:
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
    print("unbounded", len(kids))
except BlockingIOError as exc:
    print("EAGAIN", len(kids), exc.strerror)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def test_pids_limit_stops_a_fork_loop_inside(manager):
    cg = manager.create("env-pids", Limits.for_memory(256, pids_max=20))
    out = run(manager, cg, [PY, "-S", "-c", FORKER])
    assert out.returncode == 0, out.stderr
    word, count, why = out.stdout.split(" ", 2)
    assert word == "EAGAIN" and int(count) == 19, out.stdout  # the forker itself is the 20th
    assert "Resource temporarily unavailable" in why
    # the host is fine: we can still fork, and nothing stayed in the cgroup
    assert subprocess.run(["true"]).returncode == 0
    assert cg.pids() == set()


def test_pids_limit_shell_loop(manager):
    cg = manager.create("env-shfork", Limits.for_memory(256, pids_max=20))
    script = "i=0; while [ $i -lt 40 ]; do sleep 5 </dev/null >/dev/null 2>&1 & i=$((i + 1)); done; echo done"
    out = run(manager, cg, ["/bin/sh", "-c", script])
    assert out.returncode != 0 and "done" not in out.stdout
    assert "fork" in out.stderr.lower()  # dash: "Cannot fork"; bash: "fork: Resource temporarily unavailable"
    cg.kill()
    assert cg.pids() == set()


BUSY = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\n"


def test_cpu_quota_gives_a_quarter_core(manager):
    cg = manager.create("env-cpu", Limits(memory_mb=256, vcpus=0.25))
    before = cg.cpu_usage_usec()
    start = time.monotonic()
    proc = subprocess.Popen(manager.wrap_argv(cg, [PY, "-S", "-c", BUSY]))
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    assert proc.returncode == 0
    if before is None:  # v1 without a cpuacct hierarchy: the child's own rusage
        used_s = rusage.ru_utime + rusage.ru_stime
    else:
        used_s = (cg.cpu_usage_usec() - before) / 1e6
    share = used_s / wall
    assert 0.15 <= share <= 0.40, (share, used_s, wall)


def test_kill_and_remove_leave_nothing(manager, spawned):
    cg = manager.create("env-kill", Limits.for_memory(128))
    tree = "sleep 60 & sleep 60 & (sleep 60 & wait) & wait"
    spawned.append(subprocess.Popen(manager.wrap_argv(cg, ["/bin/sh", "-c", tree])))
    deadline = time.monotonic() + 5
    while len(cg.pids()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = cg.pids()
    assert len(pids) == 5
    cg.kill()
    assert cg.pids() == set()
    assert spawned[0].wait(timeout=5) == -9
    cg.remove()
    assert not [d for d in cg.dirs.values() if d.exists()]
    for pid in pids - {spawned[0].pid}:  # grandchildren were reaped by init, not left running
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    cg.remove()  # idempotent


def test_remove_kills_what_is_still_running(manager, spawned):
    cg = manager.create("env-busy", Limits.for_memory(128))
    spawned.append(subprocess.Popen(manager.wrap_argv(cg, ["sleep", "60"])))
    time.sleep(0.05)
    cg.remove()
    assert spawned[0].wait(timeout=5) == -9
    assert not [d for d in cg.dirs.values() if d.exists()]


def test_cleanup_stale_removes_leftovers_of_a_previous_run(manager, spawned):
    for name in ("stale-a", "stale-b"):
        cg = manager.create(name, Limits.for_memory(128))
        spawned.append(subprocess.Popen(manager.wrap_argv(cg, ["/bin/sh", "-c", "sleep 60 & wait"])))
    time.sleep(0.05)
    parent = manager.parents["memory"].name
    restarted, reason = detect(parent=parent)  # a new lamina process finds the old parent
    assert restarted is not None, reason
    restarted.cleanup_stale()
    assert [p.wait(timeout=5) for p in spawned] == [-9, -9]
    for directory in restarted.parents.values():
        assert directory.is_dir() and not [p for p in directory.iterdir() if p.is_dir()]


SPIN_ON_ONE_CPU = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + 1.5
while time.monotonic() < end:
    pass
print(time.process_time())
"""


def test_an_init_phase_outweighs_a_running_environment_on_a_shared_cpu(manager, spawned):
    """set_cpu(None) (an init) lifts the quota and weighs INIT_CPU_WEIGHT running environments: two busy
    processes on one CPU, one in each, get ~16:1 of it, not half each."""
    init, running = manager.create("env-init", Limits.for_memory(1769)), manager.create("env-run", Limits.for_memory(1769))
    manager.set_cpu(init, None)
    manager.set_cpu(running, 1.0)
    cpu = str(min(os.sched_getaffinity(0)))
    for cg in (init, running):
        spawned.append(subprocess.Popen(manager.wrap_argv(cg, [PY, "-S", "-c", SPIN_ON_ONE_CPU, cpu]),
                                        stdout=subprocess.PIPE, text=True))
    used = [float(proc.communicate(timeout=20)[0]) for proc in spawned]
    assert used[0] > 4 * used[1], used
    manager.set_cpu(init, 1.0)  # the init is over: back to an equal share
    spawned.clear()
    for cg in (init, running):
        spawned.append(subprocess.Popen(manager.wrap_argv(cg, [PY, "-S", "-c", SPIN_ON_ONE_CPU, cpu]),
                                        stdout=subprocess.PIPE, text=True))
    used = [float(proc.communicate(timeout=20)[0]) for proc in spawned]
    assert 0.5 < used[0] / used[1] < 2, used

"""cgroups for execution environments: Lambda's memory, CPU and pids limits, peak memory, OOM kills.

Each environment (one process tree) gets its own cgroup with Lambda's resource model:

    memory = MemorySize MB, and no swap beyond it
    CPU    = MemorySize / 1769 vCPUs (1,769 MB is one full core), at most 6 vCPUs
             (no quota in the init phase, which also weighs INIT_CPU_WEIGHT running environments)
    pids   = 1,024 tasks by default, so a fork bomb stays inside

and lamina reads back the peak memory (`Max Memory Used` in REPORT lines) and the OOM-kill count (to
tell an out-of-memory kill from any other crash instead of guessing from the exit signal).

Two kernel interfaces, one API:

cgroup v1 (one hierarchy per controller): an environment is a directory under each of
  <root>/{memory,cpu,pids}/<parent>/<name> (plus cpuacct when it is a hierarchy of its own, for CPU
  usage), and a process joins by writing its pid into each directory's cgroup.procs. Limits go to
  memory.limit_in_bytes (then memory.memsw.limit_in_bytes, memory+swap, when swap accounting is on),
  cpu.cfs_period_us / cpu.cfs_quota_us and pids.max; readings come from memory.max_usage_in_bytes
  and the `oom_kill` line of memory.oom_control.
cgroup v2 (unified, <root>/cgroup.controllers exists): one directory <root>/<parent>/<name> holds every
  controller. Controllers must be enabled from above (cgroup.subtree_control of <root> and <parent>),
  and the "no internal processes" rule says a cgroup that enables controllers for its children holds
  no processes itself: environments live in <parent>/<name>, lamina's own process never joins <parent>.
  Limits go to memory.max, memory.swap.max, cpu.max and pids.max; readings come from memory.peak
  (5.19+, else memory.current) and memory.events; cgroup.kill (5.14+) kills the whole tree at once.

The wrap trick: starting a process and attaching it afterwards leaves a window in which it runs,
allocates and forks outside its cgroup. `wrap_argv` instead puts a tiny /bin/sh script in front of the
argv: the shell writes its own pid ($$) into every cgroup.procs and then execs the target, which keeps
that pid. The target is inside its cgroups from its first instruction, and so is everything it forks.
Only lamina's own few-line prologue runs outside. Procs paths and the target argv reach the script as
positional parameters and are never spliced into its text. A target that cannot be exec'd exits 127
(sh's "not found") instead of raising in Popen; a failed join exits 126 with a message on stderr.

Cost (team VM, v1, dash): create+remove ≈0.3 ms p50; the wrap adds ≈0.5-0.8 ms p50 to a spawn
(/bin/true 0.6 ms → 1.1-1.4 ms), mostly the extra exec of /bin/sh; each join write is ≈15 µs. Any
cgroup migration (wrap or attach alike) also takes cgroup_threadgroup_rwsem for writing, and the first
one after ~25 ms without migrations waits for an RCU grace period: ≈8 ms here. The `favordynmods`
mount option (Linux 6.0+) or spawning ahead of demand (a warm pool) keeps that off the invoke path.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import SandboxError
from lamina.sandbox.cpufence import CpuFence

log = logging.getLogger("lamina.sandbox")

CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769
MAX_VCPUS = 6.0
CONTROLLERS = ("memory", "cpu", "pids")
WRAP_EXIT_CANNOT_JOIN = 126  # spelled out in _WRAP_SCRIPT
#: An environment in its init phase weighs this many running ones in the CPU scheduler (cpu.shares in
#: v1, cpu.weight in v2; its quota is lifted too). Lambda gives an init its full CPU; on a busy host
#: lamina's inits otherwise got one share among every busy environment: at 64 clients on 2 vCPUs, a
#: Node.js cold start took 0.3-7 s and the pool 13 s to reach 64 (bench/scaleout_bench.py).
INIT_CPU_WEIGHT = 16
V1_DEFAULT_SHARES = 1024
V2_DEFAULT_WEIGHT = 100

_WRAP_SCRIPT = """n=$1; shift
while [ "$n" -gt 0 ]; do
  echo "$$" > "$1" || { echo "lamina: cannot join cgroup via $1" >&2; exit 126; }
  n=$((n - 1)); shift
done
exec "$@"
"""

# Seams for the unit tests' fake kernel: on cgroupfs, mkdir creates the control files, and rmdir
# removes a directory that still lists them (and fails with EBUSY while processes are inside).
_mkdir = os.mkdir
_rmdir = os.rmdir


def _write(path: Path, value: str) -> None:
    """Write one control file; never creates it (a missing knob is an error, not a new file)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _keyed(text: str) -> dict[str, int]:
    """Parse 'key value' lines (memory.events, memory.oom_control, cpu.stat)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


@dataclass(frozen=True, slots=True)
class Limits:
    memory_mb: int
    vcpus: float
    pids_max: int = 1024

    def __post_init__(self) -> None:
        if self.memory_mb <= 0 or self.vcpus <= 0 or self.pids_max <= 0:
            raise ValueError(f"cgroup limits must be positive: {self!r}")

    @classmethod
    def for_memory(cls, memory_mb: int, pids_max: int = 1024) -> Limits:
        """Lambda's model: CPU in proportion to memory, one vCPU per 1,769 MB, at most 6."""
        return cls(memory_mb, min(memory_mb / MB_PER_VCPU, MAX_VCPUS), pids_max)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def cpu_quota_us(self) -> int:
        return max(1000, int(CPU_PERIOD_US * self.vcpus))


class Cgroup:
    """One environment's cgroup: a directory per controller (v1) or a single directory (v2)."""

    def __init__(self, name: str, version: int, dirs: dict[str, Path], shared_procs: list[Path] | None = None) -> None:
        self.name = name
        self.version = version
        #: controller ("memory", "cpu", "pids", maybe "cpuacct") -> its directory; v2: all the same.
        self.dirs = dirs
        #: Groups every environment joins too (v1: the environments' cpuset, sandbox/cpufence.py).
        self._shared_procs = shared_procs or []
        self._unique = list(dict.fromkeys(dirs.values()))
        #: The peak-memory file, kept open: read after invocations, a pread instead of open/read/close.
        self._peak_fd = -1
        self._peak_lock = threading.Lock()  # remove() (a worker thread) closes what the loop reads

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r}, v{self.version}, {[str(d) for d in self._unique]})"

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._unique] + self._shared_procs

    def attach(self, pid: int) -> None:
        for procs in self.procs_files():
            try:
                _write(procs, str(pid))
            except OSError as exc:
                raise SandboxError(f"cannot move pid {pid} into cgroup {procs.parent}: {exc.strerror}") from exc

    def pids(self) -> set[int]:
        """Processes in the cgroup and any cgroup below it (empty once it is gone)."""
        found: set[int] = set()
        for top in self._unique:
            for sub, _, _ in os.walk(top):
                try:
                    found.update(int(pid) for pid in Path(sub, "cgroup.procs").read_text().split())
                except (FileNotFoundError, OSError):  # ENODEV: removed while we read it
                    continue
        return found

    def _read(self, controller: str, name: str) -> str:
        path = self.dirs[controller] / name
        try:
            return path.read_text()
        except OSError as exc:
            raise SandboxError(f"cannot read {path}: {exc.strerror}") from exc

    def open_peak(self) -> None:
        """Open the peak-memory file now (CgroupManager.create does, off the event loop: in a burst an
        open of a new cgroup's file took 73 µs at the median and up to 1.8 ms, a read 11 µs)."""
        with self._peak_lock:
            self._open_peak()

    def _open_peak(self) -> None:
        if self._peak_fd < 0:
            memory = self.dirs["memory"]
            if self.version == 1:
                path = memory / "memory.max_usage_in_bytes"
            else:
                path = memory / "memory.peak" if (memory / "memory.peak").exists() else memory / "memory.current"
            try:
                self._peak_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SandboxError(f"cannot read {path}: {exc.strerror}") from exc

    def peak_memory_bytes(self) -> int:
        with self._peak_lock:
            self._open_peak()
            try:
                return int(os.pread(self._peak_fd, 32, 0))
            except OSError as exc:
                raise SandboxError(f"cannot read the peak memory of {self!r}: {exc.strerror}") from exc

    def _close_peak(self) -> None:
        with self._peak_lock:
            if self._peak_fd >= 0:
                os.close(self._peak_fd)
                self._peak_fd = -1

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return _keyed(self._read("memory", name)).get("oom_kill", 0)

    def cpu_usage_usec(self) -> int | None:
        """CPU time used by the cgroup so far, or None where the kernel does not account it."""
        if self.version == 2:
            return _keyed(self._read("cpu", "cpu.stat")).get("usage_usec")
        if "cpuacct" not in self.dirs:
            return None
        return int(self._read("cpuacct", "cpuacct.usage")) // 1000

    def kill(self, timeout: float = 2.0) -> None:
        """SIGKILL every process in the cgroup and wait (up to `timeout`) for it to be empty.

        v2 with cgroup.kill: the kernel kills the whole subtree atomically. Otherwise: read the pids,
        SIGSTOP them all and then SIGKILL them all (so no process reacts to another's death, e.g. a
        shell returning from `wait` and exiting 0), again until none is left, which also catches
        children forked between a read and a signal. The pid-reuse window between reading a pid and
        signalling it is microseconds against a 4M pid space. Best effort: remove() reports a cgroup
        that will not empty.
        """
        kill_file = self._unique[0] / "cgroup.kill"
        use_kill_file = self.version == 2 and kill_file.exists()
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while pids := self.pids():
            if use_kill_file:
                try:
                    _write(kill_file, "1")
                except FileNotFoundError:
                    return  # removed under us
                except OSError as exc:
                    raise SandboxError(f"cannot kill cgroup {self.name}: {exc.strerror}") from exc
            else:
                for sig in (signal.SIGSTOP, signal.SIGKILL):
                    for pid in pids:
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            pass
            if time.monotonic() >= deadline:
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def remove(self, timeout: float = 2.0) -> None:
        """Remove the cgroup (idempotent), killing what is still inside and waiting for the reaper."""
        self._close_peak()
        deadline = time.monotonic() + timeout
        for top in self._unique:
            delay = 0.0005
            while True:
                try:
                    _rmdir_tree(top)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                        raise SandboxError(f"cannot remove cgroup {top}: {exc.strerror}") from exc
                self.kill(timeout=max(0.0, deadline - time.monotonic()))
                time.sleep(delay)
                delay = min(delay * 2, 0.02)


def _rmdir_tree(path: Path) -> None:
    """rmdir a cgroup; on EBUSY remove any child cgroups first (bottom-up), then try again."""
    try:
        _rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise
        with os.scandir(path) as entries:
            children = [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
        if not children:
            raise
        for child in children:
            _rmdir_tree(child)
        _rmdir(path)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid cgroup name: {name!r}")


class CgroupManager:
    """lamina's parent cgroup, and the environments' cgroups created under it."""

    def __init__(self, version: int, parents: dict[str, Path]) -> None:
        self.version = version
        #: controller -> lamina's parent cgroup directory (v2: the same directory for all).
        self.parents = parents
        self._unique = list(dict.fromkeys(parents.values()))
        #: The cpuset over every environment (sandbox/cpufence.py), when there is one.
        self.fence: CpuFence | None = None
        self._has_weight: bool | None = None  # whether cgroups have a CPU weight file (found at first use)

    def _cgroup(self, name: str) -> Cgroup:
        shared = [self.fence.procs_file] if self.fence is not None and self.fence.procs_file is not None else None
        return Cgroup(name, self.version, {c: p / name for c, p in self.parents.items()}, shared)

    def create(self, name: str, limits: Limits) -> Cgroup:
        _check_name(name)
        cgroup = self._cgroup(name)
        made: list[Path] = []
        try:
            for path in cgroup._unique:
                _mkdir(path)
                made.append(path)
            self._apply(cgroup, limits)
        except OSError as exc:
            for path in reversed(made):
                try:
                    _rmdir(path)
                except OSError:
                    pass
            why = "already exists" if isinstance(exc, FileExistsError) else exc.strerror
            raise SandboxError(f"cannot create cgroup {name!r} ({exc.filename}): {why}") from exc
        try:
            cgroup.open_peak()
        except SandboxError as exc:  # then the first read tries again, and says why
            log.debug("cgroup_peak_file_not_opened error=%s", exc)
        return cgroup

    def _apply(self, cgroup: Cgroup, limits: Limits) -> None:
        mem, cpu = cgroup.dirs["memory"], cgroup.dirs["cpu"]
        memory = str(limits.memory_bytes)
        if self.version == 1:
            _write(mem / "memory.limit_in_bytes", memory)
            if (mem / "memory.memsw.limit_in_bytes").exists():  # only with swap accounting on
                _write(mem / "memory.memsw.limit_in_bytes", memory)
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us))
        else:
            _write(mem / "memory.max", memory)
            if (mem / "memory.swap.max").exists():  # absent without swap support
                _write(mem / "memory.swap.max", "0")
            _write(cpu / "cpu.max", f"{limits.cpu_quota_us} {CPU_PERIOD_US}")
        _write(cgroup.dirs["pids"] / "pids.max", str(limits.pids_max))

    def update(self, cgroup: Cgroup, limits: Limits) -> None:
        """Change a live cgroup's limits (a standby environment gets its function's memory size)."""
        mem = cgroup.dirs["memory"]
        try:
            if self.version == 1 and (mem / "memory.memsw.limit_in_bytes").exists():
                current = int((mem / "memory.limit_in_bytes").read_text())
                if limits.memory_bytes > current:  # memory+swap must never be below memory
                    _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            self._apply(cgroup, limits)
        except OSError as exc:
            raise SandboxError(f"cannot update cgroup {cgroup.name!r}: {exc.strerror}") from exc

    def set_cpu(self, cgroup: Cgroup, vcpus: float | None) -> None:
        """Set the CPU quota; None lifts it for an init phase, which also gets INIT_CPU_WEIGHT times the
        CPU weight of a running environment (see there); a quota puts the weight back to the default."""
        cpu = cgroup.dirs["cpu"]
        quota = -1 if vcpus is None else max(1000, int(CPU_PERIOD_US * vcpus))
        v1 = self.version == 1
        weight_file = cpu / ("cpu.shares" if v1 else "cpu.weight")
        if self._has_weight is None:
            self._has_weight = weight_file.exists()
        try:
            if v1:
                _write(cpu / "cpu.cfs_quota_us", str(quota))
            else:
                _write(cpu / "cpu.max", f"{'max' if quota < 0 else quota} {CPU_PERIOD_US}")
            if self._has_weight:
                default = V1_DEFAULT_SHARES if v1 else V2_DEFAULT_WEIGHT
                _write(weight_file, str(default * (INIT_CPU_WEIGHT if vcpus is None else 1)))
        except OSError as exc:
            raise SandboxError(f"cannot set the CPU quota of cgroup {cgroup.name!r}: {exc.strerror}") from exc

    def wrap_argv(self, cgroup: Cgroup, argv: list[str]) -> list[str]:
        """An argv that joins `cgroup` and then execs `argv` (see the module docstring)."""
        if not argv:
            raise ValueError("argv must not be empty")
        procs = [str(p) for p in cgroup.procs_files()]
        return ["/bin/sh", "-c", _WRAP_SCRIPT, "lamina-cgroup", str(len(procs)), *procs, *argv]

    def cleanup_stale(self) -> None:
        """Kill and remove every environment cgroup under the parent (leftovers of a previous run)."""
        names: set[str] = set()
        for parent in self._unique:
            try:
                with os.scandir(parent) as entries:
                    names.update(e.name for e in entries if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                continue
        for name in sorted(names):
            self._cgroup(name).remove()

    def destroy(self, timeout: float = 10.0) -> None:
        """cleanup_stale(), then remove the parent cgroup itself (tests, a clean shutdown). A parent still
        busy has an environment's cgroup made after the clean-up passed (a standby refill racing the
        shutdown) or being removed by its own teardown meanwhile: cleaned up again, until `timeout`. A
        parent left behind stays for good when the data directory was a throw-away one (its name is made
        from the directory's path), so a shutdown does not give up at the first busy one."""
        deadline = time.monotonic() + timeout
        while True:
            self.cleanup_stale()
            if self.fence is not None:
                self.fence.remove()
            try:
                for parent in self._unique:
                    try:
                        _rmdir(parent)
                    except FileNotFoundError:
                        pass
                return
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                    raise SandboxError(f"cannot remove cgroup {exc.filename}: {exc.strerror}") from exc
            time.sleep(0.02)


_HINTS = {
    errno.EACCES: " (lamina needs root or a delegated cgroup)",
    errno.EPERM: " (lamina needs root or a delegated cgroup)",
    errno.EROFS: " (cgroupfs is mounted read-only)",
    errno.EBUSY: " (the cgroup has processes of its own: cgroup v2's no-internal-processes rule)",
}


def _why(exc: OSError, action: str) -> str:
    return f"cannot {action}: {exc.strerror}{_HINTS.get(exc.errno or 0, '')}"


def _make_parents(dirs: list[Path], made: list[Path]) -> None:
    for path in dirs:
        try:
            _mkdir(path)
            made.append(path)
        except FileExistsError:
            pass


def _undo(made: list[Path]) -> None:
    for path in reversed(made):
        try:
            _rmdir(path)
        except OSError:
            pass


CGROUP_ROOT = Path("/sys/fs/cgroup")


def detect(root: Path = CGROUP_ROOT, parent: str = "lamina") -> tuple[CgroupManager | None, str]:
    """(manager, reason): a manager for environments under <root>/<parent>, or None and why not."""
    _check_name(parent)
    root = Path(root)
    if not root.is_dir():
        return None, f"{root} does not exist"
    if (root / "cgroup.controllers").exists():
        return _detect_v2(root, parent)
    return _detect_v1(root, parent)


def _detect_v2(root: Path, parent: str) -> tuple[CgroupManager | None, str]:
    try:
        available = (root / "cgroup.controllers").read_text().split()
        enabled = (root / "cgroup.subtree_control").read_text().split()
    except OSError as exc:
        return None, _why(exc, f"read the cgroup v2 root {root}")
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        return None, (f"cgroup v2 at {root} lacks the {', '.join(missing)} controller(s) "
                      f"(available: {' '.join(available) or 'none'})")
    enable = " ".join(f"+{c}" for c in CONTROLLERS)
    top = root / parent
    made: list[Path] = []
    action = f"enable {enable} in {root}/cgroup.subtree_control"
    try:
        if any(c not in enabled for c in CONTROLLERS):
            _write(root / "cgroup.subtree_control", enable)
        action = f"create {top}"
        _make_parents([top], made)
        action = f"enable {enable} in {top}/cgroup.subtree_control"
        _write(top / "cgroup.subtree_control", enable)
    except OSError as exc:
        _undo(made)
        return None, _why(exc, action)
    if not (top / "cpu.max").exists():
        _undo(made)
        return None, f"no cpu.max in {top}: kernel without CFS bandwidth control"
    return CgroupManager(2, {c: top for c in CONTROLLERS}), f"cgroup v2, environments under {top}"


def _detect_v1(root: Path, parent: str) -> tuple[CgroupManager | None, str]:
    candidates = {"memory": ("memory",), "cpu": ("cpu", "cpu,cpuacct"), "pids": ("pids",),
                  "cpuacct": ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")}
    found: dict[str, Path] = {}
    for controller, names in candidates.items():
        hit = next((root / n for n in names if (root / n / "cgroup.procs").exists()), None)
        if hit is not None:
            found[controller] = hit
    missing = [c for c in CONTROLLERS if c not in found]
    if len(missing) == len(CONTROLLERS):
        return None, f"no cgroup hierarchy at {root} (neither cgroup v2 nor v1 memory/cpu/pids)"
    if missing:
        return None, f"cgroup v1 at {root} lacks the {', '.join(missing)} controller(s)"
    if "cpuacct" in found and os.path.realpath(found["cpuacct"]) == os.path.realpath(found["cpu"]):
        found["cpuacct"] = found["cpu"]  # one co-mounted cpu,cpuacct hierarchy
    parents = {c: d / parent for c, d in found.items()}
    made: list[Path] = []
    try:
        _make_parents(list(dict.fromkeys(parents.values())), made)
    except OSError as exc:
        _undo(made)
        return None, _why(exc, f"create {exc.filename}")
    if not (parents["cpu"] / "cpu.cfs_quota_us").exists():
        _undo(made)
        return None, f"no cpu.cfs_quota_us in {parents['cpu']}: kernel without CFS bandwidth control"
    where = ", ".join(str(p) for p in dict.fromkeys(parents.values()))
    return CgroupManager(1, parents), f"cgroup v1, environments under {where}"

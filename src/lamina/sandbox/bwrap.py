"""The isolated driver: bubblewrap namespaces plus a real unprivileged host uid.

bwrap runs as root (no user namespace, so the sandbox uid is a real, unprivileged host uid, not root
mapped into a namespace), builds the view of the filesystem, unshares pid/ipc/uts, and execs
`setpriv`, which drops to the environment's own uid with no capabilities and no_new_privs before
exec'ing the runtime. The network is the host's, as on Lambda.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
import logging
import subprocess
import threading
from pathlib import Path

from lamina import cpus
from lamina.errors import SandboxError
from lamina.runtimes.registry import Runtime
from lamina.sandbox import netns, rootfs
from lamina.sandbox.cgroups import Cgroup, CgroupManager, Limits
from lamina.sandbox.tmpvol import TmpVolumes
from lamina.sandbox.zygote import ForkedSandbox, Zygote, Zygotes
from lamina.sandbox.base import (ExecProcess, Layout, Protection, SandboxProcess, SandboxSpec, command_for,
                                 environment_for)

log = logging.getLogger("lamina.sandbox")
LAYOUT = Layout("/var/task", "/var/runtime", "/var/lang", "/opt", "/tmp")


def available() -> tuple[bool, str]:
    """Can this host run the isolated driver? (answer, reason)"""
    if os.geteuid() != 0:
        return False, "lamina is not running as root (needed to drop functions to their own uid)"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if not shutil.which("setpriv"):
        return False, "setpriv (util-linux) is not installed"
    probe = subprocess.run(
        [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--ro-bind", "/", "/",
         "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {probe.stderr.strip()}"
    return True, f"bubblewrap at {bwrap}"


#: bubblewrap makes these trees itself: --dev (a tmpfs with the devices, their links and a devpts), --proc.
_BWRAP_MADE = ("/dev", "/proc")


def bwrap_args(ops: list[rootfs.Op]) -> list[str]:
    """bubblewrap's arguments for a mount plan of rootfs.py: the same tree, but for /dev and /proc."""
    args: list[str] = []
    for op in ops:
        kind, path = op[0], rootfs.target(op)
        if any(path == top or path.startswith(top + "/") for top in _BWRAP_MADE):
            continue
        if kind == "bind":
            args += ["--ro-bind" if op[3] else "--bind", op[1], path]
        elif kind == "symlink":
            args += ["--symlink", op[1], path]
        elif kind in ("dir", "tmpfs"):
            if op[2] != 0o755:  # bubblewrap's default mode
                args += ["--perms", f"{op[2]:o}"]
            if kind == "tmpfs" and op[3]:
                args += ["--size", str(op[3])]
            args += ["--dir" if kind == "dir" else "--tmpfs", path]
        elif kind == "readonly":
            args += ["--remount-ro", path]
        else:
            raise ValueError(f"bubblewrap's argv cannot make {op!r}")
    return args


def _kill_quietly(group: Cgroup) -> None:
    try:
        group.kill(timeout=0)
    except (OSError, SandboxError) as exc:  # already gone; else cleanup() kills it again, and says so
        log.debug("kill_failed cgroup=%s error=%s", group.name, exc)


class BwrapDriver:
    name = "bwrap"

    def __init__(self, cgroups: CgroupManager | None = None, cgroups_why: str = "",
                 volumes: TmpVolumes | None = None, volumes_why: str = "",
                 netns_dir: Path | None = None, zygotes: Zygotes | None = None) -> None:
        self._bwrap = shutil.which("bwrap") or "bwrap"
        self._setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        self._nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
        self._cgroups = cgroups
        self._cgroups_why = cgroups_why
        self._volumes = volumes
        self._volumes_why = volumes_why
        self._groups: dict[str, Cgroup] = {}
        #: LAMINA_NETWORK=private: where each environment's network namespace is kept.
        self._netns_dir = netns_dir
        self._sockets: dict[str, socket.socket] = {}
        self._memory: dict[str, int] = {}  # sizes asked for before the cgroup existed
        self._sizes: dict[str, int] = {}  # the memory size each cgroup was given
        self._lock = threading.Lock()
        #: Python runtimes forked from a per-version zygote (LAMINA_ZYGOTE; needs cgroups).
        self._zygotes = zygotes
        #: The view's plan (rootfs.py): the host's part, and each runtime's, made once; bubblewrap's argv
        #: is made from it, and the zygote builds the same tree from it (its template).
        self._host_tree = rootfs.host_tree()
        self._runtime_trees: dict[str, list[rootfs.Op]] = {}
        self._fixed = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                       "--new-session", "--cap-add", "CAP_SETUID,CAP_SETGID,CAP_SETPCAP",
                       *bwrap_args(self._host_tree), "--proc", "/proc", "--dev", "/dev"]

    def argv(self, spec: SandboxSpec) -> list[str]:
        """bwrap's argv for `spec`: the view of rootfs.py's plan (the environment's own part here), then
        setpriv dropping to its uid, then the runtime."""
        runtime = spec.runtime
        args = [self._bwrap, *self._fixed, *bwrap_args(self._runtime_tree(runtime))]
        args += ["--ro-bind", str(spec.code_dir), LAYOUT.task_root]
        if spec.opt_dir is not None:
            args += ["--ro-bind", str(spec.opt_dir), LAYOUT.opt_dir]
        if self._volumes is not None:
            args += ["--bind", str(self._volumes.mountpoint(spec.env_id)), "/tmp"]
        else:
            args += ["--perms", "1777", "--size", str(spec.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        args += ["--chdir", LAYOUT.task_root, "--", self._setpriv,
                 f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return args + command_for(runtime, LAYOUT, spec)

    def _runtime_tree(self, runtime: Runtime) -> list[rootfs.Op]:
        tree = self._runtime_trees.get(runtime.id)
        if tree is None:
            tree = self._runtime_trees[runtime.id] = rootfs.runtime_tree(runtime, LAYOUT)
        return tree

    def _netns(self, spec: SandboxSpec) -> Path | None:
        return self._netns_dir / spec.env_id if self._netns_dir is not None else None

    def prepare(self, spec: SandboxSpec) -> None:
        """Blocking set-up before spawn: network namespace, cgroup, /tmp volume."""
        path = self._netns(spec)
        if path is not None:
            self._sockets[spec.env_id] = netns.create(path)
        if self._volumes is not None:
            self._volumes.create(spec.env_id, spec.tmp_mb)
        if self._cgroups is not None:
            # resize() may run on the loop thread meanwhile (a standby assigned early): until the group is
            # published it leaves the size in _memory. The lock is not held while the group is made (mkdirs
            # in up to four hierarchies): other prepares, and the loop's resize(), would wait for it.
            with self._lock:
                memory_mb = self._memory.pop(spec.env_id, spec.memory_mb)
            group = self._cgroups.create(f"env-{spec.env_id}", Limits.for_memory(memory_mb))
            with self._lock:
                wanted = self._memory.pop(spec.env_id, memory_mb)
                self._groups[spec.env_id] = group
                self._sizes[spec.env_id] = wanted
            if wanted != memory_mb:
                self._cgroups.update(group, Limits.for_memory(wanted))
            self._cgroups.set_cpu(group, None)  # the init phase runs at full speed, as on Lambda

    def runtime_socket(self, spec: SandboxSpec) -> socket.socket | None:
        return self._sockets.pop(spec.env_id, None)

    def spawn(self, spec: SandboxSpec, output_fd: int, channel_fd: int | None = None) -> SandboxProcess:
        group = self._groups.get(spec.env_id)
        zygote = (self._zygotes.get(spec.runtime) if self._zygotes is not None and group is not None
                  and spec.runtime.family == "python" and not spec.runtime.startup_variables(spec.env) else None)
        if zygote is not None:
            assert group is not None
            try:
                return self._fork(spec, output_fd, channel_fd, zygote, group)
            except OSError as exc:  # the zygote died since it was handed out: exec this one
                log.warning("zygote_unreachable runtime=%s error=%s", spec.runtime.id, exc)
        # bwrap -> bwrap (pid 1 of the namespace) -> setpriv exec'd into the runtime
        return ExecProcess(self._popen(spec, self.argv(spec), output_fd, channel_fd), runtime_depth=2)

    def _fork(self, spec: SandboxSpec, output_fd: int, channel_fd: int | None, zygote: Zygote,
              group: Cgroup) -> ForkedSandbox:
        """The environment made by the zygote itself: same namespaces, view, cgroups and uid as bwrap's."""
        tmp_device = self._volumes.device(spec.env_id) if self._volumes is not None else None
        path = self._netns(spec)
        assert self._zygotes is not None
        request = {"uid": spec.uid, "env": environment_for(spec, LAYOUT), "cwd": LAYOUT.task_root,
                   "cgroup_procs": [str(p) for p in group.procs_files()],
                   "netns": str(path) if path is not None else "", "root": str(self._zygotes.root_dir),
                   "mounts": rootfs.environment_tree(spec, LAYOUT, tmp_device)}
        template = self._host_tree + self._runtime_tree(spec.runtime)
        return zygote.fork(request, template, output_fd, channel_fd, lambda: _kill_quietly(group))

    def _popen(self, spec: SandboxSpec, argv: list[str], output_fd: int,
               channel_fd: int | None = None) -> subprocess.Popen[bytes]:
        if self._volumes is not None:
            argv = self._volumes.mount_argv(spec.env_id) + argv  # /tmp mounted in a namespace of its own
        path = self._netns(spec)
        if path is not None:
            argv = [self._nsenter, f"--net={path}", "--", *argv]
        group = self._groups.get(spec.env_id)
        if group is not None and self._cgroups is not None:
            argv = self._cgroups.wrap_argv(group, argv)  # joins before bwrap runs: nothing escapes
        try:
            with cpus.unpinned():
                return subprocess.Popen(
                    argv, env=environment_for(spec, LAYOUT), stdin=subprocess.DEVNULL,
                    stdout=output_fd, stderr=output_fd, start_new_session=True, close_fds=True,
                    pass_fds=() if channel_fd is None else (channel_fd,),
                )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc

    def resize(self, spec: SandboxSpec, memory_mb: int) -> None:
        if self._cgroups is None:
            return
        with self._lock:
            group = self._groups.get(spec.env_id)
            if group is None:  # prepare() has not made it yet: it will use this size
                self._memory[spec.env_id] = memory_mb
                return
            if self._sizes.get(spec.env_id) == memory_mb:  # a standby's size already (and still at full CPU)
                return
            self._sizes[spec.env_id] = memory_mb
        self._cgroups.update(group, Limits.for_memory(memory_mb))
        self._cgroups.set_cpu(group, None)

    def limit_cpu(self, spec: SandboxSpec, memory_mb: int) -> None:
        """End of the init phase: from now on the CPU is MemorySize / 1769 vCPUs. Called off the loop, so
        the environment may be gone meanwhile (its cgroup with it): then there is nothing to limit."""
        group = self._groups.get(spec.env_id)
        if group is not None and self._cgroups is not None:
            try:
                self._cgroups.set_cpu(group, Limits.for_memory(memory_mb).vcpus)
            except SandboxError as exc:
                log.debug("cpu_limit_not_set env=%s error=%s", spec.env_id, exc)

    def cpu_fence(self) -> Callable[[frozenset[int]], None] | None:
        fence = self._cgroups.fence if self._cgroups is not None else None
        return fence.set if fence is not None else None

    def peak_memory_mb(self, spec: SandboxSpec) -> int | None:
        group = self._groups.get(spec.env_id)
        if group is None:
            return None
        try:
            return max(1, -(-group.peak_memory_bytes() // (1024 * 1024)))
        except (OSError, SandboxError):
            return None

    def oom_kills(self, spec: SandboxSpec) -> int:
        group = self._groups.get(spec.env_id)
        try:
            return group.oom_kills() if group is not None else 0
        except (OSError, SandboxError):
            return 0

    def cleanup(self, spec: SandboxSpec) -> None:
        """Blocking: kill whatever is left in the cgroup, remove it, unmount /tmp."""
        with self._lock:
            group = self._groups.pop(spec.env_id, None)
            self._memory.pop(spec.env_id, None)
            self._sizes.pop(spec.env_id, None)
        if group is not None:
            group.remove()
        if self._volumes is not None:
            self._volumes.remove(spec.env_id)
        path = self._netns(spec)
        if path is not None:
            leftover = self._sockets.pop(spec.env_id, None)
            if leftover is not None:
                leftover.close()
            netns.remove(path)

    def close(self) -> None:
        """The server is stopping: remove lamina's cgroup parent (environments are gone by now)."""
        if self._zygotes is not None:
            self._zygotes.close()
        if self._volumes is not None:
            self._volumes.cleanup_stale()  # whatever an environment that died late left mounted
        if self._netns_dir is not None and self._netns_dir.exists():
            for leftover in self._netns_dir.iterdir():
                netns.remove(leftover)
        if self._cgroups is not None:
            try:
                self._cgroups.destroy()
            except (SandboxError, OSError):
                pass  # environments still being torn down; the next start cleans up what is left

    def protections(self) -> list[Protection]:
        cg = self._cgroups
        volumes = self._volumes is not None
        maker = "bubblewrap" + (" (Python: the zygote, same view)" if self._zygotes is not None and cg else "")
        return [
            Protection("unprivileged uid per environment", True, "setpriv drops to a uid of its own"
                       + (" (Python: the zygote's fork does)" if self._zygotes is not None and cg else "")),
            Protection("mount namespace, read-only /var/task", True, maker),
            Protection("private /tmp limited to EphemeralStorage", True,
                       "ext4 image per environment" if volumes else
                       f"tmpfs --size (counts against memory: {self._volumes_why})"),
            Protection("pid, ipc, uts namespaces", True, maker),
            Protection("data directory hidden", True, "not mounted in the sandbox"),
            Protection("memory limit = MemorySize (cgroups)", cg is not None,
                       f"cgroup v{cg.version}" if cg else self._cgroups_why),
            Protection("CPU = MemorySize / 1769 vCPUs (cgroups)", cg is not None,
                       f"cgroup v{cg.version}, full speed during init" if cg else self._cgroups_why),
            Protection("pids limit 1024 (cgroups)", cg is not None,
                       f"cgroup v{cg.version}" if cg else self._cgroups_why),
            Protection("private network namespace", self._netns_dir is not None,
                       "LAMINA_NETWORK=private: loopback only" if self._netns_dir is not None
                       else "LAMINA_NETWORK=host (the default): functions reach the network, as on Lambda"),
        ]

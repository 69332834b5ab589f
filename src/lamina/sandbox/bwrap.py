"""The isolated driver: bubblewrap namespaces plus a real unprivileged host uid.

bwrap runs as root (no user namespace, so the sandbox uid is a real, unprivileged host uid, not root
mapped into a namespace), builds the view of the filesystem, unshares pid/ipc/uts, and execs
`setpriv`, which drops to the environment's own uid with no capabilities and no_new_privs before
exec'ing the runtime. The network is the host's, as on Lambda.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lamina.errors import SandboxError
from lamina.sandbox.base import Layout, Protection, SandboxSpec, command_for, environment_for

LAYOUT = Layout("/var/task", "/var/runtime", "/var/lang", "/opt", "/tmp")
ETC_FILES = (
    "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "localtime", "mime.types",
    "ssl", "ca-certificates", "ca-certificates.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "alternatives", "protocols", "services",
)
ROOT_LINKS = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")


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


class BwrapDriver:
    name = "bwrap"
    runtime_depth = 2  # bwrap -> bwrap (pid 1 of the namespace) -> setpriv exec'd into the runtime

    def __init__(self) -> None:
        self._bwrap = shutil.which("bwrap") or "bwrap"
        self._setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        self._fixed = self._fixed_args()

    @staticmethod
    def _fixed_args() -> list[str]:
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                "--new-session", "--cap-add", "CAP_SETUID,CAP_SETGID,CAP_SETPCAP",
                "--ro-bind", "/usr", "/usr"]
        for name in ROOT_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{name}"]
        args += ["--dir", "/etc", "--dir", "/var"]  # bwrap would create them 0700 on the way to a bind
        for name in ETC_FILES:
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--dir", "/opt", "--dir", "/var/task"]
        return args

    def argv(self, spec: SandboxSpec) -> list[str]:
        runtime = spec.runtime
        args = [self._bwrap, *self._fixed, "--ro-bind", str(spec.code_dir), LAYOUT.task_root]
        args += ["--tmpfs", LAYOUT.runtime_dir]
        for host, name in runtime.runtime_files:
            args += ["--ro-bind", str(host), f"{LAYOUT.runtime_dir}/{name}"]
        args += ["--remount-ro", LAYOUT.runtime_dir]
        if runtime.lang_root is not None:
            args += ["--ro-bind", str(runtime.lang_root), "/var/lang"]
        if spec.opt_dir is not None:
            args += ["--ro-bind", str(spec.opt_dir), LAYOUT.opt_dir]
        args += ["--perms", "1777", "--size", str(spec.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        args += ["--chdir", LAYOUT.task_root, "--", self._setpriv,
                 f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return args + command_for(runtime, LAYOUT)

    def spawn(self, spec: SandboxSpec, output_fd: int) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                self.argv(spec), env=environment_for(spec, LAYOUT), stdin=subprocess.DEVNULL,
                stdout=output_fd, stderr=output_fd, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc

    def cleanup(self, spec: SandboxSpec) -> None:
        return None  # everything lived in the sandbox's own mounts

    def protections(self) -> list[Protection]:
        return [
            Protection("unprivileged uid per environment", True, "setpriv drops to a uid of its own"),
            Protection("mount namespace, read-only /var/task", True, "bubblewrap"),
            Protection("private /tmp (tmpfs, EphemeralStorage size)", True, "bubblewrap tmpfs --size"),
            Protection("pid, ipc, uts namespaces", True, "bubblewrap"),
            Protection("data directory hidden", True, "not mounted in the sandbox"),
            Protection("memory / cpu / pids limits (cgroups)", False, "not implemented yet"),
        ]

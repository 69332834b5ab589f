"""The sandbox seam: what an execution environment needs, and the drivers that make one.

A driver turns a SandboxSpec into one running process tree whose stdout/stderr go to a given fd.
Drivers differ in how much they enforce (see `protections`); the contract stays the same: the
runtime sees LAMBDA_TASK_ROOT (read-only code), LAMBDA_RUNTIME_DIR (bootstrap + SDK) and a private
/tmp, and talks to AWS_LAMBDA_RUNTIME_API.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from lamina.runtimes.registry import Runtime


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where things are, as the process inside the sandbox sees them."""

    task_root: str
    runtime_dir: str
    lang_dir: str | None
    opt_dir: str
    tmp_dir: str


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxSpec:
    env_id: str
    uid: int
    code_dir: Path
    runtime: Runtime
    env: dict[str, str]
    tmp_mb: int
    memory_mb: int
    #: The function's layers merged into one read-only tree, mounted at /opt (None: empty /opt).
    opt_dir: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Protection:
    name: str
    enforced: bool
    why: str


class SandboxProcess(Protocol):
    """An environment's running process tree, whichever way it was made (exec'd, or forked by a zygote)."""

    #: Readable once the tree has ended (an event loop watches it); closed by wait().
    exit_fd: int
    returncode: int | None

    def ended(self) -> bool:
        """Without blocking: has the tree ended?"""

    def wait(self) -> int:
        """The exit status (negative: the signal that ended it); releases exit_fd."""

    def kill(self) -> None:
        """Kill the whole tree now (idempotent)."""

    def runtime_pid(self) -> int | None:
        """The runtime's own host pid, for reading its memory where there is no cgroup; None if unknown."""


class ExecProcess:
    """A SandboxProcess lamina exec'd (bubblewrap's chain, or the runtime itself): a Popen, watched by a
    pidfd (or, where there is none, by a thread that closes a pipe when the process ends)."""

    def __init__(self, popen: subprocess.Popen[bytes], runtime_depth: int) -> None:
        self.popen = popen
        #: Generations between the process lamina started and the runtime (bwrap, its pid 1, the runtime).
        self._depth = runtime_depth
        try:
            self.exit_fd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self.exit_fd, done = os.pipe()
            threading.Thread(target=lambda: (popen.wait(), os.close(done)), daemon=True).start()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def ended(self) -> bool:
        return self.popen.poll() is not None

    def wait(self) -> int:
        code = self.popen.wait()
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        return code

    def kill(self) -> None:
        if self.popen.returncode is None:
            for kill in (lambda: os.killpg(self.popen.pid, signal.SIGKILL), self.popen.kill):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass

    def runtime_pid(self) -> int | None:
        pid = self.popen.pid
        for _ in range(self._depth):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    children = f.read().split()
            except OSError:
                break
            if not children:
                break
            pid = int(children[0])
        return pid


class SandboxDriver(Protocol):
    name: str

    def prepare(self, spec: SandboxSpec) -> None:
        """Blocking set-up before spawn (cgroup, /tmp volume); raises SandboxError. Run off the loop."""

    def runtime_socket(self, spec: SandboxSpec) -> socket.socket | None:
        """The Runtime API listener made by prepare() (private network), or None: use host loopback."""

    def spawn(self, spec: SandboxSpec, output_fd: int, channel_fd: int | None = None) -> SandboxProcess:
        """Start the environment's process tree; raises SandboxError when it cannot. `channel_fd`, when
        given, is inherited by the runtime under the number ``spec.env`` names (CHANNEL_ENV)."""

    def resize(self, spec: SandboxSpec, memory_mb: int) -> None:
        """A standby environment was assigned a function of this memory size."""

    def limit_cpu(self, spec: SandboxSpec, memory_mb: int) -> None:
        """The init phase ended: apply the CPU share of this memory size. Called off the event loop (it may
        block on a cgroup write), possibly after the environment ended; must not raise."""

    def peak_memory_mb(self, spec: SandboxSpec) -> int | None:
        """Peak memory of the whole environment, when the driver can measure it."""

    def oom_kills(self, spec: SandboxSpec) -> int:
        """How many processes of the environment the memory limit killed (0 when unknown)."""

    def cleanup(self, spec: SandboxSpec) -> None:
        """Blocking: remove what prepare/spawn left on the host; kills leftovers (idempotent)."""

    def close(self) -> None:
        """Blocking: the server is stopping and every environment is gone; release host resources."""

    def protections(self) -> list[Protection]:
        """What this driver enforces here, and why not where it does not."""

    def cpu_fence(self) -> Callable[[frozenset[int]], None] | None:
        """What sets the CPUs every environment may run on at once (sandbox/cpufence.py), or None."""


def provided_bootstrap(code_dir: Path, opt_dir: Path | None) -> str | None:
    """Where a custom runtime's bootstrap is, Lambda's order: the package, then the layers; or None."""
    if os.access(code_dir / "bootstrap", os.X_OK):
        return "task"
    if opt_dir is not None and os.access(opt_dir / "bootstrap", os.X_OK):
        return "opt"
    return None


def node_flags(memory_mb: int | None) -> list[str]:
    """What Lambda's Node.js bootstrap passes to node: `global.gc`, 80 KB HTTP headers, and V8's heap sized
    to the function's memory (a tenth for the young generation, its semi-spaces half of that each, the
    rest for the old one), so a function outgrowing its memory fails as on Lambda (JS heap out of memory)."""
    flags = ["--expose-gc", "--max-http-header-size=81920"]
    if memory_mb:
        young = memory_mb // 10
        flags += [f"--max-semi-space-size={max(1, young // 2)}", f"--max-old-space-size={memory_mb - young}"]
    return flags


def command_for(runtime: Runtime, layout: Layout, spec: SandboxSpec | None = None) -> list[str]:
    """argv of the runtime process inside the sandbox."""
    if runtime.family == "python":
        return [runtime.interpreter_in(layout.lang_dir), "-S", "-B", f"{layout.runtime_dir}/bootstrap.py"]
    if runtime.family == "nodejs":
        return [runtime.interpreter_in(layout.lang_dir), *node_flags(spec.memory_mb if spec is not None else None),
                f"{layout.runtime_dir}/bootstrap.mjs"]
    if runtime.family == "ruby":
        return [runtime.interpreter_in(layout.lang_dir), f"{layout.runtime_dir}/bootstrap.rb"]
    if runtime.family == "java":
        # Lambda's JVM defaults: C1 only (fast start), serial GC, heap sized to the function's memory.
        heap = [f"-Xmx{max(spec.memory_mb * 85 // 100, 64)}m"] if spec is not None else []
        jars = [f"{layout.runtime_dir}/{name}" for _, name in runtime.runtime_files if name.endswith(".jar")]
        return [runtime.interpreter_in(layout.lang_dir), "-XX:+TieredCompilation", "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xshare:auto", *heap,
                "-cp", ":".join(jars), "lamina.runtime.Bootstrap"]
    if spec is not None and spec.env.get("LAMINA_STANDBY"):  # waits for a function, then execs its bootstrap
        return [f"{layout.runtime_dir}/lamina-standby"]
    if spec is not None and provided_bootstrap(spec.code_dir, spec.opt_dir) == "opt":
        return [f"{layout.opt_dir}/bootstrap"]
    return [f"{layout.task_root}/bootstrap"]


def environment_for(spec: SandboxSpec, layout: Layout) -> dict[str, str]:
    """The full environment: user variables below the platform's, as Lambda orders them."""
    runtime = spec.runtime
    lang_bin = [f"{layout.lang_dir}/bin"] if layout.lang_dir and runtime.lang_root else []
    lang_lib = [f"{layout.lang_dir}/lib"] if layout.lang_dir and runtime.lang_root else []
    path = ":".join(lang_bin + ["/usr/local/bin", "/usr/bin/", "/bin", f"{layout.opt_dir}/bin"])
    ld_path = ":".join(
        lang_lib + ["/lib64", "/usr/lib64", layout.runtime_dir, f"{layout.runtime_dir}/lib",
                    layout.task_root, f"{layout.task_root}/lib", f"{layout.opt_dir}/lib"]
    )
    env = {"LANG": "en_US.UTF-8", "TZ": ":UTC", "PATH": path, "LD_LIBRARY_PATH": ld_path}
    if runtime.family == "nodejs":
        env["NODE_PATH"] = (
            f"{layout.opt_dir}/nodejs/node{runtime.id[6:-2]}/node_modules:"
            f"{layout.opt_dir}/nodejs/node_modules:{layout.runtime_dir}/node_modules"
        )
    if runtime.family == "ruby":
        abi = runtime.id[4:] + ".0"
        env["GEM_PATH"] = f"{layout.task_root}/vendor/bundle/ruby/{abi}:{layout.opt_dir}/ruby/gems/{abi}"
        env["RUBYLIB"] = f"{layout.task_root}:{layout.runtime_dir}/lib:{layout.opt_dir}/ruby/lib"
    env.update(spec.env)
    env.update(
        {
            "LAMBDA_TASK_ROOT": layout.task_root,
            "LAMBDA_RUNTIME_DIR": layout.runtime_dir,
            "TMPDIR": layout.tmp_dir,
            "HOME": layout.tmp_dir,
        }
    )
    if spec.opt_dir is not None and layout.opt_dir != "/opt":  # the process driver: a host directory
        env["LAMINA_OPT_DIR"] = layout.opt_dir  # where the layers are, as this process sees them
    if lang_lib:  # the interpreter's own libraries must win over the host's copies
        env["LD_LIBRARY_PATH"] = ":".join(lang_lib + [env["LD_LIBRARY_PATH"]])
    return env

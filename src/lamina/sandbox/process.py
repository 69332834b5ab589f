"""The fallback driver: a plain child process, for hosts without bubblewrap or root.

Same contract, weaker enforcement: the code directory is the real one (read-only by mode bits only),
/tmp is a private directory passed as TMPDIR, the function runs as lamina's own user and can read
whatever that user can. `lamina serve` and `lamina doctor` say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from lamina import cpus
from lamina.errors import SandboxError
from lamina.runtimes.registry import Runtime
from lamina.sandbox.base import ExecProcess, Layout, Protection, SandboxSpec, command_for, environment_for


class ProcessDriver:
    name = "process"

    def __init__(self, work_dir: Path) -> None:
        self._work = work_dir
        self._runtime_dirs: dict[str, Path] = {}
        self._lock = threading.Lock()

    def _runtime_dir(self, runtime: Runtime) -> Path:
        """One real directory per runtime holding links to its bootstrap and SDK."""
        with self._lock:  # prepare() runs in worker threads
            found = self._runtime_dirs.get(runtime.id)
            if found is None:
                found = self._work / "runtimes" / runtime.id
                found.mkdir(parents=True, exist_ok=True)
                for host, name in runtime.runtime_files:
                    link = found / name
                    if not link.is_symlink():
                        link.symlink_to(host)
                self._runtime_dirs[runtime.id] = found
            return found

    def layout(self, spec: SandboxSpec) -> Layout:
        tmp = self._work / "envs" / spec.env_id / "tmp"
        opt = str(spec.opt_dir) if spec.opt_dir is not None else "/opt"
        return Layout(str(spec.code_dir), str(self._runtime_dir(spec.runtime)), None, opt, str(tmp))

    def spawn(self, spec: SandboxSpec, output_fd: int, channel_fd: int | None = None) -> ExecProcess:
        layout = self.layout(spec)
        try:
            with cpus.unpinned():
                return ExecProcess(subprocess.Popen(
                    command_for(spec.runtime, layout, spec), env=environment_for(spec, layout),
                    cwd=layout.task_root, stdin=subprocess.DEVNULL, stdout=output_fd, stderr=output_fd,
                    start_new_session=True, close_fds=True, pass_fds=() if channel_fd is None else (channel_fd,),
                ), runtime_depth=0)
        except OSError as exc:
            raise SandboxError(f"cannot start runtime: {exc}") from exc

    def prepare(self, spec: SandboxSpec) -> None:
        os.makedirs(self.layout(spec).tmp_dir, mode=0o700, exist_ok=True)

    def runtime_socket(self, spec: SandboxSpec) -> None:
        return None

    def resize(self, spec: SandboxSpec, memory_mb: int) -> None:
        return None

    def limit_cpu(self, spec: SandboxSpec, memory_mb: int) -> None:
        return None

    def peak_memory_mb(self, spec: SandboxSpec) -> int | None:
        return None

    def oom_kills(self, spec: SandboxSpec) -> int:
        return 0

    def cleanup(self, spec: SandboxSpec) -> None:
        shutil.rmtree(self._work / "envs" / spec.env_id, ignore_errors=True)

    def close(self) -> None:
        return None

    def cpu_fence(self) -> None:
        return None

    def protections(self) -> list[Protection]:
        why = "process fallback: bubblewrap or root not available"
        return [
            Protection("unprivileged uid per environment", False, why),
            Protection("mount namespace, read-only /var/task", False, why + " (mode bits only)"),
            Protection("private /tmp limited to EphemeralStorage", False, why + " (TMPDIR only, no size limit)"),
            Protection("pid, ipc, uts namespaces", False, why),
            Protection("data directory hidden", False, why),
            Protection("memory limit = MemorySize (cgroups)", False, why),
            Protection("CPU = MemorySize / 1769 vCPUs (cgroups)", False, why),
            Protection("pids limit 1024 (cgroups)", False, why),
            Protection("private network namespace", False, "not implemented: functions use the host network"),
        ]

"""The fallback driver: a plain child process, for hosts without bubblewrap or root.

Same contract, weaker enforcement: the code directory is the real one (read-only by mode bits only),
/tmp is a private directory passed as TMPDIR, the function runs as lamina's own user and can read
whatever that user can. `lamina serve` and `lamina doctor` say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lamina.errors import SandboxError
from lamina.runtimes.registry import Runtime
from lamina.sandbox.base import Layout, Protection, SandboxSpec, command_for, environment_for


class ProcessDriver:
    name = "process"
    runtime_depth = 0

    def __init__(self, work_dir: Path) -> None:
        self._work = work_dir
        self._runtime_dirs: dict[str, Path] = {}

    def _runtime_dir(self, runtime: Runtime) -> Path:
        """One real directory per runtime holding links to its bootstrap and SDK."""
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

    def spawn(self, spec: SandboxSpec, output_fd: int) -> subprocess.Popen[bytes]:
        layout = self.layout(spec)
        os.makedirs(layout.tmp_dir, mode=0o700, exist_ok=True)
        try:
            return subprocess.Popen(
                command_for(spec.runtime, layout), env=environment_for(spec, layout),
                cwd=layout.task_root, stdin=subprocess.DEVNULL, stdout=output_fd, stderr=output_fd,
                start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start runtime: {exc}") from exc

    def cleanup(self, spec: SandboxSpec) -> None:
        shutil.rmtree(self._work / "envs" / spec.env_id, ignore_errors=True)

    def protections(self) -> list[Protection]:
        why = "process fallback: bubblewrap or root not available"
        return [
            Protection("unprivileged uid per environment", False, why),
            Protection("mount namespace, read-only /var/task", False, why + " (mode bits only)"),
            Protection("private /tmp (tmpfs, EphemeralStorage size)", False, why + " (TMPDIR only)"),
            Protection("pid, ipc, uts namespaces", False, why),
            Protection("data directory hidden", False, why),
            Protection("memory / cpu / pids limits (cgroups)", False, "not implemented yet"),
        ]

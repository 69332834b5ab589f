"""Which CPUs lamina's environments may run on, all of them at once: one cpuset over every environment.

Why: with the event loop pinned to one CPU (lamina/cpus.py), a busy loop still shares that CPU with
whatever runtimes the scheduler wakes there; at 64 clients keeping the environments on the other CPUs
gave +4% and +15% invocations per second on the 2-vCPU team VM (bench/ab_bench.py,
docs/benchmarks.md). Held only while the loop is busy (lamina/cpus.py `fence_loop_cpu`), so that a quiet
server leaves every CPU to CPU-heavy functions.

cgroup v1: one cpuset cgroup, <root>/cpuset/<parent>, that every environment's processes join beside
their own memory/cpu/pids cgroups (its cgroup.procs is in each environment's join list, so forked and
exec'd runtimes are inside from their first instruction). v2: the cpuset.cpus of lamina's parent cgroup,
which bounds every environment below it (the cpuset controller enabled in the root's subtree_control).
Either way one write of cpuset.cpus moves every process of every environment: no per-process calls.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("lamina.sandbox")


def format_cpus(cpus: frozenset[int] | set[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5" (the kernel's list format)."""
    ordered = sorted(cpus)
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def parse_cpus(text: str) -> frozenset[int]:
    """"0-2,5" -> {0, 1, 2, 5}; "" -> empty."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


class CpuFence:
    """lamina's environments' cpuset: `set(cpus)` moves them all; `procs_file`, on v1, is what each
    environment's processes must join (None on v2, where being below lamina's parent is enough)."""

    def __init__(self, directory: Path, procs_file: Path | None, cpus: frozenset[int]) -> None:
        self.directory = directory
        self.procs_file = procs_file
        self.cpus = cpus  # as last written

    def set(self, cpus: frozenset[int]) -> None:
        if cpus == self.cpus or not cpus:
            return
        with open(self.directory / "cpuset.cpus", "w") as f:
            f.write(format_cpus(cpus))
        self.cpus = cpus

    def remove(self) -> None:
        """v1: remove the cpuset cgroup (once its environments are gone); v2: give back every CPU."""
        try:
            if self.procs_file is not None:
                os.rmdir(self.directory)
            else:
                self.set(frozenset(os.sched_getaffinity(0)))
        except OSError:
            pass


def detect(root: Path, parent: str, version: int) -> tuple[CpuFence | None, str]:
    """A fence for lamina's environments under <root> (version: the cgroup version in use), or None and why."""
    try:
        if version == 1:
            return _detect_v1(root / "cpuset", parent), ""
        return _detect_v2(root, parent), ""
    except (OSError, ValueError) as exc:
        return None, f"no cpuset for the environments: {exc}"


def _detect_v1(hierarchy: Path, parent: str) -> CpuFence:
    if not (hierarchy / "cgroup.procs").exists():
        raise ValueError(f"no cgroup v1 cpuset hierarchy at {hierarchy}")
    directory = hierarchy / parent
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass
    # A new v1 cpuset has no CPUs and no memory nodes: nothing can join it until both are set.
    mems = (hierarchy / "cpuset.mems").read_text().strip()
    cpus = parse_cpus((hierarchy / "cpuset.cpus").read_text()) & frozenset(os.sched_getaffinity(0))
    (directory / "cpuset.mems").write_text(mems)
    (directory / "cpuset.cpus").write_text(format_cpus(cpus))
    return CpuFence(directory, directory / "cgroup.procs", cpus)


def _detect_v2(root: Path, parent: str) -> CpuFence:
    if "cpuset" not in (root / "cgroup.controllers").read_text().split():
        raise ValueError(f"the cgroup v2 root {root} offers no cpuset controller")
    if "cpuset" not in (root / "cgroup.subtree_control").read_text().split():
        (root / "cgroup.subtree_control").write_text("+cpuset")
    directory = root / parent
    cpus = frozenset(os.sched_getaffinity(0))
    (directory / "cpuset.cpus").write_text(format_cpus(cpus))
    return CpuFence(directory, None, cpus)

"""The environments' cpuset: CPU list format, a v1 fence made on a cgroupfs-like tree, every environment
joining it, and the loop's fence decided with hysteresis from the loop thread's CPU time."""

from __future__ import annotations

import asyncio
import os

import pytest

from lamina import cpus
from lamina.sandbox.cgroups import CgroupManager
from lamina.sandbox.cpufence import detect, format_cpus, parse_cpus


@pytest.mark.parametrize("text, cpus", [("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-2,5,7-8", {0, 1, 2, 5, 7, 8}),
                                         ("", set())])
def test_cpu_lists_both_ways(text, cpus):
    assert parse_cpus(text) == frozenset(cpus)
    assert format_cpus(frozenset(cpus)) == text


def test_a_v1_fence_is_made_usable_and_every_environment_joins_it(tmp_path):
    hierarchy = tmp_path / "cpuset"
    hierarchy.mkdir()
    mine = frozenset(os.sched_getaffinity(0))
    for name, text in (("cgroup.procs", ""), ("cpuset.mems", "0\n"), ("cpuset.cpus", format_cpus(mine) + "\n")):
        (hierarchy / name).write_text(text)
    fence, why = detect(tmp_path, "lamina-x", 1)
    assert fence is not None, why
    made = hierarchy / "lamina-x"
    # a new v1 cpuset takes nobody until it has memory nodes and CPUs
    assert (made / "cpuset.mems").read_text() == "0" and parse_cpus((made / "cpuset.cpus").read_text()) == mine
    manager = CgroupManager(1, {c: tmp_path / c / "lamina-x" for c in ("memory", "cpu", "pids")})
    manager.fence = fence
    assert manager._cgroup("env-1").procs_files()[-1] == made / "cgroup.procs"
    fence.set(frozenset({min(mine)}))
    assert (made / "cpuset.cpus").read_text() == str(min(mine))


def test_no_cpuset_hierarchy_no_fence(tmp_path):
    fence, why = detect(tmp_path, "lamina-x", 1)
    assert fence is None and "cpuset" in why


def test_fencing_has_hysteresis():
    assert not cpus.should_fence(0.74, fenced=False) and cpus.should_fence(0.75, fenced=False)
    assert cpus.should_fence(0.51, fenced=True) and not cpus.should_fence(0.5, fenced=True)


def _drive(busy_per_tick: list[float], mode: str = "auto", refuse: bool = False) -> list[frozenset[int]]:
    """Run fence_loop_cpu over fake clocks: each tick the loop spent busy_per_tick[i] of the interval."""
    writes: list[frozenset[int]] = []
    state = {"spent": 0.0, "now": 0.0, "tick": 0}

    def set_cpus(cpus_: frozenset[int]) -> None:
        if refuse:
            raise PermissionError("cpuset.cpus: refused")
        writes.append(cpus_)

    async def main() -> None:
        task = asyncio.ensure_future(cpus.fence_loop_cpu(
            set_cpus, frozenset({0, 1, 2}), 2, mode, every_s=0,
            busy_clock=lambda: state["spent"], clock=lambda: state["now"]))
        for busy in busy_per_tick:
            await asyncio.sleep(0)  # the task samples the clocks
            state["now"] += 1.0
            state["spent"] += busy
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return writes


def test_auto_fences_a_busy_loop_and_gives_the_cpu_back_when_it_quiets():
    others, every = frozenset({0, 1}), frozenset({0, 1, 2})
    assert _drive([0.2, 0.9, 0.9, 0.6, 0.9, 0.3, 0.1]) == [others, every]
    assert _drive([0.9, 0.95]) == [others, every]  # stopped while fenced: every CPU given back
    assert _drive([0.1, 0.4, 0.7]) == []


def test_on_fences_at_once_and_a_refused_write_ends_quietly():
    assert _drive([0.0], mode="on") == [frozenset({0, 1})]
    assert _drive([0.9, 0.9], refuse=True) == []


def test_a_v2_fence_is_the_parents_cpuset_with_the_controller_enabled_at_the_root(tmp_path):
    mine = frozenset(os.sched_getaffinity(0))
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (tmp_path / "lamina-x").mkdir()
    fence, why = detect(tmp_path, "lamina-x", 2)
    assert fence is not None and fence.procs_file is None, why  # being below the parent is enough
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpuset"
    assert parse_cpus((tmp_path / "lamina-x" / "cpuset.cpus").read_text()) == mine
    manager = CgroupManager(2, {c: tmp_path / "lamina-x" for c in ("memory", "cpu", "pids")})
    manager.fence = fence
    assert manager._cgroup("env-1").procs_files() == [tmp_path / "lamina-x" / "env-1" / "cgroup.procs"]


def test_a_v2_root_without_cpuset_has_no_fence(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    fence, why = detect(tmp_path, "lamina-x", 2)
    assert fence is None and "no cpuset controller" in why

"""cgroups against fake cgroupfs trees (v1 and v2 layouts) in tmp_path.

A small fake kernel stands in for cgroupfs: mkdir populates a new directory with the control files
the real kernel would show (so writes to knobs that do not exist fail, as they do for real), rmdir
refuses a cgroup that still lists processes (EBUSY) and otherwise deletes it with its files, and
os.kill is replaced so that no real signal is ever sent.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.errors import SandboxError
from lamina.sandbox import cgroups
from lamina.sandbox.cgroups import Cgroup, CgroupManager, Limits, detect

V1_FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.max_usage_in_bytes",
               "memory.oom_control"],
    "cpu": ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares", "cpu.stat"],
    "cpuacct": ["cpuacct.usage"],
    "cpu,cpuacct": ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares", "cpuacct.usage"],
    "pids": ["pids.max"],
}
V2_FILES = ["cgroup.controllers", "cgroup.subtree_control", "cgroup.kill", "memory.max", "memory.swap.max",
            "memory.peak", "memory.current", "memory.events", "cpu.max", "cpu.weight", "cpu.stat", "pids.max"]
V1_ROOT_FILES = {"memory": ["memory.oom_control"], "cpu": ["cpu.cfs_period_us"], "pids": [], "cpuacct": [],
                 "cpu,cpuacct": []}


class FakeKernel:
    def __init__(self, root: Path, version: int, omit: set[str] = frozenset()) -> None:
        self.root, self.version, self.omit = root, version, set(omit)
        self.killed: list[tuple[int, int]] = []

    def files_for(self, path: Path) -> list[str]:
        if self.version == 2:
            names = V2_FILES
        else:
            names = V1_FILES[path.resolve().relative_to(self.root.resolve()).parts[0]]
        return ["cgroup.procs", *(n for n in names if n not in self.omit)]

    def mkdir(self, path, mode=0o777):
        path = Path(path)
        os.mkdir(path)
        for name in self.files_for(path):
            (path / name).write_text("")

    def rmdir(self, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        busy = (path / "cgroup.procs").read_text().split() or any(p.is_dir() for p in path.iterdir())
        if busy:
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        for child in path.iterdir():
            child.unlink()
        os.rmdir(path)

    def kill(self, pid, sig):
        """Fake os.kill: the process dies at once and leaves every cgroup.procs under root."""
        self.killed.append((pid, sig))
        if sig != signal.SIGKILL:
            return
        for procs in self.root.rglob("cgroup.procs"):
            left = [p for p in procs.read_text().split() if p != str(pid)]
            procs.write_text("\n".join(left))


def make_v1(root: Path, comounted: bool = False) -> None:
    hierarchies = ["memory", "pids"] + (["cpu,cpuacct"] if comounted else ["cpu", "cpuacct"])
    for name in hierarchies:
        (root / name).mkdir(parents=True)
        for f in ["cgroup.procs", *V1_ROOT_FILES[name]]:
            (root / name / f).write_text("")
    if comounted:
        (root / "cpu").symlink_to("cpu,cpuacct")
        (root / "cpuacct").symlink_to("cpu,cpuacct")


def make_v2(root: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> None:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    def install(version: int, omit: set[str] = frozenset(), **kw) -> FakeKernel:
        root = tmp_path / "cgroup"
        make_v1(root, **kw) if version == 1 else make_v2(root, **kw)
        fake = FakeKernel(root, version, omit)
        monkeypatch.setattr(cgroups, "_mkdir", fake.mkdir)
        monkeypatch.setattr(cgroups, "_rmdir", fake.rmdir)
        monkeypatch.setattr(cgroups.os, "kill", fake.kill)
        return fake
    return install


def manager(fake: FakeKernel, parent: str = "lamina") -> CgroupManager:
    found, reason = detect(fake.root, parent)
    assert found is not None, reason
    return found


# --- Limits -------------------------------------------------------------------------------------

def test_cpu_is_proportional_to_memory_and_capped_at_six():
    assert Limits.for_memory(1769).vcpus == 1.0
    assert Limits.for_memory(128).vcpus == pytest.approx(0.07236, abs=1e-4)
    assert Limits.for_memory(10240).vcpus == pytest.approx(5.7886, abs=1e-4)  # the brief's formula, not AWS's 6
    assert Limits.for_memory(12000).vcpus == 6.0
    assert Limits.for_memory(3008, pids_max=64) == Limits(3008, 3008 / 1769, 64)


def test_quota_and_bytes():
    assert Limits.for_memory(128).cpu_quota_us == 7235
    assert Limits(1, 0.001).cpu_quota_us == 1000
    assert Limits.for_memory(10240).cpu_quota_us == 578_858
    assert Limits.for_memory(128).memory_bytes == 128 * 1024 * 1024


@pytest.mark.parametrize("args", [(0, 1.0), (128, 0.0), (128, 1.0, 0)])
def test_limits_must_be_positive(args):
    with pytest.raises(ValueError):
        Limits(*args)


# --- detect -------------------------------------------------------------------------------------

def test_detect_v1_makes_a_parent_under_each_controller(kernel):
    fake = kernel(1)
    m = manager(fake)
    assert m.version == 1
    assert set(m.parents) == {"memory", "cpu", "pids", "cpuacct"}
    for controller, parent in m.parents.items():
        assert parent == fake.root / controller / "lamina" and parent.is_dir()


def test_detect_v1_comounted_cpu_cpuacct_is_one_directory(kernel):
    fake = kernel(1, comounted=True)
    m = manager(fake)
    assert m.parents["cpu"] == m.parents["cpuacct"]
    cg = m.create("env", Limits.for_memory(128))
    assert len(cg.procs_files()) == 3
    (cg.dirs["cpuacct"] / "cpuacct.usage").write_text("2500000\n")
    assert cg.cpu_usage_usec() == 2500


def test_detect_v2_enables_controllers_in_root_and_parent(kernel):
    fake = kernel(2)
    m = manager(fake)
    assert m.version == 2
    top = fake.root / "lamina"
    assert set(m.parents.values()) == {top}
    assert (fake.root / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (top / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (top / "cgroup.procs").read_text() == ""  # lamina itself never joins the parent


def test_detect_v2_leaves_root_alone_when_already_enabled(kernel):
    fake = kernel(2)
    (fake.root / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    manager(fake)
    assert (fake.root / "cgroup.subtree_control").read_text() == "cpu io memory pids\n"


def test_detect_is_idempotent_for_an_existing_parent(kernel):
    fake = kernel(1)
    manager(fake)
    assert manager(fake).version == 1


def test_detect_v2_without_pids_says_so(kernel):
    fake = kernel(2, controllers="cpu io memory")
    m, reason = detect(fake.root)
    assert m is None and "pids" in reason and "available: cpu io memory" in reason
    assert not (fake.root / "lamina").exists()


def test_detect_v1_missing_controller(kernel):
    fake = kernel(1)
    (fake.root / "pids" / "cgroup.procs").unlink()
    m, reason = detect(fake.root)
    assert m is None and "lacks the pids controller" in reason
    assert not (fake.root / "memory" / "lamina").exists()


def test_detect_nothing_there(tmp_path):
    assert detect(tmp_path / "absent") == (None, f"{tmp_path / 'absent'} does not exist")
    m, reason = detect(tmp_path)
    assert m is None and "no cgroup hierarchy" in reason


@pytest.mark.parametrize("code, hint", [(errno.EACCES, "root"), (errno.EROFS, "read-only")])
def test_detect_cannot_create_parent(kernel, monkeypatch, code, hint):
    fake = kernel(1)

    def refuse(path, mode=0o777):
        raise OSError(code, os.strerror(code), str(path))
    monkeypatch.setattr(cgroups, "_mkdir", refuse)
    m, reason = detect(fake.root)
    assert m is None and hint in reason and "memory/lamina" in reason


def test_detect_v1_rolls_back_when_a_later_controller_fails(kernel, monkeypatch):
    fake = kernel(1)

    def flaky(path, mode=0o777):
        if "pids" in str(path):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        fake.mkdir(path)
    monkeypatch.setattr(cgroups, "_mkdir", flaky)
    m, reason = detect(fake.root)
    assert m is None and "Operation not permitted" in reason
    assert not list(fake.root.glob("*/lamina"))


def test_detect_v2_internal_process_rule_is_explained(kernel, monkeypatch):
    fake = kernel(2)
    real_write = cgroups._write

    def busy(path, value):
        if path == fake.root / "cgroup.subtree_control":
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        real_write(path, value)
    monkeypatch.setattr(cgroups, "_write", busy)
    m, reason = detect(fake.root)
    assert m is None and "no-internal-processes" in reason


def test_detect_without_cfs_bandwidth(kernel):
    fake = kernel(1, omit={"cpu.cfs_quota_us"})
    m, reason = detect(fake.root)
    assert m is None and "CFS bandwidth" in reason
    assert not list(fake.root.glob("*/lamina"))


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_bad_names_are_programming_errors(kernel, bad):
    fake = kernel(1)
    with pytest.raises(ValueError):
        detect(fake.root, parent=bad)
    with pytest.raises(ValueError):
        manager(fake).create(bad, Limits.for_memory(128))


# --- create: the limits written -----------------------------------------------------------------

def test_create_v1_writes_memory_memsw_cpu_pids(kernel):
    m = manager(kernel(1))
    cg = m.create("env-1", Limits.for_memory(256, pids_max=64))
    mem, cpu, pids = cg.dirs["memory"], cg.dirs["cpu"], cg.dirs["pids"]
    assert (mem / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(256 << 20)
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == str(int(100000 * 256 / 1769))
    assert (pids / "pids.max").read_text() == "64"
    assert cg.name == "env-1" and cg.version == 1
    assert cg.procs_files() == [m.parents[c] / "env-1" / "cgroup.procs" for c in ("memory", "cpu", "pids", "cpuacct")]


def test_create_v1_without_swap_accounting_skips_memsw(kernel):
    cg = manager(kernel(1, omit={"memory.memsw.limit_in_bytes"})).create("e", Limits.for_memory(128))
    assert not (cg.dirs["memory"] / "memory.memsw.limit_in_bytes").exists()
    assert (cg.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(128 << 20)


def test_create_v2_writes_max_files(kernel):
    cg = manager(kernel(2)).create("e", Limits.for_memory(10240))
    d = cg.dirs["memory"]
    assert set(cg.dirs.values()) == {d} and cg.procs_files() == [d / "cgroup.procs"]
    assert (d / "memory.max").read_text() == str(10240 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "cpu.max").read_text() == "578858 100000"
    assert (d / "pids.max").read_text() == "1024"


def test_create_v2_without_swap_file(kernel):
    cg = manager(kernel(2, omit={"memory.swap.max"})).create("e", Limits.for_memory(128))
    assert not (cg.dirs["memory"] / "memory.swap.max").exists()
    assert (cg.dirs["memory"] / "cpu.max").read_text() == "7235 100000"


# --- set_cpu: the init phase's CPU ----------------------------------------------------------------

def test_set_cpu_v1_init_phase_lifts_the_quota_and_weighs_more_then_both_go_back(kernel):
    m = manager(kernel(1))
    cg = m.create("e", Limits.for_memory(128))
    cpu = cg.dirs["cpu"]
    m.set_cpu(cg, None)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "-1"
    assert (cpu / "cpu.shares").read_text() == str(1024 * cgroups.INIT_CPU_WEIGHT)
    m.set_cpu(cg, Limits.for_memory(128).vcpus)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "7235"
    assert (cpu / "cpu.shares").read_text() == "1024"


def test_set_cpu_v2_writes_max_and_weight(kernel):
    m = manager(kernel(2))
    cg = m.create("e", Limits.for_memory(1769))
    d = cg.dirs["cpu"]
    m.set_cpu(cg, None)
    assert (d / "cpu.max").read_text() == "max 100000"
    assert (d / "cpu.weight").read_text() == str(100 * cgroups.INIT_CPU_WEIGHT)
    m.set_cpu(cg, 1.0)
    assert (d / "cpu.max").read_text() == "100000 100000"
    assert (d / "cpu.weight").read_text() == "100"


def test_set_cpu_without_a_weight_file_still_sets_the_quota(kernel):
    m = manager(kernel(1, omit={"cpu.shares"}))
    cg = m.create("e", Limits.for_memory(128))
    m.set_cpu(cg, None)
    assert (cg.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "-1"
    assert not (cg.dirs["cpu"] / "cpu.shares").exists()


def test_create_failure_is_a_sandbox_error_and_leaves_nothing(kernel):
    fake = kernel(1)
    m = manager(fake)
    fake.omit.add("pids.max")
    with pytest.raises(SandboxError, match="pids.max") as info:
        m.create("e", Limits.for_memory(128))
    assert isinstance(info.value.__cause__, OSError)
    assert not list(fake.root.glob("*/lamina/e"))


def test_create_twice_is_a_sandbox_error(kernel):
    m = manager(kernel(2))
    m.create("e", Limits.for_memory(128))
    with pytest.raises(SandboxError, match="already exists"):
        m.create("e", Limits.for_memory(128))
    assert (m.parents["memory"] / "e").is_dir()  # the first one is untouched


# --- readings -----------------------------------------------------------------------------------

def test_v1_readings(kernel):
    cg = manager(kernel(1)).create("e", Limits.for_memory(128))
    mem = cg.dirs["memory"]
    (mem / "memory.max_usage_in_bytes").write_text("67108864\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (cg.dirs["cpuacct"] / "cpuacct.usage").write_text("1234567\n")
    assert cg.peak_memory_bytes() == 64 << 20
    (mem / "memory.max_usage_in_bytes").write_text("134217728\n")  # the file stays open: read again
    assert cg.peak_memory_bytes() == 128 << 20
    assert cg.oom_kills() == 3
    assert cg.cpu_usage_usec() == 1234
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")  # kernels before 4.13
    assert cg.oom_kills() == 0


def test_v2_readings(kernel):
    fake = kernel(2)
    cg = manager(fake).create("e", Limits.for_memory(128))
    d = cg.dirs["memory"]
    (d / "memory.peak").write_text("5000\n")
    (d / "memory.current").write_text("4000\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
    (d / "cpu.stat").write_text("usage_usec 777\nuser_usec 700\nsystem_usec 77\n")
    assert cg.peak_memory_bytes() == 5000
    assert cg.oom_kills() == 1
    assert cg.cpu_usage_usec() == 777
    fake.omit.add("memory.peak")  # kernels before 5.19
    older = manager(fake).create("f", Limits.for_memory(128))
    d = older.dirs["memory"]
    (d / "memory.current").write_text("4000\n")
    assert older.peak_memory_bytes() == 4000


def test_the_peak_memory_file_is_opened_when_the_cgroup_is_made(kernel):
    """Made on an I/O thread; the loop then only reads it after invocations."""
    cg = manager(kernel(1)).create("e", Limits.for_memory(128))
    assert cg._peak_fd >= 0
    (cg.dirs["memory"] / "memory.max_usage_in_bytes").write_text("1048576\n")
    assert cg.peak_memory_bytes() == 1 << 20


def test_a_peak_memory_file_that_cannot_be_opened_fails_the_read_not_the_cgroup(kernel):
    fake = kernel(1)
    fake.omit.add("memory.max_usage_in_bytes")
    cg = manager(fake).create("e", Limits.for_memory(128))
    assert (cg.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(128 << 20)
    with pytest.raises(SandboxError, match="memory.max_usage_in_bytes"):
        cg.peak_memory_bytes()


def test_v1_without_cpuacct_has_no_usage(kernel):
    fake = kernel(1)
    for f in (fake.root / "cpuacct").iterdir():
        f.unlink()
    cg = manager(fake).create("e", Limits.for_memory(128))
    assert "cpuacct" not in cg.dirs and cg.cpu_usage_usec() is None


def test_reading_a_removed_cgroup_is_a_sandbox_error(kernel):
    cg = manager(kernel(2)).create("e", Limits.for_memory(128))
    cg.remove()
    with pytest.raises(SandboxError, match="memory.events"):
        cg.oom_kills()


# --- attach, kill, remove, cleanup_stale --------------------------------------------------------

def test_attach_writes_the_pid_everywhere(kernel):
    cg = manager(kernel(1)).create("e", Limits.for_memory(128))
    cg.attach(4242)
    assert [f.read_text() for f in cg.procs_files()] == ["4242"] * 4
    assert cg.pids() == {4242}


def test_attach_failure_is_a_sandbox_error(kernel):
    cg = manager(kernel(1)).create("e", Limits.for_memory(128))
    cg.procs_files()[1].unlink()
    with pytest.raises(SandboxError, match="cannot move pid 7"):
        cg.attach(7)


def test_kill_v1_signals_every_process(kernel):
    fake = kernel(1)
    cg = manager(fake).create("e", Limits.for_memory(128))
    for f in cg.procs_files():
        f.write_text("101\n102\n")
    cg.kill()
    assert fake.killed == [(101, signal.SIGSTOP), (102, signal.SIGSTOP), (101, signal.SIGKILL), (102, signal.SIGKILL)]
    assert cg.pids() == set()


def test_kill_v2_uses_cgroup_kill(kernel):
    fake = kernel(2)
    cg = manager(fake).create("e", Limits.for_memory(128))
    d = cg.dirs["memory"]
    (d / "cgroup.procs").write_text("101\n")
    cg.kill(timeout=0.01)
    assert (d / "cgroup.kill").read_text() == "1" and fake.killed == []


def test_kill_v2_without_cgroup_kill_falls_back_to_signals(kernel):
    fake = kernel(2, omit={"cgroup.kill"})
    cg = manager(fake).create("e", Limits.for_memory(128))
    (cg.dirs["memory"] / "cgroup.procs").write_text("101\n")
    cg.kill()
    assert fake.killed == [(101, signal.SIGSTOP), (101, signal.SIGKILL)]


def test_remove_kills_first_and_is_idempotent(kernel):
    fake = kernel(1)
    m = manager(fake)
    cg = m.create("e", Limits.for_memory(128))
    cg.attach(555)
    cg.remove()
    assert fake.killed == [(555, signal.SIGSTOP), (555, signal.SIGKILL)]
    assert not list(fake.root.glob("*/lamina/e"))
    cg.remove()
    assert all(p.is_dir() for p in m.parents.values())


def test_remove_takes_child_cgroups_with_it(kernel):
    fake = kernel(2, omit={"cgroup.kill"})
    cg = manager(fake).create("e", Limits.for_memory(128))
    fake.mkdir(cg.dirs["memory"] / "inner")
    (cg.dirs["memory"] / "inner" / "cgroup.procs").write_text("9\n")
    cg.remove()
    assert not cg.dirs["memory"].exists()


def test_remove_gives_up_with_a_sandbox_error(kernel, monkeypatch):
    fake = kernel(1)
    cg = manager(fake).create("e", Limits.for_memory(128))
    cg.attach(77)
    monkeypatch.setattr(cgroups.os, "kill", lambda pid, sig: None)  # a process that will not die
    with pytest.raises(SandboxError, match="busy"):
        cg.remove(timeout=0.05)


def test_destroy_cleans_up_again_when_an_environment_appeared_meanwhile(kernel, monkeypatch):
    """An environment's cgroup made after the clean-up passed (a standby refill racing the shutdown) does
    not leave the parent behind: destroy cleans up again and removes it."""
    fake = kernel(1)
    m = manager(fake)
    m.create("a", Limits.for_memory(128)).attach(11)
    clean = m.cleanup_stale
    rounds = []

    def late_arrival() -> None:
        clean()
        rounds.append(1)
        if len(rounds) == 1:
            m.create("late", Limits.for_memory(128)).attach(12)

    monkeypatch.setattr(m, "cleanup_stale", late_arrival)
    m.destroy()
    assert len(rounds) == 2
    assert not list(fake.root.glob("*/lamina"))


def test_destroy_gives_up_on_a_parent_busy_past_its_time(kernel, monkeypatch):
    fake = kernel(1)
    m = manager(fake)
    fake.mkdir(m.parents["memory"] / "stuck")
    monkeypatch.setattr(m, "cleanup_stale", lambda: None)  # a child that cannot be removed
    with pytest.raises(SandboxError, match="cannot remove cgroup .*lamina.*busy"):
        m.destroy(timeout=0.05)


def test_cleanup_stale_removes_every_environment_but_keeps_the_parent(kernel):
    fake = kernel(1)
    m = manager(fake)
    m.create("a", Limits.for_memory(128)).attach(11)
    m.create("b", Limits.for_memory(256))
    fake.mkdir(m.parents["pids"] / "only-in-pids")  # half-made leftover
    fresh = manager(fake)
    fresh.cleanup_stale()
    assert fake.killed == [(11, signal.SIGSTOP), (11, signal.SIGKILL)]
    for parent in m.parents.values():
        assert parent.is_dir() and not [p for p in parent.iterdir() if p.is_dir()]
    fresh.destroy()
    assert not list(fake.root.glob("*/lamina"))


def test_cgroup_repr_names_its_directories(kernel):
    cg = manager(kernel(2)).create("e", Limits.for_memory(128))
    assert "'e'" in repr(cg) and "lamina/e" in repr(cg)
    assert isinstance(cg, Cgroup)


# --- wrap_argv: executed for real, with plain files standing in for cgroup.procs ---------------

def fake_cgroup(tmp_path: Path, count: int) -> tuple[CgroupManager, Cgroup]:
    dirs = {}
    for i, controller in enumerate(["memory", "cpu", "pids"][:count]):
        d = tmp_path / f"h{i}" / "lamina" / "env"
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        dirs[controller] = d
    for controller in ["memory", "cpu", "pids"][count:]:
        dirs[controller] = dirs["memory"]
    m = CgroupManager(1, {c: d.parent for c, d in dirs.items()})
    return m, Cgroup("env", 1, dirs)


@pytest.mark.parametrize("count", [1, 3])
def test_wrap_joins_before_exec_with_the_same_pid(tmp_path, count):
    m, cg = fake_cgroup(tmp_path, count)
    out = subprocess.run(m.wrap_argv(cg, ["/bin/sh", "-c", 'echo "$$"']), capture_output=True, text=True,
                         check=True)
    pid = out.stdout.strip()
    assert [f.read_text().strip() for f in cg.procs_files()] == [pid] * count


def test_wrap_passes_arbitrary_argv_verbatim(tmp_path):
    m, cg = fake_cgroup(tmp_path, 3)
    nasty = ["a b", "$HOME", "`id`", "$(touch pwned)", "'", '"', ";", "--", "3", "", "*", "\n", "-c"]
    argv = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *nasty]
    out = subprocess.run(m.wrap_argv(cg, argv), capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "IFS": "0123456789"})
    assert json.loads(out.stdout) == nasty
    assert not (tmp_path / "pwned").exists()


def test_wrap_finds_the_target_on_path(tmp_path):
    m, cg = fake_cgroup(tmp_path, 1)
    out = subprocess.run(m.wrap_argv(cg, ["echo", "hi"]), capture_output=True, text=True, check=True)
    assert out.stdout == "hi\n"


def test_wrap_refuses_to_run_outside_its_cgroup(tmp_path):
    m, cg = fake_cgroup(tmp_path, 3)
    cg.procs_files()[1].parent.rename(tmp_path / "moved")
    marker = tmp_path / "ran"
    done = subprocess.run(m.wrap_argv(cg, ["touch", str(marker)]), capture_output=True, text=True)
    assert done.returncode == cgroups.WRAP_EXIT_CANNOT_JOIN
    assert "cannot join cgroup" in done.stderr and not marker.exists()


def test_wrap_needs_an_argv(tmp_path):
    m, cg = fake_cgroup(tmp_path, 1)
    with pytest.raises(ValueError):
        m.wrap_argv(cg, [])


def test_the_cpu_limit_of_an_environment_gone_meanwhile_is_dropped_quietly():
    """`limit_cpu` runs off the event loop, after the init phase: the environment may have ended (its cgroup
    removed) by then. The refused write is not an error anyone could act on; nothing is raised."""
    import types

    from lamina.sandbox.bwrap import BwrapDriver

    calls = []

    class Gone:
        def set_cpu(self, group, vcpus):  # type: ignore[no-untyped-def]
            calls.append(vcpus)
            raise SandboxError("cannot set the CPU quota of cgroup 'env-e1': No such file or directory")

    driver = BwrapDriver(cgroups=Gone())  # type: ignore[arg-type]
    spec = types.SimpleNamespace(env_id="e1")
    driver.limit_cpu(spec, 1769)  # type: ignore[arg-type]
    assert calls == []  # no group (prepare never made one, or cleanup took it): nothing to write
    driver._groups["e1"] = object()  # type: ignore[assignment]
    driver.limit_cpu(spec, 1769)  # type: ignore[arg-type]
    assert calls == [1.0]

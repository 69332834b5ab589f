"""The mount plan of an isolated environment's view (sandbox/rootfs.py): what is shared, what is its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.runtimes.registry import Runtime
from lamina.sandbox.base import Layout, SandboxSpec
from lamina.sandbox.rootfs import environment_tree, host_tree, runtime_tree

LAYOUT = Layout("/var/task", "/var/runtime", "/var/lang", "/opt", "/tmp")


def _host(tmp_path: Path) -> Path:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    os.symlink("usr/bin", tmp_path / "bin")
    (tmp_path / "lib").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "etc" / "shadow").write_text("root:*:1::::::\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "null").touch()
    return tmp_path


def _spec(tmp_path: Path, opt: bool) -> SandboxSpec:
    runtime = Runtime(id="python3.11", family="python", interpreter=tmp_path / "py" / "bin" / "python3.11",
                      lang_root=tmp_path / "py", runtime_files=((tmp_path / "bootstrap.py", "bootstrap.py"),))
    return SandboxSpec(env_id="e1", uid=990001, code_dir=tmp_path / "code", runtime=runtime, env={}, tmp_mb=512,
                       memory_mb=128, opt_dir=tmp_path / "layers" if opt else None)


def test_the_host_part_is_read_only_and_shows_only_what_a_function_needs(tmp_path):
    ops = host_tree(_host(tmp_path))
    binds = {op[2]: op for op in ops if op[0] == "bind"}
    assert binds["/usr"][3] is True and binds["/lib"][3] is True and binds["/etc/hosts"][3] is True
    assert "/etc/shadow" not in binds  # only the listed /etc files
    assert ["symlink", "usr/bin", "/bin"] in ops  # the host's symlinks stay symlinks
    assert ["dev", "/dev/null", "/dev/null"] in ops and ["tmpfs", "/dev", 0o755, 0] in ops
    assert ["dir", "/proc", 0o555] in ops
    assert not [op for op in ops if op[0] == "bind" and not op[3]]  # nothing writable from the host


def test_the_runtime_part_is_shared_and_the_environment_brings_its_code_layers_and_tmp(tmp_path):
    spec = _spec(tmp_path, opt=True)
    shared = runtime_tree(spec.runtime, LAYOUT)
    assert shared[0] == ["tmpfs", "/var/runtime", 0o755, 0] and ["readonly", "/var/runtime"] in shared
    assert ["bind", str(tmp_path / "bootstrap.py"), "/var/runtime/bootstrap.py", True] in shared
    assert ["bind", str(tmp_path / "py"), "/var/lang", True] in shared
    assert {op[1] for op in shared if op[0] == "dir"} == {"/var/task", "/opt", "/tmp"}  # mount points only
    own = environment_tree(spec, LAYOUT, "/dev/loop7")
    assert own == [["bind", str(tmp_path / "code"), "/var/task", True], ["devpts", "/dev/pts"],
                   ["bind", str(tmp_path / "layers"), "/opt", True], ["mount", "/dev/loop7", "/tmp", "ext4", "nobarrier,noinit_itable"]]


def test_without_a_volume_tmp_is_a_tmpfs_of_the_ephemeral_storage_size(tmp_path):
    own = environment_tree(_spec(tmp_path, opt=False), LAYOUT, None)
    assert own[-1] == ["tmpfs", "/tmp", 0o1777, 512 * 1024 * 1024]
    assert not [op for op in own if op[-2:] == ["/opt", True]]  # no layers: /opt stays the empty mount point


def test_bubblewraps_argv_is_made_of_the_same_plan(tmp_path):
    from lamina.sandbox.bwrap import bwrap_args

    spec = _spec(tmp_path, opt=False)
    args = bwrap_args(host_tree(_host(tmp_path)) + runtime_tree(spec.runtime, LAYOUT))
    assert ["--ro-bind", "/usr", "/usr"] == args[:3]
    assert "--symlink usr/bin /bin" in " ".join(args) and "--ro-bind /etc/hosts /etc/hosts" in " ".join(args)
    assert not [a for a in args if a.startswith(("/dev", "/proc"))]  # bubblewrap's --dev and --proc make those
    assert f"--tmpfs /var/runtime --ro-bind {tmp_path}/bootstrap.py /var/runtime/bootstrap.py " \
           f"--remount-ro /var/runtime --ro-bind {tmp_path}/py /var/lang" in " ".join(args)
    assert bwrap_args([["tmpfs", "/tmp", 0o1777, 1024], ["dir", "/x", 0o700], ["bind", "/a", "/b", False]]) == [
        "--perms", "1777", "--size", "1024", "--tmpfs", "/tmp", "--perms", "700", "--dir", "/x", "--bind", "/a", "/b"]
    with pytest.raises(ValueError):  # a file-system mount has no bubblewrap argument
        bwrap_args([["mount", "/dev/loop7", "/tmp", "ext4", ""]])

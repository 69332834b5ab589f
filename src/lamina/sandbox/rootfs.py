"""The file-system view of an isolated environment, as a plan of mount operations.

bubblewrap builds this view from an argv made of the plan (bwrap.py's `bwrap_args`; its own --dev and
--proc make /dev and /proc); environments forked from a zygote build it with mount(2) calls of their own
(runtimes/python/zygote.py executes the plan, which is plain JSON). Both show the same tree:

    /usr, /bin → usr/bin …  read-only binds of the host's (symlinks where the host has symlinks)
    /etc/<a few files>      read-only binds (name resolution, TLS roots, time zones, the loader cache)
    /var/task               the function's code, read-only
    /var/runtime            the runtime client's files, read-only
    /var/lang               the interpreter's tree, read-only (when the runtime brings its own)
    /opt                    the function's layers merged, read-only (else an empty directory)
    /tmp                    the environment's own volume (ext4 image) or a size-limited tmpfs
    /dev                    a tmpfs with null, zero, full, random, urandom, tty and a private devpts
    /proc                   mounted by the environment's init, in its own pid namespace

The plan comes in two parts: what all environments of a runtime share (`host_tree` + `runtime_tree`:
the zygote builds it once, in a template mount namespace that each environment copies), and what each
environment brings (`environment_tree`: its code, layers, /tmp, devpts), added to its copy.
Everything is nosuid; the root itself is a tmpfs remounted read-only once the tree is built.
Operations (each a JSON list; paths are as the sandbox sees them):

    ["tmpfs", path, mode, size_bytes]   a tmpfs (size 0: the kernel's default)
    ["bind", host, path, read_only]     a recursive bind; the mount point is made to match (dir or file)
    ["dev", host, path]                 a device node bound in (nosuid, devices allowed)
    ["symlink", target, path]
    ["dir", path, mode]
    ["mount", source, path, fstype, data]   a file system (nosuid, nodev), e.g. the /tmp volume
    ["devpts", path]                    a new devpts instance
    ["readonly", path]                  remount a tmpfs made above read-only
"""

from __future__ import annotations

import os
from pathlib import Path

from lamina.runtimes.registry import Runtime
from lamina.sandbox.base import Layout, SandboxSpec
from lamina.sandbox.tmpvol import MOUNT_OPTIONS

ETC_FILES = (
    "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "localtime", "mime.types",
    "ssl", "ca-certificates", "ca-certificates.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "alternatives", "protocols", "services",
)
ROOT_LINKS = ("bin", "lib", "lib64", "lib32", "libx32", "sbin")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr"), ("/proc/kcore", "core"), ("pts/ptmx", "ptmx"))

Op = list  # one JSON-able operation, see the module docstring


def target(op: Op) -> str:
    """The path (in the sandbox) an operation makes."""
    return op[2] if op[0] in ("bind", "dev", "symlink", "mount") else op[1]


def host_tree(host_root: Path = Path("/")) -> list[Op]:
    """The part of the view that is the same for every environment on this host."""
    ops: list[Op] = [["bind", "/usr", "/usr", True]]
    for name in ROOT_LINKS:
        host = host_root / name
        if host.is_symlink():
            ops.append(["symlink", os.readlink(host), f"/{name}"])
        elif host.is_dir():
            ops.append(["bind", str(host), f"/{name}", True])
    ops += [["dir", "/etc", 0o755], ["dir", "/var", 0o755]]
    ops += [["bind", f"/etc/{name}", f"/etc/{name}", True]
            for name in ETC_FILES if (host_root / "etc" / name).exists()]
    ops += [["tmpfs", "/dev", 0o755, 0]]
    ops += [["dev", f"/dev/{name}", f"/dev/{name}"] for name in DEVICES if (host_root / "dev" / name).exists()]
    ops += [["symlink", target, f"/dev/{name}"] for target, name in DEV_LINKS]
    ops += [["dir", "/dev/shm", 0o755], ["dir", "/dev/pts", 0o755], ["dir", "/proc", 0o555]]
    return ops


def runtime_tree(runtime: Runtime, layout: Layout) -> list[Op]:
    """What every environment of one runtime shares: its client's files, its interpreter's tree, and the
    (empty, read-only) mount points of what each environment brings."""
    ops: list[Op] = [["tmpfs", layout.runtime_dir, 0o755, 0]]
    ops += [["bind", str(host), f"{layout.runtime_dir}/{name}", True] for host, name in runtime.runtime_files]
    ops.append(["readonly", layout.runtime_dir])
    if runtime.lang_root is not None and layout.lang_dir:
        ops.append(["bind", str(runtime.lang_root), layout.lang_dir, True])
    ops += [["dir", path, 0o755] for path in (layout.task_root, layout.opt_dir, layout.tmp_dir)]
    return ops


def environment_tree(spec: SandboxSpec, layout: Layout, tmp_device: str | None) -> list[Op]:
    """The environment's own part: its code, its layers, its /tmp and its terminals."""
    ops: list[Op] = [["bind", str(spec.code_dir), layout.task_root, True], ["devpts", "/dev/pts"]]
    if spec.opt_dir is not None:
        ops.append(["bind", str(spec.opt_dir), layout.opt_dir, True])
    if tmp_device is not None:
        ops.append(["mount", tmp_device, layout.tmp_dir, "ext4", MOUNT_OPTIONS])
    else:
        ops.append(["tmpfs", layout.tmp_dir, 0o1777, spec.tmp_mb * 1024 * 1024])
    return ops

"""A fork server for Python environments: the interpreter and the runtime client are loaded once per
Python version, and each environment's runtime is a fork of this process that moves into that
environment's sandbox before it runs any function code.

lamina starts it as ``<python> -S -B -c LAUNCH zygote.py FD LIFELINE RUNTIME_DIR LANG_DIR LANG_ROOT INIT SPAWN``
(LAUNCH imports this module and calls main(), so that it is read from bytecode; root,
on the host; FD a SOCK_SEQPACKET socket to the server; LIFELINE the read end of a pipe lamina holds open
while it lives; then where the sandbox shows this directory and the interpreter's tree, and where the latter
is on the host, or ""; INIT the lamina-init binary, or ""; SPAWN liblamina-spawn.so, or ""). Each request is one JSON
message with two or three file descriptors (the environment's output pipe, the write end of its status
pipe, and the runtime's end of its Runtime API socket pair, which becomes its fd 3, when lamina sends
one) that describes the sandbox: its cgroups, its network namespace (if private), the mount plan of its
file-system view (lamina/sandbox/rootfs.py: the environment's own part; the part all environments of
the runtime share, its template, comes with the first request only) and the runtime's uid, variables and
paths. For each:

  zygote ──clone(new ipc, uts, pid namespaces)──▶ init, pid 1 of its pid namespace:
          setns(net) into a private network if there is one; joins the environment's cgroups; takes a
          private copy of the runtime's template mount namespace (the shared part of the view, built
          once by a keeper process) and moves its own code, layers and /tmp volume in (open_tree,
          fsmount, move_mount; kernels without them: the whole view with mount(2) and pivot_root);
          mounts /proc
            ──fork──▶ runtime: drops to the environment's uid with no capabilities (the zygote emptied
                      the bounding set once, at start) and no_new_privs, takes the environment's stdio
                      and variables, then runs bootstrap.main() exactly as an exec'd runtime would
          ──exec──▶ lamina-init (lamina/sandbox/init.c), in the init's place, when there is one: reaps
                orphans; when the runtime ends, writes its exit status (negative: a signal) to the
                status pipe and exits, which ends whatever is left in the namespace; lamina sees the
                pipe close. If lamina goes away (the lifeline closes), it exits too. Without the binary
                the init's Python does the same (and keeps its copy of the zygote's pages, ~1.2 MB).

With liblamina-spawn.so (lamina/sandbox/spawn.c) the init above is C code instead: cloned with CLONE_VM |
CLONE_VFORK, it shares this process's memory (no copy of its page tables, none of the init's copy-on-write
faults, nothing to tear down when it execs lamina-init) and does the same steps on the new mount API,
while the zygote waits; the runtime it forks returns into the zygote's frame (`_spawn`). Kernels without
the new mount API, or no lamina-init, keep the Python init.

This is what bubblewrap + setpriv do for an exec'd runtime, without the execs: no interpreter start, no
runtime-client imports (~25 ms of CPU), no bwrap/setpriv/shell/mount processes (~10 ms more).
Nothing of a function is ever loaded here: the handler is imported in the forked runtime, in its init
phase, as on Lambda. stdlib only; Python 3.9–3.13.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import time

gc.disable()  # no collections in the zygote: freed holes and gc headers written to would be copied on every fork
import bootstrap  # noqa: E402  (the runtime client and everything it imports, paid for once)

_SOURCED = ("bind", "dev", "symlink", "mount")  # operations whose second field is a source, not the path
CHANNEL_ENV = "_LAMINA_RUNTIME_FD"  # lamina's Runtime API socket pair, when it sends one (scheduler/environment.py)
CHANNEL_FD = 3
#: lamina-init (lamina/sandbox/init.c), opened at start; -1: the init stays this Python.
INIT_FD = -1
#: liblamina-spawn.so (lamina/sandbox/spawn.c), loaded at start: the init is C code sharing this process's
#: memory until it execs lamina-init (with the template mount namespace and lamina-init only); None: Python.
SPAWN = None
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT, SYS_CLONE = {"x86_64": (155, 56), "aarch64": (41, 220)}[os.uname().machine]
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT, SYS_MOUNT_SETATTR = 428, 429, 430, 431, 432, 442
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH = 1, 0o2000000, 4
FSOPEN_CLOEXEC, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE, FSMOUNT_CLOEXEC = 1, 0, 1, 6, 1
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
LAST_CAP = 63

_libc = ctypes.CDLL(None, use_errno=True)
_python = ctypes.PyDLL(None, use_errno=True)  # the GIL held across the call: clone must not race a thread
_python.syscall.restype = ctypes.c_long
_libc.syscall.restype = ctypes.c_long


def _failed(what: str) -> OSError:
    """The error of the libc call that just failed (its errno), saying what it was doing."""
    errno = ctypes.get_errno()
    return OSError(errno, "%s: %s" % (what, os.strerror(errno)))


def _check(result: int, what: str) -> None:
    if result != 0:
        raise _failed(what)


def _setns(fd: int, kind: int, what: str) -> None:
    _check(_libc.setns(fd, kind), "setns " + what)


def _empty_bounding_set() -> None:
    """No capability can ever be gained back through exec. Done once, in the zygote (it never execs;
    the mounts and namespaces it and its children make need capabilities they hold, not ones exec
    would grant), so every process forked from it inherits the empty set."""
    for cap in range(LAST_CAP + 1):  # needs CAP_SETPCAP; without it (not root) _drop_privileges refuses
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            return


def _drop_privileges(uid: int) -> None:
    """The runtime's identity: the environment's uid and gid, no groups, no capabilities (the bounding
    set is already empty: the zygote's), no new privileges; then checked from the kernel's own account."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted, effective and ambient sets cleared
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    fd = os.open("/proc/self/status", os.O_RDONLY)
    try:
        status = os.read(fd, 1 << 16).decode("latin-1")
    finally:
        os.close(fd)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        at = status.find(field + ":")
        if at >= 0 and int(status[at + len(field) + 1:status.index("\n", at)].strip(), 16) != 0:
            raise OSError("%s is not empty after dropping privileges" % field)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:
        raise OSError("uid/gid did not change")


def _remap(path: str, host_root: str, sandbox_root: str) -> str:
    if host_root and (path == host_root or path.startswith(host_root + "/")):
        return sandbox_root + path[len(host_root):]
    return path


def _as_the_sandbox_shows_it(runtime_dir: str, lang_dir: str, lang_root: str) -> None:
    """Paths this process learnt on the host, as the sandbox shows them: the interpreter's tree is bound at
    /var/lang there, and this directory (bootstrap.py) at /var/runtime. Packages already imported keep
    importing their submodules lazily (encodings.idna, email.*), so their __path__ must follow.

    Done once, in the zygote, before it serves: every runtime inherits the result instead of rewriting
    (and so copying) the pages of every module object. The zygote itself imports nothing afterwards."""
    moves = [(os.path.dirname(os.path.abspath(bootstrap.__file__)), runtime_dir)]
    if lang_root:
        moves.append((lang_root, lang_dir))

    def remap(path: str) -> str:
        for host, sandbox in moves:
            path = _remap(path, host, sandbox)
        return path

    sys.path[:] = [remap(p) for p in sys.path if p != moves[0][0]]
    sys.path.insert(0, runtime_dir)
    for name in ("prefix", "base_prefix", "exec_prefix", "base_exec_prefix", "executable", "_base_executable"):
        if isinstance(getattr(sys, name, None), str):
            setattr(sys, name, remap(getattr(sys, name)))
    for module in list(sys.modules.values()):
        path = getattr(module, "__path__", None)
        if isinstance(path, list):
            path[:] = [remap(p) for p in path]
        if isinstance(getattr(module, "__file__", None), str):
            module.__file__ = remap(module.__file__)
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            if isinstance(spec.origin, str):
                spec.origin = remap(spec.origin)
            if isinstance(spec.submodule_search_locations, list):
                spec.submodule_search_locations[:] = [remap(p) for p in spec.submodule_search_locations]
    sys.path_importer_cache.clear()  # finders for the host's paths go; the sandbox's are made on first import


def _become_runtime(request: dict, output_fd: int, channel_fd: int) -> None:
    os.setsid()
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    if channel_fd >= 0:  # the Runtime API's socket pair: fd 3, as the environment says
        os.dup2(channel_fd, CHANNEL_FD)
    os.closerange(CHANNEL_FD if channel_fd < 0 else CHANNEL_FD + 1, 65536)
    _drop_privileges(request["uid"])
    os.chdir(request["cwd"])
    os.umask(0o022)
    os.environ.clear()
    os.environ.update(request["env"])
    if channel_fd >= 0:
        os.environ[CHANNEL_ENV] = str(CHANNEL_FD)
    else:
        os.environ.pop(CHANNEL_ENV, None)
    time.tzset()
    gc.enable()
    code = 0
    try:
        bootstrap.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _mount(source, target: str, fstype, flags: int, data) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), "mount " + target)


def _b(text):
    return None if text is None else text.encode()


def _make_point(path: str, like_dir: bool) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if like_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif not os.path.lexists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o444))


def _apply(op: list, root: str) -> None:
    """One operation of a mount plan (lamina/sandbox/rootfs.py), its path taken under `root`."""
    kind = op[0]
    path = root + (op[2] if kind in _SOURCED else op[1])
    if kind == "bind":
        _make_point(path, os.path.isdir(op[1]))
        _mount(op[1], path, None, MS_BIND | MS_REC, None)
        if op[3]:
            _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    elif kind == "dev":
        _make_point(path, False)
        _mount(op[1], path, None, MS_BIND, None)
        _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_NOSUID, None)
    elif kind == "tmpfs":
        _make_point(path, True)
        size = ",size=%d" % op[3] if op[3] else ""
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=%o%s" % (op[2], size))
    elif kind == "symlink":
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.symlink(op[1], path)
    elif kind == "dir":
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, op[2])
    elif kind == "mount":
        _make_point(path, True)
        _mount(op[1], path, op[3], MS_NOSUID | MS_NODEV, op[4] or None)
    elif kind == "devpts":
        _make_point(path, True)
        _mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    elif kind == "readonly":
        _mount("none", path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    else:
        raise OSError("unknown mount operation %r" % (kind,))


def _build_root(root: str, ops: list) -> None:
    """In a new mount namespace: execute a mount plan under `root`, then make it the namespace's root:
    pivot_root, the host's tree detached, the new root read-only."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare mnt")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # nothing made here propagates to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for op in ops:
        _apply(op, root)
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the host's tree")
    os.chdir("/")
    _mount("none", "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _syscall(number: int, what: str, *args) -> int:
    result = _libc.syscall(number, *args)
    if result < 0:
        raise _failed(what)
    return result


def _detached(op: list) -> int:
    """A host-sourced mount of the environment's own (its code, its layers, its /tmp volume), made on the
    host but attached to nothing yet: an fd that move_mount puts in place inside the sandbox."""
    if op[0] == "bind":
        fd = _syscall(SYS_OPEN_TREE, "open_tree " + op[1], AT_FDCWD, op[1].encode(),
                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
        attrs = _MountAttr(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (MOUNT_ATTR_RDONLY if op[3] else 0), 0, 0, 0)
        _syscall(SYS_MOUNT_SETATTR, "mount_setattr", fd, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                 ctypes.byref(attrs), ctypes.sizeof(attrs))
        return fd
    context = _syscall(SYS_FSOPEN, "fsopen " + op[3], op[3].encode(), FSOPEN_CLOEXEC)
    try:
        _syscall(SYS_FSCONFIG, "fsconfig source", context, FSCONFIG_SET_STRING, b"source", op[1].encode(), 0)
        for option in filter(None, op[4].split(",")):  # "flag" or "key=value", as mount -o takes them
            key, eq, value = option.partition("=")
            _syscall(SYS_FSCONFIG, "fsconfig " + option, context, FSCONFIG_SET_STRING if eq else FSCONFIG_SET_FLAG,
                     key.encode(), value.encode() if eq else None, 0)
        _syscall(SYS_FSCONFIG, "mount " + op[1], context, FSCONFIG_CMD_CREATE, None, None, 0)
        return _syscall(SYS_FSMOUNT, "fsmount", context, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
    finally:
        os.close(context)


def _enter_template(template_fd: int, ops: list) -> None:
    """Take a private copy of the runtime's template mount namespace (everything environments share,
    built once by a keeper process) and add this environment's own mounts to it."""
    moves = [(_detached(op), op[2]) for op in ops if op[0] == "bind" or op[0] == "mount"]
    _setns(template_fd, CLONE_NEWNS, "mnt")  # root and cwd become the template's
    _check(_libc.unshare(CLONE_NEWNS), "unshare mnt")
    for fd, path in moves:
        _syscall(SYS_MOVE_MOUNT, "move_mount " + path, fd, b"", AT_FDCWD, path.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        os.close(fd)
    for op in ops:
        if op[0] != "bind" and op[0] != "mount":
            _apply(op, "")
    os.chdir("/")


def _new_mount_api() -> bool:
    """Does this kernel have fsopen/open_tree/move_mount/mount_setattr (5.12+)?"""
    try:
        os.close(_syscall(SYS_FSOPEN, "fsopen", b"tmpfs", FSOPEN_CLOEXEC))
        attrs = _MountAttr(0, 0, 0, 0)
        _syscall(SYS_MOUNT_SETATTR, "mount_setattr", -1, b"", AT_EMPTY_PATH, ctypes.byref(attrs), ctypes.sizeof(attrs))
    except OSError as e:
        return e.errno == 9  # EBADF: the call exists (and refused the bad fd)
    return True


def _close_all_but(keep: tuple) -> None:
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


class Template:
    """The template mount namespace of this zygote's runtime (the plan is the same for all its
    environments), built on first use by a keeper process that then waits for the zygote to end."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.usable = _new_mount_api()
        self._fd = -1
        self._alive_r, self._alive_w = os.pipe()  # the keeper exits when the zygote does (EOF)

    def fd(self, ops: list) -> int:
        if self._fd < 0:
            self._fd = self._build(ops)
        return self._fd

    def _build(self, ops: list) -> int:
        ready_r, ready_w = os.pipe()
        keeper = os.fork()
        if keeper == 0:
            code = 0
            try:
                _close_all_but((ready_w, self._alive_r))  # not the fds of the request being served
                _build_root(self.root, ops)
                os.write(ready_w, b"1")
                os.close(ready_w)
                os.read(self._alive_r, 1)
            except BaseException as e:
                os.write(2, ("lamina zygote: cannot build the template: %s\n" % e).encode())
                code = 1
            os._exit(code)
        os.close(ready_w)
        ok = os.read(ready_r, 1) == b"1"
        os.close(ready_r)
        if not ok:
            raise OSError("the template mount namespace could not be built")
        return os.open("/proc/%d/ns/mnt" % keeper, os.O_RDONLY)


def _clone_into_namespaces() -> int:
    """fork(), with the child in new ipc, uts and pid namespaces (it is pid 1 of its own): the clone
    syscall with fork's semantics, after CPython's before-fork hooks. The child (the environment's init)
    does NOT run the after-fork ones: they re-make `threading`'s and `logging`'s locks and state in
    Python, ~240 copy-on-write faults and ~0.6 ms here, for a process that runs no thread, no logging
    and no import, and soon execs lamina-init. It is left as the hooks found it (the import and runtime
    locks held by its only thread, which is the one that took them) and makes the runtime with
    _fork_runtime, whose child runs them all, so the runtime's interpreter is exactly as after os.fork."""
    _python.PyOS_BeforeFork()
    pid = _python.syscall(SYS_CLONE, CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        return 0
    error = _failed("clone") if pid < 0 else None  # its errno, before the hooks run more calls
    _python.PyOS_AfterFork_Parent()
    if error is not None:
        raise error
    return pid


def _fork_runtime() -> int:
    """fork() for the init, which must not run the before-fork hooks again (on 3.12+ they take a runtime
    lock it still holds): the syscall, then in the child every after-fork hook (locks re-made, `random`
    re-seeded, `threading` told which thread it is)."""
    pid = _python.syscall(SYS_CLONE, signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        _python.PyOS_AfterFork_Child()
        return 0
    if pid < 0:
        raise _failed("fork")
    return pid


def _exec_init(status_fd: int, lifeline_fd: int, runtime: int) -> None:
    """Become lamina-init, which reaps and reports exactly as the loop in _sandbox does: pid 1 then holds
    ~100 KB instead of this process's copy of the zygote (its private pages go with the exec)."""
    try:
        os.set_inheritable(status_fd, True)
        os.set_inheritable(lifeline_fd, True)
        os.execve(INIT_FD, ["lamina-init", str(status_fd), str(lifeline_fd), str(runtime)], {})
    except OSError:
        pass


def _sandbox(request: dict, output_fd: int, channel_fd: int, status_fd: int, lifeline_fd: int,
             template_fd: int) -> None:
    """The environment's init, pid 1 of its pid namespace: makes its file-system view and joins its
    cgroups, starts the runtime, reaps orphans, and when the runtime ends reports how and exits (which
    ends every process left in the namespace). If lamina goes away (the lifeline closes), so does it."""
    _close_all_but((output_fd, channel_fd, status_fd, lifeline_fd, template_fd, INIT_FD))  # not the zygote's socket or keeper pipe
    if request.get("netns"):
        net = os.open(request["netns"], os.O_RDONLY)
        _setns(net, CLONE_NEWNET, "net")
        os.close(net)
    for path in request["cgroup_procs"]:  # "0": the writer; whatever it forks from now on is inside too
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    if template_fd >= 0:
        _enter_template(template_fd, request["mounts"])
        os.close(template_fd)
    else:
        _build_root(request["root"], request["template"] + request["mounts"])
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    for name in ("sys", "sysrq-trigger", "irq", "bus"):  # the kernel's knobs read-only, as bubblewrap does
        path = "/proc/" + name
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC, None)
            _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    runtime = _fork_runtime()
    if runtime == 0:
        _run_runtime(request, output_fd, channel_fd, status_fd)
    os.close(output_fd)
    if channel_fd >= 0:  # the runtime's alone: lamina hears EOF when it ends
        os.close(channel_fd)
    if INIT_FD >= 0:
        _exec_init(status_fd, lifeline_fd, runtime)  # returns only if it could not: then the loop below
    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    poller.register(lifeline_fd, select.POLLIN)  # readable only at EOF: lamina is gone
    while True:
        while True:  # reap whatever has ended: the runtime, or orphans it left
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(125)
            if pid == 0:
                break
            if pid == runtime:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                os.write(status_fd, b"%d\n" % code)
                os._exit(0)
        for fd, _ in poller.poll():
            if fd == lifeline_fd:
                os._exit(0)
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass


class _Plan(ctypes.Structure):
    """spawn.c's struct lamina_plan."""
    _fields_ = [("output_fd", ctypes.c_int), ("channel_fd", ctypes.c_int), ("status_fd", ctypes.c_int),
                ("lifeline_fd", ctypes.c_int), ("template_fd", ctypes.c_int), ("init_fd", ctypes.c_int),
                ("netns", ctypes.c_char_p), ("cgroup_procs", ctypes.POINTER(ctypes.c_char_p)),
                ("ops", ctypes.POINTER(ctypes.c_char_p))]


def _strings(values: list) -> ctypes.Array:
    """A NULL-ended array of C strings (the array keeps the bytes alive)."""
    return (ctypes.c_char_p * (len(values) + 1))(*[v.encode() for v in values], None)


def _op_fields(op: list) -> list:
    """One operation of the environment's own mounts as spawn.c reads it: five strings."""
    kind = op[0]
    if kind == "bind":
        return ["bind", op[1], op[2], "ro" if op[3] else "", ""]
    if kind == "mount":
        return ["mount", op[1], op[2], op[3], op[4] or ""]
    if kind == "devpts":
        return ["devpts", op[1], "", "", ""]
    if kind == "tmpfs":
        return ["tmpfs", op[1], "%o" % op[2], str(op[3]) if op[3] else "", ""]
    raise OSError("unknown mount operation %r" % (kind,))


def _spawn(request: dict, output_fd: int, channel_fd: int, status_fd: int, lifeline_fd: int, template_fd: int) -> int:
    """The environment made by spawn.c: returns the init's pid here, and 0 in the runtime (a copy of this
    process, inside the sandbox), as a fork would. Raises OSError when the init cannot be cloned."""
    try:
        ops = [field for op in request["mounts"] for field in _op_fields(op)]
        procs, fields = _strings(request["cgroup_procs"]), _strings(ops)
        plan = _Plan(output_fd, channel_fd, status_fd, lifeline_fd, template_fd, INIT_FD,
                     (request.get("netns") or "").encode(), procs, fields)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a malformed request fails its environment only
        raise OSError("bad request: %r" % (e,)) from None
    _python.PyOS_BeforeFork()
    pid = SPAWN.lamina_spawn(ctypes.byref(plan))
    if pid == 0:
        _python.PyOS_AfterFork_Child()
        return 0
    error = _failed("clone") if pid < 0 else None
    _python.PyOS_AfterFork_Parent()
    if error is not None:
        raise error
    return pid


def _run_runtime(request: dict, output_fd: int, channel_fd: int, status_fd: int = -1) -> None:
    """A runtime just forked (by the Python init, or by spawn.c's): reset what the zygote and the init set
    for themselves (the init's status pipe, its wake-up fd, SIGCHLD), then run the client. Never returns."""
    try:
        if status_fd >= 0:
            os.close(status_fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _become_runtime(request, output_fd, channel_fd)
    except BaseException as e:
        try:
            os.write(output_fd, ("lamina zygote: cannot start the runtime: %s\n" % e).encode())
        finally:
            os._exit(126)


def serve(sock: socket.socket, lifeline_fd: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # environments' inits are reaped by the kernel
    gc.freeze()  # what is loaded now stays out of every runtime's collections, so its pages stay shared
    template = None
    template_ops = None  # the plan of the template: sent with the first request only
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        if not message:
            return  # lamina closed its end: stop (the environments forked so far live on)
        try:
            request = json.loads(message)
            output_fd, status_fd, channel_fd = (fds + [-1])[:3]
            if "template" in request:
                template_ops = request["template"]
            else:
                request["template"] = template_ops
        except (ValueError, TypeError):
            for fd in fds:
                os.close(fd)
            continue
        if template is None:
            template = Template(request["root"])
        template_fd = -1
        if template.usable:
            try:
                template_fd = template.fd(request["template"])
            except OSError as e:  # each environment builds its whole view instead
                os.write(output_fd, ("lamina zygote: no template mount namespace: %s\n" % e).encode())
                template.usable = False
        spawned = SPAWN is not None and template_fd >= 0 and INIT_FD >= 0
        try:
            pid = _spawn(request, output_fd, channel_fd, status_fd, lifeline_fd, template_fd) if spawned \
                else _clone_into_namespaces()
        except OSError as e:
            os.write(output_fd, ("lamina zygote: cannot make the sandbox: %s\n" % e).encode())
            os.write(status_fd, b"126\n")
            pid = -1
        if pid == 0 and spawned:
            _run_runtime(request, output_fd, channel_fd)
        if pid == 0:
            try:
                sock.close()
                _sandbox(request, output_fd, channel_fd, status_fd, lifeline_fd, template_fd)
            except BaseException as e:
                try:
                    os.write(output_fd, ("lamina zygote: cannot make the sandbox: %s\n" % e).encode())
                    os.write(status_fd, b"126\n")
                finally:
                    os._exit(126)
        if pid > 0 and not spawned:
            os.write(status_fd, b"+")  # made: from now on the environment's own end is what lamina will hear
        os.close(output_fd)
        os.close(status_fd)
        if channel_fd >= 0:
            os.close(channel_fd)


def main() -> None:
    """argv: [1] lamina's socket, [2] the lifeline, [3:6] the runtime, language and interpreter directories,
    [6] lamina-init, [7] liblamina-spawn.so. lamina starts this module by importing it (LAUNCH in
    lamina/sandbox/zygote.py), so that it and bootstrap are read from the bytecode lamina had compiled."""
    global INIT_FD, SPAWN
    __import__("array")  # socket.recv_fds imports it on first use: after the remap it could not
    for codec in ("ascii", "latin-1", "utf-8"):  # nor could open() or str.encode find these on the host
        __import__("codecs").lookup(codec)
    if len(sys.argv) > 6 and sys.argv[6]:
        INIT_FD = os.open(sys.argv[6], os.O_RDONLY | os.O_CLOEXEC)  # before the paths stop being the host's
    if len(sys.argv) > 7 and sys.argv[7]:
        try:
            SPAWN = ctypes.PyDLL(sys.argv[7], use_errno=True)  # the GIL held across the call, as for clone
            SPAWN.lamina_spawn.restype = ctypes.c_long
            SPAWN.lamina_spawn.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError) as e:
            os.write(2, ("lamina zygote: %s: %s (the init stays Python)\n" % (sys.argv[7], e)).encode())
            SPAWN = None
    sock, lifeline = socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2])
    _as_the_sandbox_shows_it(*sys.argv[3:6])
    sys.argv[:] = [sys.argv[3] + "/bootstrap.py"]  # what the runtimes see, as exec'd ones do (no host paths)
    _empty_bounding_set()
    serve(sock, lifeline)


if __name__ == "__main__":
    main()

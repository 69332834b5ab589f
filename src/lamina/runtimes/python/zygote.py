"""A fork server for Python environments: the interpreter and the runtime client are loaded once per
Python version, and each environment's runtime is a fork of this process that moves into that
environment's sandbox before it runs any function code.

lamina starts it as ``<python> -S -B zygote.py FD`` (root, on the host; FD a SOCK_SEQPACKET socket to the
server). Each request is one JSON message with two file descriptors (the environment's output pipe and
the write end of its status pipe) and names the sandbox by the host pid of a process already inside it
(the "holder", which bubblewrap started in place of the runtime). For each request:

  zygote ──fork──▶ middle: setns(ipc, uts, net, pid) into the sandbox's namespaces (pid applies to its children)
                    ──fork──▶ runtime: setns(mnt) (root and cwd become the sandbox's), waits until the
                                middle has put it into the environment's cgroups, drops to the
                                environment's uid with no capabilities, an empty bounding set and
                                no_new_privs, takes the environment's stdio and variables, then runs
                                bootstrap.main() exactly as an exec'd runtime would
                    middle: waits for the runtime and writes its exit status (negative: a signal) to
                            the status pipe, which the holder turns into its own exit: the sandbox's
                            process ends as the runtime did, and lamina sees it as before.

What the runtime saves: the interpreter start and the runtime client's imports (~25 ms of CPU each time).
Nothing of a function is ever loaded here: the handler is imported in the forked runtime, in its init
phase, as on Lambda. stdlib only; Python 3.9–3.13.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import time

import bootstrap  # the runtime client and everything it imports, paid for once

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
LAST_CAP = 63

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))


def _setns(fd: int, kind: int, what: str) -> None:
    _check(_libc.setns(fd, kind), "setns " + what)


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    for cap in range(LAST_CAP + 1):  # an empty bounding set (needs CAP_SETPCAP: before the uid changes)
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            _check(-1, "PR_CAPBSET_DROP")
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted, effective and ambient sets cleared
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    with open("/proc/self/status", "rb") as f:
        status = f.read().decode("latin-1")
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


def _as_the_sandbox_shows_it(request: dict) -> None:
    """Paths this process learnt on the host, as the sandbox shows them: the interpreter's tree is bound at
    /var/lang there, and this directory (bootstrap.py) at /var/runtime. Packages already imported keep
    importing their submodules lazily (encodings.idna, email.*), so their __path__ must follow."""
    moves = [(os.path.dirname(os.path.abspath(bootstrap.__file__)), request["runtime_dir"])]
    if request.get("lang_root"):
        moves.append((request["lang_root"], request["lang_dir"]))

    def remap(path: str) -> str:
        for host, sandbox in moves:
            path = _remap(path, host, sandbox)
        return path

    sys.path[:] = [remap(p) for p in sys.path if p != moves[0][0]]
    sys.path.insert(0, request["runtime_dir"])
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
    sys.path_importer_cache.clear()
    import importlib
    importlib.invalidate_caches()


def _become_runtime(request: dict, output_fd: int) -> None:
    _as_the_sandbox_shows_it(request)  # first: anything below may import a module lazily
    os.setsid()
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.closerange(3, 65536)
    _drop_privileges(request["uid"])
    os.chdir(request["cwd"])
    os.umask(0o022)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
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


def _middle(request: dict, output_fd: int, status_fd: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    holder = request["holder"]
    ns = {name: os.open("/proc/%d/ns/%s" % (holder, name), os.O_RDONLY) for name in ("ipc", "uts", "net", "pid", "mnt")}
    _setns(ns["ipc"], CLONE_NEWIPC, "ipc")
    _setns(ns["uts"], CLONE_NEWUTS, "uts")
    _setns(ns["net"], CLONE_NEWNET, "net")
    _setns(ns["pid"], CLONE_NEWPID, "pid")
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(go_w)
            os.close(status_fd)
            _setns(ns["mnt"], CLONE_NEWNS, "mnt")
            for fd in ns.values():
                os.close(fd)
            if os.read(go_r, 1) != b"1":  # the middle could not put us into the cgroups
                os._exit(126)
            os.close(go_r)
            _become_runtime(request, output_fd)
        except BaseException as e:
            try:
                os.write(output_fd, ("lamina zygote: cannot start the runtime: %s\n" % e).encode())
            finally:
                os._exit(126)
    os.close(go_r)
    os.close(output_fd)
    for fd in ns.values():
        os.close(fd)
    ok = b"1"
    try:
        for procs in request["cgroup_procs"]:
            with open(procs, "w") as f:
                f.write(str(child))
    except OSError:
        ok = b"0"
    os.write(go_w, ok)
    os.close(go_w)
    _, status = os.waitpid(child, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os.write(status_fd, b"%d\n" % code)
    os._exit(0)


def serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # middles are reaped by the kernel
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
        if not message:
            return  # lamina closed its end: stop
        try:
            request = json.loads(message)
            output_fd, status_fd = fds
        except (ValueError, TypeError):
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _middle(request, output_fd, status_fd)
            except BaseException as e:
                try:
                    os.write(status_fd, b"126\n")
                    os.write(output_fd, ("lamina zygote: %s\n" % e).encode())
                finally:
                    os._exit(126)
        os.close(output_fd)
        os.close(status_fd)


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))

"""Python runtimes forked from a zygote into their sandboxes (LAMINA_ZYGOTE=1, the default): each forked
runtime is as confined as an exec'd one, sees only sandbox paths, and ends the way lamina expects."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

import pytest

from lamina.runtimes import registry
from lamina.sandbox.zygote import init_binary, spawn_library
from tests.conftest import make_zip
from tests.integration.conftest import serving

ROLE = "arn:aws:iam::000000000000:role/x"
APP = '''
import os, random, sys

def _sockets():
    import socket
    found = []
    for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        try:
            if os.readlink("/proc/self/fd/%d" % fd).startswith("socket:"):
                sock = socket.socket(fileno=os.dup(fd))
                found.append([fd, int(sock.family), os.get_inheritable(fd)])
                sock.close()
        except OSError:
            pass
    return found

def probe(event, context):
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    import email.utils, encodings.idna  # lazy stdlib imports resolve inside the sandbox
    with open("/tmp/probe", "w") as f:
        f.write("ok")
    return {"ppid": os.getppid(), "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
            "no_new_privs": status["NoNewPrivs"].strip(), "executable": sys.executable,
            "paths": sys.path + [m.__file__ for m in (os, email.utils) if getattr(m, "__file__", None)],
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "init": open("/proc/1/cmdline").read(), "mounts": open("/proc/self/mountinfo").read(),
            "cgroup": open("/proc/self/cgroup").read(), "random": random.random(), "cwd": os.getcwd(),
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")), "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "sockets": _sockets(), "channel_env": [k for k in os.environ if "LAMINA" in k],
            "init_caps": [line.split()[1] for line in open("/proc/1/status") if line.startswith(("CapPrm", "CapEff"))],
            "init_faults": int(open("/proc/1/stat").read().rsplit(")", 1)[1].split()[7]), "argv": sys.argv,
            "prefix": sys.prefix, "version": sys.version}

def threads(event, context):
    import concurrent.futures, logging, subprocess, threading
    seen = []
    worker = threading.Thread(target=lambda: seen.append(threading.current_thread().name), name="worker")
    worker.start()
    worker.join()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        squares = list(pool.map(lambda x: x * x, range(4)))
    logging.getLogger().warning("from a handler with threads")
    child = subprocess.run([sys.executable, "-c", "print('child')"], capture_output=True, text=True, timeout=10)
    return {"seen": seen, "squares": squares, "child": child.stdout.strip(),
            "main": threading.main_thread() is threading.current_thread(), "count": threading.active_count()}

def nap(event, context):
    import time
    time.sleep(120)

def crash(event, context):
    os._exit(3)

def killed(event, context):
    os.kill(os.getpid(), 9)
'''


def _forked(body: dict) -> bool:
    """pid 1 of a forked environment: lamina-init exec'd in the zygote's clone, or that clone itself."""
    return body["init"].startswith("lamina-init") or "zygote.py" in body["init"]


def _fresh(lam, name: str, run: int, handler: str = "app.probe") -> dict:
    """Invoke `name` in a new environment (a configuration change retires the old one)."""
    lam.update_function_configuration(FunctionName=name, Handler=handler, Environment={"Variables": {"RUN": str(run)}})
    time.sleep(0.2)
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    return json.loads(out["Payload"].read())


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    with serving(tmp_path_factory, "zygote", {"LAMINA_PREWARM": "0"}) as server:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("the zygote needs the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        lam.create_function(FunctionName="z", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=10,
                            Code={"ZipFile": make_zip({"app.py": APP})})
        yield lam


def test_forked_runtimes_are_confined_like_exec_ones(forked):
    bodies = [_fresh(forked, "z", run) for run in range(6)]
    forked_ones = [b for b in bodies if _forked(b)]  # pid 1: the zygote's init, not bubblewrap
    assert forked_ones, "no environment came from the zygote: " + json.dumps(bodies[-1])
    for body in forked_ones:
        assert body["uid"] >= 990000 and body["gid"] == body["uid"] and body["groups"] == []
        assert set(body["caps"].values()) == {"0000000000000000"} and body["no_new_privs"] == "1"
        assert body["executable"].startswith("/var/lang/bin/python3")
        assert not [p for p in body["paths"] if p.startswith(("/root", "/work", "/home", "/usr/local"))]
        assert body["pids"] == [1, 2] and body["ppid"] == 1  # the environment's init, the runtime
        assert "env-" in body["cgroup"] and body["cwd"] == "/var/task" and body["name"] == "z"
        assert body["fds"][:3] == [0, 1, 2] and len(body["fds"]) <= 6, body["fds"]
        # the Runtime API over the socket pair lamina passed (fd 3), kept from the handler's children
        assert body["sockets"] == [[3, 1, False]] and body["channel_env"] == [], body
        assert body["argv"] == ["/var/runtime/bootstrap.py"], body["argv"]  # as an exec'd runtime's
    assert all(b["argv"] == ["/var/runtime/bootstrap.py"] for b in bodies if not _forked(b))
    assert len({b["random"] for b in bodies}) == len(bodies), "each environment has its own random state"
    if init_binary():  # built by make install (so in CI): pid 1 is it, not a copy of the zygote's Python
        assert all(b["init"].startswith("lamina-init\0") for b in forked_ones), forked_ones[0]["init"]
        # exec'd by root with an empty bounding set (the zygote's): it keeps no capability at all
        assert all(b["init_caps"] == ["0000000000000000"] * 2 for b in forked_ones), forked_ones[0]["init_caps"]
    if init_binary() and spawn_library():  # the init was spawn.c's code, not a copy of the zygote's Python:
        # a few dozen page faults (its exec), not the ~400 of a Python init's copy-on-write
        assert all(b["init_faults"] < 150 for b in forked_ones), [b["init_faults"] for b in forked_ones]


def test_without_the_spawn_library_a_python_init_makes_the_sandbox(tmp_path_factory):
    """LAMINA_SPAWN_LIBRARY="": the zygote's clone, a copy of its Python, makes the sandbox and execs lamina-init."""
    with serving(tmp_path_factory, "python-spawn", {"LAMINA_PREWARM": "0", "LAMINA_SPAWN_LIBRARY": ""}) as server:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("the zygote needs the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        lam.create_function(FunctionName="s", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=10,
                            Code={"ZipFile": make_zip({"app.py": APP})})
        for run in range(8):
            body = _fresh(lam, "s", run)
            if _forked(body):
                break
        assert _forked(body) and body["pids"] == [1, 2] and body["uid"] >= 990000, body["init"]
        if init_binary():
            assert body["init"].startswith("lamina-init\0") and body["init_faults"] > 150, body["init_faults"]
        body = _fresh(lam, "s", 20, "app.crash")
        assert body["errorType"] == "Runtime.ExitError" and body["errorMessage"].endswith("exit status 3")


def test_without_the_init_binary_the_python_init_does_its_work(tmp_path_factory):
    """LAMINA_INIT_BINARY="" (or no build/lamina-init): the zygote's clone stays pid 1 and reaps and reports."""
    with serving(tmp_path_factory, "python-init", {"LAMINA_PREWARM": "0", "LAMINA_INIT_BINARY": ""}) as server:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("the zygote needs the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        for version in ("3.11", "3.13"):  # the init runs Python without the after-fork hooks: old and new CPython
            name = "p" + version.replace(".", "")
            try:
                lam.create_function(FunctionName=name, Runtime=f"python{version}", Handler="app.probe", Role=ROLE,
                                    Timeout=10, Code={"ZipFile": make_zip({"app.py": APP})})
            except lam.exceptions.InvalidParameterValueException:
                continue  # not installed here
            for run in range(8):
                body = _fresh(lam, name, run)
                if _forked(body):
                    break
            assert "zygote.py" in body["init"] and body["pids"] == [1, 2], body["init"]
            body = _fresh(lam, name, 20, "app.crash")
            assert body["errorType"] == "Runtime.ExitError" and body["errorMessage"].endswith("exit status 3")
            body = _fresh(lam, name, 21, "app.killed")
            assert body["errorMessage"].endswith("signal: killed"), body


def test_a_forked_runtime_ends_as_it_exited(forked):
    for run in range(6, 12):  # until the zygote is up (it starts on first use)
        if _forked(_fresh(forked, "z", run)):
            break
    body = _fresh(forked, "z", 20, "app.crash")
    assert body["errorType"] == "Runtime.ExitError" and body["errorMessage"].endswith("exit status 3")
    body = _fresh(forked, "z", 21, "app.killed")
    assert body["errorType"] == "Runtime.ExitError" and body["errorMessage"].endswith("signal: killed")


def test_zygote_off_execs_every_runtime(tmp_path_factory):
    with serving(tmp_path_factory, "no-zygote", {"LAMINA_PREWARM": "0", "LAMINA_ZYGOTE": "0"}) as server:
        lam = server.client()
        lam.create_function(FunctionName="z", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=10,
                            Code={"ZipFile": make_zip({"app.py": APP})})
        bodies = [_fresh(lam, "z", run) for run in range(3)]
        assert all(body["ppid"] != 0 for body in bodies)
        for body in bodies:  # bubblewrap passes the socket pair on too (under lamina's number for it)
            assert [family for _, family, _ in body["sockets"]] == [1] and body["channel_env"] == [], body
            assert not body["sockets"][0][2]


def _is_zygote(process) -> bool:
    import psutil

    try:
        return "zygote.py" in " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie not reaped yet
        return False


def test_deploying_a_function_warms_its_runtime(tmp_path_factory):
    """CreateFunction starts the runtime's standby sandboxes and its zygote before any invocation, so a burst
    right after a deploy does not wait for either; the first invocation is served by a standby."""
    import urllib.request

    import psutil

    with serving(tmp_path_factory, "warm") as server:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("standby sandboxes need the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        lam.create_function(FunctionName="w", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=10,
                            Code={"ZipFile": make_zip({"app.py": APP})})
        deadline, metrics, zygotes = time.monotonic() + 30, "", []
        while time.monotonic() < deadline:
            metrics = urllib.request.urlopen(server.url + "/metrics").read().decode()
            zygotes = [p for p in psutil.Process(server.process.pid).children(recursive=True) if _is_zygote(p)]
            if 'lamina_environments{function="",state="standby"} 2' in metrics and zygotes:
                break
            time.sleep(0.1)
        assert 'lamina_environments{function="",state="standby"} 2' in metrics, metrics
        assert zygotes, "no zygote started at deploy"
        assert "lamina_invocations_total" not in metrics or 'function="w"' not in metrics.split(
            "lamina_invocations_total")[1].split("\n# ")[0], "nothing was invoked yet"
        out = lam.invoke(FunctionName="w", Payload=b"{}")
        assert "FunctionError" not in out and json.loads(out["Payload"].read())["name"] == "w"


def test_environments_end_when_lamina_is_killed(tmp_path_factory):
    """kill -9 of the server: an environment forked from a zygote goes with it (the lifeline), even one busy
    in a long invocation that is not talking to the Runtime API; a new start cleans up after it."""
    import threading
    from tests.integration.conftest import start_server, stop_server
    base = tmp_path_factory.mktemp("lifeline")
    server = start_server(base / "data", base / "server.log", {"LAMINA_PREWARM": "0"})
    try:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("the zygote needs the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        lam.create_function(FunctionName="z", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=300,
                            Code={"ZipFile": make_zip({"app.py": APP})})
        seen = [_fresh(lam, "z", run) for run in range(4)]  # the zygote starts on first use
        uids = {body["uid"] for body in seen}
        lam.update_function_configuration(FunctionName="z", Handler="app.nap")
        time.sleep(0.2)
        threading.Thread(target=lambda: _ignore(lambda: lam.invoke(FunctionName="z", Payload=b"{}")), daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (napping := _napping(uids)):
            time.sleep(0.05)
        assert napping, "the long invocation did not start"
        with open(f"/proc/{_parent(napping[0])}/cmdline") as f:
            assert _forked({"init": f.read()}), "the napping environment should come from the zygote"
    finally:
        server.process.kill()
        server.process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{napping[0]}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{napping[0]}"), "an environment outlived a killed lamina"
    again = start_server(base / "data", base / "server.log", {"LAMINA_PREWARM": "0"})
    assert stop_server(again) == 0


def _ignore(call) -> None:
    try:
        call()
    except Exception:
        pass


def _napping(known_uids: set[int]) -> list[int]:
    """Runtimes of a new environment (a uid not seen before) asleep in the handler."""
    found = []
    for pid, uid in _processes():
        if uid >= 990000 and uid not in known_uids:
            try:
                with open(f"/proc/{pid}/wchan") as f:
                    if "nanosleep" in f.read():
                        found.append(pid)
            except OSError:
                continue
    return found


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("PPid:"))


def _processes() -> list[tuple[int, int]]:
    """(pid, real uid) of every process on the host."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status") as f:
                    uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            found.append((int(pid), uid))
    return found


def test_python_is_laid_out_as_on_lambda_exec_d_or_forked(forked):
    """/var/lang/bin/python3.11 with its prefix /var/lang, whether the interpreter is a version manager's
    tree or the distribution's (PGO) python3.11 copied into build/lang by `make install`; in the latter
    case it is the interpreter lamina itself runs on."""
    bodies = [_fresh(forked, "z", 100 + run) for run in range(4)]
    for body in bodies:
        assert body["executable"] == "/var/lang/bin/python3.11" and body["prefix"] == "/var/lang", body["paths"]
        assert all(p.startswith(("/var/lang/lib/python3", "/var/runtime", "/var/task", "/opt"))
                   for p in body["paths"] if p), body["paths"]
    if sys.version_info[:2] == (3, 11) and sys.base_prefix == "/usr" and registry.distribution_tree("3.11"):
        assert {b["version"] for b in bodies} == {sys.version}


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_every_python_version_gets_its_environments_from_a_zygote(forked, version):
    """A zygote that cannot run on some version would only show as exec'd environments: check each."""
    name = "v" + version.replace(".", "")
    try:
        forked.create_function(FunctionName=name, Runtime=f"python{version}", Handler="app.probe", Role=ROLE,
                               Timeout=10, Code={"ZipFile": make_zip({"app.py": APP})})
    except forked.exceptions.InvalidParameterValueException as err:
        pytest.skip(str(err))
    bodies = []
    for run in range(8):
        bodies.append(_fresh(forked, name, run))
        if _forked(bodies[-1]):
            break
    assert _forked(bodies[-1]), bodies[-1]
    assert bodies[-1]["executable"].startswith(f"/var/lang/bin/python{version}")
    # the runtime's interpreter is as after os.fork: threads, executors, logging and subprocesses work
    forked.update_function_configuration(FunctionName=name, Handler="app.threads")
    time.sleep(0.2)
    out = forked.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    body = json.loads(out["Payload"].read())
    assert body == {"seen": ["worker"], "squares": [0, 1, 4, 9], "child": "child", "main": True, "count": 1}, body
    assert "from a handler with threads" in base64.b64decode(out["LogResult"]).decode()


def test_standbys_are_made_the_size_of_the_function_that_took_the_last_one(tmp_path_factory):
    """A function of 1024 MB takes standby sandboxes: the ones started after it are made 1024 MB, so the next
    hand-over (a burst) changes no cgroup limit on the event loop."""
    with serving(tmp_path_factory, "standby-size", {"LAMINA_PREWARM": "2"}) as server:
        if "sandbox: bwrap" not in server.output():
            pytest.skip("standby sandboxes need the isolated sandbox (root, bubblewrap, cgroups)")
        lam = server.client()
        lam.create_function(FunctionName="m", Runtime="python3.11", Handler="app.probe", Role=ROLE, Timeout=10,
                            MemorySize=1024, Code={"ZipFile": make_zip({"app.py": APP})})
        bodies = [_fresh(lam, "m", run) for run in range(4)]  # the first standbys (128 MB) are used up
        line = next(line for line in bodies[-1]["cgroup"].splitlines() if ":memory:" in line)
        parent = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].strip("/").rsplit("/", 1)[0]
        deadline, limits = time.monotonic() + 10, {}
        while time.monotonic() < deadline:
            limits = {d.name: int((d / "memory.limit_in_bytes").read_text()) for d in parent.glob("env-*")}
            if sum(v == 1024 << 20 for v in limits.values()) >= 2:
                break
            time.sleep(0.1)
        # the function's environment and the standby made after it; standbys are taken last-made first, so
        # one made before the function (128 MB) may still wait
        assert sum(v == 1024 << 20 for v in limits.values()) >= 2, limits


def _python_zygote(tmp_path):  # type: ignore[no-untyped-def]
    """(Zygotes, the first Python runtime's zygote, up): a zygote of its own, outside any server (one lane:
    the other lanes' failover is tests/unit/test_zygote_lanes.py's)."""
    from lamina.runtimes.registry import RuntimeRegistry
    from lamina.sandbox.bwrap import LAYOUT
    from lamina.sandbox.zygote import Zygotes

    if os.geteuid() != 0:
        pytest.skip("zygotes make their sandboxes as root")
    runtime = next(r for r in RuntimeRegistry.discover().all() if r.family == "python")
    zygotes = Zygotes(tmp_path / "root", LAYOUT, lanes=1)
    deadline, zygote = time.monotonic() + 30, None
    while zygote is None and time.monotonic() < deadline:
        zygote = zygotes.get(runtime)  # started in the background on first use; one hand-over pending
        time.sleep(0.05)
    assert zygote is not None and zygote.alive
    return zygotes, runtime, zygote


def test_a_stuck_zygote_is_killed_not_waited_for(tmp_path):
    """Requests are handed to a zygote on the event loop: one that stops reading them is killed once its
    socket has stayed full for SEND_TIMEOUT_S (the spawn then execs, and the next request starts another
    zygote), instead of holding the loop for good. Before: the loop waited in sendmsg for ever."""
    import signal as signals

    zygotes, runtime, zygote = _python_zygote(tmp_path)
    try:
        os.kill(zygote._proc.pid, signals.SIGSTOP)  # it reads nothing more
        zygote._sock.settimeout(1.0)  # SEND_TIMEOUT_S, shortened for the test
        request = {"env": {"FILLER": "x" * 1_000}}
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            for _ in range(100):  # the socket takes ten (net.unix.max_dgram_qlen), then waits
                read_end, write_end = os.pipe()
                try:
                    os.close(zygote.fork(request, [], write_end, None, lambda: None).exit_fd)
                finally:
                    os.close(read_end)
                    os.close(write_end)
        assert time.monotonic() - started < 3
        assert not zygote.alive  # killed: Zygotes.get starts another
        assert zygotes.get(runtime) is None
    finally:
        zygotes.close()


def test_the_last_hand_over_of_a_retired_zygote_does_not_wait_for_its_exit(tmp_path):
    """`Zygote.fork` runs on the event loop and releases its hand-over there: when that is the last one of a
    retired zygote, the zygote is closed — and closing waits for its exit. That wait is a thread's, not
    the caller's (it held the loop ~200 ms in a burst)."""
    import signal as signals

    zygotes, _, zygote = _python_zygote(tmp_path)
    try:
        os.kill(zygote._proc.pid, signals.SIGSTOP)  # it will not see its socket close: close() waits 2 s
        zygote.retire()
        assert zygote.alive  # a hand-over is pending
        started = time.monotonic()
        zygote.release()
        assert time.monotonic() - started < 0.5
        deadline = time.monotonic() + 10
        while zygote._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert zygote._proc.returncode is not None  # waited for, then killed, by the closing thread
    finally:
        zygotes.close()


def test_the_zygote_and_the_client_are_read_from_bytecode(tmp_path):
    """A zygote imports zygote.py and bootstrap.py as it starts (every 64 environments): lamina compiles both
    once for each interpreter, beside them, instead of the zygote compiling them each time (~20 ms of CPU)."""
    import subprocess

    from lamina.runtimes.registry import RuntimeRegistry
    from lamina.sandbox import zygote as zygotes

    runtime = next(r for r in RuntimeRegistry.discover().all() if r.family == "python")
    tag = subprocess.run([str(runtime.interpreter), "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    cache = zygotes.ZYGOTE_PY.parent / "__pycache__"
    compiled = [cache / f"zygote.{tag}.pyc", cache / f"bootstrap.{tag}.pyc"]
    for path in compiled:
        path.unlink(missing_ok=True)
    zygotes._compiled.discard(str(runtime.interpreter))
    zygotes.compile_client(runtime)
    if not os.access(cache.parent, os.W_OK):
        pytest.skip("lamina's runtime directory is not writable here")
    assert all(path.is_file() for path in compiled), sorted(os.listdir(cache))
    launched = subprocess.run([str(runtime.interpreter), "-S", "-B", "-c",
                               zygotes.LAUNCH.replace("zygote.main()", "print(zygote.__cached__, bootstrap.__cached__)")
                               .replace("import zygote;", "import zygote, bootstrap;"), str(zygotes.ZYGOTE_PY)],
                              capture_output=True, text=True, check=True).stdout.split()
    assert launched == [str(path) for path in compiled]

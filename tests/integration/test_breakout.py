"""Functions that try to break out of their sandbox, each through boto3 against a running server.

After every attempt the server must still be healthy and other functions must still run. These need
the isolated driver (root + bubblewrap + cgroups), which CI has; elsewhere they are skipped.
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"

APP = r'''
import errno, json, os, subprocess, time

def shadow(event, context):
    try:
        return open("/etc/shadow").read()[:10]
    except OSError as e:
        return "denied: " + e.strerror

def write_secret(event, context):
    open("/tmp/secret-" + event["tag"], "w").write("s3cr3t")
    return os.listdir("/tmp")

def look_around(event, context):
    found = {}
    for path in event["paths"]:
        try:
            found[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()[:50]
        except OSError as e:
            found[path] = "error: " + (e.strerror or str(e))
    found["tmp"] = os.listdir("/tmp")
    return found

def signal_host(event, context):
    try:
        os.kill(event["pid"], 0)
        return "reachable"
    except ProcessLookupError:
        return "no such process"
    except PermissionError:
        return "not permitted"

def hog_memory(event, context):
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))

def spin(event, context):
    start_wall, start_cpu = time.time(), time.process_time()
    while time.time() - start_wall < event["seconds"]:
        pass
    return time.process_time() - start_cpu

def fork_bomb(event, context):
    children = []
    try:
        for _ in range(5000):
            children.append(subprocess.Popen(["sleep", "30"]))
    except OSError as e:
        outcome = "stopped: " + (e.strerror or type(e).__name__)
    else:
        outcome = "not stopped"
    for child in children:
        child.kill()
    for child in children:
        child.wait()
    return {"started": len(children), "outcome": outcome}

def fill_tmp(event, context):
    with open("/proc/self/mounts") as f:
        tmp = [line.split()[3].split(",") for line in f if line.split()[1] == "/tmp"][-1]
    written = 0
    chunk = b"x" * (4 * 1024 * 1024)
    try:
        with open("/tmp/fill", "wb") as f:
            while written < 2 * 1024 * 1024 * 1024:
                f.write(chunk)
                f.flush()
                written += len(chunk)
        return {"written_mb": written // (1024 * 1024), "error": None, "options": tmp}
    except OSError as e:
        return {"written_mb": written // (1024 * 1024), "error": errno.errorcode.get(e.errno), "options": tmp}
    finally:
        try:
            os.remove("/tmp/fill")
        except OSError:
            pass

def leave_child(event, context):
    child = subprocess.Popen(["sleep", event["marker"]], start_new_session=True)
    return child.pid

def hello(event, context):
    return "still here"
'''


@pytest.fixture(scope="module")
def isolated(server):
    if "sandbox: bwrap" not in server.output():
        pytest.skip("the isolated driver is not available here (needs root and bubblewrap)")
    if "NOT enforced: memory limit" in server.output():
        pytest.skip("cgroups are not available here")


def fn(lam, name, handler, **kw):
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler=f"app.{handler}", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": APP})}, **kw)
    return name


def call(lam, name, payload=None):
    out = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}), LogType="Tail")
    return out, json.loads(out["Payload"].read())


@pytest.fixture
def healthy(lam, fname, isolated):
    """After the attempt, the server answers and another function still runs."""
    yield
    other = fn(lam, fname + "-other", "hello")
    assert call(lam, other)[1] == "still here"
    assert lam.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_cannot_read_etc_shadow(lam, fname, healthy):
    _, body = call(lam, fn(lam, fname, "shadow"))
    assert body.startswith("denied") or body.startswith("error"), body


def test_cannot_see_other_functions_code_tmp_or_the_data_directory(lam, server, fname, healthy):
    a = fn(lam, fname + "-a", "write_secret")
    assert "secret-a" in call(lam, a, {"tag": "a"})[1]
    b = fn(lam, fname + "-b", "look_around")
    data = str(server.data_dir.resolve())
    _, seen = call(lam, b, {"paths": [data, data + "/code", data + "/lamina.db", "/var/task"]})
    assert "secret-a" not in json.dumps(seen["tmp"])
    assert seen[data].startswith("error") and seen[data + "/lamina.db"].startswith("error")
    assert seen["/var/task"] == ["app.py"] or "app.py" in seen["/var/task"]


def test_cannot_see_or_signal_host_processes(lam, server, fname, healthy):
    _, result = call(lam, fn(lam, fname, "signal_host"), {"pid": server.process.pid})
    assert result in ("no such process", "not permitted")


def test_memory_limit_kills_with_runtime_exit_error_and_the_next_invoke_works(lam, fname, healthy):
    name = fn(lam, fname, "hog_memory", MemorySize=128, Timeout=30)
    out, body = call(lam, name)
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: signal: killed")
    report = [line for line in base64.b64decode(out["LogResult"]).decode().splitlines() if "REPORT" in line][0]
    assert "Error Type: Runtime.OutOfMemory" in report
    used = int(report.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 100 <= used <= 130, report
    lam.update_function_configuration(FunctionName=name, Handler="app.hello")
    assert call(lam, name)[1] == "still here"


def test_cpu_share_follows_memory_size(lam, fname, healthy):
    small = fn(lam, fname + "-128", "spin", MemorySize=128, Timeout=10)
    full = fn(lam, fname + "-1769", "spin", MemorySize=1769, Timeout=10)
    call(lam, small, {"seconds": 0.01})  # warm both: init runs at full speed, on purpose
    call(lam, full, {"seconds": 0.01})
    cpu_small = call(lam, small, {"seconds": 1.0})[1]
    cpu_full = call(lam, full, {"seconds": 1.0})[1]
    assert cpu_small < 0.2, cpu_small  # 128 / 1769 = 0.072 of a core
    assert cpu_full > 0.4, cpu_full  # one core (the test host has two, shared)


def test_fork_bomb_stays_inside(lam, fname, healthy):
    out, body = call(lam, fn(lam, fname, "fork_bomb", MemorySize=1024, Timeout=60))
    assert "outcome" in body, (body, base64.b64decode(out["LogResult"]).decode())
    assert body["outcome"].startswith("stopped"), body
    assert body["started"] < 1024


def test_filling_tmp_gets_enospc(lam, fname, healthy):
    _, body = call(lam, fn(lam, fname, "fill_tmp", MemorySize=128, Timeout=60))
    assert body["error"] == "ENOSPC", body
    assert 500 <= body["written_mb"] <= 560, body
    # scratch space: no cache flushes (host fsyncs of the image), no background inode-table zeroing
    assert {"nosuid", "nodev", "nobarrier", "noinit_itable"} <= set(body["options"]), body


def test_a_child_left_behind_dies_with_its_environment(lam, fname, healthy):
    marker = f"{1000 + (os.getpid() % 1000)}.{int(time.time() * 1000) % 100000}"
    name = fn(lam, fname, "leave_child")
    call(lam, name, {"marker": marker})

    def alive() -> bool:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                        return True
            except OSError:
                pass
        return False

    assert alive(), "the child runs while its environment lives (frozen or not)"
    lam.update_function_configuration(FunctionName=name, Timeout=4)  # retires the environment
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()

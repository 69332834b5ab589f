"""The Python runtime's _X_AMZN_TRACE_ID (bootstrap.TraceVariable): os.environ and the C environment that
subprocesses inherit both carry each invocation's value, and a warm runtime's memory does not grow with
the number of values it was given (glibc's setenv keeps every one).

Each check runs in a fresh interpreter (it changes that process's C environment), as lamina runs the
runtime: ``python -S -B``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "src" / "lamina" / "runtimes" / "python"

PRELUDE = f"""
import json, os, subprocess, sys
sys.path.insert(0, {str(RUNTIME_DIR)!r})
import bootstrap

def child():  # what a subprocess started the usual way (no env=) inherits
    out = subprocess.run(["/bin/sh", "-c", 'printf %s "${{_X_AMZN_TRACE_ID-unset}}"'], capture_output=True, text=True)
    return out.stdout

def rss_kb():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])
"""


def run(body: str) -> dict:
    out = subprocess.run([sys.executable, "-S", "-B", "-c", PRELUDE + body], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_each_value_reaches_os_environ_and_subprocesses() -> None:
    got = run("""
import ctypes  # imported: the buffer is used from the first value on
t = bootstrap.TraceVariable()
seen = []
for value in ("Root=1-a;Parent=b;Sampled=0", "Root=1-cc;Parent=dd;Sampled=1", "R=short"):
    t.set(value)
    seen.append([os.environ.get("_X_AMZN_TRACE_ID"), os.getenv("_X_AMZN_TRACE_ID"), child()])
print(json.dumps({"seen": seen, "fast": t._buffer is not None and t._last is not None}))
""")
    assert got["fast"]
    assert got["seen"] == [[v, v, v] for v in ("Root=1-a;Parent=b;Sampled=0", "Root=1-cc;Parent=dd;Sampled=1",
                                                 "R=short")]


def test_plain_path_first_without_ctypes_then_the_buffer() -> None:
    got = run("""
t = bootstrap.TraceVariable()
states = []
for i in range(bootstrap.TraceVariable.PLAIN_FIRST + 2):
    t.set("Root=1-%d" % i)
    states.append([t._buffer is not None, os.environ["_X_AMZN_TRACE_ID"] == "Root=1-%d" % i])
print(json.dumps({"states": states, "child": child()}))
""")
    n = len(got["states"])
    assert [s[0] for s in got["states"]] == [False] * (n - 2) + [True, True]
    assert all(s[1] for s in got["states"])
    assert got["child"] == "Root=1-%d" % (n - 1)


def test_clear_code_that_sets_it_itself_and_long_values() -> None:
    got = run("""
import ctypes
t = bootstrap.TraceVariable()
out = {}
t.set("Root=1-first")
t.clear()
out["cleared"] = ["_X_AMZN_TRACE_ID" in os.environ, child()]
t.set("Root=1-again")
out["again"] = [os.environ["_X_AMZN_TRACE_ID"], child()]
os.environ["_X_AMZN_TRACE_ID"] = "set-by-the-handler"  # user code: setenv moves the C entry off the buffer
out["user"] = child()
t.set("Root=1-next")
out["next"] = [os.environ["_X_AMZN_TRACE_ID"], child()]
long = "Root=1-" + "x" * 2000
t.set(long)
out["long"] = [os.environ["_X_AMZN_TRACE_ID"] == long, child() == long]
t.set("Root=1-after")
out["after"] = [os.environ["_X_AMZN_TRACE_ID"], child()]
print(json.dumps(out))
""")
    assert got["cleared"] == [False, "unset"]
    assert got["again"] == ["Root=1-again", "Root=1-again"]
    assert got["user"] == "set-by-the-handler"
    assert got["next"] == ["Root=1-next", "Root=1-next"]
    assert got["long"] == [True, True]
    assert got["after"] == ["Root=1-after", "Root=1-after"]


def test_memory_does_not_grow_with_the_values_given() -> None:
    got = run("""
import ctypes
def grow(set_value, n=100000):
    before = rss_kb()
    for i in range(n):
        set_value("Root=1-%08x-0123456789abcdef01234567;Parent=%016x;Sampled=0" % (i, i))
    return rss_kb() - before
t = bootstrap.TraceVariable()
t.set("warm-up")
buffered = grow(t.set)
plain = grow(lambda v: os.environ.__setitem__("_X_AMZN_TRACE_ID", v))
print(json.dumps({"buffered_kb": buffered, "plain_kb": plain}))
""")
    assert got["plain_kb"] > 5000  # setenv: ~140 bytes kept per value (the reason for the buffer)
    assert got["buffered_kb"] < 1000

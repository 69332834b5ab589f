"""The Ruby runtime's _X_AMZN_TRACE_ID (LaminaRuntime::TraceVariable in bootstrap.rb): ENV and the
subprocesses a handler starts see each invocation's value, code that sets or deletes the variable itself
is respected, and a warm runtime's memory does not grow with the values it was given (glibc's setenv,
behind ENV[]=, keeps every one). Each check runs in a fresh `ruby` (it changes that process's environment).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby on this host")

BOOTSTRAP = Path(__file__).resolve().parents[2] / "src" / "lamina" / "runtimes" / "ruby" / "bootstrap.rb"

PRELUDE = f"""
require {str(BOOTSTRAP)!r}
require 'json'
def child = `printf %s "${{_X_AMZN_TRACE_ID-unset}}"`
def rss_kb = File.read('/proc/self/status')[/VmRSS:\\s+(\\d+)/, 1].to_i
"""


def run(body: str) -> dict:
    out = subprocess.run(["ruby", "-e", PRELUDE + body], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_value_reaches_env_and_subprocesses() -> None:
    got = run("""
require 'fiddle'  # loaded: the buffer is used from the first value on
t = LaminaRuntime::TraceVariable.new
values = ['Root=1-a;Parent=b;Sampled=0', 'Root=1-cc;Parent=dd;Sampled=1', 'R=short']
seen = values.map { |v| t.set(v); [ENV['_X_AMZN_TRACE_ID'], child] }
puts JSON.generate(seen: seen, buffered: !t.instance_variable_get(:@buffer).nil?)
""")
    assert got["buffered"]
    assert got["seen"] == [[v, v] for v in ("Root=1-a;Parent=b;Sampled=0", "Root=1-cc;Parent=dd;Sampled=1",
                                            "R=short")]


def test_env_way_first_without_fiddle_then_the_buffer() -> None:
    got = run("""
t = LaminaRuntime::TraceVariable.new
n = LaminaRuntime::TraceVariable::PLAIN_FIRST + 2
states = (0...n).map do |i|
  t.set("Root=1-#{i}")
  [!t.instance_variable_get(:@buffer).nil?, ENV['_X_AMZN_TRACE_ID'] == "Root=1-#{i}"]
end
puts JSON.generate(states: states, child: child, n: n)
""")
    n = got["n"]
    assert [s[0] for s in got["states"]] == [False] * (n - 2) + [True, True]
    assert all(s[1] for s in got["states"])
    assert got["child"] == f"Root=1-{n - 1}"


def test_clear_code_that_sets_it_itself_and_long_values() -> None:
    got = run("""
require 'fiddle'
t = LaminaRuntime::TraceVariable.new
out = {}
t.set('Root=1-first'); t.clear
out[:cleared] = [ENV.key?('_X_AMZN_TRACE_ID'), child]
t.set('Root=1-again'); out[:again] = [ENV['_X_AMZN_TRACE_ID'], child]
ENV['_X_AMZN_TRACE_ID'] = 'set-by-the-handler'; out[:user] = child
t.set('Root=1-next'); out[:next] = [ENV['_X_AMZN_TRACE_ID'], child]
ENV.delete('_X_AMZN_TRACE_ID'); t.set('Root=1-after-delete'); out[:deleted] = [ENV['_X_AMZN_TRACE_ID'], child]
long = 'Root=1-' + 'x' * 2000
t.set(long); out[:long] = [ENV['_X_AMZN_TRACE_ID'] == long, child == long]
t.set('Root=1-after'); out[:after] = [ENV['_X_AMZN_TRACE_ID'], child]
puts JSON.generate(out)
""")
    assert got["cleared"] == [False, "unset"]
    assert got["again"] == ["Root=1-again", "Root=1-again"]
    assert got["user"] == "set-by-the-handler"
    assert got["next"] == ["Root=1-next", "Root=1-next"]
    assert got["deleted"] == ["Root=1-after-delete", "Root=1-after-delete"]
    assert got["long"] == [True, True]
    assert got["after"] == ["Root=1-after", "Root=1-after"]


def test_memory_does_not_grow_with_the_values_given() -> None:
    got = run("""
require 'fiddle'
def grow(n = 100_000)
  GC.start
  before = rss_kb
  n.times { |i| yield format('Root=1-%08x-0123456789abcdef01234567;Parent=%016x;Sampled=0', i, i) }
  GC.start
  rss_kb - before
end
t = LaminaRuntime::TraceVariable.new
t.set('warm-up')
buffered = grow { |v| t.set(v) }
plain = grow { |v| ENV['_X_AMZN_TRACE_ID'] = v }
puts JSON.generate(buffered_kb: buffered, plain_kb: plain)
""")
    assert got["plain_kb"] > 5000  # setenv: ~140 bytes kept per value (the reason for the buffer)
    assert got["buffered_kb"] < 1500

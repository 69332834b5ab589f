"""The Node.js runtime's _X_AMZN_TRACE_ID through lamina-env.node (runtimes/node/native/lamina_env.c): a
buffer handed once to putenv(3) and rewritten in place, instead of process.env's setenv(3), which keeps
every value it was ever given. process.env and child processes see each invocation's value, code that
sets or deletes the variable itself is respected, and memory does not grow with the values. Each check
runs in a fresh `node` (it changes that process's environment)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from lamina.runtimes.registry import NODE_BOOTSTRAP, NODE_ENV_ADDON
from tests.unit.test_node_bootstrap import Invocation, results, run_node

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None or not NODE_ENV_ADDON.is_file(),
                                reason="needs node and build/lamina-env.node (make install)")

PRELUDE = f"""
const {{ setTrace }} = require({str(NODE_ENV_ADDON)!r});
const child = () => require('node:child_process').execSync('printf %s "${{_X_AMZN_TRACE_ID-unset}}"').toString();
const rssKb = () => Number(require('node:fs').readFileSync('/proc/self/status', 'utf8').match(/VmRSS:\\s+(\\d+)/)[1]);
"""


def run(body: str) -> dict:
    # a small young generation: V8's own growth stays small beside what the C library keeps
    out = subprocess.run([NODE, "--expose-gc", "--max-semi-space-size=1", "-e", PRELUDE + body],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_values_reach_process_env_and_children_and_code_may_set_it_itself() -> None:
    got = run("""
const out = {};
out.first = [setTrace('Root=1-a;Parent=b;Sampled=0'), process.env._X_AMZN_TRACE_ID, child()];
out.second = [setTrace('R=2'), process.env._X_AMZN_TRACE_ID, child()];
process.env._X_AMZN_TRACE_ID = 'set-by-the-handler';
out.user = [process.env._X_AMZN_TRACE_ID, child()];
out.next = [setTrace('R=3'), process.env._X_AMZN_TRACE_ID, child()];
delete process.env._X_AMZN_TRACE_ID;
out.deleted = [process.env._X_AMZN_TRACE_ID ?? null, child()];
out.again = [setTrace('R=4'), process.env._X_AMZN_TRACE_ID, child()];
out.refused = [setTrace('x'.repeat(1024)), setTrace('a\\0b'), setTrace(7), process.env._X_AMZN_TRACE_ID];
console.log(JSON.stringify(out));
""")
    assert got["first"] == [True, "Root=1-a;Parent=b;Sampled=0", "Root=1-a;Parent=b;Sampled=0"]
    assert got["second"] == [True, "R=2", "R=2"]
    assert got["user"] == ["set-by-the-handler", "set-by-the-handler"]
    assert got["next"] == [True, "R=3", "R=3"]
    assert got["deleted"] == [None, "unset"]
    assert got["again"] == [True, "R=4", "R=4"]
    assert got["refused"] == [False, False, False, "R=4"]  # the caller sets process.env for these


def test_memory_does_not_grow_with_the_values_given() -> None:
    got = run("""
function grow(set, n = 100000) {
  global.gc();
  const before = rssKb();
  for (let i = 0; i < n; i++) set(`Root=1-${i.toString(16).padStart(8, '0')}-0123456789abcdef01234567;Parent=${i};Sampled=0`);
  global.gc();
  return rssKb() - before;
}
let sink = 0;
grow((v) => { sink += v.length; });  // the heap grows to hold the loop's strings, before measuring
grow(setTrace);  // and to what the calls themselves need (compiled code, inline caches)
const buffered = grow(setTrace);
const plain = grow((v) => { process.env._X_AMZN_TRACE_ID = v; });
console.log(JSON.stringify({ buffered, plain, sink: sink > 0 }));
""")
    assert got["plain"] > 8000, got  # setenv: ~130 bytes kept per value (the reason for the buffer)
    assert got["buffered"] < got["plain"] / 3, got  # what is left is V8's heap settling


def test_the_bootstrap_uses_it_beside_itself(tmp_path):
    """lamina's client loads ./lamina-env.node (where /var/runtime has both): each invocation's trace id
    is in process.env and a child's environment; none when the header is missing."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    shutil.copy(NODE_BOOTSTRAP, runtime / NODE_BOOTSTRAP.name)
    shutil.copy(NODE_ENV_ADDON, runtime / NODE_ENV_ADDON.name)
    files = {"index.js": """
const { execSync } = require('node:child_process');
exports.handler = async () => [process.env._X_AMZN_TRACE_ID ?? null,
                               execSync('printf %s "${_X_AMZN_TRACE_ID-unset}"').toString()];
"""}
    invocations = [Invocation({}, headers={"Lambda-Runtime-Trace-Id": "Root=1-one"}),
                   Invocation({}, headers={"Lambda-Runtime-Trace-Id": "Root=1-two"}), Invocation({})]
    run = run_node(tmp_path, files, "index.handler", invocations, bootstrap=runtime / NODE_BOOTSTRAP.name)
    assert results(run) == [["Root=1-one", "Root=1-one"], ["Root=1-two", "Root=1-two"], [None, "unset"]]

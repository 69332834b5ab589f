"""Node.js functions run with the flags Lambda's Node.js bootstrap gives node: `global.gc` exists
(--expose-gc) and V8's heap is sized to the function's MemorySize. The flags are fixed when node starts,
so a standby sandbox serves only functions of the size it was started for; one of another size gets a
sandbox started for it, and the standbys after that are of its size."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from lamina.runtimes.registry import RuntimeRegistry
from lamina.sandbox.base import node_flags
from tests.conftest import make_zip
from tests.integration.conftest import serving

ROLE = "arn:aws:iam::000000000000:role/x"

APP = """
const v8 = require('node:v8');
const startedMs = Date.now() - process.uptime() * 1000;
exports.handler = async () => ({
  gc: typeof global.gc,
  heapLimitMb: v8.getHeapStatistics().heap_size_limit / 1048576,
  ageAtLoadS: (loadedMs - startedMs) / 1000,
});
const loadedMs = Date.now();
"""


def test_flags_follow_lambdas_bootstrap() -> None:
    assert node_flags(None) == ["--expose-gc", "--max-http-header-size=81920"]
    assert node_flags(128) == ["--expose-gc", "--max-http-header-size=81920", "--max-semi-space-size=6",
                               "--max-old-space-size=116"]
    assert node_flags(1769)[2:] == ["--max-semi-space-size=88", "--max-old-space-size=1593"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory, "node-flags", {"LAMINA_PREWARM": "2"}) as srv:
        yield srv


def _runtime() -> str:
    if shutil.which("node") is None:
        pytest.skip("no node on this host")
    found = [r.id for r in RuntimeRegistry.discover().all() if r.family == "nodejs"]
    if not found:
        pytest.skip("no nodejs runtime registered")
    return found[0]


def _invoke(lam, name: str) -> dict:
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    return body


def _create(lam, name: str, memory_mb: int) -> None:
    lam.create_function(FunctionName=name, Runtime=_runtime(), Handler="app.handler", Role=ROLE, MemorySize=memory_mb,
                        Code={"ZipFile": make_zip({"app.js": APP})})


def test_gc_and_heap_sized_to_memory_standby_or_not(server):
    lam = server.client()
    isolated = "sandbox: bwrap" in server.output()
    _create(lam, "node-256", 256)
    time.sleep(1.5)  # the standbys CreateFunction started (at the last size asked for) are up
    small = _invoke(lam, "node-256")
    assert small["gc"] == "function"
    assert 231 <= small["heapLimitMb"] < 300, small  # old space 231 MB plus the young generation
    _create(lam, "node-512", 512)
    big = _invoke(lam, "node-512")  # no standby of this size yet: one is started for it
    assert big["gc"] == "function"
    assert 461 <= big["heapLimitMb"] < 560, big
    if not isolated:
        return  # standby sandboxes need the isolated sandbox (root, bubblewrap, cgroups)
    assert big["ageAtLoadS"] < 1.0, big
    time.sleep(2.0)  # the standbys are remade at 512 MB
    lam.update_function_configuration(FunctionName="node-512", Environment={"Variables": {"NEW": "env"}})
    time.sleep(0.5)
    again = _invoke(lam, "node-512")
    assert 461 <= again["heapLimitMb"] < 560, again
    assert again["ageAtLoadS"] > 1.0, again  # a standby of its size, started before it was assigned

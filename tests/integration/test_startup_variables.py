"""Variables an interpreter reads only as it starts (PYTHONPATH, NODE_OPTIONS, RUBYOPT) work as on Lambda:
a function that sets one gets a runtime started with it, never a standby sandbox whose interpreter is
already running, nor a fork of the Python zygote. Without them, Ruby functions now take standbys too."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from lamina.runtimes.registry import RuntimeRegistry
from tests.conftest import make_zip
from tests.integration.conftest import serving

ROLE = "arn:aws:iam::000000000000:role/x"

# How long the process had been running when the handler's file was loaded: a standby's interpreter
# started before the function was even assigned to it.
PY_APP = '''
import os, extra
def _age():
    start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    return float(open("/proc/uptime").read().split()[0]) - start
AGE = _age()
def handler(event, context):
    return {"value": extra.VALUE, "age": AGE}
'''
NODE_APP = '''
exports.handler = async () => ({ preloaded: globalThis.PRELOADED ?? null });
'''
RUBY_APP = r'''
def proc_age
  start = File.read("/proc/self/stat").rpartition(")")[2].split[19].to_i / 100.0
  File.read("/proc/uptime").split[0].to_f - start
end
AGE = proc_age
def handler(event:, context:)
  { "preloaded" => $PRELOADED, "age" => AGE }
end
'''


def _runtime(family: str) -> str:
    found = [r.id for r in RuntimeRegistry.discover().all() if r.family == family]
    if not found:
        pytest.skip(f"no {family} runtime on this host")
    return found[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory, "startup-vars", {"LAMINA_PREWARM": "2"}) as srv:
        yield srv


@pytest.fixture()
def lam(server):
    return server.client()


def _isolated(server) -> None:
    if "sandbox: bwrap" not in server.output():
        pytest.skip("standby sandboxes and the zygote need the isolated sandbox (root, bubblewrap, cgroups)")


def _invoke(lam, name: str) -> dict:
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    return body


def test_pythonpath_is_honoured(lam):
    """PYTHONPATH (relative to the task root, the runtime's cwd) puts vendor/ on sys.path."""
    lam.create_function(FunctionName="py-path", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": PY_APP, "vendor/extra.py": "VALUE = 42\n"})},
                        Environment={"Variables": {"PYTHONPATH": "vendor"}})
    assert _invoke(lam, "py-path")["value"] == 42


def test_node_options_are_honoured(lam):
    if shutil.which("node") is None:
        pytest.skip("no node on this host")
    lam.create_function(FunctionName="node-opts", Runtime=_runtime("nodejs"), Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.js": NODE_APP, "pre.js": "globalThis.PRELOADED = 'yes';\n"})},
                        Environment={"Variables": {"NODE_OPTIONS": "--require ./pre.js"}})
    assert _invoke(lam, "node-opts")["preloaded"] == "yes"


def test_ruby_takes_a_standby_unless_it_sets_rubyopt(server, lam):
    runtime = _runtime("ruby")
    _isolated(server)
    files = {"app.rb": RUBY_APP, "pre.rb": "$PRELOADED = 'yes'\n"}
    lam.create_function(FunctionName="rb-plain", Runtime=runtime, Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip(files)})
    time.sleep(1.5)  # the standbys CreateFunction started are up and waiting
    plain = _invoke(lam, "rb-plain")
    assert plain["preloaded"] is None
    assert plain["age"] > 1.0, plain  # its interpreter was running before the function was assigned
    lam.create_function(FunctionName="rb-opt", Runtime=runtime, Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip(files)}, Environment={"Variables": {"RUBYOPT": "-r./pre"}})
    time.sleep(1.5)
    opt = _invoke(lam, "rb-opt")
    assert opt["preloaded"] == "yes" and opt["age"] < 1.0, opt  # started for it, with RUBYOPT


def test_a_python_function_without_them_still_takes_a_standby(server, lam):
    _isolated(server)
    lam.create_function(FunctionName="py-plain", Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": PY_APP, "extra.py": "VALUE = 1\n"})},
                        Environment={"Variables": {"OTHER": "x"}})
    time.sleep(1.5)
    body = _invoke(lam, "py-plain")
    assert body["value"] == 1 and body["age"] > 1.0, body  # forked before the function was assigned

"""Layers through boto3: the layer version operations and their policy, Layers on functions, and what
a function sees under /opt at run time (Python, Node.js, PATH, overwrites, a custom runtime)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import time
import urllib.request
import zipfile

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip
from tests.integration.conftest import serving, start_server, stop_server

ROLE = "arn:aws:iam::000000000000:role/x"
LAYER_ARN = "arn:aws:lambda:us-east-1:000000000000:layer:"
PY_LAYER = make_zip({"python/greeting.py": "WORDS = 'hello from a layer'\n"})


def error(excinfo) -> tuple[str, int, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def publish(lam, name, content=PY_LAYER, **kw):
    return lam.publish_layer_version(LayerName=name, Content={"ZipFile": content}, **kw)


def create(lam, name, files, layers, runtime="python3.11", handler="app.handler", modes=None, **kw):
    return lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE, Layers=layers,
                               Code={"ZipFile": make_zip(files, modes)}, **kw)


def invoke(lam, name):
    out = lam.invoke(FunctionName=name, LogType="Tail")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, (body, base64.b64decode(out["LogResult"]).decode())
    return body


@pytest.fixture
def lname(fname):
    return "layer-" + fname


# layer versions ---------------------------------------------------------------------------------

def test_publish_layer_version(lam, lname):
    """201 with the PublishLayerVersionResponse shape; the Location link serves the zip."""
    out = publish(lam, lname, Description="greetings", CompatibleRuntimes=["python3.11", "python3.12"],
                  CompatibleArchitectures=["x86_64"], LicenseInfo="MIT")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (out["LayerArn"], out["LayerVersionArn"], out["Version"]) == (
        LAYER_ARN + lname, f"{LAYER_ARN}{lname}:1", 1)
    assert (out["Description"], out["LicenseInfo"]) == ("greetings", "MIT")
    assert out["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    assert out["CompatibleArchitectures"] == ["x86_64"]
    assert out["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(PY_LAYER).digest()).decode()
    assert out["Content"]["CodeSize"] == len(PY_LAYER)
    assert out["CreatedDate"].endswith("+0000") and len(out["CreatedDate"]) == 28
    with urllib.request.urlopen(out["Content"]["Location"]) as resp:
        assert resp.read() == PY_LAYER
    assert publish(lam, lname)["Version"] == 2


def test_get_layer_version_by_name_arn_and_find(lam, lname):
    publish(lam, lname, Description="v1")
    got = lam.get_layer_version(LayerName=lname, VersionNumber=1)
    assert (got["LayerVersionArn"], got["Description"]) == (f"{LAYER_ARN}{lname}:1", "v1")
    assert "CompatibleRuntimes" not in got and "LicenseInfo" not in got
    assert lam.get_layer_version(LayerName=LAYER_ARN + lname, VersionNumber=1)["Version"] == 1
    by_arn = lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{lname}:1")
    assert by_arn["LayerArn"] == LAYER_ARN + lname and by_arn["Content"]["CodeSize"] == len(PY_LAYER)


def test_missing_layer_versions(lam, lname):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_layer_version(LayerName=lname, VersionNumber=3)
    assert error(excinfo) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{lname}:3")
    with pytest.raises(ClientError) as excinfo:
        lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{lname}")
    assert error(excinfo)[:2] == ("ValidationException", 400)


def test_list_layers_and_versions_with_filters_and_pages(lam, lname):
    publish(lam, lname, CompatibleRuntimes=["python3.11"], CompatibleArchitectures=["x86_64"])
    publish(lam, lname, CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    publish(lam, lname, CompatibleRuntimes=["python3.11", "python3.12"])
    other = lname + "-b"
    publish(lam, other, CompatibleRuntimes=["nodejs20.x"])
    layers = {x["LayerName"]: x for x in lam.list_layers()["Layers"]}
    assert layers[lname]["LayerArn"] == LAYER_ARN + lname
    assert layers[lname]["LatestMatchingVersion"]["Version"] == 3
    assert layers[lname]["LatestMatchingVersion"]["LayerVersionArn"] == f"{LAYER_ARN}{lname}:3"
    node = {x["LayerName"]: x for x in lam.list_layers(CompatibleRuntime="nodejs20.x")["Layers"]}
    assert node[lname]["LatestMatchingVersion"]["Version"] == 2 and other in node
    arm = {x["LayerName"] for x in lam.list_layers(CompatibleArchitecture="arm64")["Layers"]}
    assert lname in arm and other not in arm
    versions = lam.list_layer_versions(LayerName=lname)["LayerVersions"]
    assert [v["Version"] for v in versions] == [3, 2, 1]
    assert "Content" not in versions[0]
    py = lam.list_layer_versions(LayerName=lname, CompatibleRuntime="python3.11")["LayerVersions"]
    assert [v["Version"] for v in py] == [3, 1]
    first = lam.list_layer_versions(LayerName=lname, MaxItems=2)
    assert [v["Version"] for v in first["LayerVersions"]] == [3, 2]
    rest = lam.list_layer_versions(LayerName=lname, MaxItems=2, Marker=first["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1] and "NextMarker" not in rest
    pages = lam.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 1})
    names = [x["LayerName"] for page in pages for x in page["Layers"]]
    assert names == sorted(names) and {lname, other} <= set(names)
    assert lam.list_layer_versions(LayerName=lname + "-none")["LayerVersions"] == []


def test_list_layers_max_items_is_at_most_50(lam):
    with pytest.raises(ClientError) as excinfo:
        lam.list_layers(MaxItems=51)
    assert error(excinfo)[:2] == ("ValidationException", 400)


def test_delete_layer_version_is_idempotent_and_numbers_are_not_reused(lam, lname):
    publish(lam, lname)
    publish(lam, lname)
    out = lam.delete_layer_version(LayerName=lname, VersionNumber=2)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.delete_layer_version(LayerName=lname, VersionNumber=2)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName=lname, VersionNumber=2)
    assert publish(lam, lname)["Version"] == 3


# layer version policy ---------------------------------------------------------------------------

def test_layer_version_permissions(lam, lname):
    publish(lam, lname)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)
    assert error(excinfo)[2] == "No policy is associated with the given resource."
    added = lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="xaccount",
                                             Action="lambda:GetLayerVersion", Principal="223456789012")
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(added["Statement"]) == {
        "Sid": "xaccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::223456789012:root"},
        "Action": "lambda:GetLayerVersion", "Resource": f"{LAYER_ARN}{lname}:1"}
    policy = lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)
    assert policy["RevisionId"] == added["RevisionId"]
    document = json.loads(policy["Policy"])
    assert (document["Version"], document["Id"]) == ("2012-10-17", "default")
    assert document["Statement"] == [json.loads(added["Statement"])]
    with pytest.raises(lam.exceptions.ResourceConflictException) as excinfo:
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="xaccount",
                                         Action="lambda:GetLayerVersion", Principal="*")
    assert error(excinfo)[2] == ("The statement id (xaccount) provided already exists. Please provide a new "
                                 "statement id, or remove the existing statement.")
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="all",
                                         Action="lambda:GetLayerVersion", Principal="*", RevisionId="stale")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="nope")
    assert error(excinfo)[2] == "Statement nope is not found in resource policy."
    lam.remove_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="xaccount")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_policy(LayerName=lname, VersionNumber=1)


def test_layer_permission_on_a_missing_version_and_bad_action(lam, lname):
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=4, StatementId="s",
                                         Action="lambda:GetLayerVersion", Principal="*")
    assert error(excinfo)[2] == f"Layer version {LAYER_ARN}{lname}:4 does not exist."
    publish(lam, lname)
    with pytest.raises(ClientError) as excinfo:
        lam.add_layer_version_permission(LayerName=lname, VersionNumber=1, StatementId="s",
                                         Action="lambda:InvokeFunction", Principal="*")
    assert error(excinfo)[:2] == ("ValidationException", 400)


# Layers on functions ------------------------------------------------------------------------------

def test_function_configuration_lists_its_layers(lam, fname, lname):
    first = publish(lam, lname)
    second = publish(lam, lname + "-b")
    out = create(lam, fname, {"app.py": "def handler(e, c):\n    return 1\n"},
                 [first["LayerVersionArn"], second["LayerVersionArn"]])
    assert out["Layers"] == [{"Arn": first["LayerVersionArn"], "CodeSize": len(PY_LAYER)},
                             {"Arn": second["LayerVersionArn"], "CodeSize": len(PY_LAYER)}]
    assert lam.get_function(FunctionName=fname)["Configuration"]["Layers"] == out["Layers"]
    cleared = lam.update_function_configuration(FunctionName=fname, Layers=[])
    assert "Layers" not in cleared


def test_python_imports_from_layer_directories(lam, fname, lname):
    """/opt/python and /opt/python/lib/python3.11/site-packages are on sys.path."""
    layer = publish(lam, lname, make_zip({
        "python/greeting.py": "WORDS = 'hello from a layer'\n",
        "python/lib/python3.11/site-packages/sitepkg/__init__.py": "NAME = 'site-packages'\n",
    }))
    create(lam, fname, {"app.py": "import greeting, sitepkg\n"
                                  "def handler(e, c):\n    return [greeting.WORDS, sitepkg.NAME, greeting.__file__]\n"},
           [layer["LayerVersionArn"]])
    words, name, path = invoke(lam, fname)
    assert (words, name) == ("hello from a layer", "site-packages")
    assert path.endswith("/python/greeting.py")


def test_later_layers_overwrite_earlier_files(lam, fname, lname):
    base = publish(lam, lname, make_zip({"python/which.py": "WHO = 'base'\n", "python/base_only.py": "X = 1\n"}))
    patch = publish(lam, lname + "-patch", make_zip({"python/which.py": "WHO = 'patch'\n"}))
    create(lam, fname, {"app.py": "import which, base_only\ndef handler(e, c):\n    return which.WHO\n"},
           [base["LayerVersionArn"], patch["LayerVersionArn"]])
    assert invoke(lam, fname) == "patch"
    lam.update_function_configuration(FunctionName=fname, Layers=[patch["LayerVersionArn"],
                                                                  base["LayerVersionArn"]])
    assert invoke(lam, fname) == "base"


def test_layer_bin_is_on_the_path_and_lib_on_the_library_path(lam, fname, lname):
    layer = publish(lam, lname, make_zip({"bin/layer-tool": "#!/bin/sh\necho tool-ran\n"}, {"bin/layer-tool": 0o755}))
    create(lam, fname, {"app.py": "import os, subprocess\ndef handler(e, c):\n"
                                  "    out = subprocess.run(['layer-tool'], capture_output=True, text=True).stdout\n"
                                  "    return [out.strip(), os.environ['LD_LIBRARY_PATH']]\n"},
           [layer["LayerVersionArn"]])
    out, ld_path = invoke(lam, fname)
    assert out == "tool-ran"
    assert ld_path.split(":")[-1].endswith("/lib")


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this host")
def test_node_requires_from_a_layer(lam, fname, lname):
    layer = publish(lam, lname, make_zip({
        "nodejs/node_modules/greeter/index.js": "module.exports = () => 'hi from node layer';\n",
        "nodejs/node20/node_modules/versioned/index.js": "module.exports = 'node20 dir';\n",
    }))
    create(lam, fname, {"index.js": "const greeter = require('greeter');\nconst versioned = require('versioned');\n"
                                    "exports.handler = async () => [greeter(), versioned];\n"},
           [layer["LayerVersionArn"]], runtime="nodejs20.x", handler="index.handler")
    assert invoke(lam, fname) == ["hi from node layer", "node20 dir"]


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this host")
def test_a_node_function_with_layers_starts_in_a_standby(tmp_path_factory):
    """Node.js resolves NODE_PATH (/opt/nodejs/...) as it requires: its standbys have an /opt slot, and a
    function's layers are linked into it with its code, so a function with layers needs no start of its own."""
    with serving(tmp_path_factory, "node-layer-standby", {"LAMINA_PREWARM": "2"}) as server:
        lam = server.client()
        layer = publish(lam, "greeter", make_zip({
            "nodejs/node_modules/greeter/index.js": "module.exports = () => 'hi from node layer';\n"}))
        major = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout[1:].split(".")[0]
        create(lam, "node-layered", {"index.js": "const greeter = require('greeter');\n"
                                                 "exports.handler = async () => [greeter(), process.uptime()];\n"},
               [layer["LayerVersionArn"]], runtime=f"nodejs{major}.x", handler="index.handler")
        time.sleep(2.0)  # the standbys CreateFunction started (at this function's size) are up
        greeting, uptime = invoke(lam, "node-layered")
        assert greeting == "hi from node layer"
        if "sandbox: bwrap" in server.output():  # standbys need the isolated sandbox
            assert uptime > 1.0, uptime  # the process was waiting before the function was assigned to it


def test_a_python_function_with_layers_starts_in_a_standby(tmp_path_factory):
    """lamina's Python client sets sys.path once it has its function: a standby's /opt slot, with the layer
    linked in, serves /opt/python and its site-packages."""
    age = ("def handler(e, c):\n    import greet, deep\n"
           "    start = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
           "    uptime = float(open('/proc/uptime').read().split()[0])\n"
           "    return [greet.hello(), deep.WHERE, uptime - start / 100]\n")
    with serving(tmp_path_factory, "python-layer-standby", {"LAMINA_PREWARM": "2"}) as server:
        lam = server.client()
        layer = publish(lam, "greet", make_zip({
            "python/greet.py": "def hello():\n    return 'hi from python layer'\n",
            "python/lib/python3.11/site-packages/deep.py": "WHERE = 'site-packages'\n"}))
        create(lam, "py-layered", {"app.py": age}, [layer["LayerVersionArn"]])
        time.sleep(2.0)  # the standbys CreateFunction started are up
        greeting, where, seconds = invoke(lam, "py-layered")
        assert greeting == "hi from python layer" and where == "site-packages"
        if "sandbox: bwrap" in server.output():  # standbys need the isolated sandbox
            assert seconds > 1.0, seconds  # the process was waiting before the function was assigned to it


SH_BOOTSTRAP = r'''#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
  RID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -X POST "$API/invocation/$RID/response" -d '"bootstrap from a layer"' >/dev/null
done
'''


def test_custom_runtime_bootstrap_from_a_layer(lam, fname, lname):
    """A provided runtime whose package has no bootstrap runs /opt/bootstrap from its layer."""
    layer = publish(lam, lname, make_zip({"bootstrap": SH_BOOTSTRAP}, {"bootstrap": 0o755}))
    create(lam, fname, {"readme.txt": "the runtime is in the layer"}, [layer["LayerVersionArn"]],
           runtime="provided.al2023", handler="ignored")
    assert invoke(lam, fname) == "bootstrap from a layer"


def test_functions_keep_a_deleted_layer_version(lam, fname, lname):
    """Deleting a layer version does not break the functions that use it."""
    layer = publish(lam, lname)
    create(lam, fname, {"app.py": "import greeting\ndef handler(e, c):\n    return greeting.WORDS\n"},
           [layer["LayerVersionArn"]])
    lam.delete_layer_version(LayerName=lname, VersionNumber=1)
    lam.update_function_configuration(FunctionName=fname, Timeout=5)  # a fresh environment
    assert invoke(lam, fname) == "hello from a layer"


def test_layers_member_errors(lam, fname, lname):
    layer = publish(lam, lname)["LayerVersionArn"]
    code = {"app.py": "def handler(e, c):\n    return 1\n"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        create(lam, fname, code, [layer] * 6)
    assert error(excinfo) == ("InvalidParameterValueException", 400, "Cannot reference more than 5 layers.")
    missing = f"{LAYER_ARN}{lname}:9"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        create(lam, fname, code, [missing])
    assert error(excinfo)[2] == f"Layer version {missing} does not exist."
    publish(lam, lname)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        create(lam, fname, code, [layer, f"{LAYER_ARN}{lname}:2"])
    assert "are versions of the same layer" in error(excinfo)[2]
    with pytest.raises(ClientError) as excinfo:
        create(lam, fname, code, [f"{LAYER_ARN}{lname}"])
    assert error(excinfo)[:2] == ("ValidationException", 400)
    create(lam, fname, code, [])
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=fname, Layers=[missing])


def zeros_zip(name: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(name, "w") as out:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(chunk)
    return buf.getvalue()


def test_function_and_layers_unzipped_must_stay_below_250_mb(lam, fname, lname):
    big = [publish(lam, f"{lname}-{i}", zeros_zip(f"blob{i}", 140 << 20))["LayerVersionArn"] for i in range(2)]
    code = {"app.py": "def handler(e, c):\n    return 1\n"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as excinfo:
        create(lam, fname, code, big)
    assert error(excinfo)[2] == "Unzipped size must be smaller than 262144000 bytes"
    create(lam, fname, code, big[:1])
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=fname, Layers=big)


def test_layers_under_the_process_driver(tmp_path):
    """Without bubblewrap /opt is a host directory; Python still finds the layer's modules."""
    srv = start_server(tmp_path / "data", tmp_path / "server.log", {"LAMINA_SANDBOX": "process"})
    try:
        lam = srv.client()
        layer = publish(lam, "plain-layer")
        create(lam, "plain", {"app.py": "import greeting\ndef handler(e, c):\n    return greeting.WORDS\n"},
               [layer["LayerVersionArn"]])
        assert invoke(lam, "plain") == "hello from a layer"
    finally:
        assert stop_server(srv) == 0


RUBY_LAYERED = r'''
require 'greeter'
require 'shiny'

def handler(event:, context:)
  start = File.read('/proc/self/stat').rpartition(')').last.split[19].to_i
  uptime = File.read('/proc/uptime').split.first.to_f
  [Greeter.hello, Shiny::NAME, uptime - start / 100.0]
end
'''


@pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby on this host")
def test_a_ruby_function_with_layers_starts_in_a_standby(tmp_path_factory):
    """RUBYLIB and GEM_PATH name /opt/ruby/lib and /opt/ruby/gems/X.Y.0 from the interpreter's start: a
    standby's /opt slot, with the layer linked in as the function is assigned, serves a library and a gem."""
    from lamina.runtimes.registry import RuntimeRegistry

    runtimes = [r.id for r in RuntimeRegistry.discover().all() if r.family == "ruby"]
    if not runtimes:
        pytest.skip("no ruby runtime registered")
    abi = runtimes[0][4:] + ".0"
    gemspec = ('Gem::Specification.new do |s|\n  s.name = "shiny"\n  s.version = "1.0.0"\n'
               '  s.summary = "a gem from a layer"\n  s.authors = ["lamina"]\n  s.files = ["lib/shiny.rb"]\nend\n')
    with serving(tmp_path_factory, "ruby-layer-standby", {"LAMINA_PREWARM": "2"}) as server:
        lam = server.client()
        layer = publish(lam, "rubylib", make_zip({
            "ruby/lib/greeter.rb": "module Greeter\n  def self.hello = 'hi from ruby layer'\nend\n",
            f"ruby/gems/{abi}/specifications/shiny-1.0.0.gemspec": gemspec,
            f"ruby/gems/{abi}/gems/shiny-1.0.0/lib/shiny.rb": "module Shiny\n  NAME = 'a layer gem'\nend\n"}))
        create(lam, "rb-layered", {"app.rb": RUBY_LAYERED}, [layer["LayerVersionArn"]], runtime=runtimes[0])
        time.sleep(2.0)  # the standbys CreateFunction started are up
        greeting, gem, seconds = invoke(lam, "rb-layered")
        assert (greeting, gem) == ("hi from ruby layer", "a layer gem")
        if "sandbox: bwrap" in server.output():  # standbys need the isolated sandbox
            assert seconds > 1.0, seconds  # the process was waiting before the function was assigned to it


JAVA_GREETER = "package layer;\npublic class Greeter {\n    public static String hello() { return \"hi from a jar in a layer\"; }\n}\n"
JAVA_LAYERED = r'''
package example;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Map;

public class Layered {
    private static final long AGE_AT_LOAD_MS = System.currentTimeMillis()
            - ManagementFactory.getRuntimeMXBean().getStartTime();

    public List<Object> handleRequest(Map<String, Object> event) {
        return List.of(layer.Greeter.hello(), AGE_AT_LOAD_MS);
    }
}
'''


def test_a_java_function_with_layers_starts_in_a_standby(tmp_path_factory):
    """lamina's Java client puts /opt/java/lib/*.jar on the function's class loader as it loads the handler:
    a standby JVM's /opt slot, with the layer linked in as the function is assigned, serves a layer's jar."""
    from lamina.runtimes.registry import JAVA_ENV_LIB
    from tests.integration.test_java import compile_java, java_runtime

    runtime = java_runtime()
    classes = compile_java(tmp_path_factory.mktemp("java-layered"),
                           {"layer/Greeter.java": JAVA_GREETER, "example/Layered.java": JAVA_LAYERED})
    jar = make_zip({"layer/Greeter.class": (classes / "layer" / "Greeter.class").read_bytes()})
    with serving(tmp_path_factory, "java-layer-standby", {"LAMINA_PREWARM": "2"}) as server:
        lam = server.client()
        layer = publish(lam, "javalib", make_zip({"java/lib/greeter.jar": jar}))
        lam.create_function(FunctionName="java-layered", Runtime=runtime, Handler="example.Layered::handleRequest",
                            Role=ROLE, MemorySize=512, Timeout=20, Layers=[layer["LayerVersionArn"]],
                            Code={"ZipFile": make_zip({"example/Layered.class":
                                                       (classes / "example" / "Layered.class").read_bytes()})})
        time.sleep(3.0)  # CreateFunction started standby JVMs of 512 MB
        greeting, age_ms = invoke(lam, "java-layered")
        assert greeting == "hi from a jar in a layer"
        if "sandbox: bwrap" in server.output() and JAVA_ENV_LIB.is_file():  # what standby JVMs need
            assert age_ms > 1000, age_ms  # the JVM was up before the function was assigned to it

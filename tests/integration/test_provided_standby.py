"""`provided` runtimes start from standby sandboxes: lamina-standby (sandbox/standby.c) waits in a sandbox
made ahead of need, takes the function's variables and execs the function's own bootstrap in its place.
A function without a bootstrap still fails with Runtime.InvalidEntrypoint."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from lamina.runtimes.registry import STANDBY_EXEC
from tests.conftest import make_zip
from tests.integration.conftest import serving

ROLE = "arn:aws:iam::000000000000:role/x"

# Answers with what it sees: the function's variable, whether lamina's standby marker is gone, its working
# directory, and how long its process has existed (centiseconds; an exec keeps the process's start).
BOOTSTRAP = r'''#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  curl -sS -D "$HEADERS" -o /dev/null "$API/invocation/next"
  RID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  START=$(cut -d' ' -f22 /proc/$$/stat)
  AGE=$(awk -v s="$START" '{ print int($1 * 100 - s) }' /proc/uptime)
  BODY="{\"var\": \"${USER_VAR-}\", \"marker\": \"${LAMINA_STANDBY-unset}\", \"cwd\": \"$(pwd)\", \"age\": $AGE}"
  curl -sS -X POST "$API/invocation/$RID/response" -d "$BODY" >/dev/null
done
'''

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="no curl on this host")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory, "provided-standby", {"LAMINA_PREWARM": "2"}) as srv:
        yield srv


def _invoke(lam, name: str):
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    return out, json.loads(out["Payload"].read())


def test_a_custom_runtime_starts_in_a_standby_sandbox(server):
    lam = server.client()
    isolated = "sandbox: bwrap" in server.output()
    lam.create_function(FunctionName="sh-env", Runtime="provided.al2023", Handler="x", Role=ROLE,
                        Code={"ZipFile": make_zip({"bootstrap": BOOTSTRAP}, {"bootstrap": 0o755})},
                        Environment={"Variables": {"USER_VAR": "first value"}})
    time.sleep(1.5)  # the standbys CreateFunction started are up
    out, body = _invoke(lam, "sh-env")
    assert "FunctionError" not in out, body
    assert body["var"] == "first value" and body["marker"] == "unset" and body["cwd"] == "/var/task", body
    if isolated and STANDBY_EXEC.is_file():  # standbys need the isolated sandbox and lamina-standby
        assert body["age"] > 100, body  # the process was waiting before the function was assigned to it

    lam.create_function(FunctionName="sh-none", Runtime="provided.al2023", Handler="x", Role=ROLE,
                        Code={"ZipFile": make_zip({"readme.txt": "no bootstrap"})})
    time.sleep(0.5)
    out, body = _invoke(lam, "sh-none")
    assert out["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.InvalidEntrypoint", body

    lam.update_function_configuration(FunctionName="sh-env", Environment={"Variables": {"USER_VAR": "second"}})
    time.sleep(0.5)
    out, body = _invoke(lam, "sh-env")
    assert "FunctionError" not in out, body
    assert body["var"] == "second", body


# The same, as a layer's /opt/bootstrap; it also answers with a file of the function's own code.
LAYER_BOOTSTRAP = BOOTSTRAP.replace('\\"age\\": $AGE}', '\\"age\\": $AGE, \\"code\\": \\"$(cat /var/task/data.txt)\\"}')


def test_a_custom_runtime_from_a_layer_starts_in_a_standby_sandbox(server):
    """A bootstrap that comes in a layer (/opt/bootstrap, as Lambda looks for it when the function has none):
    the layer is linked into the standby's /opt slot with the code into its /var/task slot."""
    lam = server.client()
    isolated = "sandbox: bwrap" in server.output()
    layer = lam.publish_layer_version(LayerName="sh-runtime", Content={"ZipFile": make_zip(
        {"bootstrap": LAYER_BOOTSTRAP}, {"bootstrap": 0o755})})["LayerVersionArn"]
    lam.create_function(FunctionName="sh-layer", Runtime="provided.al2023", Handler="x", Role=ROLE, Layers=[layer],
                        Code={"ZipFile": make_zip({"data.txt": "from the code"})},
                        Environment={"Variables": {"USER_VAR": "layered"}})
    time.sleep(1.5)
    out, body = _invoke(lam, "sh-layer")
    assert "FunctionError" not in out, body
    assert body["var"] == "layered" and body["code"] == "from the code" and body["marker"] == "unset", body
    if isolated and STANDBY_EXEC.is_file():
        assert body["age"] > 100, body  # waiting before the function was assigned: a standby

    bare = lam.publish_layer_version(LayerName="no-runtime", Content={"ZipFile": make_zip({"lib.txt": "x"})})
    lam.create_function(FunctionName="sh-layer-none", Runtime="provided.al2023", Handler="x", Role=ROLE,
                        Layers=[bare["LayerVersionArn"]], Code={"ZipFile": make_zip({"data.txt": "x"})})
    time.sleep(0.5)
    out, body = _invoke(lam, "sh-layer-none")
    assert out["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.InvalidEntrypoint", body

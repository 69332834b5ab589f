"""The official Node.js runtime interface client (npm `aws-lambda-ric`), unmodified, as provided.al2023.

Its native part is built by npm with autoconf/cmake/node-gyp (~1.5 minutes): `make install` does it into
build/node-ric (with the build tools it installs as root). `LAMINA_NODE_RIC_DIR` names another built copy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_zip

RIC = Path(os.environ.get("LAMINA_NODE_RIC_DIR") or
           Path(__file__).resolve().parents[2] / "build/node-ric/node_modules/aws-lambda-ric")
HANDLER = ("exports.handler = async (event, context) => ({ ric: 'node', event, id: context.awsRequestId });\n"
           "exports.boom = async () => { throw new Error('node ric boom'); };\n")


@pytest.mark.skipif(not (RIC / "dist" / "rapid-client.node").exists() or not shutil.which("node"),
                    reason="no built aws-lambda-ric here (see the module docstring)")
def test_official_node_ric_runs_unmodified(lam, fname):
    files: dict[str, str | bytes] = {
        f"node_modules/aws-lambda-ric/{p.relative_to(RIC)}": p.read_bytes()
        for sub in ("bin", "dist") for p in (RIC / sub).rglob("*") if p.is_file()}
    files["node_modules/aws-lambda-ric/package.json"] = (RIC / "package.json").read_bytes()
    files["index.js"] = HANDLER
    files["bootstrap"] = ('#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\n'
                          f'exec {shutil.which("node")} node_modules/aws-lambda-ric/bin/index.mjs "$_HANDLER"\n')
    lam.create_function(FunctionName=fname, Runtime="provided.al2023", Handler="index.handler", MemorySize=512,
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip(files, {"bootstrap": 0o755})})
    out = lam.invoke(FunctionName=fname, Payload=b'{"x": 1}')
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body == {"ric": "node", "event": {"x": 1}, "id": out["ResponseMetadata"]["RequestId"]}
    lam.update_function_configuration(FunctionName=fname, Handler="index.boom")
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    error = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Error" and error["errorMessage"] == "node ric boom"
    lam.delete_function(FunctionName=fname)

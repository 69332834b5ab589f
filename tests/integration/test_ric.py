"""The official Python runtime interface client (awslambdaric), unmodified, as a provided.al2023 function."""

from __future__ import annotations

import importlib.util
import json
import os

import sys
from pathlib import Path

import pytest

from tests.conftest import make_zip

HANDLER = '''
def handler(event, context):
    print("from awslambdaric")
    return {"ric": True, "event": event, "request_id": context.aws_request_id}

def boom(event, context):
    raise RuntimeError("ric boom")
'''


def ric_package() -> dict[str, bytes]:
    """awslambdaric and its dependencies, copied from this test environment into a zip layout."""
    files: dict[str, bytes] = {}
    for module in ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py"):
        spec = importlib.util.find_spec(module)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            root = Path(list(spec.submodule_search_locations)[0])
            for path in root.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    files[str(Path(module) / path.relative_to(root))] = path.read_bytes()
        else:
            origin = Path(spec.origin)
            files[origin.name] = origin.read_bytes()
    return files


def interpreter_for_sandbox() -> str:
    """A python3.11 the sandbox can run: Debian's under /usr, or lamina's own tree bound at /var/lang."""
    if os.path.exists(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        return f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    pytest.skip("no interpreter under /usr matching the test environment's ABI")


def test_awslambdaric_runs_unmodified(lam, fname):
    if importlib.util.find_spec("awslambdaric") is None:
        pytest.skip("awslambdaric is not installed")
    python = interpreter_for_sandbox()
    bootstrap = f'#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\nexec {python} -m awslambdaric "$_HANDLER"\n'
    files = {**ric_package(), "app.py": HANDLER, "bootstrap": bootstrap}
    code = make_zip(files, {"bootstrap": 0o755})
    lam.create_function(FunctionName=fname, Runtime="provided.al2023", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": code}, MemorySize=256)
    out = lam.invoke(FunctionName=fname, Payload=b'{"x": 1}', LogType="Tail")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body == {"ric": True, "event": {"x": 1}, "request_id": out["ResponseMetadata"]["RequestId"]}
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    assert json.loads(out["Payload"].read())["ric"] is True
    lam.update_function_configuration(FunctionName=fname, Handler="app.boom")
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError" and body["errorMessage"] == "ric boom"
    lam.update_function_configuration(FunctionName=fname, Handler="nomodule.handler")
    out = lam.invoke(FunctionName=fname, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Runtime.ImportModuleError"


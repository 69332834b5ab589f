"""Provisioned concurrency through boto3: environments initialised ahead, kept warm, used without init."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

ROLE = "arn:aws:iam::000000000000:role/x"
APP = '''
import os
def handler(event, context):
    return os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
'''


def publish(lam, name):
    lam.create_function(FunctionName=name, Runtime="python3.11", Handler="app.handler", Role=ROLE,
                        Code={"ZipFile": make_zip({"app.py": APP})})
    return lam.publish_version(FunctionName=name)["Version"]


def wait_ready(lam, name, qualifier):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if out["Status"] == "READY":
            return out
        time.sleep(0.1)
    raise AssertionError(out)


def test_provisioned_environments_are_ready_and_serve_without_init(lam, fname):
    version = publish(lam, fname)
    out = lam.put_provisioned_concurrency_config(FunctionName=fname, Qualifier=version,
                                                 ProvisionedConcurrentExecutions=2)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["RequestedProvisionedConcurrentExecutions"] == 2
    assert out["Status"] in ("IN_PROGRESS", "READY")
    ready = wait_ready(lam, fname, version)
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    result = lam.invoke(FunctionName=fname, Qualifier=version, LogType="Tail")
    assert json.loads(result["Payload"].read()) == "provisioned-concurrency"
    assert "Init Duration" not in base64.b64decode(result["LogResult"]).decode()
    listed = lam.list_provisioned_concurrency_configs(FunctionName=fname)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].split(":")[-1] for c in listed] == [version]
    lam.delete_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=fname, Qualifier=version)


def test_provisioned_concurrency_on_an_alias(lam, fname):
    version = publish(lam, fname)
    lam.create_alias(FunctionName=fname, Name="live", FunctionVersion=version)
    lam.put_provisioned_concurrency_config(FunctionName=fname, Qualifier="live", ProvisionedConcurrentExecutions=1)
    wait_ready(lam, fname, "live")
    result = lam.invoke(FunctionName=fname, Qualifier="live")
    assert json.loads(result["Payload"].read()) == "provisioned-concurrency"


def test_latest_is_refused(lam, fname):
    publish(lam, fname)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="unpublished function versions"):
        lam.put_provisioned_concurrency_config(FunctionName=fname, Qualifier="$LATEST",
                                               ProvisionedConcurrentExecutions=1)


def test_provisioned_settings_survive_a_restart(tmp_path):
    srv = start_server(tmp_path / "data", tmp_path / "one.log")
    try:
        lam = srv.client()
        version = publish(lam, "kept")
        lam.put_provisioned_concurrency_config(FunctionName="kept", Qualifier=version,
                                               ProvisionedConcurrentExecutions=1)
        wait_ready(lam, "kept", version)
    finally:
        assert stop_server(srv) == 0
    again = start_server(tmp_path / "data", tmp_path / "two.log")
    try:
        wait_ready(again.client(), "kept", version)
    finally:
        assert stop_server(again) == 0

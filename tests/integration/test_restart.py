"""The store survives restarts; SIGTERM shuts lamina down cleanly; a generated key pair is kept."""

from __future__ import annotations

import json
import os

import boto3
from botocore.config import Config as BotoConfig

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

CODE = make_zip({"app.py": "def handler(e, c):\n    return {'still': 'here'}\n"})


def test_functions_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, tmp_path / "one.log")
    try:
        lam = first.client()
        lam.create_function(FunctionName="keeper", Runtime="python3.11", Handler="app.handler",
                            Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": CODE})
        assert json.loads(lam.invoke(FunctionName="keeper")["Payload"].read()) == {"still": "here"}
    finally:
        assert stop_server(first) == 0, first.output()
    second = start_server(data, tmp_path / "two.log")
    try:
        lam = second.client()
        assert lam.get_function(FunctionName="keeper")["Configuration"]["Handler"] == "app.handler"
        assert json.loads(lam.invoke(FunctionName="keeper")["Payload"].read()) == {"still": "here"}
    finally:
        assert stop_server(second) == 0, second.output()


def test_generated_credentials_are_printed_and_kept(tmp_path):
    env = {"LAMINA_ACCESS_KEY_ID": "", "LAMINA_SECRET_ACCESS_KEY": ""}
    data = tmp_path / "data"
    srv = start_server(data, tmp_path / "gen.log", env)
    try:
        saved = json.loads((data / "credentials.json").read_text())
        assert oct(os.stat(data / "credentials.json").st_mode & 0o777) == "0o600"
    finally:
        assert stop_server(srv) == 0
    out = srv.output()
    assert f"aws configure set aws_access_key_id {saved['access_key_id']}" in out
    assert f"aws configure set aws_secret_access_key {saved['secret_access_key']}" in out
    again = start_server(data, tmp_path / "gen2.log", env)
    try:
        lam = boto3.client("lambda", endpoint_url=again.url, region_name="eu-west-1",
                           aws_access_key_id=saved["access_key_id"],
                           aws_secret_access_key=saved["secret_access_key"],
                           config=BotoConfig(retries={"max_attempts": 1}))
        assert lam.list_functions()["Functions"] == []
    finally:
        assert stop_server(again) == 0

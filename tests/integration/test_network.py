"""LAMINA_NETWORK=private: a function gets loopback only, and still reaches its Runtime API."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

APP = '''
import socket
def handler(event, context):
    try:
        socket.create_connection(("127.0.0.1", event["port"]), timeout=2).close()
        return "reached the host"
    except OSError as e:
        return "no route: " + type(e).__name__
'''


@pytest.fixture
def host_listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def reach(srv, port: int) -> str:
    lam = srv.client()
    lam.create_function(FunctionName="net", Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
    return json.loads(lam.invoke(FunctionName="net", Payload=json.dumps({"port": port}))["Payload"].read())


def test_private_network_cannot_reach_the_host(tmp_path, host_listener):
    srv = start_server(tmp_path / "data", tmp_path / "private.log", {"LAMINA_NETWORK": "private"})
    try:
        if "sandbox: bwrap" not in srv.output():
            pytest.skip("needs the isolated sandbox")
        assert reach(srv, host_listener).startswith("no route")
    finally:
        assert stop_server(srv) == 0


def test_host_network_is_the_default(tmp_path, host_listener):
    srv = start_server(tmp_path / "data", tmp_path / "host.log")
    try:
        assert reach(srv, host_listener) == "reached the host"
    finally:
        assert stop_server(srv) == 0

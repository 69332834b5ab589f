"""The fallback sandbox driver (plain processes) keeps the same contract as far as it can."""

from __future__ import annotations

import base64
import json

from tests.conftest import make_zip
from tests.integration.conftest import start_server, stop_server

APP = '''
import os, tempfile
def handler(event, context):
    path = os.path.join(tempfile.gettempdir(), "x")
    open(path, "w").write("ok")
    return {"task_root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd(), "tmp": tempfile.gettempdir(),
            "event": event}
'''


def test_python_function_under_the_process_driver(tmp_path):
    srv = start_server(tmp_path / "data", tmp_path / "server.log", {"LAMINA_SANDBOX": "process"})
    try:
        lam = srv.client()
        lam.create_function(FunctionName="plain", Runtime="python3.11", Handler="app.handler",
                            Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
        out = lam.invoke(FunctionName="plain", Payload=b'{"k": 1}', LogType="Tail")
        body = json.loads(out["Payload"].read())
        assert body.get("event") == {"k": 1}, (body, base64.b64decode(out["LogResult"]).decode())
        assert body["cwd"] == body["task_root"]
        assert body["tmp"].startswith(str((tmp_path / "data").resolve()))
        assert "START RequestId" in base64.b64decode(out["LogResult"]).decode()
    finally:
        assert stop_server(srv) == 0
    assert "NOT enforced" in srv.output()

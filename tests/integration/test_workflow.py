"""The developer workflow through the real CLI: lamina init, lamina deploy (directory and SAM), lamina dev."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

EXPECT = {
    "python-hello": lambda body: body["message"] == "hello, lamina",
    "node-hello": lambda body: body["message"] == "hello, lamina",
    "python-http-api": lambda body: body["statusCode"] == 200 and json.loads(body["body"]) == {"message": "hello, lamina"},
    "python-queue-consumer": lambda body: body == {"batchItemFailures": [{"itemIdentifier": "m-2"}]},
    "python-scheduled-job": lambda body: body["status"] == "done" and body["rule"].endswith("rule/nightly"),
    "provided-bash": lambda body: body == {"echo": {"hello": "bash"}},
}


def lamina(server, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    return subprocess.run([sys.executable, "-m", "lamina", *args, "--endpoint-url", server.url] if args[0] != "init"
                          else [sys.executable, "-m", "lamina", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def test_init_lists_every_blueprint(server, tmp_path):
    out = lamina(server, "init", "--list", cwd=tmp_path)
    assert out.returncode == 0
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert set(EXPECT) <= set(names)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_every_blueprint_inits_deploys_and_runs(server, lam, tmp_path, name):
    if name == "node-hello" and not any(r.startswith("nodejs") for r in _runtimes(lam)):
        pytest.skip("no node here")
    target = tmp_path / name
    made = lamina(server, "init", "--blueprint", name, str(target), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    spec = json.loads((target / "lamina.json").read_text())
    spec["FunctionName"] = f"{name}-{tmp_path.name[-6:]}"
    if spec["Runtime"].startswith("nodejs"):
        spec["Runtime"] = next(r for r in _runtimes(lam) if r.startswith("nodejs"))
    (target / "lamina.json").write_text(json.dumps(spec))
    deployed = lamina(server, "deploy", str(target), cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    assert lamina(server, "deploy", str(target), cwd=tmp_path).returncode == 0  # again: an update
    out = lam.invoke(FunctionName=spec["FunctionName"], Payload=(target / "event.json").read_bytes())
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert EXPECT[name](body), body


def _runtimes(lam) -> list[str]:
    try:
        lam.create_function(FunctionName="probe-runtimes", Runtime="nope", Handler="x", Role="arn:aws:iam::000000000000:role/x",
                            Code={"ZipFile": b"PK"})
    except lam.exceptions.InvalidParameterValueException as err:
        return err.response["Error"]["Message"].split("Available runtimes: ")[1].split(", ")
    return []


TEMPLATE = """AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 5
    MemorySize: 256
Resources:
  GreeterFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: {name}
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.11
      AutoPublishAlias: live
      Environment:
        Variables:
          GREETING: !Sub "hi in ${AWS::Region}"
      FunctionUrlConfig:
        AuthType: NONE
      Events:
        Api:
          Type: HttpApi
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Input: '{"job": "nightly"}'
"""


def test_sam_template_deploys_with_an_alias(server, lam, tmp_path, fname):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(
        "import os\ndef handler(e, c):\n    return {'greeting': os.environ['GREETING'], 'v': 1}\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE.replace("{name}", fname))
    out = lamina(server, "deploy", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HttpApi" in out.stderr  # unsupported events are named, not silently dropped
    events = server.client("events")
    rule = events.describe_rule(Name=f"{fname}-Nightly")
    assert rule["ScheduleExpression"] == "cron(0 3 * * ? *)" and rule["State"] == "ENABLED"
    target = events.list_targets_by_rule(Rule=f"{fname}-Nightly")["Targets"][0]
    assert target["Arn"].endswith(f":function:{fname}:live") and json.loads(target["Input"]) == {"job": "nightly"}
    url = lam.get_function_url_config(FunctionName=fname, Qualifier="live")["FunctionUrl"]
    import urllib.request
    assert json.loads(urllib.request.urlopen(url).read())["greeting"] == "hi in us-east-1"
    config = lam.get_function_configuration(FunctionName=fname, Qualifier="live")
    assert (config["MemorySize"], config["Timeout"]) == (256, 5)
    result = json.loads(lam.invoke(FunctionName=fname, Qualifier="live")["Payload"].read())
    assert result["greeting"] == "hi in us-east-1"
    (tmp_path / "src" / "app.py").write_text("def handler(e, c):\n    return {'v': 2}\n")
    assert lamina(server, "deploy", str(tmp_path), cwd=tmp_path).returncode == 0
    assert json.loads(lam.invoke(FunctionName=fname, Qualifier="live")["Payload"].read()) == {"v": 2}


def test_dev_redeploys_on_save(server, lam, tmp_path, fname):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text("def handler(e, c):\n    return 'old'\n")
    (src / "lamina.json").write_text(json.dumps({"FunctionName": fname, "Runtime": "python3.11", "Handler": "app.handler"}))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "lamina", "dev", str(src), "--endpoint-url", server.url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if json.loads(lam.invoke(FunctionName=fname)["Payload"].read()) == "old":
                    break
            except lam.exceptions.ResourceNotFoundException:
                pass
            time.sleep(0.05)
        (src / "app.py").write_text("def handler(e, c):\n    return 'new'\n")
        deadline = time.monotonic() + 30
        while json.loads(lam.invoke(FunctionName=fname)["Payload"].read()) != "new":
            assert time.monotonic() < deadline, "the new code never answered"
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_deploy_installs_requirements_into_the_package(server, lam, tmp_path, fname):
    (tmp_path / "app.py").write_text("import idna\ndef handler(e, c):\n    return idna.__file__\n")
    (tmp_path / "requirements.txt").write_text("idna\n")
    (tmp_path / "lamina.json").write_text(json.dumps({"FunctionName": fname, "Runtime": "python3.11",
                                                      "Handler": "app.handler"}))
    out = lamina(server, "deploy", str(tmp_path), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "pip install" in out.stderr
    assert json.loads(lam.invoke(FunctionName=fname)["Payload"].read()).startswith("/var/task/idna/")

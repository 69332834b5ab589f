"""The AWS CLI, unchanged, against lamina: the two commands from the README's tour."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY


def aws_cli() -> list[str]:
    venv_aws = Path(sys.executable).parent / "aws"
    if venv_aws.exists():
        return [str(venv_aws)]
    found = shutil.which("aws")
    if not found:
        pytest.skip("no AWS CLI")
    return [found]


def run(server, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    return subprocess.run([*aws_cli(), "--endpoint-url", server.url, "lambda", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def test_create_and_invoke_with_the_aws_cli(server, tmp_path, fname):
    (tmp_path / "fn.zip").write_bytes(make_zip({"app.py": "def handler(event, context):\n    return {'got': event}\n"}))
    created = run(server, "create-function", "--function-name", fname, "--runtime", "python3.11",
                  "--handler", "app.handler", "--zip-file", "fileb://fn.zip",
                  "--role", "arn:aws:iam::000000000000:role/x", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["FunctionName"] == fname
    invoked = run(server, "invoke", "--function-name", fname, "--payload", '{"a":1}', "out.json", cwd=tmp_path)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["StatusCode"] == 200
    assert json.loads((tmp_path / "out.json").read_text()) == {"got": {"a": 1}}
    listed = run(server, "list-functions", cwd=tmp_path)
    assert fname in [f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]]

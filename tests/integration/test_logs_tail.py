"""`aws logs tail` (AWS CLI v2: Debian's `awscli` package, which `make install` adds as root) against lamina."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

AWS_V2 = Path("/usr/bin/aws")
APP = "def handler(event, context):\n    print('tail-me', event['n'])\n    return event['n']\n"


def _cli_v2() -> bool:
    if not AWS_V2.exists():
        return False
    out = subprocess.run([str(AWS_V2), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.startswith("aws-cli/2")


pytestmark = pytest.mark.skipif(not _cli_v2(), reason="AWS CLI v2 (/usr/bin/aws, Debian's awscli) not installed")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_PAGER="", HOME=str(tmp_path))
    return env


def _wait_for(path: Path, needle: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared in:\n{path.read_text(errors='replace')}")


def test_tail_prints_past_lines_and_follows_new_ones(server, lam, fname, tmp_path):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
    lam.invoke(FunctionName=fname, Payload=json.dumps({"n": 1}))
    group = f"/aws/lambda/{fname}"
    env = _env(tmp_path)

    past = subprocess.run([str(AWS_V2), "--endpoint-url", server.url, "logs", "tail", group, "--since", "10m"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert past.returncode == 0, past.stderr
    lines = past.stdout.splitlines()
    assert any("tail-me 1" in line for line in lines)
    assert any("/[$LATEST]" in line and "REPORT RequestId:" in line for line in lines)

    out = tmp_path / "follow.out"
    with open(out, "w") as sink:
        follower = subprocess.Popen([str(AWS_V2), "--endpoint-url", server.url, "logs", "tail", group,
                                     "--follow", "--format", "short"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(out, "tail-me 1", 30)  # the follower has made its first call
        lam.invoke(FunctionName=fname, Payload=json.dumps({"n": 2}))
        text = _wait_for(out, "tail-me 2", 30)
        assert text.index("tail-me 1") < text.index("tail-me 2")
        assert follower.poll() is None  # still following
    finally:
        follower.terminate()
        follower.wait(timeout=10)

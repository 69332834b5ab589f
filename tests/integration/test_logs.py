"""The CloudWatch Logs API subset through boto3's `logs` client, and `lamina logs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY, start_server, stop_server

APP = "def handler(event, context):\n    print('needle', event['n'])\n    print('hay')\n    return event['n']\n"


@pytest.fixture
def logged(lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
    for n in range(3):
        lam.invoke(FunctionName=fname, Payload=json.dumps({"n": n}))
    return fname


def test_groups_streams_and_events(server, logged):
    logs = server.client("logs")
    group = f"/aws/lambda/{logged}"
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    streams = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)["logStreams"]
    assert streams and "[$LATEST]" in streams[0]["logStreamName"]
    events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"],
                                 startFromHead=True)["events"]
    messages = [e["message"] for e in events]
    assert any(m.startswith("INIT_START") for m in messages) or any(m.startswith("START") for m in messages)
    assert any(m.startswith("REPORT RequestId:") for m in messages)
    assert "needle 2" in messages


def test_filter_log_events_with_a_pattern(server, logged):
    logs = server.client("logs")
    found = logs.filter_log_events(logGroupName=f"/aws/lambda/{logged}", filterPattern="needle")["events"]
    assert sorted(e["message"] for e in found) == ["needle 0", "needle 1", "needle 2"]
    none = logs.filter_log_events(logGroupName=f"/aws/lambda/{logged}", filterPattern="needle -needle")["events"]
    assert none == []
    start = int(time.time() * 1000) + 60_000
    assert logs.filter_log_events(logGroupName=f"/aws/lambda/{logged}", startTime=start)["events"] == []


def test_unknown_group(server):
    logs = server.client("logs")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.filter_log_events(logGroupName="/aws/lambda/never-was")


def test_lamina_logs_prints_a_function_s_lines(server, logged):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    out = subprocess.run([sys.executable, "-m", "lamina", "logs", logged, "--endpoint-url", server.url],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "needle 1" in out.stdout and "REPORT RequestId:" in out.stdout


def test_log_files_only_when_asked_for(tmp_path, server, logged):
    # the shared server: the store only
    assert not (server.data_dir / "logs").exists()
    srv = start_server(tmp_path / "data", tmp_path / "files.log", {"LAMINA_LOG_FILES": "1"})
    try:
        lam = srv.client()
        logged_here = "filelogged"
        lam.create_function(FunctionName=logged_here, Runtime="python3.11", Handler="app.handler",
                            Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
        lam.invoke(FunctionName=logged_here, Payload=json.dumps({"n": 7}))
        srv.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{logged_here}")  # flushes the sink
        files = list((tmp_path / "data" / "logs" / logged_here).glob("*.log"))
        assert len(files) == 1 and "[$LATEST]" in files[0].name
        text = files[0].read_text()
        assert "START RequestId:" in text and "needle 7" in text and "REPORT RequestId:" in text
    finally:
        assert stop_server(srv) == 0, srv.output()

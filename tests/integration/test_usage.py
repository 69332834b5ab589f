"""Metering: one record per invocation, `lamina usage` and its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY


def usage(server, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    return subprocess.run([sys.executable, "-m", "lamina", "usage", "--endpoint-url", server.url, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_usage_counts_requests_and_gb_seconds(server, lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler", MemorySize=1024,
                        Role="arn:aws:iam::000000000000:role/x",
                        Code={"ZipFile": make_zip({"app.py": "import time\ndef handler(e, c):\n    time.sleep(0.1)\n"})})
    for _ in range(3):
        lam.invoke(FunctionName=fname)
    out = usage(server, "--since", "1h", "--json")
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads(out.stdout)["rows"] if r["key"] == fname)
    assert row["requests"] == 3 and row["cold_starts"] == 1 and row["errors"] == 0
    assert 0.3 <= row["gb_seconds"] <= 0.5  # 3 × ~0.1 s × 1 GB
    assert row["cost_usd"] > 0
    table = usage(server, "--by", "day")
    assert table.returncode == 0 and time.strftime("%Y-%m-%d", time.gmtime()) in table.stdout


def test_usage_needs_a_signature(server):
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(server.url + "/_lamina/usage")
    except urllib.error.HTTPError as err:
        assert err.code == 403
    else:
        raise AssertionError("unsigned usage request was answered")

"""CloudWatch GetMetricData / GetMetricStatistics / ListMetrics for AWS/Lambda: boto3 (rpc-v2-cbor) and
the AWS CLI v2 (query protocol)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import make_zip
from tests.integration.conftest import ACCESS_KEY, SECRET_KEY

APP = ("import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n"
       "    if event.get('fail'):\n        raise ValueError('no')\n    return 1\n")


@pytest.fixture
def measured(lam, fname):
    lam.create_function(FunctionName=fname, Runtime="python3.11", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": make_zip({"app.py": APP})})
    for event in ({"sleep": 0.2}, {}, {"fail": True}):
        lam.invoke(FunctionName=fname, Payload=json.dumps(event))
    lam.put_function_concurrency(FunctionName=fname, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException):
        lam.invoke(FunctionName=fname, Payload=b"{}")
    return fname


def _query(name: str, stat: str, fname: str) -> dict:
    return {"Id": name.lower(), "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": name,
            "Dimensions": [{"Name": "FunctionName", "Value": fname}]}, "Period": 3600, "Stat": stat}}


def test_get_metric_data_through_boto3(server, measured):
    cw = server.client("cloudwatch")
    now = datetime.now(timezone.utc)
    out = cw.get_metric_data(MetricDataQueries=[
        _query("Invocations", "Sum", measured), _query("Errors", "Sum", measured),
        _query("Throttles", "Sum", measured), _query("Duration", "Maximum", measured),
        _query("ConcurrentExecutions", "Maximum", measured)],
        StartTime=now - timedelta(hours=2), EndTime=now + timedelta(minutes=1))
    values = {r["Id"]: sum(r["Values"]) for r in out["MetricDataResults"]}
    assert values["invocations"] == 3 and values["errors"] == 1 and values["throttles"] == 1
    assert 200 <= values["duration"] < 1000
    assert values["concurrentexecutions"] == 1
    assert all(r["StatusCode"] == "Complete" for r in out["MetricDataResults"])
    stats = cw.get_metric_statistics(Namespace="AWS/Lambda", MetricName="Duration", Period=3600,
                                     Dimensions=[{"Name": "FunctionName", "Value": measured}],
                                     StartTime=now - timedelta(hours=2), EndTime=now + timedelta(minutes=1),
                                     Statistics=["SampleCount", "Maximum"], ExtendedStatistics=["p50"])
    point = max(stats["Datapoints"], key=lambda p: p["SampleCount"])
    assert point["Unit"] == "Milliseconds" and point["ExtendedStatistics"]["p50"] <= point["Maximum"]
    listed = cw.list_metrics(Namespace="AWS/Lambda", MetricName="Invocations")["Metrics"]
    assert {"Name": "FunctionName", "Value": measured} in [d for m in listed for d in m["Dimensions"]]
    with pytest.raises(cw.exceptions.ClientError) as err:
        cw.get_metric_data(MetricDataQueries=[_query("Duration", "Median", measured)],
                           StartTime=now - timedelta(hours=1), EndTime=now)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


AWS_V2 = Path("/usr/bin/aws")


@pytest.mark.skipif(not AWS_V2.exists(), reason="AWS CLI v2 (/usr/bin/aws, Debian's awscli) not installed")
def test_aws_cli_get_metric_statistics(server, measured, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_PAGER="", HOME=str(tmp_path))
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    out = subprocess.run([str(AWS_V2), "--endpoint-url", server.url, "cloudwatch", "get-metric-statistics",
                          "--namespace", "AWS/Lambda", "--metric-name", "Invocations", "--period", "3600",
                          "--statistics", "Sum", "--dimensions", f"Name=FunctionName,Value={measured}",
                          "--start-time", start, "--end-time", end], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert sum(p["Sum"] for p in data["Datapoints"]) == 3.0 and data["Label"] == "Invocations"


def test_rpc_v2_cbor_clients(server, measured):
    """Newer SDKs speak smithy-rpc-v2-cbor to CloudWatch: a request signed and encoded as they do it."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from lamina.cloudwatch import cbor

    now = time.time()
    body = cbor.encode({"MetricDataQueries": [_query("Invocations", "Sum", measured)],
                        "StartTime": datetime.fromtimestamp(now - 7200, tz=timezone.utc),
                        "EndTime": datetime.fromtimestamp(now + 60, tz=timezone.utc)})
    url = server.url + "/service/GraniteServiceVersion20100801/operation/GetMetricData"
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"}
    signed = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "monitoring", "us-east-1").add_auth(signed)
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=dict(signed.headers.items()))) as reply:
        assert reply.headers["smithy-protocol"] == "rpc-v2-cbor"
        out = cbor.decode(reply.read())
    assert sum(out["MetricDataResults"][0]["Values"]) == 3

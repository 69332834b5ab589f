"""Bucket notifications through boto3: configurations that name functions, and uploads, copies,
multipart completions and deletes invoking them asynchronously with S3's event record. The function
itself writes what it got into a sink bucket with boto3 (its endpoint and keys come from lamina)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
RECORDER = """
import json, os, boto3
s3 = boto3.client("s3")
def handler(event, context):
    if "probe" in event:  # the function's keys against the Lambda API on the same port
        try:
            boto3.client("lambda", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"]).list_functions()
            return {"lambda": "allowed"}
        except Exception as exc:
            return {"lambda": type(exc).__name__ + ": " + str(exc)}
    record = event["Records"][0]
    name = record["eventName"].replace(":", "-") + "-" + record["s3"]["object"]["sequencer"]
    s3.put_object(Bucket=os.environ["SINK"], Key=name, Body=json.dumps(event).encode())
    return {"ok": True, "endpoint": os.environ["AWS_ENDPOINT_URL_S3"], "key": os.environ["AWS_ACCESS_KEY_ID"]}
"""


def new_bucket(s3) -> str:
    name = f"bk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def recorder(lam, s3, fname):
    sink = new_bucket(s3)
    lam.create_function(FunctionName=fname, Runtime="python3.12", Handler="app.handler", Role=ROLE, Timeout=30,
                        Code={"ZipFile": make_zip({"app.py": RECORDER})}, Environment={"Variables": {"SINK": sink}})
    lam.get_waiter("function_active_v2").wait(FunctionName=fname)
    yield fname, sink
    lam.delete_function(FunctionName=fname)


def wait_for(s3, bucket: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if len(keys) >= count:
            return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())["Records"][0] for k in sorted(keys)]
        time.sleep(0.2)
    raise AssertionError(f"{bucket} got {len(keys)} of {count} events")


def test_functions_get_an_endpoint_and_their_own_s3_keys(lam, s3, recorder):
    """boto3 is importable in a python function; lamina's S3 endpoint and a per-function key pair are set;
    the function's keys open S3 but not the Lambda API."""
    fname, sink = recorder
    out = lam.invoke(FunctionName=fname, Payload=json.dumps({"Records": [{"eventName": "Test:Me", "s3": {
        "object": {"sequencer": "0"}}}]}))
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    assert body["endpoint"].startswith("http://127.0.0.1:") and body["key"].startswith("LKFN")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=sink)["Contents"]] == ["Test-Me-0"]
    s3.delete_object(Bucket=sink, Key="Test-Me-0")
    probe = json.loads(lam.invoke(FunctionName=fname, Payload=b'{"probe": true}')["Payload"].read())
    assert "UnrecognizedClientException" in probe["lambda"], probe


def test_configuration_round_trip_and_missing_function(s3, recorder):
    fname, _ = recorder
    bucket = new_bucket(s3)
    config = {"LambdaFunctionConfigurations": [{
        "Id": "pngs", "LambdaFunctionArn": ARN + fname, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".png"}]}},
    }]}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    got = s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    assert got[0]["Id"] == "pngs" and got[0]["LambdaFunctionArn"] == ARN + fname
    assert got[0]["Events"] == ["s3:ObjectCreated:*"]
    assert {r["Name"].lower(): r["Value"] for r in got[0]["Filter"]["Key"]["FilterRules"]} == {"prefix": "in/", "suffix": ".png"}
    with pytest.raises(ClientError) as err:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": ARN + "no-such-function",
                                              "Events": ["s3:ObjectCreated:*"]}]})
    assert err.value.response["Error"]["Code"] == "InvalidArgument"
    assert err.value.response["Error"]["Message"] == "Unable to validate the following destination configurations"
    assert s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"][0]["Id"] == "pngs"
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_object_events_invoke_the_function(s3, recorder):
    """Put, copy, multipart completion and delete each invoke the function once, with the exact record;
    filtered-out keys invoke nothing."""
    fname, sink = recorder
    bucket = new_bucket(s3)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": [
        {"Id": "created", "LambdaFunctionArn": ARN + fname, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}},
        {"Id": "removed", "LambdaFunctionArn": ARN + fname, "Events": ["s3:ObjectRemoved:*"]},
    ]})
    put = s3.put_object(Bucket=bucket, Key="in/red flower+1.png", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="out/ignored.png", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="in/copy.png", CopySource={"Bucket": bucket, "Key": "in/red flower+1.png"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="in/multi")["UploadId"]
    tag = s3.upload_part(Bucket=bucket, Key="in/multi", UploadId=upload, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="in/multi", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": tag}]})
    s3.delete_object(Bucket=bucket, Key="in/copy.png")
    records = wait_for(s3, sink, 4)
    by_name = {r["eventName"]: r for r in records}
    assert set(by_name) == {"ObjectCreated:Put", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload",
                            "ObjectRemoved:Delete"}
    put_record = by_name["ObjectCreated:Put"]
    assert put_record["eventVersion"] == "2.1" and put_record["eventSource"] == "aws:s3"
    assert put_record["awsRegion"] == "us-east-1" and put_record["eventTime"].endswith("Z")
    assert put_record["userIdentity"]["principalId"].startswith("AWS:")
    assert put_record["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    assert put_record["responseElements"]["x-amz-request-id"] == put["ResponseMetadata"]["RequestId"]
    s3rec = put_record["s3"]
    assert s3rec["s3SchemaVersion"] == "1.0" and s3rec["configurationId"] == "created"
    assert s3rec["bucket"] == {"name": bucket, "ownerIdentity": s3rec["bucket"]["ownerIdentity"],
                               "arn": f"arn:aws:s3:::{bucket}"}
    assert s3rec["object"]["key"] == "in/red+flower%2B1.png" and s3rec["object"]["size"] == 5
    assert s3rec["object"]["eTag"] == put["ETag"].strip('"')
    assert by_name["ObjectCreated:CompleteMultipartUpload"]["s3"]["object"]["eTag"].endswith("-1")
    assert by_name["ObjectRemoved:Delete"]["s3"]["configurationId"] == "removed"
    assert "size" not in by_name["ObjectRemoved:Delete"]["s3"]["object"]
    sequencers = [r["s3"]["object"]["sequencer"] for r in sorted(records, key=lambda r: r["eventTime"])]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == 4
    time.sleep(0.5)
    assert len(s3.list_objects_v2(Bucket=sink)["Contents"]) == 4  # out/ignored.png invoked nothing
    for key in ("in/red flower+1.png", "out/ignored.png", "in/multi"):
        s3.delete_object(Bucket=bucket, Key=key)

"""End to end: the thumbnail blueprint deployed from a zip in lamina's own S3 (Code.S3Bucket/S3Key),
a bucket notification, a PNG uploaded with boto3, and the function (boto3 inside the sandbox, against
lamina's S3) writing a smaller PNG into the other bucket."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from lamina.deploy import package
from tests.unit.test_s3_thumbnail_png import filtered_png, png

BLUEPRINT = Path(__file__).resolve().parents[2] / "src" / "lamina" / "blueprints" / "thumbnail"
ROLE = "arn:aws:iam::000000000000:role/x"


def test_code_from_s3_missing_object_is_lambdas_error(lam, server, fname):
    s3 = server.client("s3")
    bucket = f"bk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName=fname, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"S3Bucket": bucket, "S3Key": "nope.zip"})
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert err.value.response["Error"]["Message"] == ("Error occurred while GetObject. S3 Error Code: NoSuchKey. "
                                                      "S3 Error Message: The specified key does not exist.")
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName=fname, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"S3Bucket": "no-such-bucket-x", "S3Key": "k"})
    assert "S3 Error Code: NoSuchBucket" in err.value.response["Error"]["Message"]
    s3.delete_bucket(Bucket=bucket)


def test_thumbnail_blueprint_end_to_end(lam, server, fname):
    s3 = server.client("s3")
    photos, thumbs, code = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("photos", "thumbs", "code"))
    for bucket in (photos, thumbs, code):
        s3.create_bucket(Bucket=bucket)
    spec = json.loads((BLUEPRINT / "lamina.json").read_text())
    s3.put_object(Bucket=code, Key="thumbnail.zip", Body=package(BLUEPRINT))
    lam.create_function(FunctionName=fname, Runtime=spec["Runtime"], Handler=spec["Handler"], Role=ROLE,
                        Timeout=spec["Timeout"], MemorySize=spec["MemorySize"],
                        Code={"S3Bucket": code, "S3Key": "thumbnail.zip", "S3ObjectVersion": "ignored"},
                        Environment={"Variables": {"THUMBNAIL_BUCKET": thumbs}})
    lam.get_waiter("function_active_v2").wait(FunctionName=fname)
    lam.update_function_code(FunctionName=fname, S3Bucket=code, S3Key="thumbnail.zip")  # the same, from S3 again
    lam.get_waiter("function_updated_v2").wait(FunctionName=fname)
    s3.put_bucket_notification_configuration(Bucket=photos, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{
            "Id": "thumbnails", "LambdaFunctionArn": lam.get_function(FunctionName=fname)["Configuration"]["FunctionArn"],
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".png"}]}}}]})
    image, _ = filtered_png(320, 200, 3, lambda x, y: [x * 255 // 319, y * 255 // 199, 128])
    s3.put_object(Bucket=photos, Key="holiday/sunset one.png", Body=image, ContentType="image/png")
    s3.put_object(Bucket=photos, Key="notes.txt", Body=b"not an image")  # filtered out: no invocation
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=thumbs).get("Contents", [])
        if listed:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no thumbnail appeared:\n" + server.output()[-3000:])
    assert [o["Key"] for o in listed] == ["holiday/sunset one.png"]
    thumb = s3.get_object(Bucket=thumbs, Key="holiday/sunset one.png")
    data = thumb["Body"].read()
    assert thumb["ContentType"] == "image/png" and thumb["Metadata"]["source-size"] == "320x200"
    assert png.size_of(data) == (128, 80)
    small = png.decode(data)
    assert small.rows[0][0] < 10 and small.rows[0][-3] > 245  # the gradient survived the shrink
    for bucket, keys in ((photos, ["holiday/sunset one.png", "notes.txt"]), (thumbs, ["holiday/sunset one.png"]),
                         (code, ["thumbnail.zip"])):
        for key in keys:
            s3.delete_object(Bucket=bucket, Key=key)
        s3.delete_bucket(Bucket=bucket)
    lam.delete_function(FunctionName=fname)

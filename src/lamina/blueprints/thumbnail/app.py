"""Thumbnails on upload: an s3:ObjectCreated notification brings a PNG's bucket and key; the function
reads it with boto3 from lamina's S3, shrinks it (png.py: standard library only, no Pillow) and writes
the thumbnail to THUMBNAIL_BUCKET under the same key.

    aws s3api put-bucket-notification-configuration --bucket photos --notification-configuration \\
      '{"LambdaFunctionConfigurations": [{"LambdaFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:thumbnail",
        "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".png"}]}}}]}'
"""

import os
import urllib.parse

import boto3

import png

s3 = boto3.client("s3")  # lamina sets AWS_ENDPOINT_URL_S3 and the function's keys
MAX_SIDE = int(os.environ.get("THUMBNAIL_MAX_SIDE", "128"))


def handler(event, context):
    target = os.environ["THUMBNAIL_BUCKET"]
    made = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])  # keys arrive URL-encoded
        if bucket == target:
            print(f"skipping {bucket}/{key}: that is the thumbnail bucket")
            continue
        source = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            image = png.decode(source)
        except png.UnsupportedImage as exc:
            print(f"skipping {bucket}/{key}: {exc}")
            continue
        small = png.shrink(image, MAX_SIDE)
        s3.put_object(Bucket=target, Key=key, Body=png.encode(small), ContentType="image/png",
                      Metadata={"source": f"{bucket}/{key}", "source-size": f"{image.width}x{image.height}"})
        print(f"{bucket}/{key} {image.width}x{image.height} -> {target}/{key} {small.width}x{small.height}")
        made.append({"key": key, "width": small.width, "height": small.height})
    return {"thumbnails": made}

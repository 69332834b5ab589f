"""Reacts to object uploads (S3 event notifications): decides a thumbnail key for each image uploaded.

A real thumbnailer would fetch the object with boto3, resize it and put the result back; this starter
does the event handling and naming, and leaves the image work to you.
"""

import urllib.parse

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def handler(event, context):
    made = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])  # keys arrive URL-encoded
        if not key.lower().endswith(IMAGE_SUFFIXES) or key.startswith("thumbnails/"):
            print(f"skipping {bucket}/{key}")
            continue
        made.append({"bucket": bucket, "source": key, "thumbnail": f"thumbnails/{key}"})
        print(f"would write thumbnails/{key} for {bucket}/{key}")
    return {"thumbnails": made}

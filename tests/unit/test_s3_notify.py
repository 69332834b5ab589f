"""Bucket notification configurations and the S3 event record (lambda-spec 8.1)."""

from __future__ import annotations

import json

import pytest

from lamina.s3 import notify
from lamina.s3.errors import InvalidArgument

ARN = "arn:aws:lambda:us-east-1:000000000000:function:thumbs"
CONFIG = f"""<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<CloudFunctionConfiguration><Id>images</Id><CloudFunction>{ARN}</CloudFunction>
<Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>in/</Value></FilterRule>
<FilterRule><Name>suffix</Name><Value>.png</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration>
<CloudFunctionConfiguration><CloudFunction>{ARN}</CloudFunction><Event>s3:ObjectRemoved:Delete</Event>
</CloudFunctionConfiguration></NotificationConfiguration>""".encode()


def event(name: str, key: str, size: int | None = 5) -> notify.ObjectEvent:
    return notify.ObjectEvent(name=name, bucket="photos", key=key, size=size, etag="abc" if size else None,
                              sequence=42, at=1_700_000_000.25, region="us-east-1", principal="LKIAX",
                              source_ip="127.0.0.1", request_id="REQ", host_id="HOST")


def test_parse_match_and_round_trip():
    targets = notify.parse_configuration(CONFIG)
    assert targets[0] == notify.FunctionTarget("images", ARN, ("s3:ObjectCreated:*",), "in/", ".png")
    assert targets[0].matches("ObjectCreated:Put", "in/cat.png")
    assert targets[0].matches("ObjectCreated:CompleteMultipartUpload", "in/cat.png")
    assert not targets[0].matches("ObjectCreated:Put", "out/cat.png")
    assert not targets[0].matches("ObjectCreated:Put", "in/cat.jpg")
    assert not targets[0].matches("ObjectRemoved:Delete", "in/cat.png")
    assert targets[1].matches("ObjectRemoved:Delete", "anything") and targets[1].id
    assert notify.load(notify.dump(targets)) == targets
    assert notify.parse_configuration(notify.render(targets)) == targets


def test_bad_configurations():
    with pytest.raises(InvalidArgument):
        notify.parse_configuration(CONFIG.replace(b"s3:ObjectRemoved:Delete", b"s3:Nope"))
    with pytest.raises(InvalidArgument):
        notify.parse_configuration(b"<NotificationConfiguration><TopicConfiguration/></NotificationConfiguration>")
    assert notify.parse_configuration(b"<NotificationConfiguration/>") == []


def test_event_record_shape():
    [(arn, payload)] = notify.deliveries(notify.parse_configuration(CONFIG), event("ObjectCreated:Put", "in/red flower+1.png"))
    record = json.loads(payload)["Records"][0]
    assert arn == ARN
    assert record["eventVersion"] == "2.1" and record["eventSource"] == "aws:s3"
    assert record["eventTime"] == "2023-11-14T22:13:20.250Z" and record["eventName"] == "ObjectCreated:Put"
    assert record["userIdentity"] == {"principalId": "AWS:LKIAX"}
    assert record["requestParameters"] == {"sourceIPAddress": "127.0.0.1"}
    assert record["responseElements"] == {"x-amz-request-id": "REQ", "x-amz-id-2": "HOST"}
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0" and s3["configurationId"] == "images"
    assert s3["bucket"]["name"] == "photos" and s3["bucket"]["arn"] == "arn:aws:s3:::photos"
    assert s3["object"] == {"key": "in/red+flower%2B1.png", "size": 5, "eTag": "abc", "sequencer": "00000000000000002A"}


def test_removals_carry_no_size_and_sequencers_increase():
    [(_, payload)] = notify.deliveries(notify.parse_configuration(CONFIG), event("ObjectRemoved:Delete", "x", None))
    obj = json.loads(payload)["Records"][0]["s3"]["object"]
    assert "size" not in obj and "eTag" not in obj
    assert notify.sequencer(9) < notify.sequencer(10) < notify.sequencer(255) < notify.sequencer(4096)

"""Bucket notifications to Lambda functions, pure: the configuration (parsed from and rendered to
S3's XML, stored as JSON), which configurations an event matches, and the S3 event record
(lambda-spec 8.1) each matching function receives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote_plus

from lamina.s3 import xml
from lamina.s3.errors import InvalidArgument

EVENTS = frozenset({
    "s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectCreated:Post", "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload", "s3:ObjectRemoved:*", "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
})
OWNER_ID = "A3LAMINAOWNER0"


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionTarget:
    id: str
    function_arn: str
    events: tuple[str, ...]
    prefix: str
    suffix: str

    def matches(self, event_name: str, key: str) -> bool:
        """`event_name` as in records (`ObjectCreated:Put`)."""
        kind = event_name.split(":", 1)[0]
        wanted = f"s3:{event_name}" in self.events or f"s3:{kind}:*" in self.events
        return wanted and key.startswith(self.prefix) and key.endswith(self.suffix)

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_configuration(body: bytes) -> list[FunctionTarget]:
    """PutBucketNotificationConfiguration's document: its LambdaFunctionConfigurations (an empty
    document turns notifications off). Topic and queue configurations are refused."""
    root = xml.parse(body) if body.strip() else ET.Element("NotificationConfiguration")
    if root.find("TopicConfiguration") is not None or root.find("QueueConfiguration") is not None:
        raise InvalidArgument("lamina delivers notifications to Lambda functions only "
                              "(no TopicConfiguration or QueueConfiguration).")
    targets = []
    for element in root.findall("CloudFunctionConfiguration"):
        arn = (xml.text(element, "CloudFunction") or "").strip()
        events = tuple((e.text or "").strip() for e in element.findall("Event"))
        if not arn or not events:
            raise InvalidArgument("Unable to validate the following destination configurations",
                                  ArgumentName=arn or "CloudFunction", ArgumentValue="")
        for event in events:
            if event not in EVENTS:
                raise InvalidArgument("The event is not supported for notifications",
                                      ArgumentName="Event", ArgumentValue=event)
        prefix = suffix = ""
        for rule in element.findall("Filter/S3Key/FilterRule"):
            name = (xml.text(rule, "Name") or "").strip().lower()
            value = xml.text(rule, "Value") or ""
            if name == "prefix" and not prefix:
                prefix = value
            elif name == "suffix" and not suffix:
                suffix = value
            else:
                raise InvalidArgument("FilterRule name must be either prefix or suffix and appear once each.",
                                      ArgumentName="FilterRule.Name", ArgumentValue=name)
        target_id = (xml.text(element, "Id") or "").strip() or str(uuid.uuid4())
        targets.append(FunctionTarget(target_id, arn, events, prefix, suffix))
    return targets


def dump(targets: list[FunctionTarget]) -> str:
    return json.dumps([t.record() for t in targets])


def load(stored: str | None) -> list[FunctionTarget]:
    if not stored:
        return []
    return [FunctionTarget(r["id"], r["function_arn"], tuple(r["events"]), r["prefix"], r["suffix"])
            for r in json.loads(stored)]


def render(targets: list[FunctionTarget]) -> bytes:
    configs = []
    for t in targets:
        children: list[xml.Node] = [xml.Element("Id", t.id), xml.Element("CloudFunction", t.function_arn)]
        children += [xml.Element("Event", e) for e in t.events]
        rules = ([xml.Element("FilterRule", [xml.Element("Name", "Prefix"), xml.Element("Value", t.prefix)])]
                 if t.prefix else [])
        rules += ([xml.Element("FilterRule", [xml.Element("Name", "Suffix"), xml.Element("Value", t.suffix)])]
                  if t.suffix else [])
        if rules:
            children.append(xml.Element("Filter", xml.Element("S3Key", rules)))
        configs.append(xml.Element("CloudFunctionConfiguration", children))
    return xml.document("NotificationConfiguration", configs)


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectEvent:
    """Something that happened to an object, with what the record needs."""

    name: str  # ObjectCreated:Put, ObjectRemoved:Delete, ...
    bucket: str
    key: str
    size: int | None  # None for removals
    etag: str | None
    sequence: int
    at: float
    region: str
    principal: str
    source_ip: str
    request_id: str
    host_id: str


def sequencer(sequence: int) -> str:
    """Hex, fixed width, so later events compare greater as strings too (as S3's do)."""
    return f"{sequence:018X}"


def event_time(epoch_s: float) -> str:
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def event_record(event: ObjectEvent, configuration_id: str) -> dict[str, Any]:
    """The whole notification a function gets (one record, as S3 sends one event per invoke)."""
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    if event.size is not None:
        obj["size"] = event.size
    if event.etag is not None:
        obj["eTag"] = event.etag
    obj["sequencer"] = sequencer(event.sequence)
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": event.region,
        "eventTime": event_time(event.at),
        "eventName": event.name,
        "userIdentity": {"principalId": f"AWS:{event.principal}"},
        "requestParameters": {"sourceIPAddress": event.source_ip},
        "responseElements": {"x-amz-request-id": event.request_id, "x-amz-id-2": event.host_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": event.bucket, "ownerIdentity": {"principalId": OWNER_ID},
                       "arn": f"arn:aws:s3:::{event.bucket}"},
            "object": obj,
        },
    }]}


def deliveries(targets: list[FunctionTarget], event: ObjectEvent) -> list[tuple[str, bytes]]:
    """(function ARN, payload) for every configuration the event matches."""
    return [(t.function_arn, json.dumps(event_record(event, t.id)).encode())
            for t in targets if t.matches(event.name, event.key)]

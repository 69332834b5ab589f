"""Messages to SQS queues (esm/destinations.py): retries with backoff, the give-up, the on-failure sender,
dead-letter attributes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from botocore.exceptions import EndpointConnectionError

from lamina.esm.destinations import QueueSender, dead_letter_attributes, is_queue_arn

ARN = "arn:aws:sqs:us-east-1:123456789012:dest"


class FlakyClient:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kw: Any) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        self.sent.append(kw)
        return {"MessageId": "m"}


class FakeClients:
    def __init__(self, client: FlakyClient) -> None:
        self.client = client

    def for_arn(self, service: str, arn: str) -> FlakyClient:
        return self.client

    def queue_url(self, arn: str) -> str:
        return "http://queue/dest"


def sender(client: FlakyClient, delays: list[float]) -> QueueSender:
    async def sleep(s: float) -> None:
        delays.append(s)
    return QueueSender(FakeClients(client), attempts=4, base_delay_s=0.2, sleep=sleep)  # type: ignore[arg-type]


def test_a_failed_send_is_retried_with_doubling_delays():
    client, delays = FlakyClient(failures=2), []
    assert asyncio.run(sender(client, delays).send(ARN, "body")) is True
    assert delays == [0.2, 0.4] and client.sent == [{"QueueUrl": "http://queue/dest", "MessageBody": "body"}]


def test_a_send_that_keeps_failing_is_given_up_and_logged(caplog):
    client, delays = FlakyClient(failures=10), []
    assert asyncio.run(sender(client, delays).send(ARN, "body")) is False
    assert delays == [0.2, 0.4, 0.8] and client.sent == []
    assert "sqs_send_failed" in caplog.text


def test_the_stream_on_failure_sender_sends_the_record_as_json():
    client = FlakyClient(failures=0)
    send_failure = sender(client, []).failure_sender(ARN)
    asyncio.run(send_failure({"requestContext": {"condition": "RetryAttemptsExhausted"}}))
    assert json.loads(client.sent[0]["MessageBody"]) == {"requestContext": {"condition": "RetryAttemptsExhausted"}}


def test_dead_letter_attributes():
    attrs = dead_letter_attributes("rid", 200, json.dumps({"errorMessage": "boom", "errorType": "ValueError"}))
    assert attrs == {"RequestID": {"DataType": "String", "StringValue": "rid"},
                     "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                     "ErrorMessage": {"DataType": "String", "StringValue": "boom"}}
    assert len(dead_letter_attributes("r", 200, "x" * 5000)["ErrorMessage"]["StringValue"]) == 1024


def test_queue_arns():
    assert is_queue_arn(ARN) and not is_queue_arn("arn:aws:lambda:us-east-1:1:function:f") and not is_queue_arn(None)

"""Messages to SQS queues: asynchronous-invocation destinations and dead-letter queues, and the
on-failure records of event source mappings.

A send is retried a few times with doubling delays (throttles, a queue server restarting); one that still
fails is logged and reported as False to the caller, whose own record (queue lease, checkpoint) decides
what happens next.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lamina.esm.clients import Clients
from lamina.esm.contracts import SendFailure

log = logging.getLogger("lamina.esm")

def is_queue_arn(arn: str | None) -> bool:
    parts = (arn or "").split(":")
    return len(parts) >= 6 and parts[0] == "arn" and parts[1].startswith("aws") and parts[2] == "sqs"


class QueueSender:
    def __init__(self, clients: Clients, *, attempts: int = 4, base_delay_s: float = 0.2,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clients = clients
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._sleep = sleep

    def _send_blocking(self, queue_arn: str, body: str, attributes: dict[str, Any] | None) -> None:
        client = self._clients.for_arn("sqs", queue_arn)
        kwargs: dict[str, Any] = {"QueueUrl": self._clients.queue_url(queue_arn), "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        client.send_message(**kwargs)

    async def send(self, queue_arn: str, body: str, attributes: dict[str, Any] | None = None) -> bool:
        """SendMessage, retried; False (logged) when every attempt failed."""
        for attempt in range(1, self._attempts + 1):
            try:
                await asyncio.to_thread(self._send_blocking, queue_arn, body, attributes)
                return True
            except (BotoCoreError, ClientError, OSError, ValueError) as exc:
                if attempt == self._attempts:
                    log.error("sqs_send_failed queue=%s attempts=%d error=%r", queue_arn, attempt, exc)
                    return False
                log.warning("sqs_send_retry queue=%s attempt=%d error=%r", queue_arn, attempt, exc)
                await self._sleep(self._base_delay_s * 2 ** (attempt - 1))
        return False

    def failure_sender(self, queue_arn: str) -> SendFailure:
        """The `send_failure` callable of a stream poller whose DestinationConfig.OnFailure is `queue_arn`."""
        async def send_failure(record: dict[str, Any]) -> None:
            await self.send(queue_arn, json.dumps(record))
        return send_failure


def dead_letter_attributes(request_id: str, status: int, error: str) -> dict[str, Any]:
    """The message attributes Lambda puts on a dead-letter message (`error`: the function's error payload,
    whose errorMessage is kept, or a text)."""
    error_message = error
    try:
        parsed = json.loads(error)
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            error_message = parsed["errorMessage"]
    except ValueError:
        pass
    return {
        "RequestID": {"DataType": "String", "StringValue": request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": str(status)},
        "ErrorMessage": {"DataType": "String", "StringValue": error_message.encode()[:1024].decode("utf-8", "ignore")
                         or "Unhandled"},
    }

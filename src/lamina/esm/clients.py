"""boto3 clients for the services event source mappings read and write (SQS, Kinesis, DynamoDB Streams).

Endpoints come from the SDK's standard settings, which botocore reads itself: `AWS_ENDPOINT_URL_SQS`,
`AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`, then `AWS_ENDPOINT_URL`, then AWS's own.
Credentials come from the default chain; the region from the resource's ARN. Clients are thread-safe and
cached per (service, region); calls on them block, so callers run them in a thread.
"""

from __future__ import annotations

import threading
from typing import Any



def arn_region(arn: str) -> str:
    """`arn:aws:sqs:eu-west-1:123456789012:q` -> `eu-west-1`."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[3]:
        raise ValueError(f"not a regional ARN: {arn}")
    return parts[3]


def arn_account(arn: str) -> str:
    return arn.split(":")[4]


def arn_resource(arn: str) -> str:
    return arn.split(":", 5)[5]


class Clients:
    def __init__(self, *, read_timeout_s: float = 30.0, max_pool: int = 50) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        self._queue_urls: dict[str, str] = {}
        self._settings = {"retries": {"mode": "standard", "total_max_attempts": 3}, "read_timeout": read_timeout_s,
                          "connect_timeout": 5, "max_pool_connections": max_pool}

    def get(self, service: str, region: str) -> Any:
        """A client for `service` ("sqs", "kinesis", "dynamodbstreams") in `region`."""
        key = (service, region)
        with self._lock:
            client = self._cache.get(key)
            if client is None:
                import boto3  # ~0.2 s to import: paid by the first mapping, not by every server start
                from botocore.config import Config as BotoConfig
                client = boto3.session.Session().client(service, region_name=region,
                                                        config=BotoConfig(**self._settings))
                self._cache[key] = client
            return client

    def for_arn(self, service: str, arn: str) -> Any:
        return self.get(service, arn_region(arn))

    def queue_url(self, arn: str) -> str:
        """The URL of the SQS queue an ARN names (GetQueueUrl once, then cached); botocore errors propagate."""
        with self._lock:
            url = self._queue_urls.get(arn)
        if url is None:
            client = self.for_arn("sqs", arn)
            url = client.get_queue_url(QueueName=arn_resource(arn), QueueOwnerAWSAccountId=arn_account(arn))["QueueUrl"]
            with self._lock:
                self._queue_urls[arn] = url
        return url

    def close(self) -> None:
        with self._lock:
            clients, self._cache = list(self._cache.values()), {}
        for client in clients:
            client.close()

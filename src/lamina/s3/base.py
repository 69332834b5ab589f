"""What every S3 operation shares: the store, the clock, the region, the notification hooks, and
the lookups that raise S3's errors (bucket, object, copy source, upload)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from lamina.api import sigv4
from lamina.clock import Clock
from lamina.http.server import Request
from lamina.s3 import errors as e, notify
from lamina.s3.store import ObjectInfo, ObjectStore
from lamina.s3.xml import Element as E

log = logging.getLogger("lamina.s3")
T = TypeVar("T")

XML = "application/xml"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
OWNER = [E("ID", "lamina"), E("DisplayName", "lamina")]
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")

#: (function ARN) -> does it exist?  /  (function ARN, event payload) -> queued as an async invoke
FunctionExists = Callable[[str], bool]
Deliver = Callable[[str, bytes], Awaitable[None]]


def etag(value: str) -> str:
    return f'"{value}"'


class Operations:
    def __init__(self, store: ObjectStore, clock: Clock, secret_for: Callable[[str], str | None], region: str,
                 function_exists: FunctionExists, deliver: Deliver) -> None:
        self._store = store
        self._clock = clock
        self._secret_for = secret_for
        self._region = region
        self._function_exists = function_exists
        self._deliver = deliver

    # helpers -----------------------------------------------------------------------------------

    @staticmethod
    async def _blocking(fn: Callable[..., T], *args: Any) -> T:
        """A store call that fsyncs (a write's rename and commit), run off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    def _bucket(self, name: str) -> None:
        if self._store.bucket(name) is None:
            raise e.NoSuchBucket(BucketName=name)

    def _targets(self, name: str) -> list[notify.FunctionTarget]:
        bucket = self._store.bucket(name)
        if bucket is None:
            raise e.NoSuchBucket(BucketName=name)
        return notify.load(bucket.notification)

    def _object(self, bucket: str, key: str) -> ObjectInfo:
        found = self._store.get_object(bucket, key)
        if found is None:
            self._bucket(bucket)
            raise e.NoSuchKey(Key=key)
        return found

    @staticmethod
    def _metadata(request: Request) -> tuple[str | None, dict[str, str]]:
        """Content-Type and what else is stored with an object: x-amz-meta-* and standard headers."""
        meta: dict[str, str] = {}
        for name, value in request.headers.items():
            lowered = name.lower()
            if lowered.startswith("x-amz-meta-") or lowered in STORED_HEADERS:
                if lowered == "content-encoding":
                    value = ",".join(v for v in value.split(",") if v.strip().lower() != "aws-chunked")
                    if not value:
                        continue
                meta[lowered] = value
        return request.headers.get("content-type"), meta

    async def _notify(self, request: Request, name: str, bucket: str, key: str, size: int | None,
                      etag: str | None, sequence: int) -> None:
        targets = self._targets_quiet(bucket)
        if not targets:
            return
        signed: sigv4.S3Signed = request["s3_signed"]
        request_id, host_id = request["s3_ids"]
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        event = notify.ObjectEvent(
            name=name, bucket=bucket, key=key, size=size, etag=etag, sequence=sequence, at=self._clock.time(),
            region=self._region, principal=signed.principal.access_key_id,
            source_ip=peer[0] if peer else "127.0.0.1", request_id=request_id, host_id=host_id)
        for arn, payload in notify.deliveries(targets, event):
            try:
                await self._deliver(arn, payload)
            except Exception as exc:  # a function deleted since: S3 drops the event too, the write stands
                log.warning("s3_notification_failed bucket=%s key=%s function=%s error=%s", bucket, key, arn, exc)

    def _targets_quiet(self, bucket: str) -> list[notify.FunctionTarget]:
        found = self._store.bucket(bucket)
        return notify.load(found.notification) if found is not None else []

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode("utf-8", "surrogateescape")) > 1024:
            raise e.InvalidArgument("Your key is too long", Key=key[:64])

    def _copy_source(self, request: Request) -> ObjectInfo:
        source = unquote(request.headers["x-amz-copy-source"]).lstrip("/").split("?versionId=", 1)[0]
        source_bucket, _, source_key = source.partition("/")
        if not source_key:
            raise e.InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                                    ArgumentName="x-amz-copy-source", ArgumentValue=source)
        return self._object(source_bucket, source_key)


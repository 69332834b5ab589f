"""The S3 front door: requests signed for service `s3` (path-style `/{bucket}/{key}`), their SigV4
check, one handler per operation, and the one place S3 errors become XML.

Routing is by method, by whether the path names a bucket or an object, and by S3's sub-resource query
parameters (`?uploads`, `?uploadId=`, `?delete`, `?notification`, `?list-type=2`, ...).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, unquote

from lamina.api import sigv4
from lamina.clock import Clock
from lamina.errors import AuthError, IncompleteSignature, InvalidParameterValue, InvalidSignature, UnrecognizedClient
from lamina.http.server import Request, Response
from lamina.s3 import errors as e, listing, notify, sigv2, xml
from lamina.s3.body import FileChunks, document, read_range, receive
from lamina.s3.ranges import parse_range, range_length
from lamina.s3.store import ObjectInfo, ObjectStore
from lamina.s3.xml import Element as E

log = logging.getLogger("lamina.s3")

XML = "application/xml"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10000
INLINE_BYTES = 256 * 1024  # smaller objects are answered in one write
MAX_CODE_BYTES = 262_144_000
OWNER = [E("ID", "lamina"), E("DisplayName", "lamina")]
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
#: Response headers a GET may override with `response-*` query parameters.
OVERRIDES = ("content-type", "content-language", "expires", "cache-control", "content-disposition",
             "content-encoding")
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")

#: (function ARN) -> does it exist?  /  (function ARN, event payload) -> queued as an async invoke
FunctionExists = Callable[[str], bool]
Deliver = Callable[[str, bytes], Awaitable[None]]


_V2_ERRORS: dict[str, type[e.S3Error]] = {
    "AccessDenied": e.AccessDenied, "InvalidAccessKeyId": e.InvalidAccessKeyId,
    "SignatureDoesNotMatch": e.SignatureDoesNotMatch,
}


def is_s3_request(method: str, url: str, headers: list[tuple[str, str]]) -> bool:
    """Cheap test on a raw request: signed with an S3 credential scope (header or presigned URL)."""
    if "%2Fs3%2Faws4_request" in url or "/s3/aws4_request" in url or "AWSAccessKeyId=" in url:
        return True
    for name, value in headers:
        if len(name) == 13 and name.lower() == "authorization":
            return "/s3/aws4_request" in value
    return False


def streams_body(method: str, url: str, headers: list[tuple[str, str]]) -> bool:
    """PutObject and UploadPart bodies are streamed to disk, never buffered whole."""
    return method == "PUT" and is_s3_request(method, url, headers)


def valid_bucket_name(name: str) -> bool:
    if not _BUCKET.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        return True


def _etag(value: str) -> str:
    return f'"{value}"'


class S3Api:
    def __init__(self, store: ObjectStore, clock: Clock, secret_for: Callable[[str], str | None], region: str,
                 function_exists: FunctionExists, deliver: Deliver) -> None:
        self._store = store
        self._clock = clock
        self._secret_for = secret_for
        self._region = region
        self._function_exists = function_exists
        self._deliver = deliver

    # the door ----------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = secrets.token_hex(8).upper()
        host_id = base64.b64encode(secrets.token_bytes(48)).decode()
        request["s3_ids"] = (request_id, host_id)
        try:
            signed = self._authenticate(request)
            request["s3_signed"] = signed
            response = await self._route(request, signed)
        except e.S3Error as exc:
            response = self._error(exc, request)
        except Exception:
            log.exception("internal error on S3 %s %s", request.method, request.raw_path)
            response = self._error(e.InternalError(), request)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = host_id
        return response

    def _error(self, exc: e.S3Error, request: Request) -> Response:
        children: list[xml.Node] = [E("Code", exc.aws_code), E("Message", exc.message)]
        children += [E(name, value) for name, value in exc.fields.items()]
        request_id, host_id = request["s3_ids"]
        children += [E("RequestId", request_id), E("HostId", host_id)]
        return Response(xml.document("Error", children, namespace=False), status=exc.http_status, content_type=XML)

    def _authenticate(self, request: Request) -> sigv4.S3Signed:
        path, _, query = request.raw_path.partition("?")
        if "X-Amz-Credential=" not in query and sigv2.is_presigned_v2(query):
            try:
                access_key = sigv2.verify_presigned(request.method, path, query, list(request.headers.items()),
                                                    self._secret_for, self._clock.time())
            except sigv2.SigV2Error as exc:
                raise _V2_ERRORS[exc.code](exc.message) from None
            principal = sigv4.Principal(access_key, self._region, "s3", "")
            return sigv4.S3Signed(principal, sigv4.UNSIGNED_PAYLOAD, "", "", "", b"")
        try:
            return sigv4.verify_s3(method=request.method, raw_path=path, raw_query=query,
                                   headers=list(request.headers.items()), secret_for=self._secret_for,
                                   now=dt.datetime.fromtimestamp(self._clock.time(), tz=dt.timezone.utc))
        except UnrecognizedClient:
            raise e.InvalidAccessKeyId() from None
        except InvalidSignature as exc:
            if "expired" in exc.message or "not yet current" in exc.message:
                raise e.AccessDenied("Request has expired" if "expired" in exc.message else exc.message) from None
            if "x-amz-content-sha256" in exc.message:
                raise e.InvalidArgument(exc.message) from None
            raise e.SignatureDoesNotMatch() from None
        except IncompleteSignature as exc:
            raise e.AccessDenied(exc.message) from None
        except AuthError as exc:
            raise e.AccessDenied(exc.message) from None

    async def _route(self, request: Request, signed: sigv4.S3Signed) -> Response:
        path = request.raw_path.partition("?")[0]
        bucket, _, raw_key = path.lstrip("/").partition("/")
        try:
            bucket = unquote(bucket, errors="strict")
            key = unquote(raw_key, errors="strict") if raw_key else ""
        except UnicodeDecodeError:
            raise e.InvalidURI() from None
        q = request.query
        method = request.method
        if not bucket:
            if method == "GET":
                return self.list_buckets(request)
            raise e.MethodNotAllowed()
        if not key:
            if method == "PUT":
                sent = await document(request)
                if "notification" in q:
                    return self.put_notification(sent, bucket)
                return self.create_bucket(sent, bucket)
            if method == "GET":
                if "notification" in q:
                    return self.get_notification(bucket)
                if "location" in q:
                    self._bucket(bucket)
                    location = "" if self._region == "us-east-1" else self._region
                    return Response(xml.document("LocationConstraint", [location]), content_type=XML)
                if "uploads" in q:
                    return self.list_uploads(request, bucket)
                if "versions" in q or "policy" in q or "acl" in q:
                    raise e.NotImplementedError_("lamina does not implement this bucket sub-resource.")
                return self.list_objects(request, bucket)
            if method == "HEAD":
                self._bucket(bucket)
                return Response(headers={"x-amz-bucket-region": self._region})
            if method == "DELETE":
                return self.delete_bucket(bucket)
            if method == "POST" and "delete" in q:
                return await self.delete_objects(request, signed, bucket)
            raise e.MethodNotAllowed()
        if method == "PUT":
            if "partNumber" in q or "uploadId" in q:
                return await self.upload_part(request, signed, bucket, key)
            if request.headers.get("x-amz-copy-source"):
                return await self.copy_object(request, bucket, key)
            return await self.put_object(request, signed, bucket, key)
        if method in ("GET", "HEAD"):
            if "uploadId" in q and method == "GET":
                return self.list_parts(request, bucket, key)
            return await self.get_object(request, bucket, key, head=method == "HEAD")
        if method == "DELETE":
            if "uploadId" in q:
                return self.abort_upload(request, bucket, key)
            return await self.delete_object(request, bucket, key)
        if method == "POST":
            if "uploads" in q:
                return self.create_upload(request, bucket, key)
            if "uploadId" in q:
                return await self.complete_upload(request, bucket, key)
        raise e.MethodNotAllowed()

    # helpers -----------------------------------------------------------------------------------

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

    async def code_package(self, bucket: str, key: str) -> bytes:
        """An object's bytes as a function's code (CreateFunction / UpdateFunctionCode with
        Code.S3Bucket/S3Key); errors worded as Lambda words them."""
        try:
            info = self._object(bucket, key)
        except e.S3Error as exc:
            raise InvalidParameterValue(f"Error occurred while GetObject. S3 Error Code: {exc.aws_code}. "
                                        f"S3 Error Message: {exc.message}") from None
        if info.size > MAX_CODE_BYTES:
            raise InvalidParameterValue(f"Unzipped size must be smaller than {MAX_CODE_BYTES} bytes")
        return await asyncio.get_running_loop().run_in_executor(
            None, read_range, self._store.path_of(info.file), 0, info.size)

    # buckets -----------------------------------------------------------------------------------

    def list_buckets(self, request: Request) -> Response:
        buckets = [E("Bucket", [E("Name", b.name), E("CreationDate", xml.timestamp(b.created))])
                   for b in self._store.buckets()]
        return Response(xml.document("ListAllMyBucketsResult", [E("Owner", OWNER), E("Buckets", buckets)]),
                        content_type=XML)

    def create_bucket(self, document: bytes, name: str) -> Response:
        if not valid_bucket_name(name):
            raise e.InvalidBucketName(BucketName=name)
        region = self._region
        if document.strip():
            constraint = xml.text(xml.parse(document), "LocationConstraint")
            if constraint:
                region = constraint
        if not self._store.create_bucket(name, region, self._clock.time()):
            raise e.BucketAlreadyOwnedByYou(BucketName=name)
        return Response(headers={"Location": f"/{name}"})

    def delete_bucket(self, name: str) -> Response:
        outcome = self._store.delete_bucket(name)
        if outcome == "missing":
            raise e.NoSuchBucket(BucketName=name)
        if outcome == "not-empty":
            raise e.BucketNotEmpty(BucketName=name)
        return Response(status=204)

    def put_notification(self, document: bytes, bucket: str) -> Response:
        self._bucket(bucket)
        targets = notify.parse_configuration(document)
        missing = [t.function_arn for t in targets if not self._function_exists(t.function_arn)]
        if missing:
            fields: dict[str, str] = {}
            for i, arn in enumerate(missing, start=1):
                fields[f"ArgumentName{i}"] = arn
                fields[f"ArgumentValue{i}"] = "Not authorized to invoke function [" + arn + "]"
            raise e.InvalidArgument("Unable to validate the following destination configurations", **fields)
        self._store.set_notification(bucket, notify.dump(targets) if targets else None)
        return Response()

    def get_notification(self, bucket: str) -> Response:
        return Response(notify.render(self._targets(bucket)), content_type=XML)

    # listing -----------------------------------------------------------------------------------

    def list_objects(self, request: Request, bucket: str) -> Response:
        self._bucket(bucket)
        q = request.query
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        raw_max = q.get("max-keys", "1000")
        if not raw_max.isdigit():
            raise e.InvalidArgument("Provided max-keys not an integer or within integer range",
                                    ArgumentName="max-keys", ArgumentValue=raw_max)
        max_keys = min(int(raw_max), 1000)
        if q.get("encoding-type", "url") != "url":
            raise e.InvalidArgument("Invalid Encoding Method specified in Request", ArgumentName="encoding-type",
                                    ArgumentValue=q["encoding-type"])
        url = q.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/")) if url else (lambda s: s)
        after = ""
        if v2:
            token = q.get("continuation-token")
            start_after = q.get("start-after", "")
            if token is not None:
                try:
                    after = listing.untoken(token)
                except ValueError:
                    raise e.InvalidArgument("The continuation token provided is incorrect",
                                            ArgumentName="continuation-token") from None
            else:
                after = start_after
        else:
            after = q.get("marker", "")
        page = listing.page(lambda a, n: self._store.list_objects(bucket, prefix, a, n),
                            prefix, delimiter, after, max_keys)
        contents = [E("Contents", [
            E("Key", enc(o.key)), E("LastModified", xml.timestamp(o.modified)), E("ETag", _etag(o.etag)),
            E("Size", o.size), E("StorageClass", "STANDARD")]) for o in page.contents  # type: ignore[attr-defined]
        ]
        prefixes = [E("CommonPrefixes", E("Prefix", enc(p))) for p in page.common_prefixes]
        children: list[xml.Node] = [E("IsTruncated", page.truncated), contents, E("Name", bucket),
                                    E("Prefix", enc(prefix))]
        if delimiter:
            children.append(E("Delimiter", enc(delimiter)))
        children.append(E("MaxKeys", max_keys))
        children.append(prefixes)
        if url:
            children.append(E("EncodingType", "url"))
        if v2:
            children.append(E("KeyCount", len(page.contents) + len(page.common_prefixes)))
            if "continuation-token" in q:
                children.append(E("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                children.append(E("StartAfter", enc(q["start-after"])))
            if page.truncated and page.next_after is not None:
                children.append(E("NextContinuationToken", listing.token(page.next_after)))
        else:
            children.append(E("Marker", enc(q.get("marker", ""))))
            if page.truncated and delimiter and page.next_after is not None:
                children.append(E("NextMarker", enc(page.next_after.rstrip(listing.PAST))))
        return Response(xml.document("ListBucketResult", children), content_type=XML)

    # objects -----------------------------------------------------------------------------------

    async def put_object(self, request: Request, signed: sigv4.S3Signed, bucket: str, key: str) -> Response:
        self._check_key(key)
        self._bucket(bucket)
        written = await receive(request, signed, self._store)
        content_type, meta = self._metadata(request)
        stored = self._store.put_object(bucket, key, written.path, written.size, written.md5,
                                        content_type or DEFAULT_CONTENT_TYPE, meta, self._clock.time())
        if stored is None:
            raise e.NoSuchBucket(BucketName=bucket)
        info, sequence = stored
        await self._notify(request, "ObjectCreated:Put", bucket, key, info.size, info.etag, sequence)
        return Response(headers={"ETag": _etag(info.etag)})

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode("utf-8", "surrogateescape")) > 1024:
            raise e.InvalidArgument("Your key is too long", Key=key[:64])

    async def get_object(self, request: Request, bucket: str, key: str, head: bool) -> Response:
        info = self._object(bucket, key)
        headers = {"ETag": _etag(info.etag), "Last-Modified": xml.http_date(info.modified),
                   "Accept-Ranges": "bytes"}
        for name, value in info.metadata.items():
            headers[name] = value
        q = request.query
        for name in OVERRIDES:
            if f"response-{name}" in q:
                headers[name] = q[f"response-{name}"]
        content_type = headers.pop("content-type", None) or info.content_type or DEFAULT_CONTENT_TYPE
        condition = self._conditions(request, info)
        if condition is not None:
            return condition
        start, end, status = 0, info.size - 1, 200
        spec = request.headers.get("range")
        if spec is not None:
            wanted = parse_range(spec, info.size)
            if wanted == "unsatisfiable":
                raise e.InvalidRange(RangeRequested=spec, ActualObjectSize=str(info.size))
            if wanted is not None:
                start, end = wanted
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        length = max(end - start + 1, 0)
        if head:
            return Response(status=status, headers=headers, content_type=content_type, length=length)
        path = self._store.path_of(info.file)
        if length <= INLINE_BYTES:
            data = await asyncio.get_running_loop().run_in_executor(None, read_range, path, start, length)
            return Response(data, status=status, headers=headers, content_type=content_type)
        handle = open(path, "rb")  # opened now: a delete or overwrite from here on unlinks, never truncates
        return Response(status=status, headers=headers, content_type=content_type, length=length,
                        stream=FileChunks(handle, start, length))

    @staticmethod
    def _conditions(request: Request, info: ObjectInfo) -> Response | None:
        etag = _etag(info.etag)
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match.strip() not in (etag, "*", info.etag):
            raise e.PreconditionFailed(Condition="If-Match")
        if_none = request.headers.get("if-none-match")
        if if_none is not None and if_none.strip() in (etag, "*", info.etag):
            return Response(status=304, headers={"ETag": etag})
        return None

    async def delete_object(self, request: Request, bucket: str, key: str) -> Response:
        self._bucket(bucket)
        sequence = self._store.delete_object(bucket, key)
        if sequence is not None:
            await self._notify(request, "ObjectRemoved:Delete", bucket, key, None, None, sequence)
        return Response(status=204)

    async def delete_objects(self, request: Request, signed: sigv4.S3Signed, bucket: str) -> Response:
        self._bucket(bucket)
        root = xml.parse(request.body)
        quiet = (xml.text(root, "Quiet") or "").strip().lower() == "true"
        keys = [xml.text(o, "Key") or "" for o in root.findall("Object")]
        if len(keys) > 1000:
            raise e.MalformedXML()
        out: list[xml.Node] = []
        for key in keys:
            sequence = self._store.delete_object(bucket, key)
            if sequence is not None:
                await self._notify(request, "ObjectRemoved:Delete", bucket, key, None, None, sequence)
            if not quiet:
                out.append(E("Deleted", E("Key", key)))
        return Response(xml.document("DeleteResult", out), content_type=XML)

    async def copy_object(self, request: Request, bucket: str, key: str) -> Response:
        self._check_key(key)
        info = self._copy_source(request)
        source_bucket, source_key = info.bucket, info.key
        self._bucket(bucket)
        directive = (request.headers.get("x-amz-metadata-directive") or "COPY").upper()
        if directive == "REPLACE":
            content_type, meta = self._metadata(request)
            content_type = content_type or DEFAULT_CONTENT_TYPE
        else:
            if (source_bucket, source_key) == (bucket, key):
                raise e.InvalidRequest("This copy request is illegal because it is trying to copy an object to "
                                       "itself without changing the object's metadata, storage class, website "
                                       "redirect location or encryption attributes.")
            content_type, meta = info.content_type, info.metadata
        copy = await asyncio.get_running_loop().run_in_executor(None, self._store.copy_file, info.file)
        stored = self._store.put_object(bucket, key, copy, info.size, info.etag, content_type, meta,
                                        self._clock.time())
        if stored is None:
            raise e.NoSuchBucket(BucketName=bucket)
        new, sequence = stored
        await self._notify(request, "ObjectCreated:Copy", bucket, key, new.size, new.etag, sequence)
        body = xml.document("CopyObjectResult", [E("LastModified", xml.timestamp(new.modified)),
                                                 E("ETag", _etag(new.etag))])
        return Response(body, content_type=XML)

    # multipart ---------------------------------------------------------------------------------

    def create_upload(self, request: Request, bucket: str, key: str) -> Response:
        self._check_key(key)
        self._bucket(bucket)
        content_type, meta = self._metadata(request)
        upload = self._store.create_upload(bucket, key, content_type or DEFAULT_CONTENT_TYPE, meta,
                                           self._clock.time())
        body = xml.document("InitiateMultipartUploadResult", [E("Bucket", bucket), E("Key", key),
                                                              E("UploadId", upload.id)])
        return Response(body, content_type=XML)

    def _upload(self, request: Request, bucket: str, key: str) -> str:
        upload_id = request.query.get("uploadId", "")
        upload = self._store.upload(upload_id)
        if upload is None or (upload.bucket, upload.key) != (bucket, key):
            self._bucket(bucket)
            raise e.NoSuchUpload(UploadId=upload_id)
        return upload_id

    async def upload_part(self, request: Request, signed: sigv4.S3Signed, bucket: str, key: str) -> Response:
        raw = request.query.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
            raise e.InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                    ArgumentName="partNumber", ArgumentValue=raw)
        upload_id = self._upload(request, bucket, key)
        if request.headers.get("x-amz-copy-source"):
            return await self.upload_part_copy(request, upload_id, int(raw))
        written = await receive(request, signed, self._store)
        if not self._store.put_part(upload_id, int(raw), written.path, written.size, written.md5, self._clock.time()):
            raise e.NoSuchUpload(UploadId=upload_id)
        return Response(headers={"ETag": _etag(written.md5)})

    def _copy_source(self, request: Request) -> ObjectInfo:
        source = unquote(request.headers["x-amz-copy-source"]).lstrip("/").split("?versionId=", 1)[0]
        source_bucket, _, source_key = source.partition("/")
        if not source_key:
            raise e.InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                                    ArgumentName="x-amz-copy-source", ArgumentValue=source)
        return self._object(source_bucket, source_key)

    async def upload_part_copy(self, request: Request, upload_id: str, number: int) -> Response:
        """UploadPartCopy: a part made of (a range of) an existing object (`x-amz-copy-source-range`)."""
        info = self._copy_source(request)
        start, length = 0, info.size
        spec = request.headers.get("x-amz-copy-source-range")
        if spec is not None:
            wanted = parse_range(spec, info.size)
            if not isinstance(wanted, tuple) or wanted[1] - wanted[0] + 1 != range_length(spec):
                raise e.InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last "
                                        "where first and last are the zero-based offsets of the first and last "
                                        "bytes to copy", ArgumentName="x-amz-copy-source-range", ArgumentValue=spec)
            start, length = wanted[0], wanted[1] - wanted[0] + 1
        written = await asyncio.get_running_loop().run_in_executor(
            None, self._store.copy_range, info.file, start, length)
        if not self._store.put_part(upload_id, number, written.path, written.size, written.md5, self._clock.time()):
            raise e.NoSuchUpload(UploadId=upload_id)
        body = xml.document("CopyPartResult", [E("LastModified", xml.timestamp(self._clock.time())),
                                               E("ETag", _etag(written.md5))])
        return Response(body, content_type=XML)

    def list_uploads(self, request: Request, bucket: str) -> Response:
        """ListMultipartUploads: uploads in progress, by key then initiation (prefix; up to max-uploads)."""
        self._bucket(bucket)
        q = request.query
        prefix = q.get("prefix", "")
        max_uploads = min(int(q["max-uploads"]), 1000) if q.get("max-uploads", "").isdigit() else 1000
        key_marker = q.get("key-marker", "")
        uploads = [u for u in self._store.uploads(bucket) if u.key.startswith(prefix) and u.key > key_marker]
        page, truncated = uploads[:max_uploads], len(uploads) > max_uploads
        children: list[xml.Node] = [E("Bucket", bucket), E("KeyMarker", key_marker), E("UploadIdMarker", ""),
                                    E("Prefix", prefix), E("MaxUploads", max_uploads), E("IsTruncated", truncated)]
        if truncated:
            children += [E("NextKeyMarker", page[-1].key), E("NextUploadIdMarker", page[-1].id)]
        children += [E("Upload", [E("Key", u.key), E("UploadId", u.id), E("Initiator", OWNER), E("Owner", OWNER),
                                  E("StorageClass", "STANDARD"), E("Initiated", xml.timestamp(u.initiated))])
                     for u in page]
        return Response(xml.document("ListMultipartUploadsResult", children), content_type=XML)

    def list_parts(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        q = request.query
        marker = int(q["part-number-marker"]) if q.get("part-number-marker", "").isdigit() else 0
        max_parts = min(int(q["max-parts"]), 1000) if q.get("max-parts", "").isdigit() else 1000
        parts = [p for p in self._store.parts(upload_id) if p.number > marker]
        page, truncated = parts[:max_parts], len(parts) > max_parts
        children: list[xml.Node] = [E("Bucket", bucket), E("Key", key), E("UploadId", upload_id),
                                    E("PartNumberMarker", marker)]
        if page:
            children.append(E("NextPartNumberMarker", page[-1].number))
        children += [E("MaxParts", max_parts), E("IsTruncated", truncated)]
        children += [E("Part", [E("PartNumber", p.number), E("LastModified", xml.timestamp(p.modified)),
                                E("ETag", _etag(p.etag)), E("Size", p.size)]) for p in page]
        children += [E("Initiator", OWNER), E("Owner", OWNER), E("StorageClass", "STANDARD")]
        return Response(xml.document("ListPartsResult", children), content_type=XML)

    def abort_upload(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        self._store.finish_upload(upload_id)
        return Response(status=204)

    async def complete_upload(self, request: Request, bucket: str, key: str) -> Response:
        upload_id = self._upload(request, bucket, key)
        upload = self._store.upload(upload_id)
        assert upload is not None
        root = xml.parse(request.body)
        asked: list[tuple[int, str]] = []
        for element in root.findall("Part"):
            number = (xml.text(element, "PartNumber") or "").strip()
            if not number.isdigit():
                raise e.MalformedXML()
            asked.append((int(number), (xml.text(element, "ETag") or "").strip().strip('"')))
        if not asked:
            raise e.MalformedXML("The XML you provided was not well-formed or did not validate against our "
                                 "published schema")
        numbers = [n for n, _ in asked]
        if numbers != sorted(set(numbers)):
            raise e.InvalidPartOrder(UploadId=upload_id)
        stored = {p.number: p for p in self._store.parts(upload_id)}
        chosen = []
        for i, (number, etag) in enumerate(asked):
            part = stored.get(number)
            if part is None or part.etag != etag:
                raise e.InvalidPart(UploadId=upload_id, PartNumber=str(number), ETag=etag)
            if i < len(asked) - 1 and part.size < MIN_PART_BYTES:
                raise e.EntityTooSmall(ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART_BYTES),
                                       PartNumber=str(number), ETag=etag)
            chosen.append(part)
        assembled = await asyncio.get_running_loop().run_in_executor(None, self._store.assemble, chosen)
        digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen)).hexdigest()
        etag = f"{digest}-{len(chosen)}"
        size = sum(p.size for p in chosen)
        stored_object = self._store.put_object(bucket, key, assembled, size, etag, upload.content_type,
                                               upload.metadata, self._clock.time())
        if stored_object is None:
            raise e.NoSuchBucket(BucketName=bucket)
        self._store.finish_upload(upload_id)
        info, sequence = stored_object
        await self._notify(request, "ObjectCreated:CompleteMultipartUpload", bucket, key, size, etag, sequence)
        location = f"/{bucket}/{quote(key, safe='/')}"
        body = xml.document("CompleteMultipartUploadResult", [E("Location", location), E("Bucket", bucket),
                                                              E("Key", key), E("ETag", _etag(etag))])
        return Response(body, content_type=XML)
